"""Events from a Faust topic to an agent in batches, without Faust's per-event stream machinery.

Why: with the transport's eager delivery (transport.py), a worker fed one event per Kafka message
still spent ~42 µs per message, about 3/4 of it in Faust rather than in our code (py-spy,
`benchmarks/live.py --profile`). Two of the per-message steps do work a raw-bytes topic read in
batches does not need:

1. Decoding (~9 µs): the topic's `faust.Schema.compile` runs the key and the value through the
   serializer registry (codec lookup, `raw` codec, payload preparation, decode-error wrapping)
   even when both stay the bytes Kafka returned. `RawSchema` builds the `Event` at once.
2. Stream iteration (~6 µs) plus `noack_take`'s buffer: the stream's iterator takes one event per
   event-loop iteration (`await sleep(0)`), calls the sensors' per-event hooks, sets the current
   event, and runs `noack_take`'s async processor that appends the event to the buffer.
   `BulkStream.take_bulk` takes every event already in the channel's queue in one go.

What stays Faust's, per event, so offsets, flow control and rebalances behave exactly as with
`noack_take`: the Conductor delivers each message to the topic channel's queue (buffer pressure,
flow control, producer back-pressure); `take_bulk` skips (and acks, as `Stream.__aiter__` does)
events of an old consumer generation or taken while flow is suspended; it tracks every other
message as pending (`Consumer.unacked`, the `on_message_in` sensor), which is what makes a
rebalance wait for it (`Consumer.wait_empty`); the agent acks each event once processed
(`Event.ack`), which is what Faust's offset tracking commits.

Upstream code this module depends on line by line, pinned (pyproject.toml:
``faust-streaming>=0.15.3,<0.16``) and checked: `UPSTREAM_SOURCES` holds the sha256 of the
source of each as it was when the code here was written, and
tests/unit/runtime/test_upstream_copies.py fails, naming it, when the installed one differs.
Then re-read the upstream change, carry it into the copy (or re-check the assumption), and
update the hash.

- copied: ``faust.streams.Stream._py_aiter`` (what ``Stream.__aiter__`` runs in pure Python):
  its skip-and-ack of events of an old generation or taken while flow is suspended, its
  tracking of unacked messages and its channel-queue reads are `BulkStream._admitter` and the
  loop of `BulkStream.take_bulk`, its ``finally`` is take_bulk's; the same steps compiled are
  ``StreamIterator`` in ``faust/_cython/streams.pyx`` (hashed as the whole file: no
  ``inspect.getsource`` for Cython), which ``Stream._c_aiter`` runs when the extension is
  built (it is, in the wheel). ``faust.App.create_event`` is the one line of
  `RawSchema.compile`'s decode.
- relied on: ``Stream.__aiter__`` (which iterator runs), ``Stream._c_aiter``,
  ``Stream.noack_take`` (the acking contract `take_bulk` keeps: the caller acks) and
  ``faust.Schema.compile`` (`RawSchema.compile` replaces it; equivalent for raw key and value
  serializers without types).

Private attributes touched: ``mode.utils.queues.ThrowableQueue._errors`` (an error thrown into
the channel's queue, read to let ``get`` raise it), ``faust.Stream._channel_stop_iteration()``
and ``faust.Stream._on_message_in`` (the sensor hook `Stream.__aiter__` calls for a newly
tracked message).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import faust
from faust.serializers.schemas import OnKeyDecodeErrorFun, OnValueDecodeErrorFun
from faust.types import AppT, ChannelT, EventT, Message
from mode.utils.queues import ThrowableQueue

__all__ = ["BulkStream", "RawSchema"]

#: sha256 (first 16 hex digits) of ``inspect.getsource`` of each upstream function this module
#: copies or relies on (faust-streaming 0.15.3), as "module:qualname" -> hash, or of a whole
#: file as "package/path" -> hash; checked by tests/unit/runtime/test_upstream_copies.py.
UPSTREAM_SOURCES: dict[str, str] = {
    # copied
    "faust.streams:Stream._py_aiter": "3a48ee257a65435b",
    "faust/_cython/streams.pyx": "0041622f4a251188",
    "faust.app.base:App.create_event": "15fea3d1e95e6625",
    # relied on
    "faust.streams:Stream.__aiter__": "e815c0e831f1d2cc",
    "faust.streams:Stream._c_aiter": "fa44582a5882e9df",
    "faust.streams:Stream.noack_take": "f2cc2dbfc162d200",
    "faust.serializers.schemas:Schema.compile": "d46eec5ce3195b2c",
}


class RawSchema(faust.Schema):
    """Key and value as the bytes the broker returned, decoded by building the Event directly.

    Equivalent to ``faust.Schema(key_serializer="raw", value_serializer="raw")`` with no key or
    value type (whose decode returns the same bytes, through the serializer registry).
    """

    def __init__(self) -> None:
        super().__init__(key_serializer="raw", value_serializer="raw")

    def compile(
        self,
        app: AppT,
        *,
        on_key_decode_error: OnKeyDecodeErrorFun | None = None,
        on_value_decode_error: OnValueDecodeErrorFun | None = None,
        default_propagate: bool = False,
    ) -> Callable[..., Awaitable[EventT]]:
        """The topic's decode function (nothing to fail on: no decode-error handlers run)."""
        event = cast(Callable[..., EventT], app.conf.Event)

        async def decode(message: Message, *, propagate: bool = default_propagate) -> EventT:
            return event(app, message.key, message.value, message.headers, message)

        return decode


class BulkStream(faust.Stream):
    """`faust.Stream` with `take_bulk` (the app's stream class: ``faust.App(Stream=...)``).

    Everything else is upstream's, so streams that iterate event by event are unchanged.
    """

    async def take_bulk(self, max_: int, within: float) -> AsyncIterator[list[EventT]]:
        """Batches of up to `max_` events: those that arrive within `within` s of the first.

        Every event already queued is taken in one go; while the batch has room and time is
        left it waits for more. Acking is the caller's (`Event.ack()` each event once it is
        processed), as with `noack_take`: a batch whose processing fails or is interrupted by a
        rebalance is redelivered from the last committed offset (at-least-once).

        Ends when the agent's actor is cancelled (Faust throws `StopAsyncIteration` into the
        channel), as iterating the stream does.

        Per-event stream sensors (`on_stream_event_in/out`) are not called: there is no
        per-event stream step to time. Tables written while processing a batch see no current
        event (write them from a stream that iterates events).
        """
        started_by_us = await self.maybe_start()
        channel = cast(ChannelT, aiter(self.channel))  # registers the channel with the Conductor
        queue: ThrowableQueue[Any] = channel.queue
        admit = self._admitter()
        loop = asyncio.get_running_loop()
        try:
            while not self.should_stop:
                batch: list[EventT] = []
                deadline: float | None = None
                while len(batch) < max_:
                    if queue.empty() or queue._errors:  # wait; `get` raises a thrown error
                        remaining = within if deadline is None else deadline - loop.time()
                        if deadline is not None and remaining <= 0:
                            break
                        try:
                            event = await (queue.get() if deadline is None else
                                           asyncio.wait_for(queue.get(), remaining))
                        except TimeoutError:
                            break
                        if admit(event):
                            batch.append(event)
                    for _ in range(min(queue.qsize(), max_ - len(batch))):
                        event = queue.get_nowait()
                        if admit(event):
                            batch.append(event)
                    if batch and deadline is None:
                        deadline = loop.time() + within
                if batch:
                    self.events_total += len(batch)
                    yield batch
        except StopAsyncIteration:  # an async generator may not raise it: end instead
            return
        finally:
            self._channel_stop_iteration(channel)
            if started_by_us:
                await self.stop()
                self.service_reset()

    def _admitter(self) -> Callable[[EventT], bool]:
        """What `Stream.__aiter__` does with an event before yielding it, minus the sensors'
        per-event stream hooks: False (and acked) for events it would skip, else tracked."""
        app = self.app
        flow_active = app.flow_control.is_active
        unacked_add = app.consumer.unacked.add
        acking_topics = app.topics.acking_topics
        on_message_in = self._on_message_in

        def admit(event: EventT) -> bool:
            message = event.message
            if not flow_active() or message.generation_id != app.consumer_generation_id:
                event.ack()
                return False
            if not message.tracked and message.topic in acking_topics:
                message.tracked = True
                unacked_add(message)
                on_message_in(message.tp, message.offset, message)
            return True

        return admit
