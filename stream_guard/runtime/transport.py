"""A Faust aiokafka transport whose consumer hands messages to the streams without a task each.

Why: a stock faust-streaming 0.15.3 worker drains 10-15k messages/s whatever its agent does.
The cost is `faust.transport.consumer.Consumer._drain_messages`, which hands every message to
the Conductor with::

    await self.wait_first(callback(message), self.suspend_flow.wait())

`mode.Service.wait_first` makes that four tasks (the callback, the suspend event, the service's
stopped and crashed events) and an `asyncio.wait`: ~11 scheduled callbacks and 3 event-loop
iterations per message, for a callback that almost always finishes without suspending (it decodes
the message and `put_nowait`s it on a stream queue). With this consumer: 0 tasks and 1 loop
iteration per message, 2.4-2.7x the messages/s (benchmarks/faust_raw.py has the figures).

What differs from upstream (everything else is inherited unchanged; proposed upstream as is):

1. Delivery (`Consumer._deliver`, called where upstream has the statement above): the callback's
   first step runs *eagerly*, in a copy of the current context -- what Python 3.12's
   `asyncio.Task(..., eager_start=True)` does. If it completes in that step, no task is created
   and nothing is awaited. If it suspends (stream queue full, flow control suspended, producer
   buffer full), the rest of it runs as a task under the same `wait_first(task,
   suspend_flow.wait())` as upstream, so a rebalance or a stop cancels it exactly as before. If
   flow is already suspended when a message comes up, upstream's statement runs as is. So every
   callback that upstream could cancel is cancelled the same way; one that never suspended ran
   to completion before anything else could run (upstream would not have cancelled it either:
   `wait_first` returns both when both are done).
2. Yielding (`Consumer.yield_every`, default 1): upstream's drain loop yields to the event loop
   every 101 messages, which is harmless when each delivery already costs loop iterations. Once
   delivery is free, the drain loop would outrun the streams (a stream takes one event per loop
   iteration: `await sleep(0)` in its iterator), fill their buffers, fall back to the blocking
   path for every message, and get its partition paused -- and `_wait_next_records` then sleeps
   a full second whenever no partition is active. Yielding after every message keeps the two
   in step: one message in, one event out, per loop iteration.
3. Fetch wait (`Consumer.fetch_max_wait_ms`, default 10): upstream hard-codes 1500 ms for the
   worker consumer and exposes no setting. Real Kafka answers a fetch as soon as data is there,
   so it matters only when idle (one fetch per 10 ms per broker then); the Tansu dev broker holds
   every fetch for about half of it, i.e. ~750 ms per hop with upstream's value.

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
from collections.abc import Coroutine, Generator
from typing import Any, ClassVar, cast

import aiokafka
from faust.transport import drivers
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as upstream
from faust.types import Message
from mode import Service, ServiceT

from stream_guard.errors import ConfigError

__all__ = ["SCHEME", "Consumer", "ConsumerThread", "Transport", "broker_url", "register"]

_NOTHING: Any = object()

#: URL scheme under which `register` makes this transport available to `faust.App(broker=...)`.
SCHEME = "sgkafka"


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
    eager_callbacks: ClassVar[bool] = True

    #: Messages delivered between two yields to the event loop (upstream: 101, hard-coded).
    yield_every: ClassVar[int] = 1

    #: `fetch_max_wait_ms` of the worker consumer; None keeps upstream's 1500 ms.
    fetch_max_wait_ms: ClassVar[int | None] = 10

    _thread: ConsumerThread

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _deliver(self, message: Message) -> None:
        """Run the Conductor callback for `message` as an eager task fenced by `suspend_flow`."""
        suspend_flow = self.suspend_flow
        coro = cast(Coroutine[Any, Any, Any], self.callback(message))
        if suspend_flow.is_set():
            await self.wait_first(coro, suspend_flow.wait())
            return
        context = contextvars.copy_context()
        try:
            yielded = context.run(coro.send, None)
        except StopIteration:
            return
        task: asyncio.Task[Any] = self.loop.create_task(_Resumed(coro, yielded), context=context)
        await self.wait_first(task, suspend_flow.wait())

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        """Upstream's loop (faust-streaming 0.15.3) with changes 1 and 2 of the module docstring.

        Copied rather than wrapped because the changes sit in the middle of it; the lines marked
        "upstream:" are the only ones that differ, so a diff against upstream shows just those.
        """
        if not self.eager_callbacks:
            await super()._drain_messages(fetcher)
            return
        deliver = self._deliver  # upstream: callback = self.callback
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

        yield_every = self.yield_every  # upstream: yield_every = 100
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
                        if num_since_yield >= yield_every:  # upstream: >
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
