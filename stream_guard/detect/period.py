"""Period detection by autocorrelation, for detectors that find their own seasonality online.

Business metrics repeat daily and weekly, machine metrics often on a job schedule of their own;
asking every rule author for the period is error-prone, so a seasonal detector can look for it
in its warm-up buffer: the lag with the highest autocorrelation peak, accepted only if the peak
is strong. The autocorrelation of the whole buffer is computed at once with an FFT
(Wiener-Khinchin), O(n log n), and only a handful of times per series (see `PeriodicBaseline`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Relative forecast error within which candidate periods count as equally good.
TOLERANCE = 0.1
# Only the strongest autocorrelation peaks are compared: it bounds the cost of a detection.
MAX_CANDIDATES = 5

__all__ = ["autocorrelation", "detect_period", "period_candidates", "seasonal_naive_error"]


def autocorrelation(values: Sequence[float]) -> np.ndarray:
    """Sample autocorrelation for lags ``0 .. n-1`` (biased estimator, ``acf[0] == 1``).

    >>> acf = autocorrelation([1.0, -1.0] * 8)
    >>> round(float(acf[1]), 2), round(float(acf[2]), 2)
    (-0.94, 0.88)
    """
    x = np.asarray(values, dtype=float)
    x = x - x.mean()
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)  # zero-padded to 2n: linear, not circular, correlation
    acov = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if acov[0] <= 0.0:
        return np.zeros(n)
    return acov / acov[0]


def period_candidates(
    values: Sequence[float], min_lag: int, max_lag: int, min_acf: float
) -> list[int]:
    """Lags of the autocorrelation peaks in ``[min_lag, max_lag]`` reaching ``min_acf``.

    A peak is a local maximum of the autocorrelation. Lags beyond half the buffer are not
    considered: a period needs two cycles to be seen.

    >>> import math
    >>> wave = [math.sin(2 * math.pi * i / 24) for i in range(24 * 10)]
    >>> period_candidates(wave, min_lag=2, max_lag=100, min_acf=0.3)
    [24, 48, 72, 96]
    >>> period_candidates([1.0] * 50, min_lag=2, max_lag=20, min_acf=0.3)  # constant
    []
    """
    if len(values) < 2 * max(min_lag, 2):
        return []
    acf = autocorrelation(values)
    hi = min(max_lag, len(acf) // 2)
    if hi <= min_lag:
        return []
    lags = np.arange(min_lag, hi + 1)
    peak = (acf[lags] >= acf[lags - 1]) & (acf[lags] >= acf[lags + 1]) & (acf[lags] >= min_acf)
    return [int(lag) for lag in lags[peak]]


def seasonal_naive_error(values: Sequence[float], lag: int, start: int) -> float:
    """Median absolute error of forecasting ``x[t]`` by ``x[t - lag]``, for ``t >= start``.

    The median, not the mean, so that a past anomaly does not disqualify the true period.

    >>> seasonal_naive_error([1.0, 2.0, 1.0, 2.0, 1.0, 3.0], lag=2, start=2)
    0.0
    """
    x = np.asarray(values, dtype=float)
    return float(np.median(np.abs(x[start:] - x[start - lag : len(x) - lag])))


def detect_period(
    values: Sequence[float], min_lag: int, max_lag: int, min_acf: float, current: int | None = None
) -> int | None:
    """The autocorrelation peak whose seasonal-naive forecast errs least, or None.

    Comparing forecast errors, not autocorrelations, picks the weekly cycle of a metric whose
    weekends differ even though its daily cycle correlates almost as well. Multiples of a
    period forecast about as well as the period itself, so the shortest lag within
    ``TOLERANCE`` of the best error wins; and the ``current`` period is kept while it stays
    within that tolerance (unless it is a multiple of that shortest lag), so that noise does
    not make the period flap.

    >>> import math
    >>> wave = [math.sin(2 * math.pi * i / 24) for i in range(24 * 10)]
    >>> detect_period(wave, min_lag=2, max_lag=100, min_acf=0.3)
    24
    """
    peaks = period_candidates(values, min_lag, max_lag, min_acf)
    if not peaks:
        return None
    acf = autocorrelation(values)
    candidates = sorted(peaks, key=lambda lag: -acf[lag])[:MAX_CANDIDATES]
    if not candidates:
        return None
    if current is not None and current not in candidates and 2 * current <= len(values):
        candidates.append(current)
    start = max(candidates)
    errors = {c: seasonal_naive_error(values, c, start) for c in candidates}
    good_enough = (1.0 + TOLERANCE) * min(errors.values())
    shortest = min(c for c, e in errors.items() if e <= good_enough)
    if current in errors and errors[current] <= good_enough and current % shortest != 0:
        return current  # still good, and not merely a multiple of a shorter period
    return shortest
