"""Creating the topics of topics/ on a broker, idempotently.

Existing topics are left alone (running `topics create` twice is fine); one whose partition count
differs from its file is reported, never altered: adding partitions moves keys to other
partitions, which is a decision for a person, not for a setup script. Topic configs are not sent:
the files carry none and the embedded broker ignores them anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from stream_guard.config.topics import TopicSpec
from stream_guard.ingest.kafka import (
    KafkaAdminClient,
    KafkaError,
    KafkaToolError,
    NewTopic,
    TopicAlreadyExistsError,
    admin_client,
    topic_name,
)

__all__ = ["TopicResult", "create_topics", "partition_counts"]

REPLICATION_FACTOR = 1
"""One copy: the tools target the single-node development broker; production topics are
provisioned by the platform's own tooling with its replication policy."""

Status = Literal["created", "exists", "mismatch"]


@dataclass(frozen=True, slots=True)
class TopicResult:
    """What `create_topics` did for one topic."""

    topic: str  # the Kafka topic name (prefix included)
    partitions: int  # as specified in the topic file
    status: Status
    actual_partitions: int  # on the broker after the call

    def describe(self) -> str:
        if self.status == "mismatch":
            return (f"{self.topic}: exists with {self.actual_partitions} partitions, "
                    f"topics/ says {self.partitions}")
        return f"{self.topic}: {self.status} ({self.actual_partitions} partitions)"


def partition_counts(admin: KafkaAdminClient, topics: Iterable[str]) -> dict[str, int]:
    """Partition count of each of `topics` that exists on the broker."""
    wanted = set(topics)
    existing = wanted & set(admin.list_topics())
    if not existing:
        return {}
    return {d["name"]: len(d["partitions"]) for d in admin.describe_topics(sorted(existing))}


def _create(admin: KafkaAdminClient, name: str, partitions: int) -> bool:
    """Creates one topic; False when someone else created it since we listed the topics."""
    try:
        admin.create_topics([NewTopic(name, partitions, REPLICATION_FACTOR)])
    except TopicAlreadyExistsError:
        return False  # created concurrently: still idempotent
    except KafkaError as exc:
        raise KafkaToolError(f"cannot create topic {name}: {exc}") from exc
    return True


def create_topics(bootstrap: str, specs: Iterable[TopicSpec], prefix: str = ""
                  ) -> list[TopicResult]:
    """Creates every topic of `specs` (named `prefix + name`) that does not exist yet."""
    wanted = {topic_name(spec.name, prefix): spec.partitions for spec in specs}
    with admin_client(bootstrap) as admin:
        actual = partition_counts(admin, wanted)
        created = {name for name, n in wanted.items()
                   if name not in actual and _create(admin, name, n)}
        # A topic the broker just accepted has the requested partitions; only those created
        # behind our back need another look.
        raced = set(wanted) - set(actual) - created
        actual |= partition_counts(admin, raced) if raced else {}
    actual |= {name: wanted[name] for name in created}
    return [TopicResult(name, n, _status(name in created, n, actual.get(name, 0)),
                        actual.get(name, 0))
            for name, n in wanted.items()]


def _status(created: bool, wanted: int, actual: int) -> Status:
    if actual != wanted:
        return "mismatch"
    return "created" if created else "exists"
