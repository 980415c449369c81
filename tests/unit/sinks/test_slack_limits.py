"""Slack's Block Kit limits on any list of blocks, and cuts that never break mrkdwn."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from stream_guard.sinks.slack_limits import fit_blocks
from stream_guard.sinks.slack_text import clip, escape_mrkdwn, fit_items, units
from tests.fakes.slack_fixtures import slack_violations


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def test_50_blocks_at_most_and_the_last_says_how_many_were_cut() -> None:
    blocks = fit_blocks([section(f"block {i}") for i in range(60)])
    assert len(blocks) == 50
    assert blocks[48]["text"]["text"] == "block 48"
    assert blocks[49]["text"]["text"] == "… 11 more blocks (truncated)"
    assert slack_violations("x", blocks) == []
    assert len(fit_blocks([section("x")] * 50)) == 50


def test_10_fields_of_2000_characters_at_most() -> None:
    fields = [{"type": "mrkdwn", "text": f"*F{i}*\n" + "&amp;" * 600} for i in range(14)]
    [block] = fit_blocks([{"type": "section", "fields": fields}])
    assert len(block["fields"]) == 10
    assert block["fields"][-1]["text"] == "… 5 more fields"
    assert all(units(f["text"]) <= 2000 for f in block["fields"])
    assert block["fields"][0]["text"].endswith("&amp;… (truncated)")
    assert slack_violations("x", [block]) == []


def test_section_text_header_buttons_and_context() -> None:
    blocks = fit_blocks(
        [
            section("*head* " + "&lt;" * 1000),
            {"type": "header", "text": {"type": "plain_text", "text": "H" * 200}},
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "B" * 100}},
                ],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 12},
            {"type": "divider"},
        ]
    )
    assert slack_violations("x", blocks) == []
    assert blocks[0]["text"]["text"].endswith("&lt;… (truncated)")
    assert units(blocks[1]["text"]["text"]) == 150
    assert units(blocks[2]["elements"][0]["text"]["text"]) == 75
    assert blocks[3]["elements"][-1]["text"] == "… 3 more items"
    assert blocks[4] == {"type": "divider"}


def test_fit_blocks_leaves_its_input_alone() -> None:
    original = section("x" * 5000)
    fit_blocks([original])
    assert original == section("x" * 5000)


def test_empty_text_becomes_one_character() -> None:
    [block] = fit_blocks([section("")])
    assert block["text"]["text"] == "-"


@pytest.mark.parametrize(
    ("text", "limit", "clipped"),
    [
        ("see <https://wiki/x|Runbook> now", 20, "see … (truncated)"),
        ("owner <!subteam^S0123ABC>", 24, "owner … (truncated)"),
        ("a &amp; b &lt; c", 16, "a &amp; b &lt; c"),
        ("a &amp; b &lt; c", 15, "a … (truncated)"),
        ("\N{PILE OF POO}" * 10, 16, "\N{PILE OF POO}" + "… (truncated)"),
    ],
)
def test_clip_never_cuts_inside_an_entity_a_link_or_a_surrogate_pair(
    text: str, limit: int, clipped: str
) -> None:
    assert clip(text, limit) == clipped
    assert units(clip(text, limit)) <= limit


def test_random_cuts_of_escaped_text_stay_valid() -> None:
    rng = random.Random(7)
    alphabet = "&<>@#:/.a \N{PILE OF POO}"
    for _ in range(500):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        limit = rng.randrange(1, 60)
        text = escape_mrkdwn(raw, limit)
        assert units(text) <= limit
        assert not re.search(r"&(?!amp;|lt;|gt;)|[<>]", text), (raw, limit, text)


def test_fit_items_counts_what_it_leaves_out() -> None:
    items = [f"• item {i}" for i in range(10)]
    text = fit_items("*Items*\n", items, total=25, noun="item", limit=60)
    assert text.startswith("*Items*\n• item 0\n")
    shown = text.count("• item")
    assert text.endswith(f"\n… {25 - shown} more items")
    assert units(text) <= 60
    assert fit_items("*Items*\n", items[:2], total=2, noun="item", limit=60) == (
        "*Items*\n• item 0\n• item 1"
    )
    assert fit_items("x: ", [], total=1, noun="item", limit=60) == "x: … 1 more item"
