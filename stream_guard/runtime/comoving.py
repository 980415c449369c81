"""Co-moving metrics when the alerts topic has several partitions: a `Correlator` per partition.

Each alerts partition has its notifier (the worker holding it), which sees only that
partition's records. So that episodes of every metric still meet, a notifier that learns
something new about one of its episodes (its span or slices grew: `Correlator.status`) tells
every other partition through the notifier's ticks topic, which is co-partitioned with the
alerts (``{"peer": status, "firing": labels or null}`` to each other partition); the notify
agent hands it to that partition's correlator (`Correlator.learn`), which links its own
episodes with it and updates their parents, and to its inhibitor (what fires elsewhere).
What was told is marked in the episode's entry once the broker has every copy: a notifier
killed before tells again when it handles the record again, or on its next tick (`tell_all`),
and a status told twice merges to the same. Both sides link as they learn,
and statuses merge without shrinking, so the links are those of one notifier reading every
record, in any order (tests/unit/alert/test_correlate.py).

Faust writes a table value to the changelog partition of the message being handled, and one
worker may hold several alerts partitions: each partition's correlator keeps its entries under
its own key prefix (``"<partition>|<episode id>"``) of the one ``<name>-comoving`` table, so
its state moves whole with the partition.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import faust
import orjson

from stream_guard.alert.correlate import Correlator, Peer
from stream_guard.errors import InvalidEvent

__all__ = ["Correlators", "PartitionStore", "Status", "parse_status"]


@dataclass(frozen=True)
class Status:
    """What one notifier tells the others of an episode: its `Correlator.status`, and its
    labels while it fires (what inhibition needs: alert/inhibit.py), None once it does not."""

    peer: dict[str, Any] | None
    firing: dict[str, Any] | None


def parse_status(value: Any) -> Status | None:
    """A ticks-topic message: None for a tick (``{}``), else another partition's status;
    raises InvalidEvent if unreadable."""
    try:
        message = orjson.loads(value) if isinstance(value, bytes | str) else value
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)) from None
    if not isinstance(message, dict) or "peer" not in message:
        return None
    peer, firing = message["peer"], message.get("firing")
    if not isinstance(peer, dict) or not (firing is None or _labels_like(firing)):
        raise InvalidEvent("invalid_comoving_status", "peer or firing is not as sent")
    return Status(peer, firing)


def _labels_like(value: Any) -> bool:
    """The inhibitor's stored form of an alert's labels (alert/inhibit.py `observe`)."""
    return (isinstance(value, dict) and isinstance(value.get("metric"), str)
            and isinstance(value.get("severity"), str) and isinstance(value.get("slice"), dict))


class PartitionStore(MutableMapping[str, dict[str, Any]]):
    """The keys of one partition in a table shared by partitions: ``"<partition>|<key>"``."""

    def __init__(self, table: MutableMapping[str, dict[str, Any]], partition: int) -> None:
        self._table, self._prefix = table, f"{partition}|"

    def __getitem__(self, key: str) -> dict[str, Any]:
        return self._table[self._prefix + key]

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        self._table[self._prefix + key] = value

    def __delitem__(self, key: str) -> None:
        del self._table[self._prefix + key]

    def __iter__(self) -> Iterator[str]:
        n = len(self._prefix)
        return (key[n:] for key in list(self._table) if key.startswith(self._prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Correlators:
    """One `Correlator` per alerts partition over one table, and the statuses between them."""

    def __init__(
        self, table: MutableMapping[str, dict[str, Any]], ticks: faust.TopicT, partitions: int
    ) -> None:
        self.table, self.ticks, self.partitions = table, ticks, partitions
        self._by_partition: dict[int, Correlator] = {}

    def of(self, partition: int) -> Correlator:
        if partition not in self._by_partition:
            self._by_partition[partition] = Correlator(PartitionStore(self.table, partition))
        return self._by_partition[partition]

    def peers(self, episode_id: str) -> list[Peer]:
        """The peers of an episode this worker notifies (whichever partition it is on)."""
        for correlator in self._by_partition.values():
            if correlator.is_local(episode_id):
                return correlator.peers(episode_id)
        return []

    async def tell(self, partition: int, episode_id: str, firing: dict[str, Any] | None) -> None:
        """Send an episode's status (`firing`: its labels now) to every other partition unless
        they have it already; marked told once the broker has every copy, so a notifier killed
        before tells again when it handles the record again (or on its next tick)."""
        correlator = self.of(partition)
        status = correlator.status(episode_id)
        if status is None or self.partitions == 1:
            return
        message = {"peer": status, "firing": firing}
        if correlator.told(episode_id) == message:
            return
        value = orjson.dumps(message)
        sent = [await self.ticks.send(value=value, partition=other, value_serializer="raw")
                for other in range(self.partitions) if other != partition]
        for delivery in sent:
            await delivery
        correlator.mark_told(episode_id, message)

    async def tell_all(self, partition: int, firing: Mapping[str, dict[str, Any]]) -> None:
        """Tell what was not told of every local episode (a tick's catch-up)."""
        for episode_id in self.of(partition).local():
            await self.tell(partition, episode_id, firing.get(episode_id))

    def forget(self) -> int:
        return sum(c.forget() for c in self._by_partition.values())
