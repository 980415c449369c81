"""stream_guard.runtime.transport: Faust's consumer without a task per message.

On the embedded broker: every message is processed once, in order per partition; offsets are
committed and a restarted app resumes after them (also when the agent takes events with
runtime.bulk's `take_bulk`: bounded batches, acks committed); a real rebalance while callbacks
are blocked in flight keeps at-least-once delivery, with this consumer as with upstream's drain
loop. Without a broker (a consumer that is built but never started): the delivery step fences an
in-flight callback on a flow suspension or a stop exactly as upstream's
`wait_first(callback(message), suspend_flow.wait())` does, scenario by scenario; pacing waits for
Faust's buffer-drained signal and gives up on suspension, stop or timeout; fetching resumes as soon
as a paused buffer drains; runtime.bulk's `RawSchema` builds the same Event as Faust's raw
serializers.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust
import pytest
from faust.types import TP, Message

from stream_guard.errors import ConfigError
from stream_guard.runtime import transport
from stream_guard.runtime.bulk import BulkStream, RawSchema
from tests.integration._faust_harness import (
    Recorder,
    bulk_recording_agent,
    committed,
    create_topic,
    lingering_threads,
    new_app,
    produce,
    recording_agent,
    running,
    value_for,
)

pytestmark = pytest.mark.integration

PARTITIONS = 2
JOIN_TIMEOUT_S = 30.0


def _group(label: str) -> str:
    return f"faust-transport-{label}-{uuid.uuid4().hex[:8]}"


def _run(coro: Awaitable[Any]) -> Any:
    """Run `coro` in a fresh loop and check that Faust left no thread behind."""
    before = threading.enumerate()
    result = asyncio.run(cast(Any, coro))
    assert lingering_threads(before) == []
    return result


# --------------------------------------------------------------------------- on the broker


def test_every_message_once_in_order_per_partition(bootstrap: str, topic_prefix: str) -> None:
    topic, per_partition = f"{topic_prefix}raw", 2_000

    async def scenario() -> Recorder:
        await create_topic(bootstrap, topic, PARTITIONS)
        await produce(bootstrap, topic, PARTITIONS, 0, per_partition)
        app, recorder = new_app(bootstrap, _group("order")), Recorder()
        recording_agent(app, topic, recorder)
        async with running(app):
            assert isinstance(app.consumer, transport.Consumer)
            fetcher = app.consumer._thread._consumer._fetcher
            assert fetcher._fetch_max_wait_ms == transport.Consumer.fetch_max_wait_ms == 10
            await recorder.wait_for(PARTITIONS * per_partition, JOIN_TIMEOUT_S)
            await asyncio.sleep(0.2)  # anything beyond the expected count would show up here
        return recorder

    recorder = _run(scenario())
    assert recorder.total == PARTITIONS * per_partition
    for p in range(PARTITIONS):
        expected = [(i, value_for(p, i)) for i in range(per_partition)]
        assert recorder.seen[p] == expected


def test_restarted_app_resumes_after_committed_offsets(bootstrap: str, topic_prefix: str) -> None:
    topic, group, first, second = f"{topic_prefix}raw", _group("resume"), 500, 300

    async def scenario() -> tuple[dict[int, int], Recorder, dict[int, int]]:
        await create_topic(bootstrap, topic, PARTITIONS)
        await produce(bootstrap, topic, PARTITIONS, 0, first)
        app, before = new_app(bootstrap, group), Recorder()
        recording_agent(app, topic, before)
        async with running(app):
            await before.wait_for(PARTITIONS * first, JOIN_TIMEOUT_S)
        after_first = await committed(bootstrap, group, topic, PARTITIONS)

        await produce(bootstrap, topic, PARTITIONS, first, second)
        app, after = new_app(bootstrap, group), Recorder()
        recording_agent(app, topic, after)
        async with running(app):
            await after.wait_for(PARTITIONS * second, JOIN_TIMEOUT_S)
            await asyncio.sleep(0.2)
        return after_first, after, await committed(bootstrap, group, topic, PARTITIONS)

    after_first, after, after_second = _run(scenario())
    # A graceful stop commits everything acked: the restart redelivers nothing.
    assert after_first == dict.fromkeys(range(PARTITIONS), first)
    for p in range(PARTITIONS):
        expected = [(i, value_for(p, i)) for i in range(first, first + second)]
        assert after.seen[p] == expected
    assert after_second == dict.fromkeys(range(PARTITIONS), first + second)


def test_bulk_take_delivers_each_message_once_in_bounded_batches_and_commits_acks(
    bootstrap: str, topic_prefix: str
) -> None:
    topic, group, first, second, max_ = f"{topic_prefix}bulk", _group("bulk"), 1_500, 500, 256

    async def run(start: int, count: int) -> tuple[Recorder, list[int]]:
        await produce(bootstrap, topic, PARTITIONS, start, count)
        app, recorder, batches = new_app(bootstrap, group, Stream=BulkStream), Recorder(), []
        bulk_recording_agent(app, topic, recorder, batches, max_, within=0.05)
        async with running(app):
            await recorder.wait_for(PARTITIONS * count, JOIN_TIMEOUT_S)
            await asyncio.sleep(0.2)  # anything beyond the expected count would show up here
        return recorder, batches

    async def scenario() -> tuple[Recorder, list[int], dict[int, int], Recorder, dict[int, int]]:
        await create_topic(bootstrap, topic, PARTITIONS)
        before, batches = await run(0, first)
        after_first = await committed(bootstrap, group, topic, PARTITIONS)
        after, _ = await run(first, second)
        return before, batches, after_first, after, await committed(
            bootstrap, group, topic, PARTITIONS)

    before, batches, after_first, after, after_second = _run(scenario())
    assert max(batches) <= max_ < sum(batches)  # batches: more than one event, never too many
    for p in range(PARTITIONS):
        assert before.seen[p] == [(i, value_for(p, i)) for i in range(first)]
        assert after.seen[p] == [(i, value_for(p, i)) for i in range(first, first + second)]
    # Acked events are committed (a graceful stop commits them all): the restart resumes there.
    assert after_first == dict.fromkeys(range(PARTITIONS), first)
    assert after_second == dict.fromkeys(range(PARTITIONS), first + second)


def test_raw_schema_decodes_like_the_raw_serializers() -> None:
    async def scenario() -> list[tuple[Any, Any, Any]]:
        app = new_app("127.0.0.1:1", _group("raw"))  # nothing is started
        message = Message("t", 0, 7, 0.0, 0, [("h", b"1")], b"k", b'{"a":1}', None)
        try:
            events = [await schema.compile(app)(message) for schema in (
                RawSchema(), faust.Schema(key_serializer="raw", value_serializer="raw"))]
        finally:
            app.consumer._thread.thread_loop.close()  # made for the consumer thread
        return [(e.key, e.value, e.headers, e.message) for e in events]

    ours, upstream = _run(scenario())
    assert ours == upstream


class UnpacedConsumer(transport.Consumer):
    pace_delivery = False


class UnpacedTransport(transport.Transport):
    Consumer = UnpacedConsumer


class UpstreamDrainConsumer(transport.Consumer):
    eager_delivery = False


class UpstreamDrainTransport(transport.Transport):
    Consumer = UpstreamDrainConsumer


@pytest.mark.parametrize(
    "scheme",
    [transport.SCHEME, "unpacedkafka", "upstreamdrain"],
    ids=["eager", "unpaced", "upstream"],
)
def test_rebalance_fences_the_delivery_in_flight(
    bootstrap: str, topic_prefix: str, scheme: str
) -> None:
    """A second worker joins while the first one's drain loop is stuck delivering a message.

    The first app's agent stops at its 51st event until the rebalance has suspended flow, and its
    stream buffer holds 4: so when the rebalance comes, the drain loop is blocked in a delivery
    (unpaced, upstream) or waiting for the buffer to drain (paced, which then delivers into the
    suspended flow). Either way that delivery must be fenced, the drain loop must go on, every
    message must be processed at least once by the group, and within one generation an app must
    see a partition's offsets consecutively. Run against upstream's drain loop too.
    """
    topic, group, per_partition = f"{topic_prefix}raw", _group("rebalance"), 1_000
    fenced: list[bool] = []
    transport.register("upstreamdrain", UpstreamDrainTransport)
    transport.register("unpacedkafka", UnpacedTransport)
    broker = transport.broker_url(bootstrap, scheme)

    async def scenario() -> tuple[Recorder, Recorder]:
        await create_topic(bootstrap, topic, PARTITIONS)
        await produce(bootstrap, topic, PARTITIONS, 0, per_partition)
        first, second, gate = Recorder(), Recorder(), asyncio.Event()

        async def stop_at_51st() -> None:
            if first.total == 50:
                await gate.wait()

        app_a = new_app(bootstrap, group, broker=broker, stream_buffer_maxsize=4)
        recording_agent(app_a, topic, first, per_event=stop_at_51st)
        app_b = new_app(bootstrap, group, broker=broker)
        recording_agent(app_b, topic, second)
        async with running(app_a):
            _watch_fences(app_a.consumer, fenced)
            await first.wait_for(50, JOIN_TIMEOUT_S)
            # The rebalance waits for the stuck event's ack (stream_wait_empty): release the
            # agent once flow is suspended, which is when the delivery in flight gets fenced.
            suspended = app_a.consumer.suspend_flow.is_set
            release = asyncio.ensure_future(_wait_until(suspended, JOIN_TIMEOUT_S))
            release.add_done_callback(lambda _: gate.set())
            async with running(app_b):
                await release
                await _wait_until(
                    lambda: _covered(first, second) == PARTITIONS * per_partition,
                    JOIN_TIMEOUT_S,
                )
        return first, second

    first, second = _run(scenario())
    detail = f"first saw {first.total}, second {second.total}; {fenced.count(True)} fenced"
    for p in range(PARTITIONS):
        seen = set(first.offsets(p)) | set(second.offsets(p))
        assert seen == set(range(per_partition)), f"partition {p} lost messages ({detail})"
    for recorder in (first, second):
        for (p, generation), offsets in recorder.by_generation.items():
            consecutive = list(range(offsets[0], offsets[0] + len(offsets)))
            assert offsets == consecutive, f"p{p} generation {generation} ({detail})"
    assert second.total > 0, f"the second worker was never assigned a partition ({detail})"
    assert True in fenced, f"no delivery in flight was fenced by the rebalance ({detail})"


def _watch_fences(consumer: Any, fenced: list[bool]) -> None:
    """Record, for each delivery that fell back to wait_first, whether flow suspension won."""
    wait_first = consumer.wait_first

    async def watched(*coros: Any, **kwargs: Any) -> Any:
        result = await wait_first(*coros, **kwargs)
        pacing = isinstance(coros[0], asyncio.Future) and not isinstance(coros[0], asyncio.Task)
        if not pacing:  # a delivery: a callback coroutine, or the task continuing one
            fenced.append(coros[0] not in result.done)
        return result

    consumer.wait_first = watched


def _covered(*recorders: Recorder) -> int:
    return len({(p, o) for r in recorders for p in r.seen for o in r.offsets(p)})


async def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


class PatientConsumer(transport.Consumer):
    fetch_max_wait_ms = 500


class PatientTransport(transport.Transport):
    Consumer = PatientConsumer


def test_a_registered_subclass_is_what_the_app_uses() -> None:
    transport.register("patientkafka", PatientTransport)
    url = transport.broker_url("127.0.0.1:1,127.0.0.2:2", "patientkafka")
    assert url == "patientkafka://127.0.0.1:1;patientkafka://127.0.0.2:2"
    app = new_app("127.0.0.1:1", _group("registry"), broker=url)
    assert type(app.transport) is PatientTransport


def test_an_unregistered_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'nosuchkafka'"):
        transport.broker_url("127.0.0.1:1", "nosuchkafka")


# --------------------------------------------------------------------------- delivery fencing

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="caller")


class FakeCallback:
    """A Conductor callback stand-in that logs what happens to it; may block and/or fail."""

    def __init__(self, *, block: bool = False, fail: bool = False) -> None:
        self.block, self.fail = block, fail
        self.gate = asyncio.Event()
        self.log: list[str] = []
        self.task: asyncio.Task[Any] | None = None

    async def __call__(self, message: Message) -> None:
        self.task = asyncio.current_task()
        self.log.append("start")
        _var.set("callback")
        try:
            if self.block:
                await self.gate.wait()
        except asyncio.CancelledError:
            self.log.append("cancelled")
            raise
        if self.fail:
            raise ValueError("callback failed")
        self.log.append("done")


Deliver = Callable[[Any, Message], Awaitable[None]]


async def _eager(consumer: Any, message: Message) -> None:
    await consumer._deliver(message)


async def _upstream(consumer: Any, message: Message) -> None:
    # faust/transport/consumer.py, Consumer._drain_messages (faust-streaming 0.15.3), verbatim:
    await consumer.wait_first(consumer.callback(message), consumer.suspend_flow.wait())


DELIVERIES = [pytest.param(_eager, id="eager"), pytest.param(_upstream, id="upstream")]
MESSAGE = cast(Message, object())


def _fencing(scenario: Callable[[Any, FakeCallback, Deliver], Awaitable[Any]], **cb: bool) -> Any:
    """Run `scenario(consumer, callback, deliver)` for both deliveries; return both outcomes."""

    async def run(deliver: Deliver) -> Any:
        app = new_app("127.0.0.1:1", _group("fence"))  # the consumer is built, never started
        consumer = app.consumer
        callback = FakeCallback(**cb)
        consumer.callback = callback
        try:
            outcome = await scenario(consumer, callback, deliver)
            await asyncio.sleep(0)  # let cancelled tasks finish
        finally:
            consumer._thread.thread_loop.close()  # made for the consumer thread, never started
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert leftovers == [], leftovers
        return outcome, callback.log

    return {name: _run(run(d)) for name, d in (("eager", _eager), ("upstream", _upstream))}


async def _until_started(callback: FakeCallback) -> None:
    while not callback.log:
        await asyncio.sleep(0)


def test_callback_that_never_suspends_runs_inline_without_a_task() -> None:
    async def scenario(consumer: Any, callback: FakeCallback, deliver: Deliver) -> bool:
        await deliver(consumer, MESSAGE)
        return callback.task is asyncio.current_task()

    outcomes = _fencing(scenario)
    assert outcomes["eager"] == (True, ["start", "done"])
    assert outcomes["upstream"] == (False, ["start", "done"])


def test_callback_returning_a_plain_awaitable_takes_the_upstream_path() -> None:
    async def scenario(consumer: Any, callback: FakeCallback, deliver: Deliver) -> list[str]:
        log: list[str] = []
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda _: log.append("awaited"))
        consumer.callback = lambda message: future
        asyncio.get_running_loop().call_soon(future.set_result, None)
        await deliver(consumer, MESSAGE)
        return log

    outcomes = _fencing(scenario)
    assert outcomes["eager"] == outcomes["upstream"] == (["awaited"], [])


def test_blocked_callback_completes_when_released() -> None:
    async def scenario(consumer: Any, callback: FakeCallback, deliver: Deliver) -> None:
        pending = asyncio.ensure_future(deliver(consumer, MESSAGE))
        await _until_started(callback)
        callback.gate.set()
        await pending

    outcomes = _fencing(scenario, block=True)
    assert outcomes["eager"] == outcomes["upstream"] == (None, ["start", "done"])


def test_blocked_callback_is_cancelled_when_flow_is_suspended() -> None:
    async def scenario(consumer: Any, callback: FakeCallback, deliver: Deliver) -> None:
        pending = asyncio.ensure_future(deliver(consumer, MESSAGE))
        await _until_started(callback)
        consumer.stop_flow()  # what App._on_partitions_revoked does first
        await pending  # returns: the drain loop goes on to see flow inactive
        callback.gate.set()  # too late: the callback is gone
        await asyncio.sleep(0)

    outcomes = _fencing(scenario, block=True)
    assert outcomes["eager"] == outcomes["upstream"] == (None, ["start", "cancelled"])


def test_blocking_callback_delivered_while_suspended_is_cancelled() -> None:
    async def scenario(consumer: Any, callback: FakeCallback, deliver: Deliver) -> None:
        consumer.stop_flow()
        await deliver(consumer, MESSAGE)

    outcomes = _fencing(scenario, block=True)
    assert outcomes["eager"] == outcomes["upstream"] == (None, ["start", "cancelled"])


def test_non_blocking_callback_delivered_while_suspended_still_runs() -> None:
    async def scenario(consumer: Any, callback: FakeCallback, deliver: Deliver) -> None:
        consumer.stop_flow()
        await deliver(consumer, MESSAGE)

    outcomes = _fencing(scenario)
    assert outcomes["eager"] == outcomes["upstream"] == (None, ["start", "done"])


def test_blocked_callback_is_cancelled_when_the_consumer_stops() -> None:
    async def scenario(consumer: Any, callback: FakeCallback, deliver: Deliver) -> None:
        pending = asyncio.ensure_future(deliver(consumer, MESSAGE))
        await _until_started(callback)
        consumer._stopped.set()
        await pending

    outcomes = _fencing(scenario, block=True)
    assert outcomes["eager"] == outcomes["upstream"] == (None, ["start", "cancelled"])


@pytest.mark.parametrize("block", [False, True], ids=["inline", "blocked"])
def test_callback_errors_propagate_to_the_drain_loop(block: bool) -> None:
    async def scenario(consumer: Any, callback: FakeCallback, deliver: Deliver) -> str:
        pending = asyncio.ensure_future(deliver(consumer, MESSAGE))
        await _until_started(callback)
        callback.gate.set()
        with pytest.raises(ValueError, match="callback failed"):
            await pending
        return "raised"

    outcomes = _fencing(scenario, block=block, fail=True)
    assert outcomes["eager"] == outcomes["upstream"] == ("raised", ["start"])


@pytest.mark.parametrize("block", [False, True], ids=["inline", "blocked"])
def test_callback_context_changes_do_not_leak_into_the_drain_loop(block: bool) -> None:
    async def scenario(consumer: Any, callback: FakeCallback, deliver: Deliver) -> str:
        async def drain_loop() -> str:  # stands for the task running _drain_messages
            await deliver(consumer, MESSAGE)
            return _var.get()

        pending = asyncio.ensure_future(drain_loop())
        await _until_started(callback)
        callback.gate.set()
        return await pending

    outcomes = _fencing(scenario, block=block)
    assert outcomes["eager"] == outcomes["upstream"] == ("caller", ["start", "done"])


def test_continuation_cancelled_before_its_first_step_still_cancels_the_callback() -> None:
    """The task that takes over a suspended callback can be cancelled before it ever ran."""

    async def scenario() -> list[str]:
        callback = FakeCallback(block=True)
        coro = callback(MESSAGE)
        yielded = coro.send(None)  # what _deliver's eager step does
        task = asyncio.get_running_loop().create_task(transport._Resumed(coro, yielded))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return callback.log

    assert _run(scenario()) == ["start", "cancelled"]


def test_continuation_can_also_be_awaited() -> None:
    async def scenario() -> list[str]:
        callback = FakeCallback(block=True)
        coro = callback(MESSAGE)
        resumed = transport._Resumed(coro, coro.send(None))
        asyncio.get_running_loop().call_soon(callback.gate.set)
        await resumed
        return callback.log

    assert _run(scenario()) == ["start", "done"]


# --------------------------------------------------------------------------- pacing

TP0 = TP("t", 0)


def _pacing(scenario: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `scenario(consumer)` on a built, never started consumer whose `TP0` buffer is full."""

    async def run() -> Any:
        app = new_app("127.0.0.1:1", _group("pace"))
        consumer = app.consumer
        try:
            consumer._active_partitions = {TP0}
            consumer.on_buffer_full(TP0)  # what the Conductor calls at 80% of stream_buffer_maxsize
            return await scenario(consumer)
        finally:
            consumer._thread.thread_loop.close()

    return _run(run())


async def _elapsed(awaitable: Awaitable[Any]) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await awaitable
    return loop.time() - started


def test_pacing_waits_for_the_buffer_to_drain() -> None:
    async def scenario(consumer: Any) -> tuple[float, set[Any]]:
        asyncio.get_running_loop().call_later(0.05, consumer.on_buffer_drop, TP0)
        return await _elapsed(consumer._wait_for_buffer()), consumer._active_partitions

    waited, active = _pacing(scenario)
    assert 0.04 <= waited < 0.5
    assert active == {TP0}  # upstream's bookkeeping still ran


@pytest.mark.parametrize("event", ["suspend", "stop", "timeout"])
def test_pacing_gives_up_on_suspension_stop_or_timeout(event: str) -> None:
    async def scenario(consumer: Any) -> float:
        consumer.buffer_wait_s = 1.0  # far from the event at 0.02 s: a loaded CI host's loop
        if event == "suspend":        # lags by tens of ms (0.1 s made `stop` fail there)
            asyncio.get_running_loop().call_later(0.02, consumer.stop_flow)
        elif event == "stop":
            asyncio.get_running_loop().call_later(0.02, consumer._stopped.set)
        return await _elapsed(consumer._wait_for_buffer())

    waited = _pacing(scenario)
    assert waited < 0.7 if event != "timeout" else 0.99 <= waited < 3.0


@pytest.mark.parametrize("eager", [True, False], ids=["eager", "upstream"])
def test_fetching_resumes_as_soon_as_a_paused_buffer_drains(eager: bool) -> None:
    """Upstream sleeps a full second when every partition is paused; eager wakes on the drop."""

    async def scenario(consumer: Any) -> tuple[float, Any]:
        consumer.eager_delivery = eager

        async def _getmany(active_partitions: Any, timeout: float) -> dict[Any, Any]:
            return {}

        consumer._getmany = _getmany  # no broker: fetching returns nothing at once
        asyncio.get_running_loop().call_later(0.05, consumer.on_buffer_drop, TP0)
        waited = await _elapsed(consumer._wait_next_records(1.0))
        return waited, consumer._active_partitions

    waited, active = _pacing(scenario)
    assert active == {TP0}
    assert waited < 0.5 if eager else waited >= 1.0
