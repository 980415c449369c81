"""pytest fixtures around the fake Slack server; import them into a conftest.py.

from tests.fakes.slack_fixtures import fake_slack, slack_sink  # noqa: F401

`slack_violations(text, blocks)` lists what real Slack would refuse or parse in a message (limits,
verbatim, broken entities, dangling `<`), so any test can check what it sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from slack_sdk import WebClient

from stream_guard.sinks.slack import SlackSink
from tests.fakes.slack_server import FAKE_TOKEN, FakeSlack

__all__ = ["FAKE_TOKEN", "fake_slack", "slack_sink", "slack_violations"]

# Block Kit limits (UTF-16 code units, as counted by `stream_guard.sinks.slack_text.units`).
_LIMITS = {"section": 3000, "field": 2000, "context": 3000, "header": 150, "button": 75}
_MAX_BLOCKS, _MAX_FIELDS, _MAX_ELEMENTS, _MAX_FALLBACK = 50, 10, 10, 1000
_BAD_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")
_OUR_MARKUP = re.compile(r"<[^<>]*>")  # after removing whole <...> sequences, no < or > is left

CLIENT_TIMEOUT_S = 1.0
"""Short, so a slow-response test times out quickly, yet 10x what a request to the fake takes on
a loaded machine: at 0.1 s, test_notify.py met timeouts on ordinary requests (extra retries)
with both xdist workers busy."""


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A started fake Slack Web API that only accepts FAKE_TOKEN; stopped after the test."""
    with FakeSlack(token=FAKE_TOKEN) as fake:
        yield fake


@pytest.fixture
def slack_sink(fake_slack: FakeSlack) -> SlackSink:
    """A SlackSink whose WebClient talks to `fake_slack`, without slack-sdk's own retries."""
    client = WebClient(
        token=FAKE_TOKEN,
        base_url=fake_slack.base_url,
        timeout=CLIENT_TIMEOUT_S,  # type: ignore[arg-type]
        retry_handlers=[],
    )
    return SlackSink(client)


def slack_violations(text: str, blocks: Sequence[dict[str, Any]]) -> list[str]:
    """Everything in a message that breaks Slack's limits or mrkdwn rules (empty: valid)."""
    problems = _text_problems("fallback", text, _MAX_FALLBACK)
    if len(blocks) > _MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks")
    for i, block in enumerate(blocks):
        for where, obj, limit in _text_objects(block):
            problems += _text_problems(f"block {i} {where}", obj["text"], limit)
            if obj["type"] == "mrkdwn" and obj.get("verbatim") is not True:
                problems.append(f"block {i} {where}: mrkdwn without verbatim")
        if len(block.get("fields", [])) > _MAX_FIELDS:
            problems.append(f"block {i}: {len(block['fields'])} fields")
        if block["type"] == "context" and len(block["elements"]) > _MAX_ELEMENTS:
            problems.append(f"block {i}: {len(block['elements'])} context elements")
    return problems


def _text_objects(block: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], int]]:
    kind = block["type"]
    if kind in ("section", "header") and "text" in block:
        yield "text", block["text"], _LIMITS[kind]
    for field in block.get("fields", []):
        yield "field", field, _LIMITS["field"]
    for element in block.get("elements", []) if kind in ("context", "actions") else []:
        if "text" in element and isinstance(element["text"], dict):
            yield "button", element["text"], _LIMITS["button"]
        elif element.get("type") == "mrkdwn":
            yield "context", element, _LIMITS["context"]


def _text_problems(where: str, text: str, limit: int) -> list[str]:
    units = len(text.encode("utf-16-le")) // 2
    problems = [f"{where}: {units} > {limit}"] if units > limit else []
    if not text:
        problems.append(f"{where}: empty")
    if _BAD_ENTITY.search(text):
        problems.append(f"{where}: broken entity")
    if re.search(r"[<>]", _OUR_MARKUP.sub("", text)):
        problems.append(f"{where}: dangling < or >")
    return problems
