"""Settings models read from environment variables, with errors that name the variable.

>>> from pydantic import BaseModel
>>> class S(BaseModel):
...     port: int = 1
>>> model_from_env(S, {"port": "APP_PORT"}, {"APP_PORT": "80"})
S(port=80)
>>> try:
...     model_from_env(S, {"port": "APP_PORT"}, {"APP_PORT": "http"})
... except ConfigError as err:
...     print(str(err)[:35])
environment: APP_PORT: Input should
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from stream_guard.config.errors import format_validation_error
from stream_guard.errors import ConfigError

__all__ = ["model_from_env"]

M = TypeVar("M", bound=BaseModel)


def model_from_env(
    model: type[M], names: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> M:
    """`model` from the variables `names` maps its fields to (unset or empty: the default)."""
    env = os.environ if environ is None else environ
    values = {field: env[var] for field, var in names.items() if env.get(var)}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        lines = format_validation_error(exc)
        for field, var in names.items():
            lines = [line.replace(f"{field}:", f"{var}:", 1) for line in lines]
        raise ConfigError("environment: " + "; ".join(lines)) from None
