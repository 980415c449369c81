"""tests/parity.py `per_episode`: how alerts read back from several alerts partitions are compared
with replay's (the same episodes, each in order; episodes interleaved in any order)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.parity import per_episode, per_owner

EPISODE = Path(__file__).parent / "alert" / "fixtures" / "gmv_episode.jsonl"


def _two_episodes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The fixture's GMV episode, and the same records as another episode of another slice."""
    first = [json.loads(line) for line in EPISODE.read_text().splitlines()]
    other = [{**r, "episode_id": "gmv-other", "fingerprint": "other", "slice": {"region": "EU"}}
             for r in first]
    return first, other


def _interleaved(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for pair in zip(a, b, strict=True) for r in pair]


def test_episodes_interleaved_in_another_order_are_equal() -> None:
    first, other = _two_episodes()
    replay, live = first + other, _interleaved(other, first)
    assert per_owner(live, 6) != per_owner(replay, 6)  # what one alerts partition would demand
    assert per_episode(live, 6) == per_episode(replay, 6)
    assert [len(eps) for eps in per_episode(replay, 6).values()] == [2]  # one owner, 2 episodes


def test_an_episode_out_of_order_or_missing_or_extra_is_not_equal() -> None:
    first, other = _two_episodes()
    replay = first + other
    swapped = [first[1], first[0], *first[2:], *other]
    assert per_episode(swapped, 6) != per_episode(replay, 6)
    assert per_episode(first, 6) != per_episode(replay, 6)
    assert per_episode(replay + other[-1:], 6) != per_episode(replay, 6)


def test_episodes_are_grouped_under_the_owner_of_their_metric() -> None:
    first, _ = _two_episodes()
    complaints = [{**r, "metric": "complaint_rate", "episode_id": "c"} for r in first]
    owners = per_episode(first + complaints, 4)
    assert {o: sorted(eps) for o, eps in owners.items()} == {
        0: ["gmv-20260304T1400Z-3f9a0c1b"], 3: ["c"]}
