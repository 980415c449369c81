"""Alert history: the alerts topic (and the control topic) as episodes, filtered and rendered.

The input is rows ``(topic, key, value)`` as a record dump holds them (`stream-guard dump
--topic alerts --topic control` writes one; `file_rows` reads it) or as the Kafka range reader
yields them (`kafka_rows`). Rows of the ``control`` topic are acks, snoozes, silences and
feedback; every other row is an alert record, parsed by the one model, `AlertRecord.parse`.
What cannot be read is counted in `History.skipped`, never fatal.

An episode's records are ordered by sequence, a ``silenced`` copy after the update it holds
back; the episode's status is its last record's. A control record belongs to an episode when
it names the episode (an ack, a snooze, feedback) or is a silence one of its records names in
``silenced_by``; as on the topic, the latest record per key wins.

>>> from pathlib import Path
>>> rows = file_rows([Path("tests/unit/alert/fixtures/gmv_episode.jsonl")])
>>> [(e.episode_id, len(e.records), e.status) for e in group_episodes(read_rows(rows))]
[('gmv-20260304T1400Z-3f9a0c1b', 4, 'resolved')]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.table import Table

from stream_guard.alert.silences import Ack, ControlRecord, Feedback, parse_control
from stream_guard.errors import InvalidEvent
from stream_guard.types import AlertRecord, epoch_ms, format_slice, iso_utc, slice_key

__all__ = [
    "ControlEvent",
    "EpisodeHistory",
    "History",
    "episode_table",
    "file_rows",
    "filter_episodes",
    "find_episode",
    "group_episodes",
    "kafka_rows",
    "list_json",
    "read_rows",
    "show_json",
    "timeline_table",
]

CONTROL_TOPIC = "control"
ALERTS_TOPIC = "alerts"
Row = tuple[str, "str | None", Any]
_WHO = ("user_name", "user_id", "author")
_PLAIN = frozenset({"kind", "episode_id", "at_ms", *_WHO})


@dataclass(frozen=True)
class ControlEvent:
    """One control record an analyst made: an ack, a snooze, a silence, feedback."""

    key: str
    kind: str
    at_ms: int | None
    who: str | None
    detail: str
    episode_id: str | None = None
    silence_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        at = iso_utc(self.at_ms) if self.at_ms is not None else None
        return {"kind": self.kind, "at": at, "who": self.who, "detail": self.detail}


@dataclass
class History:
    """What was read: alert records, control events (latest per key), the latest verdict per
    episode, unreadable rows."""

    alerts: list[AlertRecord] = field(default_factory=list)
    control: dict[str, ControlEvent] = field(default_factory=dict)
    feedback: dict[str, Feedback] = field(default_factory=dict)
    skipped: int = 0


@dataclass(frozen=True)
class EpisodeHistory:
    """One episode: its records in order and the control events about it, by time."""

    records: tuple[AlertRecord, ...]
    control: tuple[ControlEvent, ...] = ()

    @property
    def first(self) -> AlertRecord:
        return self.records[0]

    @property
    def last(self) -> AlertRecord:
        return self.records[-1]

    @property
    def episode_id(self) -> str:
        return self.first.episode_id

    @property
    def status(self) -> str:
        return self.last.status

    @property
    def updated_ms(self) -> int:
        return epoch_ms(self.last.window_end)

    def summary(self) -> dict[str, Any]:
        """The episode as one JSON object (what `alerts list --json` prints per episode)."""
        last = self.last
        return {"episode_id": self.episode_id, "metric": last.metric,
                "slice": format_slice(slice_key(last.slice)), "direction": last.direction,
                "status": last.status, "severity": last.severity,
                "started_at": iso_utc(epoch_ms(last.started_at)),
                "updated_at": iso_utc(self.updated_ms), "records": len(self.records),
                "peak_score": last.peak_score, "value": last.value, "expected": last.expected,
                "control": [c.to_dict() for c in self.control]}


# Reading ---------------------------------------------------------------------------------------


def file_rows(paths: Sequence[Path]) -> Iterator[Row]:
    """The rows of record dumps, or of plain JSONL files of alert records."""
    from stream_guard.ingest.files import iter_dump

    for path in paths:
        for record in iter_dump(path):
            yield str(record.topic), record.key, record.value


def kafka_rows(bootstrap: str, prefix: str = "") -> Iterator[Row]:
    """Every row of the alerts topic and, when it exists, of the control topic, read with the
    range reader of `stream-guard dump` over all time."""
    from stream_guard.clock import SystemClock
    from stream_guard.ingest.kafka import KafkaError, KafkaToolError, consumer, topic_name
    from stream_guard.ingest.kafka_dump import CONSUMER_TUNING, RangeReader

    names = {topic_name(t, prefix): t for t in (ALERTS_TOPIC, CONTROL_TOPIC)}
    try:
        with consumer(bootstrap, **CONSUMER_TUNING) as client:
            existing = client.topics()
            topics = {k: v for k, v in names.items() if k in existing or v == ALERTS_TOPIC}
            yield from RangeReader(client, topics, 0, 2**62, 0, SystemClock()).rows()
    except KafkaError as exc:
        raise KafkaToolError(f"reading alerts from {bootstrap} failed: {exc}") from exc


def read_rows(rows: Iterable[Row]) -> History:
    """Alert records and control events of `rows`; unreadable rows are counted."""
    history = History()
    for index, (topic, key, value) in enumerate(rows):
        try:
            if topic == CONTROL_TOPIC:
                _add_control(history, key or f"#{index}", value)
            else:
                history.alerts.append(AlertRecord.parse(value))
        except InvalidEvent:
            history.skipped += 1
    return history


_KNOWN = ("ack", "silence", "feedback")


def _add_control(history: History, key: str, value: Any) -> None:
    """One control row into `history`: its event, and the verdict if it is feedback."""
    known = isinstance(value, Mapping) and value.get("kind") in _KNOWN
    record = parse_control(value) if known else None
    history.control[key] = _known_event(key, record) if record else control_event(key, value)
    if isinstance(record, Feedback):
        history.feedback[record.episode_id] = record


def control_event(key: str, value: Any) -> ControlEvent:
    """A control value as an event; a kind this module does not know is shown generically if
    it names an episode. Anything else raises InvalidEvent."""
    if not isinstance(value, Mapping):
        raise InvalidEvent("invalid_control_record", "not a JSON object")
    if value.get("kind") in _KNOWN:
        return _known_event(key, parse_control(value))
    if not isinstance(value.get("episode_id"), str) or not isinstance(value.get("kind"), str):
        raise InvalidEvent("invalid_control_record", "no kind and episode_id")
    at = value.get("at_ms")
    who = next((str(value[k]) for k in _WHO if value.get(k)), None)
    rest = {k: v for k, v in value.items() if k not in _PLAIN}
    return ControlEvent(key, value["kind"], at if isinstance(at, int) else None, who,
                        orjson.dumps(rest).decode(), episode_id=value["episode_id"])


def _known_event(key: str, record: ControlRecord) -> ControlEvent:
    if isinstance(record, Ack):
        return ControlEvent(key, "ack", record.at_ms, record.user_name or record.user_id,
                            "acknowledged", episode_id=record.episode_id)
    if isinstance(record, Feedback):
        verdict = "a real issue" if record.verdict == "real" else "a false alarm"
        return ControlEvent(key, "feedback", record.at_ms, record.user_name or record.user_id,
                            verdict, episode_id=record.episode_id)
    scope = format_slice(slice_key(record.slice))
    detail = f"{record.metric} {scope} until {iso_utc(record.ends_ms)}: {record.reason}"
    kind = "snooze" if record.episode_id else "silence"
    return ControlEvent(key, kind, record.starts_ms, record.author, detail,
                        episode_id=record.episode_id, silence_id=record.id)


# Episodes --------------------------------------------------------------------------------------


def _order(record: AlertRecord) -> tuple[int, bool]:
    return record.sequence, record.status == "silenced"


def _belongs(event: ControlEvent, episode_id: str, silences: set[str]) -> bool:
    return event.episode_id == episode_id or event.silence_id in silences


def _episode(records: list[AlertRecord], control: Iterable[ControlEvent]) -> EpisodeHistory:
    ordered = tuple(sorted(records, key=_order))
    silences = {s for r in ordered for s in r.silenced_by}
    mine = [c for c in control if _belongs(c, ordered[0].episode_id, silences)]
    return EpisodeHistory(ordered, tuple(sorted(mine, key=lambda c: (c.at_ms or 0, c.key))))


def group_episodes(history: History) -> list[EpisodeHistory]:
    """The episodes of `history`, most recently updated first (a duplicate record, as a
    restarted worker may publish, is kept once)."""
    by_id: dict[str, dict[tuple[int, str], AlertRecord]] = {}
    for record in history.alerts:
        by_id.setdefault(record.episode_id, {})[(record.sequence, record.status)] = record
    episodes = [_episode(list(r.values()), history.control.values()) for r in by_id.values()]
    return sorted(episodes, key=lambda e: (-e.updated_ms, e.episode_id))


def filter_episodes(
    episodes: Iterable[EpisodeHistory],
    since_ms: int | None = None,
    metric: str | None = None,
    status: str | None = None,
) -> list[EpisodeHistory]:
    """Episodes updated (last record's window end) at or after `since_ms`, of `metric`, whose
    status is `status`; None means any."""
    return [e for e in episodes
            if (since_ms is None or e.updated_ms >= since_ms)
            and (metric is None or e.last.metric == metric)
            and (status is None or e.status == status)]


def find_episode(episodes: Iterable[EpisodeHistory], wanted: str) -> EpisodeHistory | None:
    """The episode with id `wanted`, or the only one whose id starts with it."""
    found = [e for e in episodes if e.episode_id.startswith(wanted)]
    exact = [e for e in found if e.episode_id == wanted]
    return (exact or found)[0] if len(exact or found) == 1 else None


# Rendering -------------------------------------------------------------------------------------


def _number(x: float) -> str:
    return f"{x:,.4g}" if abs(x) < 1000 else f"{x:,.0f}"


def value_vs_expected(value: float | None, expected: float | None) -> str:
    """``12,000 vs 41,000 (-71%)``; a missing side is shown as ``-``.

    >>> value_vs_expected(12000.5, 41000.0)
    '12,000 vs 41,000 (-71%)'
    >>> value_vs_expected(None, 3.0)
    '- vs 3'
    """
    shown = f"{_number(value) if value is not None else '-'} vs " + (
        _number(expected) if expected is not None else "-")
    if value is None or not expected:
        return shown
    return f"{shown} ({(value - expected) / abs(expected):+.0%})"


def _minute(iso: str) -> str:
    """``2026-03-04T14:15:00Z`` as ``2026-03-04 14:15`` (UTC), for narrow tables."""
    return iso[:16].replace("T", " ")


def episode_table(episodes: Sequence[EpisodeHistory]) -> Table:
    """One row per episode: what `alerts list` prints."""
    table = Table("episode", "metric", "slice", "status", "started (UTC)", "updated (UTC)",
                  "updates", "last value", "handling",
                  title=f"{len(episodes)} episode{'' if len(episodes) == 1 else 's'}")
    table.columns[0].no_wrap = True
    for e in episodes:
        s = e.summary()
        handling = ", ".join(f"{c.kind} {c.who or ''}".strip() for c in e.control)
        table.add_row(e.episode_id, s["metric"], s["slice"], f"{s['status']}, {s['severity']}",
                      _minute(s["started_at"]), _minute(s["updated_at"]), str(s["records"]),
                      value_vs_expected(s["value"], s["expected"]), handling)
    return table


def _record_details(record: AlertRecord) -> str:
    slices = [f"{format_slice(slice_key(f.slice))}: {value_vs_expected(f.value, f.expected)}"
              for f in record.firing_slices]
    silenced = [f"silenced by {', '.join(record.silenced_by)}"] if record.silenced_by else []
    return "\n".join([*slices, *(h.summary for h in record.hints), *silenced])


def _timeline(episode: EpisodeHistory) -> list[tuple[int, AlertRecord | ControlEvent]]:
    """(time, item) of every record and control event, by time (a record before an event of
    the same millisecond)."""
    items: list[tuple[int, int, AlertRecord | ControlEvent]] = [
        (epoch_ms(r.window_end), 0, r) for r in episode.records]
    items += [(c.at_ms or 0, 1, c) for c in episode.control]
    return [(t, item) for t, _, item in sorted(items, key=lambda i: (i[0], i[1]))]


def _record_row(record: AlertRecord) -> list[str]:
    score = f"{record.score:.1f}" if record.score is not None else "-"
    return [iso_utc(epoch_ms(record.window_end)),
            f"{record.status} ({record.reason} #{record.sequence})", record.severity,
            value_vs_expected(record.value, record.expected), score, _record_details(record)]


def _control_row(event: ControlEvent) -> list[str]:
    at = iso_utc(event.at_ms) if event.at_ms is not None else "-"
    return [at, f"{event.kind} by {event.who}" if event.who else event.kind, "", "", "",
            event.detail]


def timeline_table(episode: EpisodeHistory) -> Table:
    """`alerts show`: one row per record (status, severity, value vs expected, slices and
    hints) and per control event, by time."""
    s = episode.summary()
    table = Table("time", "event", "severity", "value vs expected", "score", "slices and hints",
                  title=f"{s['episode_id']}: {s['metric']} {s['slice']} {s['direction']}, "
                        f"{s['status']} ({s['records']} records)")
    for _, item in _timeline(episode):
        table.add_row(*(_record_row(item) if isinstance(item, AlertRecord)
                        else _control_row(item)))
    return table


def _timeline_entry(item: AlertRecord | ControlEvent) -> dict[str, Any]:
    if isinstance(item, AlertRecord):
        return {"type": "record", **item.to_dict()}
    return {"type": "control", **item.to_dict()}


def list_json(episodes: Sequence[EpisodeHistory]) -> bytes:
    """`alerts list --json`: an array of episode summaries."""
    return orjson.dumps([e.summary() for e in episodes], option=orjson.OPT_INDENT_2)


def show_json(episode: EpisodeHistory) -> bytes:
    """`alerts show --json`: the episode's summary and its timeline (records in full)."""
    data = {**episode.summary(), "timeline": [_timeline_entry(i) for _, i in _timeline(episode)]}
    return orjson.dumps(data, option=orjson.OPT_INDENT_2)
