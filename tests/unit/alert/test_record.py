"""The alert record: one model built, published, parsed and read back byte for byte; its JSON
Schema is the alerts topic's published contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from stream_guard.alert.episodes import Episode
from stream_guard.alert.record import build_record, main
from stream_guard.config.calendar import Calendar
from stream_guard.config.rules import MetricRule
from stream_guard.config.topics import load_topic
from stream_guard.errors import InvalidEvent
from stream_guard.explain.context import InterventionLog, calendar_hints
from stream_guard.explain.slices import SliceShare, mix_shift, slice_hints
from stream_guard.types import (
    AlertRecord,
    ExternalHint,
    InterventionHint,
    MetricHint,
    MetricPoint,
    RootCauseHint,
    Score,
    SliceHint,
)

REPO = Path(__file__).resolve().parents[3]
EPISODE = (Path(__file__).parent / "fixtures" / "gmv_episode.jsonl").read_text().splitlines()
T0 = 1_772_633_700_000  # 2026-03-04T14:15:00Z
MIN = 60_000
EU = (("region", "EU"),)

# What the dict builder (before the model) wrote for `_record()`: the wire format, kept.
WIRE = (
    b'{"schema":1,"fingerprint":"3f9a0c1b2d4e5f60","episode_id":"gmv-20260304T1400Z-3f9a0c1b",'
    b'"sequence":2,"status":"firing","reason":"escalated","metric":"gmv",'
    b'"description":"Gross merchandise value","rule_version":"gmv@3","owner":"S0123ABC",'
    b'"runbook":null,"dashboard":"https://grafana/d/gmv","route":"commerce-oncall",'
    b'"slice":{"region":"EU"},"direction":"down","window_start":"2026-03-04T14:15:00Z",'
    b'"window_end":"2026-03-04T14:30:00Z","value":12000.123457,"expected":41000.0,'
    b'"score":9.333333,"severity":"critical","started_at":"2026-03-04T14:00:00.250Z",'
    b'"peak_score":9.333333,"firing_slices":[{"slice":{"region":"EU"},"value":12000.123457,'
    b'"expected":41000.0,"score":9.333333}],"hints":[{"kind":"slice","summary":"platform-wide:'
    b' no slice stands out, all moved alike","slice":{},"share":1.0,"effect":"broad"},'
    b'{"kind":"slice","summary":"region=EU explains 90% of the change (-71% in the slice)",'
    b'"slice":{"region":"EU"},"share":0.9,"relative_change":-0.7073,"effect":"level"},'
    b'{"kind":"slice","summary":"mix shifted toward region=EU (+25% of the volume)",'
    b'"slice":{"region":"EU"},"share_gain":0.25,"effect":"mix"},{"kind":"intervention",'
    b'"summary":"takedown act-17 (region=EU) 10 min before","action_id":"act-17",'
    b'"action_kind":"takedown","scope":{"region":"EU"},"at":"2026-03-04T14:05:00Z",'
    b'"description":"Seller sweep"},{"kind":"external","summary":"calendar: Spring sale '
    b'(campaign)","name":"Spring sale","calendar_kind":"campaign","scope":{}},{"kind":"metric",'
    b'"summary":"complaint_rate also anomalous (up) in region=EU","metric":"complaint_rate",'
    b'"slice":{"region":"EU"},"direction":"up"}]}'
)


HINTS = [  # one of every kind and effect, shaped as explain/ shapes them (or shaped, for metric)
    RootCauseHint("slice", "platform-wide: no slice stands out, all moved alike",
                  {"slice": {}, "share": 1.0, "effect": "broad"}),
    RootCauseHint("slice", "region=EU explains 90% of the change (-71% in the slice)",
                  {"slice": {"region": "EU"}, "share": 0.9, "relative_change": -0.7073,
                   "effect": "level"}),
    RootCauseHint("slice", "mix shifted toward region=EU (+25% of the volume)",
                  {"slice": {"region": "EU"}, "share_gain": 0.25, "effect": "mix"}),
    RootCauseHint("intervention", "takedown act-17 (region=EU) 10 min before",
                  {"action_id": "act-17", "action_kind": "takedown", "scope": {"region": "EU"},
                   "at": "2026-03-04T14:05:00Z", "description": "Seller sweep"}),
    RootCauseHint("external", "calendar: Spring sale (campaign)",
                  {"name": "Spring sale", "calendar_kind": "campaign", "scope": {}}),
    RootCauseHint("metric", "complaint_rate also anomalous (up) in region=EU",
                  {"metric": "complaint_rate", "slice": {"region": "EU"}, "direction": "up"}),
]


def _record(hints: list[RootCauseHint] = HINTS) -> AlertRecord:
    rule = MetricRule.model_validate({
        "metric": "gmv", "version": 3, "description": "Gross merchandise value",
        "owner": "S0123ABC", "dashboard": "https://grafana/d/gmv", "value": "sum",
        "source": {"topic": "orders", "aggregate": "sum", "field": "gmv"}, "window": "15m",
        "dimensions": ["region"], "detector": {"type": "threshold", "lower": 1.0},
        "alert": {"route": "commerce-oncall"},
    })
    episode = Episode("gmv", "3f9a0c1b2d4e5f60", "gmv-20260304T1400Z-3f9a0c1b", EU, "down",
                      T0 - 15 * MIN + 250, "critical", 9.3333333, sequence=2)
    point = MetricPoint("gmv", EU, T0, T0 + 15 * MIN, 12000.1234567, 12000.1234567, 90.0)
    lead = Score(point, 9.3333333, 41000.0, True, "down")
    return build_record(rule, episode, "escalated", lead, (T0, T0 + 15 * MIN), [lead], hints)


def _explained() -> list[RootCauseHint]:
    """One hint of every kind and effect, made by explain/ itself."""
    point = MetricPoint("gmv", EU, T0, T0 + 15 * MIN, 12000.0, 12000.0, 100.0)
    share = SliceShare(EU, 0.9, -0.70734, 2.0, Score(point, 9.0, 41000.0, True, "down"))
    hints = slice_hints([], True, 5) + slice_hints([share], False, 5)
    hints += mix_shift({EU: (1.0, 25.0), (("region", "NA"),): (9.0, 75.0)},
                       {EU: (5.0, 50.0), (("region", "NA"),): (3.0, 50.0)}, "up")
    log = InterventionLog()
    log.add(T0 - 10 * MIN, {"action_id": "act-17", "kind": "takedown", "scope": {"region": "EU"},
                            "description": "Seller sweep"})
    hints += log.hints({"region": "EU"}, T0, T0 + 15 * MIN, 60 * MIN)
    calendar = Calendar.model_validate({"entries": [{
        "name": "Spring sale", "kind": "campaign",
        "start": "2026-03-04T00:00:00Z", "end": "2026-03-05T00:00:00Z"}]})
    return hints + calendar_hints(calendar, {"region": "EU"}, T0, T0 + 15 * MIN)


def test_built_record_keeps_the_wire_format() -> None:
    assert _record().to_json() == WIRE


def test_every_hint_explain_makes_is_typed_and_written_as_made() -> None:
    hints = _explained()
    record = _record(hints)
    assert [type(h) for h in record.hints] == [
        SliceHint, SliceHint, SliceHint, InterventionHint, ExternalHint]
    assert record["hints"] == [h.to_json() for h in hints]


def test_a_record_read_back_is_the_same_record_and_the_same_bytes() -> None:
    record = _record()
    assert AlertRecord.parse(WIRE) == record
    # the engine no longer writes co-moving hints (the notifier links episodes across owners:
    # alert/correlate.py), but records written before still read
    assert isinstance(record.hints[-1], MetricHint)
    assert AlertRecord.parse(WIRE.decode()).to_json() == WIRE
    assert AlertRecord.parse(json.loads(WIRE)).to_json() == WIRE
    assert AlertRecord.parse(record) is record


def test_a_record_reads_as_its_json_object() -> None:
    record = _record()
    assert record["schema"] == 1 and record["window_start"] == "2026-03-04T14:15:00Z"
    assert record["hints"][0] == {"kind": "slice", "summary": record.hints[0].summary,
                                  "slice": {}, "share": 1.0, "effect": "broad"}
    with pytest.raises(KeyError):
        record["silenced_by"]


def test_records_are_frozen() -> None:
    record = _record()
    with pytest.raises(ValidationError):
        record.severity = "warning"
    with pytest.raises(ValidationError):
        record.hints[0].summary = "edited"


def test_a_silenced_copy_is_a_record_too() -> None:
    copy = {**json.loads(WIRE), "status": "silenced", "silenced_by": ["sil-1"]}
    record = AlertRecord.parse(copy)
    assert record.status == "silenced" and record.silenced_by == ("sil-1",)
    assert json.loads(record.to_json()) == copy


def test_unknown_fields_are_ignored_so_a_newer_writer_can_add_some() -> None:
    record = AlertRecord.parse({**json.loads(WIRE), "added_later": {"x": 1}})
    assert record.to_json() == WIRE


@pytest.mark.parametrize(
    ("change", "reason", "named"),
    [
        ({"status": "exploded", "window_end": "yesterday"}, "invalid_alert_record",
         ["status", "window_end"]),
        ({"window_start": "2026-03-04T14:15:00"}, "invalid_alert_record", ["window_start"]),
        ({"schema": 2}, "invalid_alert_record", ["schema"]),
        ({"episode_id": ""}, "invalid_alert_record", ["episode_id"]),
        ({"hints": [{"kind": "rumour", "summary": "?"}]}, "invalid_alert_record", ["hints.0"]),
        ({"hints": [{"kind": "slice", "summary": "?"}]}, "invalid_alert_record",
         ["hints.0.slice.slice", "hints.0.slice.effect"]),
        ({"firing_slices": [{"slice": {}, "value": "a lot", "expected": None, "score": 1}]},
         "invalid_alert_record", ["firing_slices.0.value"]),
    ],
)
def test_an_unreadable_record_is_refused_with_every_reason(
    change: dict[str, object], reason: str, named: list[str]
) -> None:
    with pytest.raises(InvalidEvent) as info:
        AlertRecord.parse({**json.loads(WIRE), **change})
    assert info.value.reason == reason
    assert all(f"{field}:" in info.value.detail for field in named), info.value.detail


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"null"])
def test_bytes_that_hold_no_record_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidEvent) as info:
        AlertRecord.parse(raw)
    assert info.value.reason == ("not_json" if raw.startswith(b"{") else "invalid_alert_record")


def test_the_fixture_episode_reads_back_unchanged() -> None:
    for line in EPISODE:
        assert AlertRecord.parse(line).to_dict() == json.loads(line)


def test_the_alerts_topic_publishes_the_record_schema() -> None:
    spec = load_topic(REPO / "topics" / "alerts.yaml")
    assert spec.internal and spec.key == "fingerprint"
    assert spec.json_schema == AlertRecord.model_json_schema()
    assert main(["--check"]) == 0, "stale: run python -m stream_guard.alert.record"


def test_a_stale_topic_file_is_reported_then_rewritten(tmp_path: Path) -> None:
    stale = tmp_path / "alerts.yaml"
    stale.write_text("name: alerts\npartitions: 3\nkey: fingerprint\ninternal: true\n")
    assert main(["--topic-file", str(stale), "--check"]) == 1
    assert main(["--topic-file", str(stale)]) == 0
    spec = load_topic(stale)
    assert spec.partitions == 3 and spec.json_schema == AlertRecord.model_json_schema()
    assert main(["--topic-file", str(stale), "--check"]) == 0
