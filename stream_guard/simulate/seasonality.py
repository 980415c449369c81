"""Normal traffic shape over time: daily cycle, weekend effect and a slow day-to-day drift.

Intensities are computed per minute (rows) and region (columns) in events per minute; a
Poisson draw per cell then gives the arrivals. Outside incidents this is the *only* variation in
the data, so anything a detector flags away from a labelled incident is a false positive.

>>> hours = np.arange(24.0)
>>> cycle = daily_cycle(hours, phase_hours=0.0)
>>> int(hours[cycle.argmin()]), int(hours[cycle.argmax()])
(4, 20)
>>> bool(0.2 < cycle.min() / cycle.max() < 0.35)
True
"""

from __future__ import annotations

import numpy as np

from stream_guard.simulate.catalog import REGION_MIX, REGION_PHASE_HOURS

__all__ = ["MINUTE_MS", "daily_cycle", "intensity", "weekend_indicator"]

MINUTE_MS = 60_000
_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
# Two harmonics give an asymmetric day: a slow climb from the 04:00 UTC trough to the 20:00 peak
# and a faster fall after it. Fitted so that the platform trough is ~28% of the evening peak.
_FIRST, _SECOND, _PEAK_H, _SECOND_H = 0.6, 0.3, 18.5, 9.0
# 1970-01-01 was a Thursday: hours since the Monday before it.
_EPOCH_WEEK_OFFSET_H = 72.0
_WEEKEND_RAMP_H = 1.0  # logistic time constant: the weekend fades in and out over a few hours


def _log_level(angle: np.ndarray) -> np.ndarray:
    return np.asarray(
        _FIRST * np.cos(angle - 2 * np.pi * _PEAK_H / 24)
        + _SECOND * np.cos(2 * angle - 4 * np.pi * _SECOND_H / 24)
    )


def daily_cycle(
    hour_utc: np.ndarray, phase_hours: float | np.ndarray, depth: float = 1.0
) -> np.ndarray:
    """Relative activity (mean 1 over a day) at `hour_utc` for a region shifted by `phase_hours`.

    `depth` < 1 flattens the cycle (listings and onboarding vary less than orders over a day).
    """
    day = np.exp(depth * _log_level(2 * np.pi * np.arange(0, 24, 1 / 60) / 24))
    level = np.exp(depth * _log_level(2 * np.pi * (hour_utc - phase_hours) / 24))
    return np.asarray(level / day.mean())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-x)))


def weekend_indicator(t_ms: np.ndarray) -> np.ndarray:
    """Smooth 0..1 indicator of Saturday/Sunday (UTC), ramping over a few hours at midnight.

    >>> monday_noon, saturday_noon = 1_772_452_800_000, 1_772_884_800_000
    >>> weekend_indicator(np.array([monday_noon, saturday_noon])).round(3).tolist()
    [0.0, 1.0]
    """
    week_h = (t_ms / _HOUR_MS + _EPOCH_WEEK_OFFSET_H) % 168.0
    tau = _WEEKEND_RAMP_H
    rise = _sigmoid((week_h - 120.0) / tau)  # Saturday 00:00
    fall_next = 1 - _sigmoid((week_h - 168.0) / tau)  # next Monday 00:00
    fall_this = 1 - _sigmoid(week_h / tau)  # this Monday 00:00 (early Monday hours)
    return np.where(week_h < 60.0, fall_this, np.where(week_h < 144.0, rise, fall_next))


def _drift(minutes_ms: np.ndarray, start_ms: int, rng: np.random.Generator) -> np.ndarray:
    """A slow multiplicative level change (about ±2% a day), cosine-interpolated between days."""
    day_pos = (minutes_ms - start_ms) / _DAY_MS
    knots = rng.normal(0.0, 0.02, size=int(day_pos.max()) + 2)
    left = np.floor(day_pos).astype(np.int64)
    frac = (1 - np.cos(np.pi * (day_pos - left))) / 2
    return np.asarray(np.exp(knots[left] * (1 - frac) + knots[left + 1] * frac))


def intensity(
    start_ms: int,
    minutes: int,
    per_day: float,
    rng: np.random.Generator,
    *,
    depth: float = 1.0,
    weekend: float = 0.12,
    region_mix: tuple[float, ...] = REGION_MIX,
    weekend_shift_hours: float = 0.0,
) -> np.ndarray:
    """Expected events per minute, shape (minutes, regions), for a topic with `per_day` events.

    `weekend` is the relative change on Saturday and Sunday (+12% for orders);
    `weekend_shift_hours` delays the weekend's daily cycle (a weekly shape: late mornings).
    """
    minute_ms = start_ms + MINUTE_MS * np.arange(minutes, dtype=np.int64)
    hour = ((minute_ms % _DAY_MS) / _HOUR_MS)[:, None]
    if weekend_shift_hours:
        hour = hour - weekend_shift_hours * weekend_indicator(minute_ms)[:, None]
    cycles = daily_cycle(hour, np.asarray(REGION_PHASE_HOURS)[None, :], depth)
    level = (1 + weekend * weekend_indicator(minute_ms)) * _drift(minute_ms, start_ms, rng)
    return np.asarray(per_day / 1440 * np.asarray(region_mix)[None, :] * cycles * level[:, None])
