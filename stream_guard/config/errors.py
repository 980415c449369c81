"""Turns pydantic validation errors into messages that name the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from stream_guard.errors import ConfigError

__all__ = ["config_error", "format_validation_error"]


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
