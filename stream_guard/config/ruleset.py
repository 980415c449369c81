"""A rules directory checked as a whole: every metric file, routes.yaml and calendar.yaml.

`stream-guard rules validate` uses it so that one run reports every broken file (a user fixing
three files should not need three runs) and so that the calendar, which only replay and the
worker read, is checked before they start.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from stream_guard.config.calendar import load_calendar
from stream_guard.config.errors import Problems
from stream_guard.config.routes import load_routes
from stream_guard.config.rules import MetricRule, load_rules
from stream_guard.config.topics import TopicSpec

__all__ = ["check_rules_dir"]


def check_rules_dir(directory: Path, topics: dict[str, TopicSpec]) -> list[MetricRule]:
    """The metrics of `directory` once all its files are valid; else ConfigErrors listing all.

    Rules are checked against the routes of routes.yaml when there is one and it is valid.
    """
    problems = Problems()
    routes_path = directory / "routes.yaml"
    routes = (
        problems.attempt(partial(load_routes, routes_path))
        if os.path.lexists(routes_path)
        else None
    )
    problems.attempt(partial(load_calendar, directory / "calendar.yaml"))
    names = routes.names() if routes is not None else None
    rules = problems.attempt(partial(load_rules, directory, topics, names))
    problems.raise_if_any()
    assert rules is not None  # else load_rules raised and raise_if_any did too
    return rules
