"""The Kafka tools against the embedded broker: topics create, produce a dump, dump a time range."""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from stream_guard.config.topics import TopicSpec
from stream_guard.ingest.files import DumpRecord, iter_dump
from stream_guard.ingest.kafka import KafkaToolError, admin_client
from stream_guard.ingest.kafka_cli import add_cli
from stream_guard.ingest.kafka_dump import dump_line, dump_range
from stream_guard.ingest.kafka_produce import produce_dump
from stream_guard.ingest.kafka_topics import create_topics, partition_counts
from stream_guard.types import iso_utc

pytestmark = pytest.mark.integration

T0 = 1_772_409_600_000  # 2026-03-02T00:00:00Z
MINUTE = 60_000
FAR_FUTURE = 4_000_000_000_000  # 2096: a range end that takes everything
SELLERS = [f"seller-{i}" for i in range(12)]

Row = tuple[str, str | None, Any]  # topic, key, value


def _events(n: int = 240) -> list[Row]:
    """`n` orders and complaints over 20 minutes, ts alternating ISO-8601 and epoch ms."""
    rows: list[Row] = []
    for i in range(n):
        ts = T0 + i * 20 * MINUTE // n
        seller = SELLERS[i % len(SELLERS)]
        topic = "complaints" if i % 5 == 0 else "orders"
        value = {"event_id": f"e{i}", "ts": iso_utc(ts) if i % 2 else ts, "seller_id": seller}
        rows.append((topic, seller, value))
    return rows


def _write(tmp_path: Path, rows: Iterable[Row]) -> Path:
    path = tmp_path / "input.jsonl"
    path.write_bytes(b"".join(dump_line(*row) for row in rows))  # dump_line writes raw payloads
    return path


def _by_key(records: Iterable[DumpRecord]) -> dict[tuple[str, str | None], list[Any]]:
    """Records per (topic, key), in order: the order Kafka keeps (one key, one partition)."""
    out: dict[tuple[str, str | None], list[Any]] = defaultdict(list)
    for r in records:
        out[(r.topic, r.key)].append(r.value)
    return dict(out)


def _rows_by_key(rows: Iterable[Row]) -> dict[tuple[str, str | None], list[Any]]:
    return _by_key(DumpRecord(t, k, v, "") for t, k, v in rows)


# --- topics create ---------------------------------------------------------------------------

def test_topics_create_is_idempotent_with_the_partitions_of_the_files(
        bootstrap: str, topic_prefix: str, topics: dict[str, TopicSpec]) -> None:
    first = create_topics(bootstrap, topics.values(), prefix=topic_prefix)
    assert {r.status for r in first} == {"created"}
    second = create_topics(bootstrap, topics.values(), prefix=topic_prefix)
    assert {r.status for r in second} == {"exists"}
    wanted = {topic_prefix + s.name: s.partitions for s in topics.values()}
    with admin_client(bootstrap) as admin:
        assert partition_counts(admin, wanted) == wanted
    assert (wanted[topic_prefix + "orders"], wanted[topic_prefix + "alerts"],
            wanted[topic_prefix + "control"]) == (4, 3, 1)  # each file's own count


def test_topics_create_reports_a_partition_mismatch(
        bootstrap: str, topic_prefix: str, topics: dict[str, TopicSpec]) -> None:
    orders = topics["orders"]
    create_topics(bootstrap, [orders.model_copy(update={"partitions": 2})], prefix=topic_prefix)
    [result] = create_topics(bootstrap, [orders], prefix=topic_prefix)
    assert (result.status, result.partitions, result.actual_partitions) == ("mismatch", 4, 2)


# --- produce → dump --------------------------------------------------------------------------

@pytest.mark.parametrize(("batch", "compression"), [(1, None), (1, "gzip"), (8, "gzip")])
def test_produce_then_dump_round_trips_every_record_with_its_key(
        bootstrap: str, kafka_topics: str, tmp_path: Path, batch: int,
        compression: str | None) -> None:
    rows = [*_events(), ("orders", None, b"not json at all")]  # a raw payload, kept as it was
    stats = produce_dump(bootstrap, iter_dump(_write(tmp_path, rows)), prefix=kafka_topics,
                         batch=batch, compression=compression)
    assert stats.events == len(rows)
    if batch > 1:
        assert stats.messages < len(rows) / 2  # batched: keys differ inside a batch

    out = tmp_path / "dump.jsonl.gz"
    dumped = dump_range(bootstrap, ["orders", "complaints"], T0, FAR_FUTURE, out,
                        prefix=kafka_topics)
    records = list(iter_dump(out))
    assert dumped.records == len(records) == len(rows)
    assert dumped.messages == stats.messages
    assert {r.topic for r in records} == {"orders", "complaints"}  # the prefix is not dumped
    assert _by_key(records) == _rows_by_key(rows)


def test_dump_keeps_only_the_time_range(bootstrap: str, kafka_topics: str, tmp_path: Path) -> None:
    rows = _events()
    produce_dump(bootstrap, iter_dump(_write(tmp_path, rows)), prefix=kafka_topics, batch=4)
    start, end = T0 + 5 * MINUTE, T0 + 9 * MINUTE
    out = tmp_path / "range.jsonl"
    dump_range(bootstrap, ["orders", "complaints"], start, end, out, prefix=kafka_topics,
               grace_ms=MINUTE)
    expected = [(t, k, v) for t, k, v in rows if start <= T0 + int(v["event_id"][1:]) * 5_000 < end]
    assert len(expected) == 48
    assert _by_key(iter_dump(out)) == _rows_by_key(expected)


def test_dump_of_a_topic_with_nothing_in_range_is_empty(
        bootstrap: str, kafka_topics: str, tmp_path: Path) -> None:
    produce_dump(bootstrap, iter_dump(_write(tmp_path, _events(20))), prefix=kafka_topics)
    out = tmp_path / "empty.jsonl"
    stats = dump_range(bootstrap, ["orders", "listings"], T0 - 60 * MINUTE, T0 - 30 * MINUTE,
                       out, prefix=kafka_topics, grace_ms=MINUTE)
    assert stats.records == 0 and out.read_bytes() == b""


def test_missing_topics_are_clear_errors(bootstrap: str, topic_prefix: str,
                                         tmp_path: Path) -> None:
    path = _write(tmp_path, _events(3))
    with pytest.raises(KafkaToolError, match="does not exist"):
        produce_dump(bootstrap, iter_dump(path), prefix=topic_prefix)
    with pytest.raises(KafkaToolError, match="no such topics"):
        dump_range(bootstrap, ["orders"], T0, FAR_FUTURE, tmp_path / "x.jsonl",
                   prefix=topic_prefix)
    with admin_client(bootstrap) as admin:  # and asking did not auto-create them
        assert not [t for t in admin.list_topics() if t.startswith(topic_prefix)]


def test_no_broker_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaToolError, match="no Kafka broker answers"):
        dump_range("127.0.0.1:1", ["orders"], T0, FAR_FUTURE, tmp_path / "x.jsonl")


# --- pacing ----------------------------------------------------------------------------------

def test_speed_replays_event_time_faster_than_real_time(
        bootstrap: str, kafka_topics: str, tmp_path: Path) -> None:
    # 21 events over 30 s of event time at speed 30: due over 1 s of wall time.
    rows = [("orders", "s1", {"event_id": f"e{i}", "ts": T0 + i * 1_500}) for i in range(21)]
    stats = produce_dump(bootstrap, iter_dump(_write(tmp_path, rows)), prefix=kafka_topics,
                         speed=30)
    assert 0.95 <= stats.seconds < 2.0
    fast = produce_dump(bootstrap, iter_dump(_write(tmp_path, rows)), prefix=kafka_topics)
    assert fast.seconds < 0.9


# --- command line ----------------------------------------------------------------------------

def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stream-guard")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def test_cli_creates_topics_produces_and_dumps(
        bootstrap: str, topic_prefix: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_GUARD_BROKER", bootstrap)  # the default of --bootstrap
    prefix = ["--prefix", topic_prefix]
    assert _cli("topics", "create", *prefix) == 0
    assert f"{topic_prefix}orders: created (4 partitions)" in capsys.readouterr().out

    path = _write(tmp_path, _events(60))
    assert _cli("produce", "--input", str(path), "--batch", "5", *prefix) == 0
    assert "produced 60 events" in capsys.readouterr().out

    out = tmp_path / "out.jsonl"
    assert _cli("dump", "--topic", "orders", "--topic", "complaints", "--from",
                "2026-03-02T00:00:00Z", "--to", str(FAR_FUTURE), "--output", str(out),
                *prefix) == 0
    assert "wrote 60 events" in capsys.readouterr().out
    assert len(list(iter_dump(out))) == 60

    assert _cli("dump", "--topic", "nope", "--from", str(T0), "--to", str(FAR_FUTURE),
                "--output", str(out), *prefix) == 1
    assert "error:" in capsys.readouterr().err
