"""Co-moving metrics when the alerts topic has several partitions: a `Correlator` per partition.

Each alerts partition has its notifier (the worker holding it), which sees only that
partition's records. So that episodes of every metric still meet, a notifier that learns
something new about one of its episodes (its span or slices grew: `Correlator.status`) tells
every other partition through the notifier's ticks topic, which is co-partitioned with the
alerts (``{"peer": status}`` sent to each other partition, delivered before the record counts
as handled); the notify agent hands it to that partition's correlator (`Correlator.learn`),
which links its own episodes with it and updates their parents. Both sides link as they learn,
and statuses merge without shrinking, so the links are those of one notifier reading every
record, in any order (tests/unit/alert/test_correlate.py).

Faust writes a table value to the changelog partition of the message being handled, and one
worker may hold several alerts partitions: each partition's correlator keeps its entries under
its own key prefix (``"<partition>|<episode id>"``) of the one ``<name>-comoving`` table, so
its state moves whole with the partition.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import faust
import orjson

from stream_guard.alert.correlate import Correlator, Peer
from stream_guard.errors import InvalidEvent

__all__ = ["Correlators", "PartitionStore"]


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

    async def tell(self, partition: int, episode_id: str, before: dict[str, Any] | None) -> None:
        """Send an episode's status to every other partition if it changed since `before`;
        on return the broker has them (a crash after loses none)."""
        status = self.of(partition).status(episode_id)
        if status is None or status == before or self.partitions == 1:
            return
        value = orjson.dumps({"peer": status})
        sent = [await self.ticks.send(value=value, partition=other, value_serializer="raw")
                for other in range(self.partitions) if other != partition]
        for delivery in sent:
            await delivery

    def learn(self, partition: int, value: Any) -> list[str]:
        """A message of the ticks topic carrying another partition's status (else nothing):
        the episodes of `partition` that gained a link. Raises InvalidEvent if unreadable."""
        try:
            message = orjson.loads(value) if isinstance(value, bytes | str) else value
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent("not_json", str(exc)) from None
        if not isinstance(message, dict) or "peer" not in message:
            return []
        if not isinstance(message["peer"], dict):
            raise InvalidEvent("invalid_comoving_status", "peer is not an object")
        return self.of(partition).learn(message["peer"])

    def forget(self) -> int:
        return sum(c.forget() for c in self._by_partition.values())
