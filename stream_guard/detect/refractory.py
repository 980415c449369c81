"""Refractory period: damp a detector's scores for a while after it fires.

An anomaly rarely lasts one point: a level shift or an outage keeps the residuals large while
the baseline adapts, and a detector that fired at its onset keeps firing. Those repeats tell an
operator nothing new (the alert is already open) and NAB counts each one as a false positive
once the labelled window has passed. Like a neuron's refractory period, this wrapper scales the
inner score by ``damping`` for ``hold`` points after a point scored ``>= level``. A score that
exceeds the one that fired by more than ``margin`` still gets through undamped (and restarts the
period), because something clearly worse is happening; a margin, rather than any excess, keeps an
episode whose score creeps up point by point (a level shift being absorbed) to one alert. For the
same reason the margin is measured from the highest score of the episode so far
(``follow_peak``), not from the one that opened it: a score creeping up by less than the margin
per step would otherwise climb past ``peak + margin`` and fire again within the same episode.

``level`` should sit at or below the level alerts are read at: scores between the two would fire
on every point of an episode without ever opening a refractory period.

``run_level`` (off by default) groups those: within a *run* of consecutive scores of at least
``run_level``, a score below ``level`` passes only if ``run_margin`` above the last score of
the run that passed (0.3: about twice as rare), so an episode creeping along just under
``level`` reports once rather than on every point, and a ramp still reports as it climbs.
Scores at or above ``level`` are untouched. On NAB it gains on one fold direction and ties
the other (docs/validation.md, third pass), so nothing turns it on yet.
"""

from __future__ import annotations

from stream_guard.detect.base import Detector, DetectorBase, Features

__all__ = ["Refractory"]


class Refractory(DetectorBase):
    """Wraps a detector; after a score ``>= level``, damps the next ``hold`` scores.

    Scores are z-like (our calibrated scores are ``-log10`` probabilities), so ``margin`` is in
    the same units: the default 2 lets through, during the hold, only what is 100 times rarer.

    >>> class Echo(DetectorBase):  # a toy detector whose score is the value itself
    ...     def score_one(self, x): return x["value"]
    ...     def expect_one(self, x): return 0.0
    ...     def learn_one(self, x): pass
    >>> det = Refractory(Echo(), level=4.0, hold=2, damping=0.5, margin=0.5)
    >>> out = []
    >>> for v in [1.0, 5.0, 5.0, 4.0, 6.0, 5.0]:
    ...     x = {"t": 0.0, "value": v, "numerator": v, "denominator": 1.0}
    ...     out.append(det.score_one(x))
    ...     det.learn_one(x)
    >>> out
    [1.0, 5.0, 2.5, 2.0, 6.0, 2.5]
    """

    def __init__(
        self,
        detector: Detector,
        level: float = 4.0,
        hold: int = 100,
        damping: float = 0.5,
        margin: float = 2.0,
        follow_peak: bool = True,
        run_level: float | None = None,
        run_margin: float = 0.3,
    ) -> None:
        self.detector = detector
        self.level = level
        self.hold = hold
        self.damping = damping
        self.margin = margin
        self.follow_peak = follow_peak
        self.run_level = run_level
        self.run_margin = run_margin
        self._record: float | None = None  # last score of the current run that passed
        self._left = 0  # points still inside the refractory period
        self._peak = 0.0  # the score that opened the refractory period
        self._last: tuple[tuple[float, float], float] | None = None  # (t, value) -> inner score

    def _inner(self, x: Features) -> float:
        key = (x["t"], x["value"])
        if self._last is None or self._last[0] != key:
            self._last = (key, self.detector.score_one(x))
        return self._last[1]

    def clone(self) -> Refractory:
        """A fresh wrapper around a fresh (untrained) clone of the inner detector."""
        params = self._get_params()
        inner = self.detector
        if not isinstance(inner, DetectorBase):
            raise TypeError(f"cannot clone wrapped detector {inner!r}: not a DetectorBase")
        params["detector"] = inner.clone()
        return type(self)(**params)

    def __setstate__(self, state: dict[str, object]) -> None:
        """Restore, giving a wrapper saved before runs existed no run rule."""
        self.__dict__.update({"run_level": None, "run_margin": 0.3, "_record": None, **state})

    def _damped(self, raw: float) -> bool:
        if self._left > 0 and raw <= self._peak + self.margin:
            return True
        record = self._record
        return record is not None and raw < self.level and raw <= record + self.run_margin

    def score_one(self, x: Features) -> float:
        raw = self._inner(x)
        return raw * self.damping if self._damped(raw) else raw

    def expect_one(self, x: Features) -> float | None:
        return self.detector.expect_one(x)

    def learn_one(self, x: Features) -> None:
        raw = self._inner(x)
        self._last = None
        self._follow_run(raw)
        if self._left > 0:
            self._left -= 1
            if raw > self._peak + self.margin:  # clearly worse: restart the period from here
                self._left, self._peak = self.hold, raw
            elif self.follow_peak:
                self._peak = max(self._peak, raw)
        elif raw >= self.level:
            self._left, self._peak = self.hold, raw
        self.detector.learn_one(x)

    def _follow_run(self, raw: float) -> None:
        """A run is consecutive scores >= `run_level`; its record, the last one that passed."""
        if self.run_level is None or raw < self.run_level:
            self._record = None
        elif not self._damped(raw):
            self._record = raw
