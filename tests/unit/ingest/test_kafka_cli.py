"""Parsing of the Kafka commands (no broker needed; running them is an integration test)."""

from __future__ import annotations

import argparse

import pytest

from stream_guard.ingest.kafka_cli import add_cli


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stream-guard")
    add_cli(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_dump_takes_iso_or_epoch_ms_times_and_repeated_topics() -> None:
    args = _parse("dump", "--topic", "orders", "--topic", "complaints",
                  "--from", "2026-03-02T01:00:00+01:00", "--to", "1772413200000",
                  "--output", "out.jsonl")
    assert args.topics == ["orders", "complaints"]
    assert (args.start, args.end) == (1_772_409_600_000, 1_772_413_200_000)
    assert args.bootstrap is None and args.prefix == "" and args.grace == 300
    assert callable(args.func)


@pytest.mark.parametrize("argv", [
    ("dump", "--topic", "t", "--from", "2026-03-02T00:00:00", "--to", "1772413200000",
     "--output", "o"),  # a time without a zone is ambiguous
    ("produce", "--input", "in.jsonl", "--batch", "0"),
    ("produce", "--input", "in.jsonl", "--speed", "-2"),
    ("topics",),  # needs its subcommand
])
def test_bad_arguments_are_refused(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parse(*argv)
    assert exc.value.code == 2


def test_produce_and_broker_defaults() -> None:
    args = _parse("produce", "--input", "in.jsonl")
    assert (args.speed, args.batch, args.compression) == (None, 1, "gzip")
    assert _parse("broker").port is None
    assert _parse("broker", "--port", "19092").port == 19092
