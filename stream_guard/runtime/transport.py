"""A Faust aiokafka transport whose consumer hands messages to the streams without a task each.

Why: a stock faust-streaming 0.15.3 worker drains 10-15k messages/s whatever its agent does.
The cost is `faust.transport.consumer.Consumer._drain_messages`, which hands every message to
the Conductor with::

    await self.wait_first(callback(message), self.suspend_flow.wait())

`mode.Service.wait_first` makes that four tasks (the callback, the suspend event, the service's
stopped and crashed events) and an `asyncio.wait`: ~11 scheduled callbacks and 3 event-loop
iterations per message, for a callback that almost always finishes without suspending (it decodes
the message and `put_nowait`s it on a stream queue). This consumer schedules no task per message;
it drains 2.1-2.5x the messages/s of stock (benchmarks/faust_raw.py prints the figures).

What differs from upstream (everything else is inherited; each can be proposed upstream as is):

1. Eager delivery (`Consumer._deliver`, where upstream has the statement above): the callback's
   first step runs at once, in a copy of the current context -- what Python 3.12's
   `asyncio.Task(..., eager_start=True)` does. If it completes in that step, no task is created
   and nothing is awaited. If it suspends (stream queue full, flow control suspended, producer
   buffer full), the rest of it runs as a task under the same `wait_first(task,
   suspend_flow.wait())` as upstream, so a rebalance or a stop cancels it exactly as before. If
   flow is already suspended, or the callback returns an awaitable that is not a coroutine,
   upstream's statement runs as is.
2. Pacing by buffer pressure. Once delivery is cheap, the drain loop outruns any stream (a stream
   takes at most one event per event-loop iteration: `await sleep(0)` in its iterator), so
   upstream's loop would keep delivering into full buffers -- each such delivery blocks, i.e. takes
   the task path of 1. -- and `_wait_next_records` sleeps a whole second whenever the partitions
   are paused for full buffers. Faust already tells the consumer when a buffer is full
   (`on_buffer_full`: 80% of `stream_buffer_maxsize`) and when it has drained
   (`on_buffer_drop`: 40%). So before delivering a message of a partition marked full, the drain
   loop waits for that drop (`_wait_for_buffer`: one future, racing flow suspension, a stop, and
   `buffer_wait_s`), and `_wait_next_records` waits for it instead of its blind second.
   Without this, eager delivery is slower than stock for an agent that awaits twice per event.
3. Fetch wait (`Consumer.fetch_max_wait_ms`, default 10): upstream hard-codes 1500 ms for the
   worker consumer and exposes no setting. Real Kafka answers a fetch as soon as data is there,
   so it matters only when idle (one fetch per 10 ms per broker then); the Tansu dev broker holds
   every fetch for about half of it, i.e. ~750 ms per hop with upstream's value.
4. Changelog ends (`Consumer.highwaters`): read on from the broker's answer to the partition's
   real end (runtime/ends.py). Tansu answers one record batch short, and table recovery trusted
   it: a restarted worker lost the last batch of its table writes. On Apache Kafka: one empty
   fetch more per recovery.

Rebalances: every callback that upstream can cancel is cancelled the same way. One that never
suspends runs to completion before anything else runs; upstream starts it one loop turn later but
cannot cancel it either (`wait_first` returns both when both are done). If a rebalance is already
queued in that turn, upstream's callback blocks on flow control and is cancelled, while the eager
one puts its event in a stream buffer that the rebalance then clears (`flow_control.clear()`), and
streams skip events of an old generation anyway: the message is redelivered from the committed
offset in both cases.

Upstream code this module depends on line by line, pinned (pyproject.toml:
``faust-streaming>=0.15.3,<0.16``) and checked: `UPSTREAM_SOURCES` holds the sha256 of the
source (``inspect.getsource``) of each upstream function as it was when the code here was
written, and tests/unit/runtime/test_upstream_copies.py fails, naming the function, when the
installed one differs. Then re-read the upstream change, carry it into the copy (or re-check the
assumption), and update the hash.

- copied: ``faust.transport.consumer.Consumer._drain_messages`` (into `Consumer._drain_messages`,
  with its delivery statement as `Consumer._deliver`); the aiokafka driver's
  ``Consumer._new_consumer_thread`` (into ours, building our thread class).
- relied on: ``Consumer._wait_next_records`` (its 1 s sleep when no partition is active, which
  ours pre-empts); ``Consumer.on_buffer_full`` and ``Consumer.on_buffer_drop`` (they move a
  partition between ``_buffered_partitions`` and the active set: the pacing reads that); the
  aiokafka driver's ``AIOKafkaConsumerThread._create_worker_consumer`` (passes the literal
  ``fetch_max_wait_ms=1500``); aiokafka's ``AIOKafkaConsumer.start`` (reads
  ``_fetch_max_wait_ms`` when it builds its Fetcher; aiokafka is not covered by the faust pin,
  so an aiokafka upgrade can fail the test too); the aiokafka driver's ``Consumer.highwaters``
  (which ours reads on from: runtime/ends.py) and ``Recovery._build_highwaters`` (table recovery
  reads each changelog up to ``highwaters() - 1``).

Private attributes touched (none is a public API; each is read or written as 0.15.3 does):

- `faust.transport.consumer.Consumer`: ``_read_offset`` (read and set per message),
  ``_commit_every``, ``_n_acked`` (read, reset to 0 before a commit), ``_add_gap()``,
  ``_buffered_partitions`` (read), ``_get_active_partitions()``; overridden private hooks
  ``_drain_messages``, ``_wait_next_records``, ``_new_consumer_thread`` and the ``_thread``
  attribute's type.
- `faust.transport.drivers.aiokafka.AIOKafkaConsumerThread`: ``_create_worker_consumer`` (an
  overridden private hook).
- `mode.Service._stopped` (``is_set`` of the consumer's and the fetcher's, as upstream reads).
- `aiokafka.AIOKafkaConsumer._fetch_max_wait_ms` (written before ``start()``).

Enable it with `broker=broker_url("127.0.0.1:9092")`, which registers the `sgkafka://` scheme in
Faust's transport registry (the one its `faust.transports` entry points fill):

>>> broker_url("127.0.0.1:9092")
'sgkafka://127.0.0.1:9092'
>>> import faust.transport
>>> faust.transport.by_url("sgkafka://127.0.0.1:9092") is Transport
True
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
from collections.abc import Coroutine, Generator, Mapping
from typing import Any, ClassVar, cast

import aiokafka
from faust.transport import drivers
from faust.transport.consumer import CONSUMER_FETCHING, RecordMap
from faust.transport.drivers import aiokafka as upstream
from faust.types import TP, Message
from mode import Service, ServiceT

from stream_guard.errors import ConfigError
from stream_guard.runtime.ends import live_ends

__all__ = ["SCHEME", "Consumer", "ConsumerThread", "Transport", "broker_url", "register"]

_NOTHING: Any = object()

#: URL scheme under which `register` makes this transport available to `faust.App(broker=...)`.
SCHEME = "sgkafka"

#: sha256 (first 16 hex digits) of ``inspect.getsource`` of each upstream function this module
#: copies or relies on (faust-streaming 0.15.3, aiokafka 0.14.0), as "module:qualname" -> hash;
#: checked by tests/unit/runtime/test_upstream_copies.py (see the module docstring).
UPSTREAM_SOURCES: dict[str, str] = {
    # copied
    "faust.transport.consumer:Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": "0870ec53dea75083",
    # relied on
    "faust.transport.consumer:Consumer._wait_next_records": "6218e1969a636b3f",
    "faust.transport.consumer:Consumer.on_buffer_full": "c8961679e0bcdce5",
    "faust.transport.consumer:Consumer.on_buffer_drop": "4b57e8a418d5ad9c",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer":
        "c2701bfc3e6f6cad",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.start": "2f1ba70443327538",
    "faust.transport.drivers.aiokafka:Consumer.highwaters": "3a2723b22582ffb7",
    "faust.tables.recovery:Recovery._build_highwaters": "91b4cc0d3724ae7b",
}


class _Resumed(collections.abc.Coroutine[Any, Any, Any]):
    """A coroutine already stepped once (it yielded `yielded`), in a form a Task can run on.

    The Task's first step receives `yielded` as if the coroutine had just produced it; every later
    value or exception the Task sends or throws (a wake-up, a cancellation) goes straight to the
    coroutine. Being a `Coroutine` itself rather than a wrapping `async def` means a cancellation
    that arrives before the Task's first step still reaches the coroutine at its `await`.
    """

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def send(self, value: Any) -> Any:
        yielded, self._yielded = self._yielded, _NOTHING
        if yielded is not _NOTHING:
            return yielded
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._yielded = _NOTHING
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # the deprecated 3-argument form, as it came

    def close(self) -> None:
        self._coro.close()

    def __iter__(self) -> _Resumed:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def __await__(self) -> Generator[Any, Any, Any]:  # for completeness: a Task only sends/throws
        return (yield from self)


class Consumer(upstream.Consumer):
    """Faust's aiokafka consumer, delivering messages eagerly (see the module docstring).

    The class attributes are the knobs; subclass to change them (`Transport.Consumer` names the
    class an app uses).
    """

    #: False runs upstream's drain loop unchanged (a kill switch, and the benchmark's baseline).
    eager_delivery: ClassVar[bool] = True

    #: False delivers into full stream buffers like upstream (each message then blocks in a task).
    pace_delivery: ClassVar[bool] = True

    #: `fetch_max_wait_ms` of the worker consumer; None keeps upstream's 1500 ms.
    fetch_max_wait_ms: ClassVar[int | None] = 10

    #: Longest wait for a full stream buffer to drain before delivering anyway (blocking then).
    buffer_wait_s: ClassVar[float] = 1.0

    _thread: ConsumerThread
    _buffer_drained: asyncio.Future[None] | None = None

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """Upstream's answer, read on to where each partition really ends (runtime/ends.py).

        Faust's table recovery reads each changelog partition up to these offsets: a broker that
        answers one batch short (Tansu) would make a restarted worker lose the last batch of its
        table writes."""
        reported = await super().highwaters(*partitions)
        transport = cast(upstream.Transport, self.transport)
        return await live_ends(upstream.server_list(transport.url, transport.default_port),
                               reported)

    def on_buffer_drop(self, tp: TP) -> None:
        """Upstream's bookkeeping, then wake a drain loop waiting in `_wait_for_buffer`."""
        super().on_buffer_drop(tp)
        drained = self._buffer_drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def _wait_next_records(self, timeout: float) -> tuple[RecordMap | None, set[TP] | None]:
        """Upstream's, but not a blind 1 s sleep when every partition is paused for a full buffer.

        Upstream sleeps a whole second whenever no partition is active. When they are inactive
        only because stream buffers are full, the streams may drain them long before that: wait
        for the first to drain instead (then upstream's code fetches at once).
        """
        if (
            self.eager_delivery
            and self.pace_delivery
            and self.flow_active
            and not self.app.client_only
            and not self._get_active_partitions()
            and self._buffered_partitions
        ):
            await self._wait_for_buffer()
        return await super()._wait_next_records(timeout)

    async def _wait_for_buffer(self) -> None:
        """Wait for a full stream buffer to drain (or flow suspension, a stop, `buffer_wait_s`).

        "Drained" is Faust's own low-pressure mark (`on_buffer_drop`, 40% of the buffer). The
        timeout bounds the cost of a drop that never comes (a stream that died): the delivery then
        blocks in the callback, as upstream's always does.
        """
        drained = self._buffer_drained = self.loop.create_future()
        await self.wait_first(drained, self.suspend_flow.wait(), timeout=self.buffer_wait_s)

    async def _deliver(self, message: Message) -> None:
        """Run the Conductor callback for `message` as an eager task fenced by `suspend_flow`."""
        suspend_flow = self.suspend_flow
        coro = cast(Coroutine[Any, Any, Any], self.callback(message))
        send = getattr(coro, "send", None)  # any awaitable is allowed; only coroutines step
        if send is None or suspend_flow.is_set():
            await self.wait_first(coro, suspend_flow.wait())
            return
        context = contextvars.copy_context()
        try:
            yielded = context.run(send, None)
        except StopIteration:
            return
        task: asyncio.Task[Any] = self.loop.create_task(_Resumed(coro, yielded), context=context)
        await self.wait_first(task, suspend_flow.wait())

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        """Upstream's loop (faust-streaming 0.15.3) with changes 1 and 2 of the module docstring.

        Copied rather than wrapped because the changes sit in the middle of it; the lines marked
        "upstream:" are the only ones that differ (besides the docstring, the `eager_delivery`
        switch at the top and a typing-only ``cast`` around ``getmany(...)`` dropped), so a diff
        against upstream shows just those.
        """
        if not self.eager_delivery:
            await super()._drain_messages(fetcher)
            return
        deliver = self._deliver  # upstream: callback = self.callback
        pace = self.pace_delivery  # upstream: (no pacing)
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = getmany(timeout=1.0)

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:  # noqa: SIM102 (upstream line)
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            if pace and tp in self._buffered_partitions:  # upstream: (no wait)
                                await self._wait_for_buffer()
                            await deliver(message)  # upstream: await self.wait_first(...)
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


class ConsumerThread(upstream.AIOKafkaConsumerThread):
    """Upstream's consumer thread, with the worker consumer's fetch wait taken from `Consumer`."""

    def _create_worker_consumer(self, transport: upstream.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        fetch_max_wait_ms = cast(Consumer, self.consumer).fetch_max_wait_ms
        if fetch_max_wait_ms is not None:
            # Read by AIOKafkaConsumer.start() when it builds its Fetcher; upstream passes the
            # literal 1500 to the constructor, so this is the one place to change it.
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
        return consumer


class Transport(upstream.Transport):
    """Faust's aiokafka transport using `Consumer`; the producer side is upstream's."""

    Consumer = Consumer


def register(scheme: str = SCHEME, transport: type[upstream.Transport] = Transport) -> None:
    """Make `scheme://host:port` select `transport` in `faust.App(broker=...)` (idempotent).

    `transport` must be a module-level class: Faust's registry stores it as an import path. A
    subclass is how to change the `Consumer` knobs, e.g. a real-Kafka deployment that does not
    want a fetch every 10 ms while idle::

        class PatientConsumer(Consumer):
            fetch_max_wait_ms = 500

        class PatientTransport(Transport):
            Consumer = PatientConsumer

        register("patientkafka", PatientTransport)
    """
    drivers.TRANSPORTS.aliases[scheme] = f"{transport.__module__}:{transport.__qualname__}"


def broker_url(bootstrap: str, scheme: str = SCHEME) -> str:
    """Return the Faust `broker` URL for `bootstrap` ("host:port[,host:port...]").

    The default scheme is registered on the way; any other must have been registered before
    (Faust's own "kafka" and "aiokafka" select its stock transport).
    """
    if scheme == SCHEME:
        register()
    elif scheme not in drivers.TRANSPORTS.aliases:
        raise ConfigError(f"no Faust transport is registered for {scheme!r}: call register() first")
    return ";".join(f"{scheme}://{server.strip()}" for server in bootstrap.split(","))
