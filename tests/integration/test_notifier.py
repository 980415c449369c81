"""The notifier agent on the embedded broker against the fake Slack server, read as timelines.

Each test runs its own Faust app (unique id, topics under the test's prefix) with
`install_notifier`, produces alert records to the alerts topic, and reads the Slack calls the
fake recorded: records at t → exactly these calls, in this order.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import faust
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import SecretStr

from stream_guard.alert.notify import RetryPolicy
from stream_guard.alert.routing import RouteTree
from stream_guard.alert.silence_cli import publish, read_control
from stream_guard.alert.silences import Silence
from stream_guard.clock import ManualClock
from stream_guard.config.routes import load_routes
from stream_guard.runtime.notifier import NotifierHandles, NotifierSettings, install_notifier
from stream_guard.runtime.transport import broker_url
from stream_guard.sinks.slack import SlackSettings
from stream_guard.sinks.slack_blocks import (
    ACK_ACTION_ID,
    FALSE_ALARM_ACTION_ID,
    REAL_ACTION_ID,
    SNOOZE_ACTION_ID,
)
from tests.fakes.slack_server import FAKE_TOKEN, FakeSlack, Reply
from tests.integration._faust_harness import create_topic, lingering_threads

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROUTES = load_routes(REPO / "alert_rules" / "routes.yaml")
EPISODE = (REPO / "tests/unit/alert/fixtures/gmv_episode.jsonl").read_text().splitlines()
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
MIN = 60_000
T0 = 1_772_633_700_000  # 2026-03-04T14:15:00Z, the end of the episode's first window
COMMERCE = FakeSlack.channel_id("#commerce-oncall")
WAIT_S = 15.0


def gmv(line: int, **overrides: Any) -> dict[str, Any]:
    return {**json.loads(EPISODE[line]), **overrides}


def summary(body: dict[str, Any], method: str) -> tuple[str, ...]:
    if method == "chat.update":
        return ("update", body["channel"], body["ts"])
    if "thread_ts" in body:
        return ("reply", body["channel"], body["thread_ts"])
    return ("post", body["channel"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Rig:
    """Topics, clock, fake Slack and the app factory of one test."""

    def __init__(self, bootstrap: str, prefix: str, fake: FakeSlack, datadir: Path) -> None:
        self.bootstrap, self.fake, self.datadir = bootstrap, fake, datadir
        self.alerts, self.control = f"{prefix}alerts", f"{prefix}control"
        self.ticks = f"{prefix}notifier_ticks"
        self.remind_every_s = 30.0  # no reminder tick within a test unless it asks for them
        self.app_id = f"notifier-{uuid.uuid4().hex[:8]}"
        self.clock = ManualClock(T0)
        self.port = _free_port()
        self.seen = 0
        self.handles: NotifierHandles | None = None
        self.routes = ROUTES
        self.partitions = 1  # of the alerts and ticks topics (co-partitioned)

    def app(self) -> faust.App:
        """A fresh worker app of the same id: a restart sees the same group and tables."""
        app = faust.App(
            self.app_id,
            broker=broker_url(self.bootstrap),
            store="memory://",
            datadir=str(self.datadir),  # Faust writes a data dir even with in-memory tables
            broker_session_timeout=3,  # joins held 1.5 s (see _faust_harness.SESSION_TIMEOUT_S)
            broker_heartbeat_interval=1,
            broker_commit_interval=0.2,
            consumer_auto_offset_reset="earliest",
            web_enabled=True,
            web_host="127.0.0.1",
            web_bind="127.0.0.1",
            web_port=self.port,
        )
        settings = NotifierSettings(
            slack=SlackSettings(
                bot_token=SecretStr(FAKE_TOKEN),
                signing_secret=SecretStr(SECRET),
                base_url=self.fake.base_url,
            ),
            routes=self.routes,
            clock=self.clock,
            policy=RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02),
            hold=RetryPolicy(base_delay_s=0.05, max_delay_s=0.2),
            remind_every_s=self.remind_every_s,
            timeout_s=1,
        )
        alerts = app.topic(self.alerts, partitions=self.partitions, value_serializer="json")
        ticks = app.topic(self.ticks, partitions=self.partitions, value_serializer="raw")
        control = app.topic(self.control, partitions=1, value_serializer="json")
        self.handles = install_notifier(app, alerts, ticks, control, settings)
        return app

    async def topics(self) -> None:
        await create_topic(self.bootstrap, self.alerts, self.partitions)
        await create_topic(self.bootstrap, self.ticks, self.partitions)
        await create_topic(self.bootstrap, self.control, 1)

    async def push(self, *records: dict[str, Any]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            for record in records:
                key = record["fingerprint"].encode()
                await producer.send_and_wait(self.alerts, orjson.dumps(record), key=key)
        finally:
            await producer.stop()

    async def calls(self, count: int, settle_s: float = 0.3) -> list[tuple[str, ...]]:
        """Wait for `count` new Slack calls (and a little more, to catch extra ones)."""
        deadline = time.monotonic() + WAIT_S
        while len(self.fake.calls) - self.seen < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(settle_s)
        new = self.fake.calls[self.seen :]
        self.seen += len(new)
        return [summary(c.body, c.method) for c in new if c.method.startswith("chat.")]

    async def alert_records(self) -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(self.alerts, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            out: list[dict[str, Any]] = []
            while await consumer.position(tp) < end:
                for message in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    out.append(orjson.loads(message.value or b"null"))
            return out
        finally:
            await consumer.stop()


@asynccontextmanager
async def worker(rig: Rig) -> AsyncIterator[faust.App]:
    app = rig.app()
    app.finalize()
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def run(coro: Any) -> None:
    """Run a scenario; no thread of Faust or of the notifier may outlive it.

    The fake Slack's request threads are left to its fixture, which joins them when it stops
    (a scripted slow answer can still be sleeping after the client gave up on it).
    """
    before = threading.enumerate()
    asyncio.run(coro)
    left = [t for t in lingering_threads(before) if "process_request" not in t.name]
    assert left == []


@pytest.fixture
def fake() -> Any:
    with FakeSlack(token=FAKE_TOKEN) as running:
        yield running


@pytest.fixture
def rig(bootstrap: str, topic_prefix: str, fake: FakeSlack, tmp_path: Path) -> Rig:
    return Rig(bootstrap, topic_prefix, fake, tmp_path)


def _held(handles: NotifierHandles) -> int:
    """Times a record waited because Slack was unavailable for one of its routes."""
    return sum(n for (outcome, _route, _reason), n in handles.stats.items() if outcome == "held")


def posted_ts(index: int = 0) -> str:
    """The ts the fake gives its `index`-th chat.postMessage (it counts up by 100 per request)."""
    seconds, micros = divmod(1_772_632_800_000_100 + 100 * (index + 1), 1_000_000)
    return f"{seconds}.{micros:06d}"


# --------------------------------------------------------------------------- timelines


def test_episode_timeline_through_the_agent(rig: Rig) -> None:
    async def scenario() -> None:
        await rig.topics()
        async with worker(rig):
            await rig.push(gmv(0))
            assert await rig.calls(1) == [("post", "#commerce-oncall")]
            p = posted_ts()
            rig.clock.advance(15 * MIN)
            await rig.push(gmv(1))  # same severity and slices: nothing
            assert await rig.calls(0) == []
            rig.clock.advance(15 * MIN)
            await rig.push(gmv(2))  # escalated
            assert await rig.calls(2) == [("update", COMMERCE, p), ("reply", COMMERCE, p)]
            rig.clock.advance(60 * MIN)
            await rig.push(gmv(3))  # resolved
            assert await rig.calls(2) == [("update", COMMERCE, p), ("reply", COMMERCE, p)]
            assert "RESOLVED" in rig.fake.calls[-2].body["text"]

    run(scenario())


SO_FAR = {"since": "2026-03-04T13:45:00Z", "windows": 2, "duration_s": 1800.0,
          "aggregate": "sum", "actual": 24_000.0, "expected": 82_000.0, "gap": -58_000.0,
          "gap_per_hour": -116_000.0}
SERIES = [{"end": f"2026-03-04T{h:02d}:{m:02d}:00Z", "actual": 41_000.0 if h < 14 else 12_000.0,
           "expected": 41_000.0} for h in range(15) for m in (0, 15, 30, 45)][:-2]


def test_the_analysts_timeline_numbers_chart_snooze_verdicts_and_resolution(
    rig: Rig, bootstrap: str
) -> None:
    """Issue 15's timeline through the notify agent: the firing parent gives the episode so far
    in the metric's unit, then the chart of the slice lands in its thread (files_upload_v2's
    three steps against the stand-in); Snooze 4h and False alarm, pressed at the signed
    endpoint, show on the parent; the resolution still edits the parent and replies (a snooze
    never hides it) and sends no second chart; a verdict changed after it (Real issue)
    refreshes the resolved parent, and the control topic keeps the latest answer."""
    url = f"http://127.0.0.1:{rig.port}/slack/interactivity"
    now_s = T0 // 1000

    async def scenario() -> None:
        await rig.topics()
        async with worker(rig), aiohttp.ClientSession() as http:
            async def press(action_id: str, parent: dict[str, Any], at_s: int) -> int:
                value = parent["blocks"][-1]["elements"][0]["value"]
                body = _press(action_id, value)
                async with http.post(url, data=body, headers=_signed(body, at_s)) as resp:
                    return resp.status

            await rig.push(gmv(0, so_far=SO_FAR, unit="USD", series=SERIES))
            assert await rig.calls(3) == [("post", "#commerce-oncall")]
            assert rig.fake.methods() == ["chat.postMessage", "files.getUploadURLExternal",
                                          "files.completeUploadExternal"]
            firing = rig.fake.calls[0].body
            assert firing["text"].endswith("since 13:45 (30 minutes): 24k vs 82k expected "
                                           "(−71%), −58k USD, −116k USD/h")
            p = posted_ts()
            [chart] = rig.fake.shared_files()
            assert (chart.channel, chart.thread_ts) == (COMMERCE, p)
            assert chart.data.startswith(b"\x89PNG\r\n\x1a\n")

            assert await press("stream_guard.snooze_4h", firing, now_s) == 200
            assert await rig.calls(1) == [("update", COMMERCE, p)]
            assert "Snoozed until 18:15 UTC by <@U0ANALYST>" in json.dumps(
                rig.fake.calls[-1].body)
            assert await press(FALSE_ALARM_ACTION_ID, firing, now_s + 1) == 200
            assert await rig.calls(1) == [("update", COMMERCE, p)]
            assert "Marked a false alarm" in json.dumps(rig.fake.calls[-1].body)

            rig.clock.advance(60 * MIN)
            await rig.push(gmv(3))  # resolved, during the snooze
            assert await rig.calls(2) == [("update", COMMERCE, p), ("reply", COMMERCE, p)]
            resolved = rig.fake.calls[-2].body
            assert "RESOLVED" in resolved["text"] and len(rig.fake.shared_files()) == 1
            assert await press(REAL_ACTION_ID, resolved, now_s + 3600) == 200
            assert await rig.calls(1) == [("update", COMMERCE, p)]
            assert "Marked a real issue" in json.dumps(rig.fake.calls[-1].body)

        view = await asyncio.to_thread(read_control, bootstrap, rig.control)
        assert view.feedback[gmv(0)["episode_id"]].verdict == "real"

    run(scenario())


def test_a_firing_thread_is_reminded_by_its_route_once_per_interval(rig: Rig) -> None:
    """Reminders are the notifier's (the engine emits transitions only): with nothing new, a
    firing thread is reminded once its route's repeat_interval (commerce-oncall: 2 h) has passed
    since the last notification, the reminder broadcast to the channel; a restart repeats none;
    a resolved thread is never reminded."""
    rig.remind_every_s = 0.1

    def broadcast() -> bool:
        return rig.fake.calls[-1].body.get("reply_broadcast") in (True, "true", "1")

    async def scenario() -> None:
        await rig.topics()
        async with worker(rig):
            await rig.push(gmv(0))
            assert await rig.calls(1) == [("post", "#commerce-oncall")]
            p = posted_ts()
            rig.clock.advance(119 * MIN)
            assert await rig.calls(0, settle_s=0.6) == []
            rig.clock.advance(1 * MIN)
            assert await rig.calls(2) == [("update", COMMERCE, p), ("reply", COMMERCE, p)]
            assert broadcast() and "Still firing" in json.dumps(rig.fake.calls[-1].body)
            rig.clock.advance(60 * MIN)
            assert await rig.calls(0, settle_s=0.6) == []
        async with worker(rig):  # restarted: the tables know the reminder was sent
            assert await rig.calls(0, settle_s=1.0) == []
            rig.clock.advance(60 * MIN)
            assert await rig.calls(2) == [("update", COMMERCE, p), ("reply", COMMERCE, p)]
            await rig.push(gmv(3))  # resolved
            assert await rig.calls(2) == [("update", COMMERCE, p), ("reply", COMMERCE, p)]
            rig.clock.advance(5 * 60 * MIN)
            assert await rig.calls(0, settle_s=0.6) == []

    run(scenario())


def test_the_notification_log_forgets_episodes_past_its_retention(rig: Rig) -> None:
    """Alertmanager keeps its nflog 5 days; so does ours, then the entries go (GC hourly)."""
    async def scenario() -> None:
        await rig.topics()
        async with worker(rig):
            await rig.push(gmv(0))
            assert await rig.calls(1) == [("post", "#commerce-oncall")]
            assert rig.handles is not None and len(rig.handles.nflog) == 1
            rig.clock.advance(6 * 24 * 60 * MIN)  # a week later, another episode
            await rig.push(gmv(0, episode_id="gmv-later", fingerprint="0123456789abcdef"))
            assert await rig.calls(1) == [("post", "#commerce-oncall")]
            assert [k.endswith("|gmv-later") for k in rig.handles.nflog] == [True]
            assert rig.handles.stats["forgotten", "", ""] == 1

    run(scenario())


def test_restart_mid_episode_continues_the_thread(rig: Rig) -> None:
    """Stop the worker after the parent; a new one recovers the tables and goes on.

    The first record comes again after the restart, as it would after a crash before the
    offset commit: it must send nothing, and the escalation must land in the same thread.
    """

    async def scenario() -> None:
        await rig.topics()
        async with worker(rig):
            await rig.push(gmv(0))
            assert await rig.calls(1) == [("post", "#commerce-oncall")]
        async with worker(rig):
            rig.clock.advance(30 * MIN)
            await rig.push(gmv(0), gmv(2))
            p = posted_ts()
            assert await rig.calls(2) == [("update", COMMERCE, p), ("reply", COMMERCE, p)]
        assert rig.fake.methods().count("chat.postMessage") == 2  # one parent, one reply

    run(scenario())


def test_injected_seller_id_arrives_as_text(rig: Rig) -> None:
    evil = "<!channel> <https://evil|click>"

    async def scenario() -> None:
        await rig.topics()
        async with worker(rig):
            await rig.push(gmv(0, slice={"seller_id": evil}, firing_slices=[], hints=[]))
            assert await rig.calls(1) == [("post", "#commerce-oncall")]

    run(scenario())
    body = json.dumps(rig.fake.calls[0].body)
    # escaped, and the URL broken by a word joiner so no client turns it into a link
    assert "seller_id=&lt;!channel&gt; &lt;https:\\u2060//evil|click&gt;" in body
    assert "<!channel>" not in body and "<https://evil" not in body


# --------------------------------------------------------------------------- delivery


def test_no_alert_lost_while_slack_is_down(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """500s, a 429 and a timeout: the agent holds the record, then delivers all, in order.

    The logs say what failed, never with the token or the signing secret in them.
    """
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        await rig.topics()
        rig.fake.enqueue(
            Reply.server_error(), Reply.server_error(), Reply.rate_limited(retry_after=0),
            Reply.server_error(), Reply.slow(delay_s=2.0), Reply.server_error(503),
        )
        async with worker(rig):
            rig.clock.advance(30 * MIN)
            await rig.push(gmv(0), gmv(2), gmv(3))
            calls = await rig.calls(11, settle_s=0.5)
        assert calls[:6] == [("post", "#commerce-oncall")] * 6  # the scripted failures
        p = posted_ts(6)  # the seventh postMessage was the first accepted
        assert calls[6:] == [("post", "#commerce-oncall")] + [
            ("update", COMMERCE, p), ("reply", COMMERCE, p)] * 2
        assert rig.handles is not None and _held(rig.handles) >= 2

    run(scenario())
    assert "http_500" in caplog.text and "timed out" in caplog.text
    assert FAKE_TOKEN not in caplog.text and SECRET not in caplog.text


def test_a_dead_route_does_not_block_another(rig: Rig) -> None:
    complaints = gmv(0, metric="complaint_rate", route="default", severity="critical",
                     episode_id="complaint_rate-20260304T1400Z-77aa", fingerprint="77aa")

    async def scenario() -> None:
        await rig.topics()
        rig.fake.fail_channel("#trust-safety-page", "invalid_auth")
        async with worker(rig):
            await rig.push(complaints, gmv(0))
            calls = await rig.calls(4)
        assert calls == [
            ("post", "#trust-safety-page"),  # invalid_auth: logged once, not retried, not held
            ("post", "#trust-safety-alerts"),
            ("post", "#commerce-oncall"),
            # gmv moved with complaint_rate in the same window: the complaint_rate thread that
            # exists is updated to name it
            ("update", FakeSlack.channel_id("#trust-safety-alerts"), posted_ts(1)),
        ]
        assert rig.handles is not None
        assert rig.handles.notifier.stats["failed", "trust-safety-page", "permanent"] == 1
        assert _held(rig.handles) == 0

    run(scenario())


# --------------------------------------------------------------------------- silences


def test_silenced_updates_are_recorded_not_sent(rig: Rig, bootstrap: str) -> None:
    silence = Silence.create("gmv", {"region": "EU"}, T0 - MIN, T0 + 20 * MIN, "deploy", "ana")

    async def scenario() -> None:
        await rig.topics()
        await asyncio.to_thread(publish, bootstrap, rig.control, silence)
        async with worker(rig):
            await rig.push(gmv(0))
            assert await rig.calls(0, settle_s=1.0) == []
            rig.clock.advance(30 * MIN)  # the silence has ended: the next update opens a thread
            await rig.push(gmv(2))
            assert await rig.calls(1) == [("post", "#commerce-oncall")]
        records = await rig.alert_records()
        silenced = [r for r in records if r["status"] == "silenced"]
        assert len(silenced) == 1 and silenced[0]["silenced_by"] == [silence.id]
        assert silenced[0]["sequence"] == 0
        assert rig.handles is not None and rig.handles.stats["silenced", "", ""] == 1

    run(scenario())


def _with_gmv_outage_rule(tmp_path: Path) -> RouteTree:
    """routes.yaml plus a rule: a critical GMV outage mutes complaint-rate alerts."""
    routes = tmp_path / "routes.yaml"
    routes.write_text((REPO / "alert_rules" / "routes.yaml").read_text() + """
inhibit_rules:
  - name: gmv-outage
    source_match: {metric: gmv, severity: critical}
    target_match: {metric: complaint_rate}
""")
    return load_routes(routes)


def test_inhibited_updates_wait_for_the_source_to_resolve(rig: Rig, tmp_path: Path) -> None:
    """routes.yaml's rule: a critical GMV outage mutes complaint-rate alerts; and the built-in
    one: a critical mutes the warnings of its metric and slice. A resolution still closes a
    thread that was opened before the inhibition."""
    rig.routes = _with_gmv_outage_rule(tmp_path)
    outage = gmv(2, episode_id="gmv-outage-1", fingerprint="0000000000000001", slice={},
                 severity="critical")
    complaints = gmv(0, metric="complaint_rate", episode_id="cr-1", route="trust-safety",
                     fingerprint="0000000000000002")
    other = gmv(0, episode_id="gmv-eu-2", fingerprint="0000000000000003")  # a gmv EU warning

    async def scenario() -> None:
        await rig.topics()
        async with worker(rig):
            await rig.push(complaints)  # before the outage: notified
            assert await rig.calls(1) == [("post", "#trust-safety-alerts")]
            await rig.push(outage)
            assert await rig.calls(2) == [  # the outage co-moves with the complaints
                ("post", "#commerce-oncall"),
                ("update", FakeSlack.channel_id("#trust-safety-alerts"), posted_ts(0))]
            await rig.push(gmv(2, metric="complaint_rate", episode_id="cr-2", slice={"x": "y"},
                               route="trust-safety", fingerprint="0000000000000004"))
            await rig.push({**outage, "slice": {"region": "EU"}, "episode_id": "gmv-crit-eu",
                            "fingerprint": "0000000000000005"})
            await rig.push(other)  # muted by the critical gmv EU episode (built-in rule)
            outage_ts, cr1 = posted_ts(1), (FakeSlack.channel_id("#trust-safety-alerts"),
                                            posted_ts(0))
            assert await rig.calls(4) == [
                # muted episodes are still named by their co-moving peers' parents
                ("update", FakeSlack.channel_id("#commerce-oncall"), outage_ts),  # cr-2
                ("post", "#commerce-oncall"),  # only gmv-crit-eu is posted
                ("update", *cr1),  # names gmv-crit-eu
                ("update", *cr1),  # names the muted gmv EU warning
            ]
            await rig.push({**complaints, "status": "resolved", "sequence": 1})
            assert [c[0] for c in await rig.calls(2)] == ["update", "reply"]  # closes its thread
        assert rig.handles is not None and rig.handles.stats["inhibited", "", ""] == 2

    run(scenario())


# --------------------------------------------------------------------------- interactivity


def _signed(body: bytes, ts: int) -> dict[str, str]:
    base = f"v0:{ts}:".encode() + body
    sig = "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sig,
            "Content-Type": "application/x-www-form-urlencoded"}


def _press(action_id: str, value: str) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0ANALYST", "username": "ana"},
        "channel": {"id": COMMERCE},
        "container": {"type": "message", "message_ts": "1"},
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_buttons_signed_stale_replayed_and_the_parent_shows_the_ack(
    rig: Rig, bootstrap: str
) -> None:
    url = f"http://127.0.0.1:{rig.port}/slack/interactivity"
    now_s = T0 // 1000

    async def scenario() -> None:
        await rig.topics()
        async with worker(rig), aiohttp.ClientSession() as http:
            await rig.push(gmv(0))
            assert await rig.calls(1) == [("post", "#commerce-oncall")]
            value = rig.fake.calls[0].body["blocks"][-1]["elements"][0]["value"]
            ack, snooze = _press(ACK_ACTION_ID, value), _press(SNOOZE_ACTION_ID, value)

            async def post(body: bytes, headers: dict[str, str]) -> int:
                async with http.post(url, data=body, headers=headers) as resp:
                    return resp.status

            forged = {**_signed(ack, now_s), "X-Slack-Signature": "v0=" + "0" * 64}
            assert await post(ack, forged) == 401
            assert await post(ack, _signed(ack, now_s - 600)) == 401  # stale
            assert await post(ack, _signed(ack, now_s)) == 200
            assert await post(ack, _signed(ack, now_s)) == 401  # replayed
            p = posted_ts()
            assert await rig.calls(1) == [("update", COMMERCE, p)]
            assert "Acknowledged by <@U0ANALYST>" in json.dumps(rig.fake.calls[-1].body)

            assert await post(snooze, _signed(snooze, now_s + 1)) == 200
            assert await rig.calls(1) == [("update", COMMERCE, p)]
            shown = json.dumps(rig.fake.calls[-1].body)
            assert "Snoozed until 15:15 UTC by <@U0ANALYST>" in shown
            assert "Acknowledged by" in shown
            await rig.push(gmv(2))  # an escalation during the snooze is silenced
            assert await rig.calls(0, settle_s=1.0) == []

        view = await asyncio.to_thread(read_control, bootstrap, rig.control)
        assert view.acks[gmv(0)["episode_id"]].user_id == "U0ANALYST"
        [snoozed] = view.silences.values()
        assert (snoozed.metric, snoozed.slice, snoozed.author) == ("gmv", {"region": "EU"},
                                                                     "U0ANALYST")

    run(scenario())


# --------------------------------------------------------------------------- co-moving metrics


def _no_engine_hint(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "hints": [h for h in record["hints"] if h["kind"] != "metric"]}


GMV_OWNER = [_no_engine_hint(gmv(line)) for line in (0, 2, 3)]  # new, escalated, resolved
"""One owner's episode: gmv down in region=EU from 14:00 until its 14:45 window."""
COMPLAINTS_OWNER = [
    _no_engine_hint(gmv(0, metric="complaint_rate", episode_id="complaint_rate-1405-eu",
                        fingerprint="00000000000000c1", route="default", direction="up",
                        started_at="2026-03-04T14:05:00Z", window_start="2026-03-04T14:05:00Z",
                        window_end="2026-03-04T14:10:00Z")),
    _no_engine_hint(gmv(3, metric="complaint_rate", episode_id="complaint_rate-1405-eu",
                        fingerprint="00000000000000c1", route="default", direction="up",
                        sequence=1, started_at="2026-03-04T14:05:00Z")),
]
"""Another owner's episode: complaint_rate up in region=EU from 14:05, resolved."""
ARRIVALS = {
    "gmv first": [*GMV_OWNER, *COMPLAINTS_OWNER],
    "complaints first": [*COMPLAINTS_OWNER, *GMV_OWNER],
    "interleaved": [GMV_OWNER[0], COMPLAINTS_OWNER[0], GMV_OWNER[1], COMPLAINTS_OWNER[1],
                    GMV_OWNER[2]],
}


def _workspace(fake: FakeSlack) -> list[tuple[str, str, str, str]]:
    """What a reader of Slack sees at the end, whatever the ts: each message as (channel,
    its thread parent's text or "" for a parent, text, blocks), sorted."""
    messages = fake.messages()
    parent_text = {ts: body["text"] for (_, ts), body in messages.items()
                   if "thread_ts" not in body}
    return sorted((FakeSlack.channel_id(body["channel"]),
                   parent_text.get(body.get("thread_ts", ""), "?") if "thread_ts" in body else "",
                   body["text"], json.dumps(body["blocks"], sort_keys=True))
                  for body in messages.values())


def _deliver_in_order(rig: Rig, order: str) -> list[tuple[str, str, str, str]]:
    """One worker handles the records in this order; the workspace at the end."""

    async def scenario() -> None:
        await rig.topics()
        async with worker(rig):
            await rig.push(*ARRIVALS[order])
            calls = await rig.calls(9, settle_s=1.5 * rig.partitions)
        assert rig.handles is not None
        linked = sum(n for (outcome, *_), n in rig.handles.stats.items() if outcome == "linked")
        # One partition: the later episode's first post names the earlier, whose parent is
        # updated once. Two: the later one may be posted before its notifier learned of the
        # earlier (statuses travel through the ticks topic), then both parents are updated once.
        assert 1 <= linked <= rig.partitions
        # 2 parents, 3 replies (an escalation, two resolutions) and the updates: 3 with a
        # record, the others for the links; never a new message
        kinds = sorted(kind for kind, *_ in calls)
        assert kinds == ["post"] * 2 + ["reply"] * 3 + ["update"] * (3 + linked), kinds

    run(scenario())
    return _workspace(rig.fake)


@pytest.mark.parametrize("partitions", [1, 2])
def test_co_moving_episodes_of_two_owners_name_each_other_whatever_the_order(
    bootstrap: str, new_prefix: Callable[[], str], tmp_path: Path, partitions: int
) -> None:
    """Two owners' episodes overlap in event time and slice: the one notified later names the
    earlier in its first post, the earlier's parent is updated once to name it (no new
    top-level message, no reply), and Slack ends up the same in every arrival order. With two
    alerts partitions the episodes are on different ones (gmv's fingerprint on 1, the
    complaints' on 0): the partitions' notifiers link them through the statuses they send
    each other (runtime/comoving.py)."""
    finals = {}
    for n, order in enumerate(ARRIVALS):
        with FakeSlack(token=FAKE_TOKEN) as fake:
            rig = Rig(bootstrap, new_prefix(), fake, tmp_path / str(n))
            rig.partitions = partitions
            finals[order] = _deliver_in_order(rig, order)
    final = finals["gmv first"]
    assert all(other == final for other in finals.values())
    parents = {text.split()[1]: blocks for _, thread, text, blocks in final if not thread}
    assert set(parents) == {"gmv", "complaint_rate"}
    assert "*complaint_rate* up in region=EU since 14:05 UTC" in parents["gmv"]
    assert "*gmv* down in region=EU since 14:00 UTC" in parents["complaint_rate"]


def test_a_failed_link_update_is_made_once_after_a_restart(rig: Rig) -> None:
    """Slack fails the chat.update that names the later episode on the earlier parent; the
    worker stops (as a crash would) with the link saved and the parent behind it. The restarted
    worker's tick updates that parent once; a redelivered record sends nothing."""

    async def scenario() -> None:
        await rig.topics()
        async with worker(rig):
            await rig.push(GMV_OWNER[0])
            assert await rig.calls(1) == [("post", "#commerce-oncall")]
            rig.fake.enqueue(*[Reply(status=503, method="chat.update")] * 2)
            await rig.push(COMPLAINTS_OWNER[0])
            assert await rig.calls(3) == [("post", "#trust-safety-alerts"),
                                          ("update", COMMERCE, posted_ts(0)),
                                          ("update", COMMERCE, posted_ts(0))]
        rig.remind_every_s = 0.5  # the restarted worker looks for stale parents twice a second
        async with worker(rig):
            assert await rig.calls(1, settle_s=2.0) == [("update", COMMERCE, posted_ts(0))]
            await rig.push(COMPLAINTS_OWNER[0])  # handled before: nothing
            assert await rig.calls(0, settle_s=1.5) == []
        parent = rig.fake.messages()[COMMERCE, posted_ts(0)]
        assert "*complaint_rate* up in region=EU" in json.dumps(parent["blocks"])
        assert rig.fake.methods().count("chat.postMessage") == 2

    run(scenario())


def test_an_alert_on_another_alerts_partition_inhibits(rig: Rig, tmp_path: Path) -> None:
    """Two alerts partitions: the GMV outage (fingerprint on partition 1) mutes the complaints
    (on partition 0) of routes.yaml's rule while it fires, as with one partition: the status
    the outage's notifier sends carries its labels. The outage's parent names the muted
    complaints (co-moving); once it resolves, the complaints' next update is posted."""
    rig.routes, rig.partitions = _with_gmv_outage_rule(tmp_path), 2
    outage = gmv(2, episode_id="gmv-outage-1", slice={}, severity="critical")  # partition 1
    complaints = gmv(0, metric="complaint_rate", episode_id="cr-1", route="trust-safety",
                     fingerprint="00000000000000c1")  # partition 0

    async def scenario() -> None:
        await rig.topics()
        async with worker(rig):
            await rig.push(outage)
            assert await rig.calls(1) == [("post", "#commerce-oncall")]
            await asyncio.sleep(1.0)  # the outage's status reaches partition 0
            await rig.push(complaints)
            assert await rig.calls(1, settle_s=1.5) == [
                ("update", FakeSlack.channel_id("#commerce-oncall"), posted_ts(0))]
            await rig.push({**outage, "status": "resolved", "reason": "resolved", "sequence": 3})
            assert [c[0] for c in await rig.calls(2)] == ["update", "reply"]
            await asyncio.sleep(1.0)
            await rig.push({**complaints, "sequence": 1, "severity": "critical",
                            "reason": "escalated"})
            assert ("post", "#trust-safety-alerts") in await rig.calls(2, settle_s=1.5)
        assert rig.handles is not None and rig.handles.stats["inhibited", "", ""] == 1

    run(scenario())
