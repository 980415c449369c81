"""Topic definitions (topics/*.yaml): name, partitions, key and the JSON Schema of the value."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream_guard.config.errors import Problems, config_error
from stream_guard.config.yamlfile import read_mapping
from stream_guard.errors import ConfigError

__all__ = ["TopicSpec", "default_topics_dir", "load_topic", "load_topics"]


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
    """Every topic file of `directory`, by name; ConfigErrors naming every broken file."""
    directory = directory or default_topics_dir()
    problems = Problems()
    topics: dict[str, TopicSpec] = {}
    for path in sorted(directory.glob("*.yaml")):
        spec = problems.attempt(partial(load_topic, path))
        if spec is not None:
            topics[spec.name] = spec
    problems.raise_if_any()
    if not topics:
        raise ConfigError(f"{directory}: no topic files (*.yaml)")
    return topics


def load_topic(path: Path) -> TopicSpec:
    """One topic file; ConfigError naming the file, the field and the reason."""
    try:
        return TopicSpec.model_validate(read_mapping(path, "a mapping of topic fields"))
    except ValidationError as exc:
        raise config_error(path, exc) from None
