"""alert_rules/calendar.yaml: known external factors (campaigns, holidays, outages of partners).

>>> cal = Calendar.model_validate({"entries": [{"name": "Spring sale", "kind": "campaign",
...     "start": "2026-03-05T00:00:00Z", "end": "2026-03-06T00:00:00Z"}]})
>>> cal.entries[0].scope
{}
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from stream_guard.config.errors import config_error
from stream_guard.config.yamlfile import read_yaml
from stream_guard.errors import ConfigError

__all__ = ["Calendar", "CalendarEntry", "load_calendar"]


class CalendarEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["campaign", "holiday", "partner_outage", "other"] = "other"
    start: AwareDatetime
    end: AwareDatetime
    scope: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> CalendarEntry:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


class Calendar(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entries: list[CalendarEntry] = Field(default_factory=list)


def load_calendar(path: Path) -> Calendar:
    """The calendar at `path`; an empty one when there is no such file or it holds only comments.

    (Commenting out the last entry is a normal edit; a file that is not YAML, not a mapping or
    not a file -- a dangling symlink included -- is a ConfigError naming it.)
    """
    if not os.path.lexists(path):
        return Calendar()
    data = read_yaml(path)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping with `entries`")
    try:
        return Calendar.model_validate(data or {})
    except ValidationError as exc:
        raise config_error(path, exc) from None
