"""alert_rules/calendar.yaml: known external factors (campaigns, holidays, outages of partners).

>>> cal = Calendar.model_validate({"entries": [{"name": "Spring sale", "kind": "campaign",
...     "start": "2026-03-05T00:00:00Z", "end": "2026-03-06T00:00:00Z"}]})
>>> cal.entries[0].scope
{}
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from stream_guard.config.errors import config_error
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
    """The calendar at `path`, or an empty one when the file does not exist."""
    if not path.exists():
        return Calendar()
    try:
        return Calendar.model_validate(yaml.safe_load(path.read_text()) or {})
    except ValidationError as exc:
        raise config_error(path, exc) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
