"""Config errors that name the file, the field and the reason -- and all of them at once.

`config_error` turns a pydantic ValidationError into one ConfigError; `ConfigErrors` carries
several problems (one per line) so that `stream-guard rules validate` can report every broken file
of a directory in one run; `Problems` collects them while a loader goes on to the next file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from stream_guard.errors import ConfigError

__all__ = ["ConfigErrors", "Problems", "config_error", "format_validation_error", "problems_of"]

T = TypeVar("T")


def format_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem: ``field.path: reason``.

    >>> from pydantic import BaseModel
    >>> class M(BaseModel):
    ...     window: int
    >>> try:
    ...     M.model_validate({"window": "x"})
    ... except ValidationError as e:
    ...     print(format_validation_error(e)[0])
    window: Input should be a valid integer, unable to parse string as an integer
    """
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p)) or "(top level)"
        lines.append(f"{loc}: {err['msg']}")
    return lines


def _is_union_tag(part: object) -> bool:
    # pydantic inserts the union member's tag (e.g. "seasonal") into the location path.
    return isinstance(part, str) and part.startswith("function-")


def config_error(path: Path | str, exc: ValidationError) -> ConfigError:
    problems = format_validation_error(exc)
    return ConfigError(f"{path}: " + "; ".join(problems))


class ConfigErrors(ConfigError):
    """Several problems, each ``file: field: reason``; the message has one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def problems_of(exc: ConfigError) -> list[str]:
    """The one-line problems of `exc`: several for ConfigErrors, else its message."""
    return exc.problems if isinstance(exc, ConfigErrors) else [str(exc)]


class Problems:
    """Collects ConfigErrors so a check goes on to the next file and reports them all at the end.

    >>> problems = Problems()
    >>> problems.attempt(lambda: int("4"))
    4
    >>> def broken() -> int:
    ...     raise ConfigError("a.yaml: window: too short")
    >>> problems.attempt(broken) is None
    True
    >>> try:
    ...     problems.raise_if_any()
    ... except ConfigErrors as exc:
    ...     print(exc.problems)
    ['a.yaml: window: too short']
    """

    def __init__(self) -> None:
        self.messages: list[str] = []

    def attempt(self, load: Callable[[], T]) -> T | None:
        """`load()`, or None after recording the ConfigError it raised."""
        try:
            return load()
        except ConfigError as exc:
            self.messages.extend(problems_of(exc))
            return None

    def add(self, message: str) -> None:
        self.messages.append(message)

    def raise_if_any(self) -> None:
        if self.messages:
            raise ConfigErrors(self.messages)
