"""Text for Slack: foreign text made inert, and cuts that keep the message valid.

Slack reads `&`, `<` and `>` as control characters (a link `<url|label>`, a mention `<@U123>`,
a broadcast `<!here>`), so text that is not ours (slice values, seller ids, hint summaries with
intervention and calendar names...) is escaped as Slack's formatting reference asks: those three
characters, and nothing else, as HTML entities. Slack also *automatically* parses bare `@here`,
`#channel` and URLs; every mrkdwn object we send is `"verbatim": true`, which Slack documents as
turning that parsing off, and as a second line of defence (the top-level fallback `text` has no
verbatim flag, and clients linkify on their own) a WORD JOINER (U+2060, invisible) goes after
`@` and `#` and into `://` and `name.tld`, so none of them reads as a mention, a channel or a URL.

Cuts happen after escaping, never inside an entity (`&am`) or one of our own `<...>` links and
mentions, and say so. Lengths are counted in UTF-16 code units (an emoji counts twice), so
they are within Slack's limits whether Slack counts code points or JavaScript characters.

>>> escape_mrkdwn("<!channel> <https://evil|click> & co")
'&lt;!channel&gt; &lt;https:\\u2060//evil|click&gt; &amp; co'
>>> escape_mrkdwn("@here see #general or evil.com")
'@\\u2060here see #\\u2060general or evil.\\u2060com'
>>> mention("S0123ABC"), mention("U0123ABC"), mention("<!here>")
('<!subteam^S0123ABC>', '<@U0123ABC>', '&lt;!here&gt;')
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "MAX_ITEM",
    "TRUNCATED",
    "WORD_JOINER",
    "clip",
    "escape_mrkdwn",
    "fit_items",
    "link",
    "mention",
    "units",
]

MAX_ITEM = 500  # code units of one escaped foreign text (a slice, a hint): a section holds several
MAX_URL = 1000  # a longer runbook/dashboard URL is shown as (clipped) text, not as a link
TRUNCATED = "… (truncated)"
ELLIPSIS = "…"
WORD_JOINER = "\u2060"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # newlines and tabs too: a foreign text is one line
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")  # overrides that would reorder our text
# Where Slack (or a client) would start a mention, a channel link or a URL:
# @name, #name, scheme://, name.tld
_AUTO_PARSED = re.compile(r"(?<=[@#])(?=\w)|(?<=:)(?=//)|(?<=[^\W_]\.)(?=[^\W\d_])")
_SUBTEAM = re.compile(r"S[A-Z0-9]{2,20}")
_USER = re.compile(r"[UW][A-Z0-9]{2,20}")
_URL = re.compile(r"https?://[^\s<>|&]+")


def units(text: str) -> int:
    """Length in UTF-16 code units (characters outside the BMP count twice)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def escape_mrkdwn(text: object, limit: int = MAX_ITEM) -> str:
    """Foreign text as inert mrkdwn on one line: escaped, neutralised, then clipped to `limit`.

    Once bidi overrides are gone, the input is cut to `limit + 1` characters (what follows only
    lengthens it, so a clip is still detected) to keep a megabyte-long value cheap.
    """
    raw = _CONTROL.sub(" ", _BIDI.sub("", str(text))[: limit + 1])
    escaped = raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return clip(_AUTO_PARSED.sub(WORD_JOINER, escaped), limit, ELLIPSIS)


def clip(text: str, limit: int, marker: str = TRUNCATED) -> str:
    """`text` when it fits in `limit` code units, else its longest safe prefix + `marker`.

    Safe: the prefix does not end inside an entity (`&amp;`) or one of our `<...>` sequences,
    so the result is still valid mrkdwn that says it was cut.

    >>> clip("a &amp; b", 9), clip("a &amp; b", 6, "…"), clip("see <https://x|Runbook>", 14, "…")
    ('a &amp; b', 'a …', 'see …')
    """
    if units(text) <= limit:
        return text
    head = _prefix(text, max(limit - units(marker), 0))
    lt = head.rfind("<")
    if lt != -1 and ">" not in head[lt:]:
        head = head[:lt]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    return head.rstrip(WORD_JOINER) + marker


def _prefix(text: str, limit: int) -> str:
    """The longest prefix of `text` within `limit` UTF-16 code units."""
    used = 0
    for i, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return text[:i]
    return text


def fit_items(
    head: str, items: Sequence[str], *, total: int, noun: str, limit: int, sep: str = "\n"
) -> str:
    """`head` + as many `items` as fit in `limit`, then '… N more <noun>s' for the rest of `total`.

    `items` are already escaped (and each clipped); `total` counts those not passed in too.

    >>> fit_items("*Slices*\\n", ["a", "b", "c"], total=12, noun="slice", limit=40)
    '*Slices*\\na\\nb\\nc\\n… 9 more slices'
    >>> fit_items("New: ", ["a" * 20, "b"], total=2, noun="slice", limit=30, sep=", ")
    'New: … 2 more slices'
    """
    budget = limit - units(head) - units(f"{sep}{ELLIPSIS} {total} more {noun}s")
    shown: list[str] = []
    for item in items:
        cost = units(item) + (units(sep) if shown else 0)
        if cost > budget:
            break
        shown.append(item)
        budget -= cost
    hidden = total - len(shown)
    if hidden > 0:
        shown.append(f"{ELLIPSIS} {hidden} more {noun}{'' if hidden == 1 else 's'}")
    return head + sep.join(shown)


def mention(owner: str) -> str:
    """Slack ids become mentions (S… user groups, U…/W… users); anything else is inert text."""
    if _SUBTEAM.fullmatch(owner):
        return f"<!subteam^{owner}>"
    if _USER.fullmatch(owner):
        return f"<@{owner}>"
    return escape_mrkdwn(owner, 100)


def link(url: str | None, label: str) -> str | None:
    """A link when `url` is a plain http(s) URL, else the inert text; None when absent."""
    if not url:
        return None
    if len(url) <= MAX_URL and _URL.fullmatch(url):
        return f"<{url}|{label}>"
    return f"{label}: {escape_mrkdwn(url)}"
