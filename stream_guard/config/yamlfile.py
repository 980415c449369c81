"""Reads config YAML so that every way a file can be wrong is a ConfigError naming the file.

Rule, route, calendar and topic files are written by hand; a mistake in one must read as
``file: reason``, never as a traceback. Beyond syntax errors this covers what `yaml.safe_load`
lets through or crashes on: a directory or FIFO named ``*.yaml`` (reading a FIFO would block),
unreadable files, bytes that are not UTF-8 (a BOM is fine), duplicate keys (YAML would keep the
last one silently), nesting deep enough for a RecursionError, aliases that expand to billions of
values, and scalars the constructor cannot build (``2026-13-45T00:00:00Z``).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = Path(tmp) / "x.yaml"
...     _ = path.write_text("a: 1\\na: 2\\n")
...     try:
...         read_yaml(path)
...     except ConfigError as exc:
...         print(str(exc).removeprefix(str(path)))
: not valid YAML: duplicate key 'a' (line 2, column 1)
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from stream_guard.errors import ConfigError

__all__ = ["MAX_DEPTH", "MAX_VALUES", "read_mapping", "read_yaml"]

MAX_DEPTH = 64
"""Nesting levels at most; the deepest config (a topic's JSON Schema) needs under ten."""

MAX_VALUES = 100_000
"""Values at most once aliases are expanded (a 'billion laughs' file is a few lines)."""

_MERGE = "tag:yaml.org,2002:merge"


def read_mapping(path: Path, expected: str) -> dict[str, Any]:
    """The top-level mapping of the YAML file at `path`; `expected` says what it should be."""
    data = read_yaml(path)
    if data is None:
        raise ConfigError(f"{path}: (top level): the file is empty; expected {expected}")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): expected {expected}")
    return data


def read_yaml(path: Path) -> Any:
    """The document of the YAML file at `path` (None if empty); ConfigError on any problem."""
    text = _read_text(path)
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_reason(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None


def _read_text(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            what = "a directory, not a file" if stat.S_ISDIR(mode) else "not a regular file"
            raise ConfigError(f"{path}: is {what}")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: not valid UTF-8: byte 0x{raw[exc.start]:02x} on line {line}"
        ) from None


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """One line: what is wrong and where (PyYAML's own message spans several with a snippet)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        context = f"{exc.context}: " if exc.context else ""
        return f"{context}{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader refusing duplicate keys, nesting beyond MAX_DEPTH and alias bombs."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}) > MAX_VALUES:
            raise ComposerError(
                None, None, f"expands to more than {MAX_VALUES} values", node.start_mark
            )
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """As SafeLoader, but a scalar it cannot build (month 13) is a YAML error with a line."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:
            kind = node.tag.rsplit(":", 1)[-1]
            what = repr(node.value) if isinstance(node, yaml.ScalarNode) else "this"
            raise ConstructorError(
                None, None, f"{what} is not a valid {kind}: {exc}", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue  # `<<: *base` keys may be overridden; flatten_mapping handles them
            key = self.construct_object(key_node, deep=deep)
            if not _hashable(key):
                continue  # SafeLoader refuses it below with "found unhashable key"
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _expanded_size(node: yaml.Node, sizes: dict[int, int | None]) -> int:
    """Values under `node` counting every alias expanded; an alias inside its own anchor fails."""
    if id(node) in sizes:
        size = sizes[id(node)]
        if size is None:
            raise ComposerError(None, None, "an alias refers to its own anchor", node.start_mark)
        return size
    sizes[id(node)] = None
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    size = 1 + sum(_expanded_size(child, sizes) for child in children)
    sizes[id(node)] = size
    return size
