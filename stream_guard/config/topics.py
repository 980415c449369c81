"""Topic definitions (topics/*.yaml): name, partitions, key and the JSON Schema of the value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream_guard.config.errors import config_error
from stream_guard.errors import ConfigError

__all__ = ["TopicSpec", "default_topics_dir", "load_topics"]


class TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    partitions: int = Field(ge=1)
    key: str
    description: str = ""
    internal: bool = False
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")


def default_topics_dir() -> Path:
    """topics/ of the repo (or of the current directory when installed elsewhere)."""
    here = Path(__file__).resolve().parents[2] / "topics"
    return here if here.is_dir() else Path("topics")


def load_topics(directory: Path | None = None) -> dict[str, TopicSpec]:
    """Every topic file of `directory`, by name; a broken file raises ConfigError naming it."""
    directory = directory or default_topics_dir()
    topics: dict[str, TopicSpec] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            spec = TopicSpec.model_validate(yaml.safe_load(path.read_text()))
        except ValidationError as exc:
            raise config_error(path, exc) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        topics[spec.name] = spec
    if not topics:
        raise ConfigError(f"{directory}: no topic files (*.yaml)")
    return topics
