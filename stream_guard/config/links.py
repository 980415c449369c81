"""Runbook and dashboard links templated with the alert's metric and slice.

A rule's ``runbook`` or ``dashboard`` may hold placeholders that each alert fills in:

    dashboard: "https://grafana.example.com/d/sg-business?var-metric={metric}&var-slice={slice}"

Placeholders are ``{metric}``, ``{slice}`` (``region=EU, category=toys``; empty for the whole
platform), ``{episode_id}``, and ``{dim:NAME}`` (the slice's value of dimension NAME, empty when
the slice does not have it). `check_template` refuses at rule load anything else: an unknown
placeholder, a placeholder in the scheme or host (a slice value must never choose where a link
points), attribute or index access, format specs, unbalanced braces, a URL that is not plain
http(s), characters Slack or a browser would read as the end of a link. `{{` and `}}` stand for
literal braces.

`expand` fills one in with every value percent-encoded (``quote(value, safe="")``), so text
from events -- slice values come from events -- can add characters to a query parameter but
never end it, start another, or leave the URL.

>>> check_template("https://g/d/x?var-metric={metric}&var-region={dim:region}")
'https://g/d/x?var-metric={metric}&var-region={dim:region}'
>>> expand("https://g/d/x?m={metric}&s={slice}", "gmv", {"region": "EU&x=<y>"})
'https://g/d/x?m=gmv&s=region%3DEU%26x%3D%3Cy%3E'
>>> check_template("https://{slice}.evil/")
Traceback (most recent call last):
...
ValueError: a placeholder in the scheme or host of 'https://{slice}.evil/': placeholders may \
only stand in the path, query or fragment
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from string import Formatter
from urllib.parse import quote

from stream_guard.types import format_slice, slice_key

__all__ = ["MAX_TEMPLATE", "PLACEHOLDERS", "check_template", "expand", "is_template"]

PLACEHOLDERS = ("metric", "slice", "episode_id")
"""Plain placeholders; ``dim:NAME`` (one dimension's value) comes on top."""
MAX_TEMPLATE = 1000
_ORIGIN = re.compile(r"https?://([^/?#]*)")
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORBIDDEN = re.compile(r"[\s<>|\"'`\\^]")

Field = tuple[str, str | None, str | None, str | None]


def _fields(template: str) -> list[Field]:
    """(literal text, field name, spec, conversion) per part; ValueError on broken braces."""
    return list(Formatter().parse(template))


def is_template(text: str) -> bool:
    """Whether `text` holds a placeholder (a literal ``{{`` is none)."""
    return any(name is not None for _, name, _, _ in _fields(text))


def check_template(template: str) -> str:
    """`template` when it is a valid link template (a plain URL is one), else ValueError."""
    if len(template) > MAX_TEMPLATE:
        raise ValueError(f"longer than {MAX_TEMPLATE} characters")
    if bad := _FORBIDDEN.search(template):
        raise ValueError(f"{bad.group()!r} in {template!r}: not allowed in a link")
    origin = _ORIGIN.match(template)
    if origin is None:
        raise ValueError(f"{template!r} is not an http(s) URL")
    if "{" in origin.group() or "}" in origin.group():
        raise ValueError(f"a placeholder in the scheme or host of {template!r}: placeholders "
                         "may only stand in the path, query or fragment")
    if not _HOST.fullmatch(origin.group(1)):
        raise ValueError(f"{template!r}: {origin.group(1)!r} is not a plain host[:port]")
    try:
        parts = _fields(template)
    except ValueError as exc:
        raise ValueError(f"{template!r}: {exc} (write {{{{ and }}}} for literal braces)") from None
    for part in parts:
        _check_field(template, part)
    return template


def _check_field(template: str, part: Field) -> None:
    _, name, spec, conversion = part
    if name is None:
        return
    dimension = name == "dim" and spec and _NAME.fullmatch(spec) and not conversion
    if not dimension and (spec or conversion or name not in PLACEHOLDERS):
        known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        raise ValueError(f"unknown placeholder {{{name}{'!' + conversion if conversion else ''}"
                         f"{':' + spec if spec else ''}}} in {template!r} (known: {known}, "
                         "{dim:NAME})")


def expand(
    template: str, metric: str, slice_: Mapping[str, str], episode_id: str = ""
) -> str:
    """The template with every placeholder replaced by its percent-encoded value."""
    values = {"metric": metric, "slice": format_slice(slice_key(slice_)) if slice_ else "",
              "episode_id": episode_id}
    out = []
    for text, name, spec, _ in _fields(template):
        out.append(text)
        if name is not None:
            value = slice_.get(spec or "", "") if name == "dim" else values.get(name, "")
            out.append(quote(value, safe=""))
    return "".join(out)
