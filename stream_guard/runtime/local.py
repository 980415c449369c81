"""Workers as child processes on this machine: for the demo, integration tests and benchmarks.

A worker is exactly what production runs (`stream-guard worker`, configured by environment), so
what the demo shows and what the tests check is the real thing, not an in-process imitation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from stream_guard.broker import free_port

__all__ = ["LocalWorker", "scrape", "wait_for"]


class LocalWorker:
    """`stream-guard worker` in a child process; its log goes to `log_path`."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.metrics_port = free_port()
        self.env = {
            **os.environ,
            "STREAM_GUARD_METRICS_PORT": str(self.metrics_port),
            "STREAM_GUARD_WEB_PORT": str(free_port()),
            **env,
        }
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalWorker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "stream_guard.cli", "worker"], env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def metrics(self) -> str:
        """The worker's /metrics text ("" while the endpoint is not up yet)."""
        return scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a clean Faust shutdown), SIGKILL after `timeout`."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        return self._proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, for the crash-safety tests."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> LocalWorker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def scrape(url: str, timeout: float = 2.0) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return str(resp.read().decode())
    except OSError:
        return ""


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Polls `predicate()` until true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
