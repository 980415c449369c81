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

__all__ = ["autocorrelation", "detect_period"]


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


def detect_period(
    values: Sequence[float], min_lag: int, max_lag: int, min_acf: float
) -> int | None:
    """The lag of the strongest autocorrelation peak in ``[min_lag, max_lag]``, or None.

    Lags beyond half the buffer are not considered: a period needs two cycles to be seen.
    A peak is a local maximum of the autocorrelation; it is accepted if it reaches ``min_acf``.
    Among peaks within 10% of the best one, the shortest lag wins, so that a daily cycle is not
    reported as its multiple (two days) merely because of noise.

    >>> import math
    >>> wave = [math.sin(2 * math.pi * i / 24) for i in range(24 * 10)]
    >>> detect_period(wave, min_lag=2, max_lag=100, min_acf=0.3)
    24
    >>> detect_period([1.0] * 50, min_lag=2, max_lag=20, min_acf=0.3) is None  # constant
    True
    """
    if len(values) < 2 * max(min_lag, 2):
        return None
    acf = autocorrelation(values)
    hi = min(max_lag, len(acf) // 2)  # at least two cycles in the buffer
    if hi <= min_lag:
        return None
    lags = np.arange(min_lag, hi + 1)
    peak = (acf[lags] >= acf[lags - 1]) & (acf[lags] >= acf[lags + 1]) & (acf[lags] >= min_acf)
    if not peak.any():
        return None
    candidates = lags[peak]
    best = float(acf[candidates].max())
    return int(candidates[acf[candidates] >= 0.9 * best][0])
