"""`stream-guard silence add | list | expire`: silences on the control topic.

    stream-guard silence add --metric complaint_rate --slice region=EU --for 2h \\
        --reason "supplier recall, handled by T&S" --author ana
    stream-guard silence list [--all]
    stream-guard silence expire sil-0123456789ab

A silence is one JSON record on the control topic (key = its id); expiring re-publishes it
ending now. Every notifier worker reads the topic from the beginning, so the latest record per
id is what counts everywhere. `register(subparsers)` hooks the command into the main parser.
"""

from __future__ import annotations

import argparse
import getpass
from datetime import timedelta

import orjson
from rich.console import Console
from rich.table import Table

from stream_guard.alert.silences import Ack, ControlView, Silence
from stream_guard.clock import Clock, SystemClock
from stream_guard.config.durations import format_duration, parse_duration
from stream_guard.errors import InvalidEvent, StreamGuardError
from stream_guard.ingest.kafka import (
    BROKERS_ENV,
    KafkaToolError,
    TopicPartition,
    consumer,
    default_bootstrap,
    producer,
    topic_name,
)
from stream_guard.types import format_slice, iso_utc, slice_key

__all__ = ["publish", "read_control", "register", "run"]

CONTROL_TOPIC = "control"
SEND_TIMEOUT_S = 10
_out = Console()
_err = Console(stderr=True)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `silence add`, `silence list` and `silence expire` on the main parser."""
    silence = subparsers.add_parser("silence", help="mute alerts of a metric (or some slices)")
    actions = silence.add_subparsers(dest="silence_command", required=True)
    add = actions.add_parser("add", help="publish a new silence")
    add.add_argument("--metric", required=True)
    add.add_argument("--slice", action="append", default=[], type=_label, metavar="K=V",
                     help="only slices with this label (repeatable)")
    add.add_argument("--for", dest="duration", required=True, type=_duration,
                     help="how long, e.g. 30m, 2h, 1d")
    add.add_argument("--reason", required=True)
    add.add_argument("--author", default=None, help="default: the current user")
    listing = actions.add_parser("list", help="active silences (--all: also ended ones)")
    listing.add_argument("--all", action="store_true")
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id")
    for sub in (add, listing, expire):
        sub.add_argument("--bootstrap", default=None,
                         help=f"bootstrap servers (default: ${BROKERS_ENV} or 127.0.0.1:9092)")
        sub.add_argument("--prefix", default="", help="prefix of every topic name (isolation)")
        sub.set_defaults(func=run)


def run(args: argparse.Namespace, clock: Clock | None = None) -> int:
    """The handler of the three commands; stream-guard errors are one line, exit status 1."""
    now_ms = (clock or SystemClock()).now_ms()
    bootstrap = args.bootstrap or default_bootstrap()
    topic = topic_name(CONTROL_TOPIC, args.prefix)
    try:
        if args.silence_command == "add":
            return _add(args, bootstrap, topic, now_ms)
        view = read_control(bootstrap, topic)
        if args.silence_command == "list":
            return _list(view, now_ms, show_all=args.all)
        return _expire(view, args.id, bootstrap, topic, now_ms)
    except StreamGuardError as exc:
        _err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 1


def _add(args: argparse.Namespace, bootstrap: str, topic: str, now_ms: int) -> int:
    ends_ms = now_ms + int(args.duration.total_seconds() * 1000)
    author = args.author or getpass.getuser()
    silence = Silence.create(args.metric, dict(args.slice), now_ms, ends_ms, args.reason, author)
    publish(bootstrap, topic, silence)
    _out.print(silence.id, markup=False)
    return 0


def _list(view: ControlView, now_ms: int, show_all: bool) -> int:
    table = Table("id", "metric", "slice", "starts", "ends", "remaining", "author", "reason")
    for s in sorted(view.silences.values(), key=lambda s: (s.ends_ms, s.id)):
        if not (show_all or s.ends_ms > now_ms):
            continue
        left = timedelta(milliseconds=max(0, s.ends_ms - max(now_ms, s.starts_ms)))
        remaining = format_duration(left) if s.ends_ms > now_ms else "ended"
        table.add_row(s.id, s.metric, format_slice(slice_key(s.slice)) or "*",
                      iso_utc(s.starts_ms), iso_utc(s.ends_ms), remaining, s.author, s.reason)
    _out.print(table)
    return 0


def _expire(view: ControlView, sid: str, bootstrap: str, topic: str, now_ms: int) -> int:
    silence = view.silences.get(sid)
    if silence is None:
        raise KafkaToolError(f"no silence {sid!r} on {topic}")
    publish(bootstrap, topic, silence.expired(now_ms))
    _out.print(f"{sid} ends at {iso_utc(min(silence.ends_ms, now_ms))}", markup=False)
    return 0


def publish(bootstrap: str, topic: str, item: Silence | Ack) -> None:
    """One control record (key = its id), acknowledged by the broker before returning."""
    with producer(bootstrap) as client:
        client.send(topic, key=item.id.encode(), value=orjson.dumps(item.to_record())).get(
            timeout=SEND_TIMEOUT_S
        )


def read_control(bootstrap: str, topic: str) -> ControlView:
    """The whole control topic, folded into a view (invalid records are skipped)."""
    view = ControlView()
    with consumer(bootstrap) as client:
        found = client.partitions_for_topic(topic)
        if not found:
            raise KafkaToolError(f"topic {topic!r} does not exist (stream-guard topics create)")
        partitions = [TopicPartition(topic, p) for p in sorted(found)]
        client.assign(partitions)
        client.seek_to_beginning(*partitions)
        ends = client.end_offsets(partitions)
        while any(client.position(tp) < end for tp, end in ends.items()):
            for messages in client.poll(timeout_ms=500).values():
                for message in messages:
                    try:
                        view.apply(orjson.loads(message.value or b"null"))
                    except (InvalidEvent, orjson.JSONDecodeError):
                        continue
    return view


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected K=V, got {text!r}")
    return key, value


def _duration(text: str) -> timedelta:
    try:
        duration = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if duration <= timedelta(0):
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return duration
