"""A Faust aiokafka transport whose consumer does not pay two tasks per message.

Why: with faust-streaming 0.15.3 a worker tops out at ~10-17k messages/s whatever the agent
does. The cost is `faust.transport.consumer.Consumer._drain_messages`, which hands every message
to the Conductor with::

    await self.wait_first(callback(message), self.suspend_flow.wait())

`mode.Service.wait_first` wraps that in four tasks (the callback, the suspend event, the
service's stopped and crashed events) and an `asyncio.wait`, for a callback that almost always
finishes without ever suspending (it decodes the message and `put_nowait`s it on a stream queue).

What differs from upstream (everything else is inherited unchanged):

1. `Consumer._drain_messages` is upstream's loop with that one statement replaced by
   `_deliver`: the callback's first step runs *eagerly*, in a copy of the current context,
   exactly like an eager task (`asyncio.Task(..., eager_start=True)` in Python 3.12+). If it
   completes in that step -- the common case -- no task is created and nothing is awaited. If it
   suspends (stream queue full, flow control suspended, producer buffer full), the rest of it runs
   as a task under the very same `wait_first(task, suspend_flow.wait())` as upstream, so a
   rebalance cancels it exactly as before. If flow is already suspended when a message comes up,
   upstream's statement runs as is. Result: a callback that can be fenced by a rebalance is
   always fenced the same way; one that cannot (it never suspended) finished before anything
   else could run, so there was nothing to fence.
2. `ConsumerThread._create_worker_consumer` can shorten the worker consumer's
   `fetch_max_wait_ms`, which upstream hard-codes to 1500 ms and exposes as no setting. Real
   Kafka answers a fetch as soon as data is there, so it only matters when idle; the Tansu dev
   broker holds every fetch for about half of it, which is ~750 ms of latency per hop.

Enable it with `broker=broker_url("127.0.0.1:9092")` (registers the `sgkafka://` scheme in
Faust's transport registry, the same registry its `faust.transports` entry points fill):

>>> broker_url("127.0.0.1:9092")
'sgkafka://127.0.0.1:9092'
>>> import faust.transport
>>> faust.transport.by_url("sgkafka://127.0.0.1:9092") is Transport
True
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any, ClassVar, cast

import aiokafka
from faust.transport import drivers
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as upstream
from faust.types import Message
from mode import Service, ServiceT

__all__ = ["SCHEME", "Consumer", "ConsumerThread", "Transport", "broker_url", "register"]

#: URL scheme under which `register` makes this transport available to `faust.App(broker=...)`.
SCHEME = "sgkafka"


class _Resume:
    """Awaitable that continues a coroutine already stepped once and now suspended on `yielded`.

    It forwards each value sent or exception thrown by the task running it (a wake-up or a
    cancellation) into the coroutine, which is what `yield from` would do if it did not insist on
    taking the first step itself.
    """

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # the task throws CancelledError (or any error) here
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _finish(resume: _Resume) -> Any:
    return await resume


class Consumer(upstream.Consumer):
    """Faust's aiokafka consumer with the per-message task pair removed from its drain loop."""

    #: Set to False to run upstream's drain loop unchanged (for comparison, or as a kill switch).
    eager_callbacks: ClassVar[bool] = True

    #: Messages delivered between two yields to the event loop
    #: (upstream: 100, see `_drain_messages`).
    yield_every: ClassVar[int] = 1

    #: `fetch_max_wait_ms` for the worker consumer; None keeps upstream's 1500 ms.
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
        task = self.loop.create_task(_finish(_Resume(coro, yielded)), context=context)
        await self.wait_first(task, suspend_flow.wait())

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        """Upstream's loop (faust-streaming 0.15.3), delivering each message with `_deliver`.

        Copied rather than wrapped because the changed statement sits in the middle of it; every
        other line is upstream's, so a diff against upstream shows only the delivery.
        """
        if not self.eager_callbacks:
            await super()._drain_messages(fetcher)
            return
        deliver = self._deliver
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

        yield_every = self.yield_every
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


def register(scheme: str = SCHEME) -> None:
    """Make `scheme://host:port` select `Transport` in `faust.App(broker=...)` (idempotent)."""
    drivers.TRANSPORTS.aliases[scheme] = f"{__name__}:Transport"


def broker_url(bootstrap: str, scheme: str = SCHEME) -> str:
    """Return the Faust `broker` URL for `bootstrap` ("host:port[,host:port...]") on `Transport`."""
    register(scheme)
    return ";".join(f"{scheme}://{server.strip()}" for server in bootstrap.split(","))
