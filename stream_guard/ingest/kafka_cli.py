"""`stream-guard` commands for the broker and the Kafka tools: broker, topics create, produce, dump.

`add_cli(subparsers)` registers them; each sets ``func`` (``args -> exit status``) with
``set_defaults``, so the main parser runs ``args.func(args)``. Long jobs show a rich progress
bar on stderr; results go to stdout.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from stream_guard.broker import run_foreground
from stream_guard.config.topics import default_topics_dir, load_topics
from stream_guard.errors import InvalidEvent, StreamGuardError
from stream_guard.ingest.files import count_lines, iter_dump
from stream_guard.ingest.kafka import BROKERS_ENV, default_bootstrap
from stream_guard.ingest.kafka_dump import GRACE_MS, dump_range
from stream_guard.ingest.kafka_produce import DEFAULT_COMPRESSION, produce_dump
from stream_guard.ingest.kafka_topics import create_topics
from stream_guard.ingest.schema import parse_event_time

__all__ = ["add_cli"]

_err = Console(stderr=True)


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `broker`, `topics create`, `produce` and `dump` on the main parser."""
    broker = subparsers.add_parser("broker", help="run the embedded Kafka broker until Ctrl-C")
    broker.add_argument("--port", type=int, default=None, help="default: a free port")
    broker.set_defaults(func=_broker)

    topics = subparsers.add_parser("topics", help="manage the topics of topics/")
    actions = topics.add_subparsers(dest="topics_command", required=True)
    create = actions.add_parser("create", help="create missing topics (existing ones are fine)")
    _connection(create)
    create.add_argument("--topics-dir", type=Path, default=None,
                        help=f"topic files (default: {default_topics_dir()})")
    create.set_defaults(func=_topics_create)

    produce = subparsers.add_parser("produce", help="send a record dump to Kafka")
    produce.add_argument("--input", type=Path, required=True, help="record dump (.jsonl[.gz])")
    _connection(produce)
    produce.add_argument("--speed", type=_positive, default=None,
                         help="replay event time X times faster than real time (60 = a minute "
                              "per second); default: as fast as possible")
    produce.add_argument("--batch", type=_positive_int, default=1,
                         help="events of one partition per message (JSON array); default 1")
    produce.add_argument("--compression", choices=["gzip", "none"], default=DEFAULT_COMPRESSION)
    produce.set_defaults(func=_produce)

    dump = subparsers.add_parser("dump", help="write topics to a record dump by event time")
    dump.add_argument("--topic", action="append", required=True, dest="topics", metavar="TOPIC",
                      help="topic to read (repeat for several)")
    dump.add_argument("--from", dest="start", type=_time, required=True, metavar="TIME",
                      help="start, inclusive: ISO-8601 with a zone or epoch ms")
    dump.add_argument("--to", dest="end", type=_time, required=True, metavar="TIME",
                      help="end, exclusive")
    dump.add_argument("--output", type=Path, required=True, help="record dump (.jsonl[.gz])")
    _connection(dump)
    dump.add_argument("--grace", type=_positive, default=GRACE_MS / 1000,
                      help="event-time disorder allowed, in seconds: each partition is read "
                           "until its events are this much later than --to")
    dump.set_defaults(func=_dump)


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", default=None,
                        help=f"bootstrap servers (default: ${BROKERS_ENV} or 127.0.0.1:9092); "
                             "TLS and SASL from the STREAM_GUARD_KAFKA_* variables "
                             "(docs/kafka-security.md)")
    parser.add_argument("--prefix", default="", help="prefix of every topic name (isolation)")


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _time(text: str) -> int:
    try:
        return parse_event_time(int(text) if text.isdigit() else text)
    except InvalidEvent as exc:
        raise argparse.ArgumentTypeError(exc.detail) from None


def _handled(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command that reports stream-guard errors in one line instead of a traceback."""

    def command(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except StreamGuardError as exc:
            _err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            return 1

    return command


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    columns = [SpinnerColumn(), TextColumn(label), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=_err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


@_handled
def _broker(args: argparse.Namespace) -> int:
    return run_foreground(args.port)


@_handled
def _topics_create(args: argparse.Namespace) -> int:
    specs = load_topics(args.topics_dir).values()
    results = create_topics(args.bootstrap or default_bootstrap(), specs, args.prefix)
    for result in results:
        print(result.describe())
    return 1 if any(r.status == "mismatch" for r in results) else 0


@_handled
def _produce(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap or default_bootstrap()
    compression = None if args.compression == "none" else args.compression
    with _progress(f"producing {args.input.name}", count_lines([args.input])) as progress:
        stats = produce_dump(bootstrap, iter_dump(args.input), prefix=args.prefix,
                             speed=args.speed, batch=args.batch, compression=compression,
                             on_progress=progress)
    print(f"produced {stats.events:,} events in {stats.messages:,} messages to {bootstrap} "
          f"in {stats.seconds:.1f} s ({stats.events_per_s:,.0f} events/s)"
          + (f"; skipped {stats.skipped:,} unreadable lines" if stats.skipped else ""))
    return 0


@_handled
def _dump(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap or default_bootstrap()
    with _progress(f"dumping to {args.output.name}", None) as progress:
        stats = dump_range(bootstrap, args.topics, args.start, args.end, args.output,
                           prefix=args.prefix, grace_ms=round(args.grace * 1000),
                           on_progress=progress)
    print(f"wrote {stats.records:,} events ({stats.messages:,} messages read from "
          f"{stats.partitions} partitions) to {args.output} in {stats.seconds:.1f} s "
          f"({stats.records_per_s:,.0f} events/s)")
    return 0
