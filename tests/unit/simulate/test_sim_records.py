"""The record dump: schemas, keys, timestamps, ids, arrival order and invalid records."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import orjson
import pytest
from sim_schema import schema_errors, ts_ms

from stream_guard.simulate import TOPICS, Simulation
from stream_guard.simulate.invalid import INVALID_KINDS
from stream_guard.simulate.simulation import LATE_DELAY_MS

Records = list[dict[str, Any]]
ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_every_valid_event_follows_its_topic_schema_and_key(
    small_valid: Records, topic_specs: dict[str, dict[str, Any]]
) -> None:
    assert {r["topic"] for r in small_valid} == set(TOPICS) <= set(topic_specs)
    for record in small_valid:
        spec = topic_specs[record["topic"]]
        assert schema_errors(spec["schema"], record["value"]) == [], record
        assert record["key"] == record["value"][spec["key"]]


def test_invalid_records_are_extra_lines_that_fail_validation(
    small_sim: Simulation,
    small_records: Records,
    small_valid: Records,
    topic_specs: dict[str, dict[str, Any]],
) -> None:
    valid_iter = iter(small_valid)
    expected, extra = next(valid_iter), []
    for record in small_records:
        if record == expected:
            expected = next(valid_iter, None)
        else:
            extra.append(record)
    assert expected is None  # every valid record is there, in the same order
    assert len(extra) == sum(small_sim.invalid_counts.values()) > 3 * len(INVALID_KINDS)
    assert all(n > 0 for n in small_sim.invalid_counts.values())
    for record in extra:
        if "value_raw" in record:
            assert (record["topic"], record["key"]) == ("orders", None)
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(record["value_raw"])
        else:
            assert schema_errors(topic_specs[record["topic"]]["schema"], record["value"])


def test_timestamps_are_mostly_iso_with_millis_some_epoch_ms(small_valid: Records) -> None:
    stamps = [r["value"]["ts"] for r in small_valid]
    epoch = [t for t in stamps if isinstance(t, int)]
    assert 0.07 < len(epoch) / len(stamps) < 0.13
    assert all(ISO_MS_Z.match(t) for t in stamps if isinstance(t, str))
    assert all(1_772_409_600_000 <= ts_ms(t) < 1_772_409_600_000 + 3 * 86_400_000 for t in stamps)


def test_event_ids_are_unique_and_a_few_events_carry_an_extra_field(small_valid: Records) -> None:
    ids = [r["value"]["event_id"] for r in small_valid]
    assert len(set(ids)) == len(ids)
    with_extra = sum("app_version" in r["value"] for r in small_valid)
    assert 0.01 < with_extra / len(small_valid) < 0.05


def test_arrival_order_is_event_time_with_jitter_and_a_few_late_events(
    small_sim: Simulation, small_valid: Records
) -> None:
    times = [ts_ms(r["value"]["ts"]) for r in small_valid]
    latest, behind = 0, []
    for t in times:
        if t < latest:
            behind.append(latest - t)
        latest = max(latest, t)
    late = [b for b in behind if b > 2_000]  # more than the jitter: a late arrival
    assert 0.001 < small_sim.late_count / len(times) < 0.006
    assert 0 < len(late) <= small_sim.late_count
    assert max(behind) <= LATE_DELAY_MS[1]


def test_complaints_and_violations_point_at_real_orders_and_listings(small_valid: Records) -> None:
    by_topic: dict[str, dict[str, dict[str, Any]]] = {"orders": {}, "listings": {}}
    for r in small_valid:
        if r["topic"] == "orders":
            by_topic["orders"][r["value"]["order_id"]] = r["value"]
        elif r["topic"] == "listings":
            by_topic["listings"][r["value"]["listing_id"]] = r["value"]
    same = ("seller_id", "region", "category", "seller_tier")
    for r in small_valid:
        if r["topic"] in ("complaints", "violations"):
            ref = "order_id" if r["topic"] == "complaints" else "listing_id"
            parent = by_topic["orders" if ref == "order_id" else "listings"][r["value"][ref]]
            assert {k: parent[k] for k in same} == {k: r["value"][k] for k in same}
            delay = ts_ms(r["value"]["ts"]) - ts_ms(parent["ts"])
            assert 0 < delay <= 20 * 60_000


def test_onboarding_flags_only_approved_sellers(small_valid: Records) -> None:
    decisions = [r["value"] for r in small_valid if r["topic"] == "seller_onboarding"]
    counts = Counter((d["decision"], d["flagged_bad"]) for d in decisions)
    assert counts[("rejected", True)] == 0
    approved = counts[("approved", True)] + counts[("approved", False)]
    assert 0.8 < approved / len(decisions) < 0.9
    assert 0.02 < counts[("approved", True)] / approved < 0.09


def test_the_real_codec_accepts_valid_events_and_rejects_invalid_ones(
    small_records: Records, small_valid: Records
) -> None:
    codec = pytest.importorskip("stream_guard.ingest.codec").Codec.from_topics()
    valid_ids = {r["value"]["event_id"] for r in small_valid}
    for record in small_records:
        payload = record.get("value_raw", "").encode() or orjson.dumps(record["value"])
        good, dead = codec.decode(record["topic"], payload, origin="test")
        is_valid = "value" in record and record["value"].get("event_id") in valid_ids
        assert (len(good), len(dead)) == ((1, 0) if is_valid else (0, 1)), record


def test_records_carry_exactly_the_generated_events(
    small_sim: Simulation, small_valid: Records
) -> None:
    per_topic = Counter(r["topic"] for r in small_valid)
    assert dict(per_topic) == small_sim.counts
    orders = [r["value"] for r in small_valid if r["topic"] == "orders"]
    assert sum(o["gmv"] for o in orders) == pytest.approx(small_sim.tables["orders"]["gmv"].sum())
    eu = sum(o["region"] == "EU" for o in orders)
    assert eu == int((small_sim.tables["orders"]["region"] == 1).sum())
