"""The embedded broker: ready means it answers Kafka; stopped means no process is left."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stream_guard.broker import BrokerError, EmbeddedBroker, free_port
from stream_guard.ingest.kafka import ping

pytestmark = pytest.mark.integration


def _gone(pid: int) -> bool:
    """True when no process (not even a zombie, which still takes signals) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _fake_broker(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-broker"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_session_broker_answers_the_kafka_protocol(broker: EmbeddedBroker) -> None:
    assert broker.running
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    assert ping(broker.bootstrap)


def test_start_and_stop_leave_no_process_and_free_the_port() -> None:
    with EmbeddedBroker() as broker:
        pid, port = broker.pid, broker.port
        assert pid is not None and port is not None
        assert ping(broker.bootstrap)
    assert not broker.running
    assert _gone(pid)
    assert _refused(port)
    broker.stop()  # idempotent


def test_a_port_in_use_is_refused_before_starting(broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerError, match="already in use"):
        EmbeddedBroker(port=broker.port).start()


def test_a_broker_that_dies_at_start_up_shows_its_output(tmp_path: Path) -> None:
    binary = _fake_broker(tmp_path, 'echo "boom: cannot bind" >&2\nexit 3')
    broker = EmbeddedBroker(port=free_port(), binary=binary)
    with pytest.raises(BrokerError, match=r"(?s)exit status 3.*boom: cannot bind"):
        broker.start()
    assert not broker.running


def test_a_broker_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    binary = _fake_broker(tmp_path, 'echo "starting"\nexec sleep 30')
    broker = EmbeddedBroker(port=free_port(), binary=binary, startup_timeout=0.5)
    with pytest.raises(BrokerError, match=r"(?s)did not answer.*starting"):
        broker.start()
    assert broker.pid is None and not broker.running


@pytest.mark.timeout(30)
def test_foreground_broker_prints_bootstrap_and_stops_on_ctrl_c() -> None:
    port = free_port()
    code = "import sys; from stream_guard.broker import run_foreground; " \
           f"sys.exit(run_foreground({port}))"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                          cwd=Path(__file__).resolve().parents[2]) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"bootstrap 127.0.0.1:{port}" in line
        assert ping(f"127.0.0.1:{port}")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    assert _refused(port)
