"""`stream-guard worker` (and `demo`, see runtime/demo.py): the live commands."""

from __future__ import annotations

import argparse

__all__ = ["add_cli"]


def add_cli(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser(
        "worker", help="run a Faust worker (settings from STREAM_GUARD_* variables, see README)")
    w.set_defaults(func=_worker)
    from stream_guard.runtime.demo import add_arguments

    d = sub.add_parser("demo", help="broker + worker + simulated traffic with incidents, live")
    add_arguments(d)
    d.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from stream_guard.runtime.demo import run_demo

    return run_demo(args)


def _worker(_args: argparse.Namespace) -> int:
    from stream_guard.runtime.app import run_worker
    from stream_guard.runtime.settings import WorkerSettings

    return run_worker(WorkerSettings.from_env())
