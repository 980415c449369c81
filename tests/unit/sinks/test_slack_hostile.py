"""Hostile event data in alerts: the message stays within Slack's limits and nothing in it pings,
links or breaks, whatever slice values, seller ids, intervention or calendar names contain."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stream_guard.sinks.slack_blocks import SlackMessage, button_value, render_parent, render_reply
from stream_guard.types import AlertRecord
from tests.fakes.slack_fixtures import slack_violations

EPISODE = Path(__file__).parents[1] / "alert" / "fixtures" / "gmv_episode.jsonl"
NOW_MS = 1_772_633_700_000
HOSTILE = "&<>@here <!channel> & <https://evil.example|click> #general " * 40  # ~2,400 chars
OURS = {  # the only control sequences an alert may carry: the owner and the rule's two links
    "<!subteam^S0123ABC>",
    "<https://wiki/runbooks/gmv|Runbook>",
    "<https://grafana/d/gmv|Dashboard>",
}
INJECTIONS = [
    "@here",
    "@channel",
    "@everyone",
    "<!here>",
    "<!channel>",
    "<!everyone>",
    "<@U123ABC>",
    "<#C123ABC>",
    "<#C123ABC|general>",
    "#general",
    "<!subteam^S999>",
    "<http://x|click>",
    "<mailto:a@b.example|mail>",
    "http://evil.example/path",
    "https://evil.example",
    "www.evil.example",
    "evil.example",
    "slack://open",
    "a@b.example",
]


def record(line: int = 0, **overrides: Any) -> AlertRecord:
    base = json.loads(EPISODE.read_text().splitlines()[line])
    return AlertRecord.parse({**base, **overrides})


def hostile_alert(value: str, n_slices: int = 3) -> AlertRecord:
    """`value` everywhere event data reaches an alert: slices, seller ids, hint names."""
    slices = [
        {"slice": {"seller_id": f"{i}{value}"}, "value": 1, "expected": 2, "score": 50 - i}
        for i in range(n_slices)
    ]
    where = {"seller_id": value}
    hints = [
        {"kind": "slice", "summary": f"seller_id={value} explains it", "slice": where,
         "share": 0.5, "effect": "level"},
        {"kind": "intervention", "summary": f"{value} (category={value}) 5 min before",
         "action_id": value, "action_kind": value, "scope": {"category": value},
         "at": "2026-03-04T14:10:00Z", "description": value},
        {"kind": "external", "summary": f"calendar: {value}", "name": value,
         "calendar_kind": "campaign", "scope": where},
        {"kind": "metric", "summary": f"complaint_rate also anomalous in region={value}",
         "metric": "complaint_rate", "slice": {"region": value}, "direction": "up"},
        {"kind": "sellers", "summary": f"2 sellers explain 80%: {value} (+40 complaints), "
         f"s{value} (+9)", "field": "seller_id", "share": 0.8,
         "sellers": [{"seller": value, "change": 40.0}, {"seller": f"s{value}", "change": 9.0}]},
    ]
    return record(slice={"seller_id": value}, firing_slices=slices, hints=hints * 3)


def messages(alert: AlertRecord) -> list[SlackMessage]:
    """The parent and every kind of reply for `alert`."""
    replies = [
        render_reply(
            alert,
            reason,
            previous_severity="info",
            previous_slices=[],
            first_sent_ms=0,
            now_ms=NOW_MS,
        )
        for reason in ("escalated", "repeat_due", "resolved")
    ]
    return [render_parent(alert, NOW_MS), *replies]


def texts(message: SlackMessage) -> list[str]:
    """The fallback and every text object of a message."""
    found = [message.text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text"):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.blocks)
    return found


def foreign_markup(text: str) -> list[str]:
    """What Slack or a client could turn into a mention, a channel or a link, outside OURS."""
    for ours in OURS:
        text = text.replace(ours, "")
    patterns = [r"<", r">", r"[@#]\w", r"://", r"[^\W_]\.[^\W\d_]", r"!(here|channel|everyone)>"]
    return [m.group() for p in patterns for m in re.finditer(p, text)]


def test_many_long_hostile_slices_fit_in_3000_characters_and_say_what_was_cut() -> None:
    alert = hostile_alert(HOSTILE, n_slices=40)
    for message in messages(alert):
        assert slack_violations(message.text, message.blocks) == []
        for text in texts(message):
            assert foreign_markup(text) == []
    parent = render_parent(alert, NOW_MS)
    sections = [b["text"]["text"] for b in parent.blocks if b["type"] == "section" and "text" in b]
    [slices] = [s for s in sections if s.startswith("*Firing slices*")]
    assert re.search(r"… \d+ more slices$", slices)
    shown = slices.count("\n• ")
    assert slices.endswith(f"… {40 - shown} more slices")
    assert "…" in slices.split("\n")[1]  # one value was clipped, and says so
    hints = next(s for s in sections if s.startswith("*Root-cause hints*"))
    assert hints.endswith(f"… {15 - hints.count(chr(10) + '• ')} more hints")


def test_under_the_limits_nothing_is_cut() -> None:
    message = render_parent(record(), NOW_MS)
    assert slack_violations(message.text, message.blocks) == []
    assert "…" not in json.dumps(message.blocks, ensure_ascii=False)


@pytest.mark.parametrize("injection", INJECTIONS)
def test_no_mention_or_link_from_event_data(injection: str) -> None:
    for message in messages(hostile_alert(injection)):
        assert slack_violations(message.text, message.blocks) == []
        for text in texts(message):
            assert foreign_markup(text) == [], text


def test_the_owner_is_the_only_mention() -> None:
    parent = render_parent(hostile_alert("<@U999> @here"), NOW_MS)
    everything = "\n".join(texts(parent))
    assert re.findall(r"<[@!#][^>]*>", everything) == ["<!subteam^S0123ABC>"]


@pytest.mark.parametrize("owner", ["@here", "<!channel>", "here", "#general", "s0123abc"])
def test_an_owner_that_is_not_a_slack_id_mentions_nobody(owner: str) -> None:
    parent = render_parent(record(owner=owner), NOW_MS)
    [owners] = [f["text"] for f in parent.blocks[1]["fields"] if f["text"].startswith("*Owner*")]
    assert foreign_markup(owners) == []


def test_many_owners_fit_their_field() -> None:
    owners = " ".join(f"U{i:08d}" for i in range(400))
    parent = render_parent(record(owner=owners), NOW_MS)
    assert slack_violations(parent.text, parent.blocks) == []
    [field] = [f["text"] for f in parent.blocks[1]["fields"] if f["text"].startswith("*Owner*")]
    assert re.search(r"<@U00000000> .* … \d+ more owners$", field)


def test_every_mrkdwn_object_is_verbatim() -> None:
    for message in messages(record()) + messages(record(3)):
        for block in message.blocks:
            for obj in _mrkdwn(block):
                assert obj["verbatim"] is True, block


def _mrkdwn(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [obj for item in node for obj in _mrkdwn(item)]
    if not isinstance(node, dict):
        return []
    found = [node] if node.get("type") == "mrkdwn" else []
    return found + [obj for value in node.values() for obj in _mrkdwn(value)]


def test_emoji_count_twice_toward_the_limit() -> None:
    alert = hostile_alert("\N{PILE OF POO}" * 3000, n_slices=20)
    for message in messages(alert):
        assert slack_violations(message.text, message.blocks) == []


def test_button_value_is_whole_json_within_2000_characters() -> None:
    for overrides in ({"slice": {"k": "<" * 3000}}, {"metric": "m" * 3000}):
        value = button_value(record(**overrides))
        assert len(value) <= 2000
        data = json.loads(value)
        assert data["episode_id"] == "gmv-20260304T1400Z-3f9a0c1b"
        assert "<" not in value and "&" not in value


def test_button_value_of_an_absurd_episode_id_is_still_json() -> None:
    value = button_value(record(episode_id="\N{PILE OF POO}" * 3000))
    assert len(value) <= 2000
    assert json.loads(value)["episode_id"].startswith("\N{PILE OF POO}")
