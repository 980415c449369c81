"""Adapters that run River models under the stream-guard detector contract.

River >= 0.21: ``learn_one`` returns None; forecasters learn ``y`` and forecast a horizon.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from river import anomaly, time_series

from stream_guard.detect.base import DetectorBase, Features
from stream_guard.detect.params import check_forecast_params
from stream_guard.detect.stats import EWStat

__all__ = ["RiverForecast", "RiverHalfSpaceTrees"]

_DAY_S = 86400.0
_HW_OFFSET = 1e-6
ForecastModel = Literal["holtwinters", "holtwinters_mul", "snarimax"]


class RiverForecast(DetectorBase):
    """Forecast-residual detector around a River forecaster (PredictiveAnomalyDetection's idea).

    The forecaster predicts the next value: ``holtwinters`` (additive season),
    ``holtwinters_mul`` (multiplicative season: the daily swing scales with the level, as a sum
    of orders does) or ``snarimax`` (SNARIMAX(1,0,1)(1,0,1) over `seasonality`). The score is the
    absolute residual over an EWMA of past residual spread, so it is z-like like the statistical
    detectors. River's own PredictiveAnomalyDetection updates its error statistics inside
    ``score_one`` and returns a saturating [0, 1] score; here scoring has no side effect and
    learning happens only in ``learn_one``.

    `seasonality` is in windows (None: one day of the rule's window); `warmup` in windows (None:
    a season and a quarter: one to initialise the forecaster, a quarter to learn its residual
    spread, so a daily season scores from day 2 like our detectors) must be at least a season.

    >>> det = RiverForecast(model="holtwinters", seasonality=4, warmup=12)
    >>> for i in range(40):
    ...     v = 10.0 + (i % 4)
    ...     x = {"t": float(i), "value": v}
    ...     _ = det.score_one(x); det.learn_one(x)
    >>> det.score_one({"t": 40.0, "value": 10.0}) < det.score_one({"t": 40.0, "value": 30.0})
    True
    >>> RiverForecast(window=900.0).seasonality, RiverForecast(window=900.0).warmup
    (96, 120)
    """

    def __init__(
        self,
        model: ForecastModel = "holtwinters",
        seasonality: int | None = None,
        warmup: int | None = None,
        alpha: float = 0.05,
        window: float = 3600.0,
    ) -> None:
        check_forecast_params({"seasonality": seasonality, "warmup": warmup})
        self.model = model
        self.seasonality = seasonality if seasonality is not None else max(
            1, round(_DAY_S / window))
        self.warmup = warmup if warmup is not None else self.seasonality + max(
            2, self.seasonality // 4)
        self.alpha = alpha
        self.window = window
        m = self.seasonality
        if model == "snarimax":
            self._forecaster: Any = time_series.SNARIMAX(p=1, d=0, q=1, m=m, sp=1, sq=1)
        else:
            self._forecaster = time_series.HoltWinters(
                alpha=0.3, beta=0.05, gamma=0.3, seasonality=m,
                multiplicative=model == "holtwinters_mul")
        self._resid = EWStat(alpha)
        self._n = 0

    def _forecast(self) -> float | None:
        """The one-step forecast, or None while the forecaster cannot give one."""
        try:
            forecast = self._forecaster.forecast(horizon=1)
        except (ValueError, ZeroDivisionError, IndexError, TypeError):
            return None
        if not forecast or forecast[0] is None:
            return None
        value = float(forecast[0]) - self._offset
        return value if math.isfinite(value) else None

    @property
    def _offset(self) -> float:
        """Added to what Holt-Winters learns: River initialises its season as value / mean of
        the first season, a ZeroDivisionError for a slice with no event in its first day."""
        return _HW_OFFSET if self.model != "snarimax" else 0.0

    def expect_one(self, x: Features) -> float | None:
        if self._n < self.warmup:
            return None
        return self._forecast()

    def score_one(self, x: Features) -> float:
        expected = self.expect_one(x)
        if expected is None or self._resid.n == 0:
            return 0.0
        spread = math.sqrt(self._resid.mean) if self._resid.mean > 0 else 1e-9
        return abs(x["value"] - expected) / spread

    def learn_one(self, x: Features) -> None:
        value = x["value"]
        if self.model == "holtwinters_mul":
            value = max(value, 1e-9)  # a multiplicative season divides by the level
        if self._n >= self.seasonality:
            first = self._forecast()
            if first is not None:
                resid2 = (value - first) ** 2
                if self._n >= self.warmup and self._resid.n:
                    resid2 = min(resid2, 25 * max(self._resid.mean, 1e-9))  # outliers capped
                self._resid.update(resid2)
        self._forecaster.learn_one(y=value + self._offset)
        self._n += 1


class RiverHalfSpaceTrees(DetectorBase):
    """River's HalfSpaceTrees on (scaled value, time of day), scores calibrated to z-like.

    HST wants features in [0, 1]: the value is divided by a running maximum (with headroom) and
    the phase of the day is encoded as sin/cos. Its raw score (mass-based, in [0, 1]) is turned
    into a z-score against an EWMA of its own past scores. Kept small (River's defaults cost
    ~57k points/s; 25 trees of height 15 would cost 383 MiB per series).

    >>> det = RiverHalfSpaceTrees(seed=42, window_size=50)
    >>> for i in range(300):
    ...     x = {"t": i * 3600.0, "value": 100.0 + (i % 3)}
    ...     _ = det.score_one(x); det.learn_one(x)
    >>> det.score_one({"t": 300 * 3600.0, "value": 100.0}) < det.score_one(
    ...     {"t": 300 * 3600.0, "value": 900.0})
    True
    """

    def __init__(
        self, n_trees: int = 10, height: int = 8, window_size: int = 250,
        seed: int | None = None, warmup: int = 100,
    ) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self.warmup = warmup
        self._hst = anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self._scale = 1e-9
        self._scores = EWStat(0.02)
        self._mean = EWStat(0.05)
        self._n = 0

    def _features(self, x: Features) -> dict[str, float]:
        phase = 2 * math.pi * (x["t"] % 86400) / 86400
        return {
            "value": min(max(x["value"], 0.0) / (2 * self._scale), 1.0),
            "sin": (math.sin(phase) + 1) / 2,
            "cos": (math.cos(phase) + 1) / 2,
        }

    def expect_one(self, x: Features) -> float | None:
        return self._mean.mean if self._n >= self.warmup else None

    def score_one(self, x: Features) -> float:
        if self._n < self.warmup:
            return 0.0
        raw = self._hst.score_one(self._features(x))
        return max(0.0, (raw - self._scores.mean) / max(self._scores.std, 1e-3))

    def learn_one(self, x: Features) -> None:
        self._scale = max(self._scale, abs(x["value"]))
        features = self._features(x)
        self._scores.update(self._hst.score_one(features))
        self._hst.learn_one(features)
        self._mean.update(x["value"])
        self._n += 1
