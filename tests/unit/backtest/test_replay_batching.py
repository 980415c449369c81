"""Replay's output does not depend on how many records one merge covers (`ADVANCE_EVERY`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stream_guard.backtest import replay as replay_module
from stream_guard.backtest.replay import Replayer, build_replayer
from stream_guard.ingest.arrival import BLOCK
from stream_guard.ownership import PARTIALS
from tests.parity import parity_records, per_owner, replay_alerts

RULES = Path(__file__).resolve().parents[3] / "alert_rules"


def _two_owners() -> Replayer:
    """The shipped rules and gmv over 30-minute windows, owned by another partials partition:
    two owners whose alerts close at different points."""
    shipped = build_replayer(RULES)
    gmv = next(r for r in shipped.rules if r.metric == "gmv")
    slow = gmv.model_copy(update={"metric": "gmv_30m", "window": timedelta(minutes=30)})
    return Replayer([*shipped.rules, slow], shipped.codec)


def _replay(records: list[dict[str, Any]], every: int, monkeypatch: pytest.MonkeyPatch
            ) -> list[bytes]:
    monkeypatch.setattr(replay_module, "ADVANCE_EVERY", every)
    return [a.to_json() for a in replay_alerts(_two_owners(), records)]


def test_alerts_are_the_same_in_the_same_order_whatever_the_merge_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = parity_records()
    monkeypatch.setattr(replay_module, "ADVANCE_EVERY", BLOCK)
    often = replay_alerts(_two_owners(), records)
    assert len(per_owner(often, _two_owners().partitions[PARTIALS])) == 2
    for every in (64 * BLOCK, 10**9):  # 10**9: one merge, at the end of the input
        assert _replay(records, every, monkeypatch) == [a.to_json() for a in often]
