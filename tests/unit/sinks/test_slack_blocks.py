"""Block Kit rendering: content an analyst needs, and nothing from events that Slack would parse."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from stream_guard.sinks.slack_blocks import (
    ACK_ACTION_ID,
    FALSE_ALARM_ACTION_ID,
    REAL_ACTION_ID,
    SNOOZE_ACTION_ID,
    Handling,
    escape_mrkdwn,
    link,
    mention,
    relative_time,
    render_parent,
    render_reply,
)
from stream_guard.types import AlertRecord
from tests.fakes.slack_fixtures import slack_violations

EPISODE = Path(__file__).parents[1] / "alert" / "fixtures" / "gmv_episode.jsonl"
WINDOW_END_MS = 1_772_633_700_000  # 2026-03-04T14:15:00Z


def record(line: int = 0, **overrides: Any) -> AlertRecord:
    base = json.loads(EPISODE.read_text().splitlines()[line])
    return AlertRecord.parse({**base, **overrides})


def all_text(message: Any) -> str:
    """Every mrkdwn string of a message, fallback included."""
    found: list[str] = [message.text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.blocks)
    return "\n".join(found)


def test_parent_has_everything_an_analyst_needs() -> None:
    message = render_parent(record(), now_ms=WINDOW_END_MS + 5 * 60_000)
    text = all_text(message)
    for expected in [
        "*gmv* is down · region=EU",  # title: metric, direction, slice
        "Gross merchandise value",
        "12,000.5 vs expected 41,000 (-70.7%)",
        "*Score*\n6.1 (peak 6.1)",
        "2026-03-04 14:00 – 14:15 UTC\n5 minutes ago",
        "*Severity*\nwarning",
        "*Slice*: region=EU explains 92% of the change",
        "*Co-moving metric*: complaint_rate also anomalous",
        "*Intervention*: rule_launch act-17",
        "*External factor*: calendar: Spring sale",
        "<!subteam^S0123ABC>",
        "<https://wiki/runbooks/gmv|Runbook>",
        "<https://grafana/d/gmv|Dashboard>",
        "fingerprint `3f9a0c1b2d4e5f60`",
    ]:
        assert expected in text, expected
    assert message.text == "[WARNING] gmv down in region=EU: 12,000.5 vs expected 41,000"
    actions = message.blocks[-1]
    assert actions["type"] == "actions"
    buttons = {b["action_id"]: b["text"]["text"] for b in actions["elements"]}
    assert buttons == {
        ACK_ACTION_ID: "Acknowledge", SNOOZE_ACTION_ID: "Snooze 1h",
        "stream_guard.snooze_4h": "Snooze 4h", "stream_guard.snooze_24h": "Snooze 24h",
        REAL_ACTION_ID: "Real issue", FALSE_ALARM_ACTION_ID: "False alarm"}
    [value] = {b["value"] for b in actions["elements"]}
    assert json.loads(value) == {
        "episode_id": "gmv-20260304T1400Z-3f9a0c1b",
        "metric": "gmv",
        "slice": {"region": "EU"},
    }


def test_resolved_parent_keeps_only_the_verdicts_and_says_how_long() -> None:
    message = render_parent(record(3), now_ms=WINDOW_END_MS + 6_000_000)
    text = all_text(message)
    assert ":white_check_mark: *RESOLVED*" in text
    assert "*Duration*\n1 hour 45 minutes" in text
    assert message.text.startswith("[RESOLVED] gmv")
    [actions] = [block for block in message.blocks if block["type"] == "actions"]
    assert [b["action_id"] for b in actions["elements"]] == [REAL_ACTION_ID,
                                                            FALSE_ALARM_ACTION_ID]


def test_the_parent_shows_who_judged_the_episode() -> None:
    shown = render_parent(record(3), WINDOW_END_MS, Handling(judged_by="U0ANA",
                                                             verdict="false_alarm"))
    assert ":no_bell: Marked a false alarm by <@U0ANA>" in all_text(shown)
    real = render_parent(record(), WINDOW_END_MS, Handling(judged_by="<!here>", verdict="real"))
    assert ":dart: Marked a real issue by &lt;!here&gt;" in all_text(real)


def test_share_is_shown_when_the_summary_does_not_say_it() -> None:
    hint = {"kind": "slice", "summary": "category=toys", "slice": {"category": "toys"},
            "share": 0.4, "effect": "level"}
    text = all_text(render_parent(record(hints=[hint]), WINDOW_END_MS))
    assert "*Slice*: category=toys (40% of the change)" in text


def test_missing_optional_fields_render() -> None:
    alert = record(owner=None, runbook=None, dashboard=None, expected=None, slice={}, hints=[])
    text = all_text(render_parent(alert, WINDOW_END_MS))
    assert "12,000.5 (no baseline yet)" in text
    assert "· global" in text
    assert "Runbook" not in text and "*Owner*" not in text
    no_value = all_text(render_parent(record(value=None, score=None), WINDOW_END_MS))
    assert "no data in this window" in no_value and "*Score*\nn/a" in no_value


INJECTION = "<!channel> <https://evil|click>"


def test_slice_value_injection_arrives_escaped_verbatim() -> None:
    alert = record(
        slice={"seller_id": INJECTION},
        description="<@U999> & <!here>",
        firing_slices=[
            {"slice": {"seller_id": INJECTION}, "value": 1, "expected": 2, "score": 9},
            {"slice": {"category": "<!everyone>"}, "value": 1, "expected": 2, "score": 8},
        ],
        hints=[{"kind": "slice", "summary": f"seller_id={INJECTION} explains it",
                "slice": {"seller_id": INJECTION}, "share": 0.5, "effect": "level"}],
        rule_version="<!channel>",
        fingerprint="<!here>",
        metric="gmv<!channel>",
    )
    message = render_parent(alert, WINDOW_END_MS)
    escaped = "&lt;!channel&gt; &lt;https:\u2060//evil|click&gt;"
    text = all_text(message)
    assert f"seller_id={escaped}" in text
    assert "&lt;@\u2060U999&gt; &amp; &lt;!here&gt;" in text
    assert "category=&lt;!everyone&gt;" in text
    reply = render_reply(
        alert,
        "escalated",
        previous_severity="warning",
        previous_slices=[],
        first_sent_ms=0,
        now_ms=WINDOW_END_MS,
    )
    allowed = {
        "<!subteam^S0123ABC>",
        "<https://wiki/runbooks/gmv|Runbook>",
        "<https://grafana/d/gmv|Dashboard>",
    }
    for rendered in (text, all_text(reply)):
        # The only control sequences left are ours: the owner mention and the two links.
        assert set(re.findall(r"<[^>]*>", rendered)) <= allowed
        assert "<!" not in rendered.replace("<!subteam^S0123ABC>", "")


@pytest.mark.parametrize(
    ("owner", "rendered"),
    [
        ("S0123ABC", "<!subteam^S0123ABC>"),
        ("U0123ABC", "<@U0123ABC>"),
        ("W0123ABC", "<@W0123ABC>"),
        ("governance-oncall", "governance-oncall"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("@here", "@\u2060here"),
        ("s0123abc", "s0123abc"),
        ("U0123ABC\n", "U0123ABC "),
        ("S0123ABC\n", "S0123ABC "),
    ],
)
def test_only_configured_slack_ids_become_mentions(owner: str, rendered: str) -> None:
    assert mention(owner) == rendered


def test_several_owners() -> None:
    text = all_text(render_parent(record(owner="S0123ABC, U0456DEF"), WINDOW_END_MS))
    assert "*Owner*\n<!subteam^S0123ABC> <@U0456DEF>" in text


@pytest.mark.parametrize(
    ("url", "rendered"),
    [
        ("https://wiki/x", "<https://wiki/x|Runbook>"),
        ("https://evil|<!channel>", "Runbook: https:\u2060//evil|&lt;!channel&gt;"),
        ("javascript:alert(1)", "Runbook: javascript:alert(1)"),
        ("https://wiki/x\n", "Runbook: https:\u2060//wiki/x "),
        ("https://a/b?x=1&y=2", "Runbook: https:\u2060//a/b?x=1&amp;y=2"),
        ("https://wiki/" + "x" * 1000, "Runbook: https:\u2060//wiki/" + "x" * 485 + "…"),
    ],
)
def test_links_only_for_plain_http_urls(url: str, rendered: str) -> None:
    assert link(url, "Runbook") == rendered


GRAFANA = "https://grafana/d/sg?var-metric={metric}&var-slice={slice}&var-region={dim:region}"


@pytest.mark.parametrize("region", [
    "EU", "<https://evil|click>", "x&var-metric=other", "a|b>c", "#\n@here", "é/?#=%", "",
])
def test_templated_links_carry_slice_values_percent_encoded_and_nothing_else(
    region: str,
) -> None:
    alert = record(dashboard=GRAFANA, slice={"region": region})
    [context] = [b for b in render_parent(alert, WINDOW_END_MS).blocks if b["type"] == "context"
                 and "Dashboard" in b["elements"][0]["text"]]
    text = context["elements"][0]["text"]
    links = re.findall(r"<([^<>|]*)\|Dashboard>", text)
    assert len(links) == 1 and text.count("<") == text.count(">") == 1 + text.count("Runbook")
    query = parse_qs(urlsplit(links[0].replace("&amp;", "&")).query)
    assert query == {"var-metric": ["gmv"], "var-slice": [f"region={region}"],
                     **({"var-region": [region]} if region else {})}
    assert slack_violations(all_text(alert_message(alert)), alert_message(alert).blocks) == []


def alert_message(alert: AlertRecord) -> Any:
    return render_parent(alert, WINDOW_END_MS)


@pytest.mark.parametrize("template", [
    "https://{slice}.evil/x", "https://g/d?x={seller}", "https://g/d?x={metric.__class__}",
    "javascript:{metric}", "https://g/d?x={metric",
])
def test_a_template_no_rule_could_load_is_inert_text(template: str) -> None:
    text = all_text(render_parent(record(dashboard=template), WINDOW_END_MS))
    assert "|Dashboard>" not in text and "Dashboard: " in text


def test_long_foreign_text_is_escaped_then_clipped_between_entities() -> None:
    assert escape_mrkdwn("<" * 1000, limit=10) == "&lt;&lt;…"
    assert escape_mrkdwn("a&b", limit=10) == "a&amp;b"
    assert escape_mrkdwn("line\nbreak\ttab\u202eevil", limit=100) == "line break tabevil"
    assert escape_mrkdwn("\u202e" * 20 + "abcdefghijkl", limit=10) == "abcdefghi…"


@pytest.mark.parametrize(
    ("ago_ms", "text"),
    [
        (0, "just now"),
        (59_000, "just now"),
        (60_000, "1 minute ago"),
        (5 * 60_000, "5 minutes ago"),
        (90 * 60_000, "1 hour ago"),
        (49 * 3_600_000, "2 days ago"),
    ],
)
def test_relative_time(ago_ms: int, text: str) -> None:
    assert relative_time(1_000_000_000, 1_000_000_000 + ago_ms) == text


def test_replies() -> None:
    escalated = render_reply(
        record(2),
        "escalated",
        previous_severity="warning",
        previous_slices=["region=EU"],
        first_sent_ms=0,
        now_ms=WINDOW_END_MS,
    )
    text = all_text(escalated)
    assert "Escalated to *critical* (was warning)" in text
    assert "New slices: category=toys, region=EU" in text
    assert "9,000 vs expected 41,000 (-78.0%) · score 9.3" in text

    resolved = all_text(
        render_reply(
            record(3),
            "resolved",
            previous_severity="critical",
            previous_slices=[],
            first_sent_ms=0,
            now_ms=WINDOW_END_MS,
        )
    )
    assert "Resolved after 1 hour 45 minutes · peak score 9.3" in resolved

    repeat = all_text(
        render_reply(
            record(1),
            "repeat_due",
            previous_severity="warning",
            previous_slices=["region=EU"],
            first_sent_ms=WINDOW_END_MS - 7_200_000,
            now_ms=WINDOW_END_MS,
        )
    )
    assert "Still firing (2 hours since the first notification)" in repeat


SO_FAR = {"since": "2026-03-04T14:15:00Z", "windows": 3, "duration_s": 2700.0,
          "aggregate": "sum", "actual": 85_100.0, "expected": 40_300.0, "gap": 44_800.0,
          "gap_per_hour": 59_733.33}


def test_the_parent_gives_the_episode_so_far_in_the_metric_unit() -> None:
    alert = record(window_start="2026-03-04T14:45:00Z", window_end="2026-03-04T15:00:00Z",
                   so_far=SO_FAR, unit="USD")
    text = all_text(render_parent(alert, WINDOW_END_MS))
    line = "since 14:15 (45 minutes): 85.1k vs 40.3k expected (+111%), +44.8k USD, +59.7k USD/h"
    assert f"*So far*\n{line}" in text
    assert "12,000.5 vs expected" not in text  # the bare window value is gone
    assert line in render_parent(alert, WINDOW_END_MS).text


def test_a_drop_and_a_rate_read_as_such() -> None:
    drop = {**SO_FAR, "actual": 40_300.0, "expected": 85_100.0, "gap": -44_800.0,
            "gap_per_hour": -59_733.33}
    text = all_text(render_parent(record(so_far=drop, unit="USD"), WINDOW_END_MS))
    assert "40.3k vs 85.1k expected (−53%), −44.8k USD, −59.7k USD/h" in text
    rate = {**SO_FAR, "aggregate": "mean", "actual": 0.051, "expected": 0.032, "gap": 0.019,
            "gap_per_hour": None}
    text = all_text(render_parent(record(so_far=rate), WINDOW_END_MS))
    assert "mean of 3 windows: 0.051 vs 0.032 expected (+59%), +0.019\n" in text


def test_a_hostile_unit_is_escaped() -> None:
    alert = AlertRecord.parse({**record().to_dict(), "so_far": SO_FAR, "unit": "<!channel>"})
    assert "<!channel>" not in all_text(render_parent(alert, WINDOW_END_MS))


def test_a_reminder_says_when_its_numbers_stop() -> None:
    alert = record(window_end="2026-03-04T15:00:00Z", so_far=SO_FAR, unit="USD")
    reply = render_reply(alert, "repeat_due", previous_severity="warning", previous_slices=[],
                         first_sent_ms=0, now_ms=WINDOW_END_MS + 3_600_000)
    text = all_text(reply)
    assert "\nAs of 15:00 UTC: since 14:15 (45 minutes): 85.1k vs 40.3k expected" in text
    assert "Now:" not in text


def test_every_hint_kind_has_its_own_label() -> None:
    """A new kind of hint must not reach analysts under the fallback label "Hint"."""
    from typing import get_args

    from stream_guard.sinks.slack_blocks import _HINT_LABEL
    from stream_guard.types import HintKind

    assert set(get_args(HintKind)) == set(_HINT_LABEL)
