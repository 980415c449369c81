"""Slack's Block Kit limits, enforced on every message we build, so Slack never refuses one.

Slack rejects the whole message (`invalid_blocks`, the notification is lost) when one limit is
exceeded; this pass makes any list of blocks fit instead, cutting with `slack_text.clip` (never
inside an entity or one of our links, always saying "(truncated)"), and marks every mrkdwn text
object `"verbatim": true` so Slack does not auto-link URLs, channel names or mentions in it.
Renderers fit their content first (top slices, "… 12 more slices"); this pass is the guarantee.

Limits (Slack's Block Kit reference): section text 3,000 characters; section fields 10, each
2,000; context elements 10; a header's plain text 150; a button's 75; 50 blocks per message.

>>> fit_blocks([{"type": "section", "text": {"type": "mrkdwn", "text": "<" * 4000}}])[0]["text"]
... # doctest: +ELLIPSIS
{'type': 'mrkdwn', 'text': '<<<...<<<… (truncated)', 'verbatim': True}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from stream_guard.sinks.slack_text import clip

__all__ = [
    "MAX_BLOCKS",
    "MAX_BUTTON_TEXT",
    "MAX_CONTEXT_ELEMENTS",
    "MAX_FALLBACK",
    "MAX_FIELDS",
    "MAX_FIELD_TEXT",
    "MAX_HEADER_TEXT",
    "MAX_SECTION_TEXT",
    "fit_blocks",
]

MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BLOCKS = 50
MAX_FALLBACK = 1000  # the top-level `text`: a notification preview, not the message itself

Block = dict[str, Any]


def fit_blocks(blocks: Sequence[Block]) -> list[Block]:
    """`blocks` within Slack's limits (new dicts; the input is not modified)."""
    fitted = [_FITTERS.get(block.get("type", ""), _same)(block) for block in blocks]
    if len(fitted) <= MAX_BLOCKS:
        return fitted
    hidden = len(fitted) - MAX_BLOCKS + 1
    note = _text_object(f"… {hidden} more blocks (truncated)", MAX_SECTION_TEXT)
    return [*fitted[: MAX_BLOCKS - 1], {"type": "section", "text": note}]


def _text_object(text: str, limit: int, kind: str = "mrkdwn") -> Block:
    return _fit_text({"type": kind, "text": text}, limit)


def _fit_text(obj: Block, limit: int) -> Block:
    """A text object clipped to `limit` (never empty: Slack wants one character at least)."""
    fitted = {**obj, "text": clip(str(obj.get("text", "")), limit) or "-"}
    if fitted.get("type") == "mrkdwn":
        fitted["verbatim"] = True
    return fitted


def _fit_list(items: Sequence[Block], max_items: int, limit: int, noun: str) -> list[Block]:
    """At most `max_items` text objects of at most `limit`; the last says how many were cut."""
    fitted = [_fit_text(item, limit) if "text" in item else item for item in items]
    if len(fitted) <= max_items:
        return fitted
    hidden = len(fitted) - max_items + 1
    return [*fitted[: max_items - 1], _text_object(f"… {hidden} more {noun}", limit)]


def _section(block: Block) -> Block:
    fitted = dict(block)
    if "text" in block:
        fitted["text"] = _fit_text(block["text"], MAX_SECTION_TEXT)
    if "fields" in block:
        fitted["fields"] = _fit_list(block["fields"], MAX_FIELDS, MAX_FIELD_TEXT, "fields")
    return fitted


def _context(block: Block) -> Block:
    elements = _fit_list(block["elements"], MAX_CONTEXT_ELEMENTS, MAX_SECTION_TEXT, "items")
    return {**block, "elements": elements}


def _header(block: Block) -> Block:
    return {**block, "text": _fit_text(block["text"], MAX_HEADER_TEXT)}


def _actions(block: Block) -> Block:
    def button(element: Block) -> Block:
        if element.get("type") != "button":
            return element
        return {**element, "text": _fit_text(element["text"], MAX_BUTTON_TEXT)}

    return {**block, "elements": [button(element) for element in block["elements"]]}


def _same(block: Block) -> Block:
    return dict(block)


_FITTERS: dict[str, Callable[[Block], Block]] = {
    "section": _section,
    "context": _context,
    "header": _header,
    "actions": _actions,
}
