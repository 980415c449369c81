"""The Numenta Anomaly Benchmark (NAB) scoring rules, as pure functions.

NAB scores a detector that emits one anomaly score in [0, 1] per row. Rows are labelled by
anomaly *windows*; a detection (score >= threshold) early in a window earns up to ``A_TP``, a
window never detected costs ``A_FN``, and every detection outside all windows costs up to
``A_FP``, less when it falls shortly after a window ends. One threshold per profile is chosen
for the whole corpus to maximise the raw score, which is then normalised so that a detector that
never fires scores 0 and a perfect one 100. The rules are those of NAB's ``sweeper.py``
(NAB v1.1), restated in /work/shared/nab/README.md; this is an independent implementation.

Example (one file of 20 rows, probation 3 rows, one window on rows 10-14):

>>> scores = [0.0] * 20
>>> scores[12] = 0.9                      # detected in the middle of the window
>>> scored = ScoredFile.build("f", scores, [(10, 14)])
>>> result = score_corpus([scored], STANDARD)
>>> round(result.threshold, 2), round(result.score, 1)
(0.9, 95.9)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

__all__ = [
    "FOLDS",
    "PROFILES",
    "REWARD_LOW_FN",
    "REWARD_LOW_FP",
    "STANDARD",
    "CorpusResult",
    "FoldResult",
    "Profile",
    "ScoredFile",
    "assign_folds",
    "cross_fold",
    "held_out_score",
    "probation_length",
    "raw_at",
    "scaled_sigmoid",
    "score_at",
    "score_corpus",
    "window_indices",
]

# NAB's probation: the first 15% of a file, capped at 15% of 5000 rows.
PROBATION_FRACTION = 0.15
PROBATION_CAP_ROWS = 5000


@dataclass(frozen=True)
class Profile:
    """Application profile: weights of a true positive, a false positive and a missed window."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float


STANDARD = Profile("standard", 1.0, 0.11, 1.0)
REWARD_LOW_FP = Profile("reward_low_FP_rate", 1.0, 0.22, 1.0)
REWARD_LOW_FN = Profile("reward_low_FN_rate", 1.0, 0.11, 2.0)
PROFILES: tuple[Profile, ...] = (STANDARD, REWARD_LOW_FP, REWARD_LOW_FN)


def probation_length(n_rows: int) -> int:
    """Rows at the start of a file that are never scored: min(15% of rows, 750)."""
    return int(
        min(math.floor(PROBATION_FRACTION * n_rows), PROBATION_FRACTION * PROBATION_CAP_ROWS)
    )


def scaled_sigmoid(y: float) -> float:
    """NAB's position weight ``2 / (1 + exp(5y)) - 1``, clamped to -1 from ``y = 3`` on.

    >>> round(scaled_sigmoid(-1.0), 4), scaled_sigmoid(0.0), scaled_sigmoid(3.0)
    (0.9866, 0.0, -1.0)
    """
    if y >= 3.0:  # as NAB's sweeper: ">= 3.0" is "well behind the window"
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def window_indices(
    timestamps: Sequence[datetime], windows: Sequence[tuple[datetime, datetime]]
) -> list[tuple[int, int]]:
    """Map windows given as timestamps to inclusive row ranges ``(first, last)``.

    A window covers the rows whose timestamp lies within ``[start, end]``; windows that cover
    no row are dropped (NAB's labels always start and end on a row).
    """
    stamps = np.array(timestamps, dtype="datetime64[us]")
    out: list[tuple[int, int]] = []
    for start, end in windows:
        lo = int(np.searchsorted(stamps, np.datetime64(start, "us"), side="left"))
        hi = int(np.searchsorted(stamps, np.datetime64(end, "us"), side="right")) - 1
        if lo <= hi:
            out.append((lo, hi))
    return out


@dataclass(frozen=True)
class ScoredFile:
    """One file's detector output, with the per-row position weights NAB needs.

    ``weight[i]`` is the unweighted NAB value of a detection at row ``i``: the sigmoid of its
    position within its window (TP), or after the previous window (FP, negative).
    ``window[i]`` is the index of the window holding row ``i``, or -1 outside all windows.
    ``scored[i]`` is False for probation rows. A window that lies wholly in the probation period
    is not counted (NAB only knows windows through their scorable rows), but it still moves the
    false-positive weights of the rows after it.
    """

    name: str
    scores: np.ndarray
    weight: np.ndarray
    window: np.ndarray
    scored: np.ndarray
    n_windows: int

    @classmethod
    def build(
        cls, name: str, scores: Sequence[float], windows: Sequence[tuple[int, int]]
    ) -> ScoredFile:
        """Compute the position weights of a file from its scores and inclusive window rows."""
        n = len(scores)
        weight, window = _position_weights(n, sorted(windows))
        first_scored = probation_length(n)
        scored = np.arange(n) >= first_scored
        hidden = sum(hi < first_scored for _, hi in windows)  # always the first ones
        window = np.where(window >= hidden, window - hidden, -1)
        values = np.asarray(scores, dtype=float)
        return cls(name, values, weight, window, scored, len(windows) - hidden)


def _position_weights(n: int, windows: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-row unweighted TP/FP values and window ids (see `ScoredFile`)."""
    weight = np.full(n, -1.0)  # before any window, a detection is a full false positive
    window = np.full(n, -1, dtype=int)
    for k, (lo, hi) in enumerate(windows):
        width = hi - lo + 1
        for i in range(lo, hi + 1):
            weight[i] = scaled_sigmoid(-(hi - i + 1) / width)
            window[i] = k
        stop = windows[k + 1][0] if k + 1 < len(windows) else n
        # NAB divides by (width - 1); a one-row window would divide by zero, so floor it at 1.
        denom = float(max(width - 1, 1))
        for i in range(hi + 1, stop):
            weight[i] = scaled_sigmoid((i - hi) / denom)
    return weight, window


@dataclass(frozen=True)
class CorpusResult:
    """Best threshold of a profile over a corpus, its raw score and the normalised score."""

    profile: Profile
    threshold: float
    raw: float
    score: float
    true_positives: int
    false_positives: int
    n_windows: int


def score_corpus(files: Sequence[ScoredFile], profile: Profile) -> CorpusResult:
    """Sweep one threshold over all files and return the best normalised score.

    Candidate thresholds are the distinct scores of the scored rows (detection means
    ``score >= threshold``), plus "never fire" (threshold above every score).
    """
    n_windows = sum(f.n_windows for f in files)
    rows = _collect_rows(files, profile)
    order = np.argsort(-rows[0], kind="stable")
    scores, values, windows = rows[0][order], rows[1][order], rows[2][order].astype(int)
    null = -profile.a_fn * n_windows
    best = (null, math.inf, 0, 0)
    best_tp = np.full(n_windows, -profile.a_fn)  # best value reached so far in each window
    fp_total, tp_count, fp_count, i = 0.0, 0, 0, 0
    while i < len(scores):
        j = i
        while j < len(scores) and scores[j] == scores[i]:  # all rows tied at this threshold
            if windows[j] < 0:
                fp_total += values[j]
                fp_count += 1
            elif values[j] > best_tp[windows[j]]:
                if best_tp[windows[j]] == -profile.a_fn:  # first detection of this window
                    tp_count += 1
                best_tp[windows[j]] = values[j]
            j += 1
        raw = fp_total + float(best_tp.sum())
        if raw > best[0]:
            best = (raw, float(scores[i]), tp_count, fp_count)
        i = j
    perfect = profile.a_tp * n_windows
    normalised = 100.0 * (best[0] - null) / (perfect - null) if n_windows else 0.0
    return CorpusResult(profile, best[1], best[0], normalised, best[2], best[3], n_windows)


def _collect_rows(files: Sequence[ScoredFile], profile: Profile) -> np.ndarray:
    """Stack (score, weighted value, global window id) of every scored row of the corpus."""
    parts, offset = [], 0
    for f in files:
        keep = f.scored
        in_window = f.window[keep] >= 0
        weighted = np.where(
            in_window,
            f.weight[keep] * profile.a_tp / scaled_sigmoid(-1.0),
            f.weight[keep] * profile.a_fp,
        )
        global_window = np.where(in_window, f.window[keep] + offset, -1)
        parts.append(np.vstack([f.scores[keep], weighted, global_window]))
        offset += f.n_windows
    return np.hstack(parts) if parts else np.zeros((3, 0))


def raw_at(f: ScoredFile, threshold: float, profile: Profile) -> float:
    """A file's raw NAB score at a fixed threshold (first detection per window, every FP)."""
    fired = (f.scores >= threshold) & f.scored
    outside = fired & (f.window < 0)
    raw = float(np.sum(f.weight[outside])) * profile.a_fp
    for k in range(f.n_windows):
        hits = np.flatnonzero(fired & (f.window == k))
        if len(hits):
            raw += float(f.weight[hits[0]]) * profile.a_tp / scaled_sigmoid(-1.0)
        else:
            raw -= profile.a_fn
    return raw


def score_at(files: Sequence[ScoredFile], threshold: float, profile: Profile) -> float:
    """Normalised score of ``files`` at a threshold fixed beforehand (chosen on other files).

    Unlike `score_corpus`, nothing is chosen on ``files``: this is the figure to quote for
    data that did not choose the threshold. 0 when the files hold no window.
    """
    n_windows = sum(f.n_windows for f in files)
    raw = sum(raw_at(f, threshold, profile) for f in files)
    return _normalise(raw, n_windows, profile)


def _normalise(raw: float, n_windows: int, profile: Profile) -> float:
    """NAB's 0 (never fires) .. 100 (perfect) scale for ``n_windows`` windows."""
    if not n_windows:
        return 0.0
    null = -profile.a_fn * n_windows
    return 100.0 * (raw - null) / (profile.a_tp * n_windows - null)


# The two folds of the validation protocol (docs/validation.md).
FOLDS: tuple[str, str] = ("A", "B")


def assign_folds(names: Iterable[str], group: Callable[[str], str]) -> dict[str, str]:
    """Split files into folds "A" and "B", stratified by ``group`` (e.g. the NAB category).

    Within each group, files are ordered by the SHA-256 of their name and dealt A, B, A, B, ...
    so a group of n files gives ceil(n/2) to A and floor(n/2) to B. A file's fold depends only
    on its own name and the names of its group: adding another group (e.g. NAB's held-out
    categories) moves no file, and nothing about the data or a detector's scores enters it.

    >>> folds = assign_folds(["c/x.csv", "c/y.csv", "d/z.csv"], lambda n: n.split("/")[0])
    >>> sorted(folds.items())
    [('c/x.csv', 'B'), ('c/y.csv', 'A'), ('d/z.csv', 'A')]
    """
    by_group: dict[str, list[str]] = {}
    for name in set(names):
        by_group.setdefault(group(name), []).append(name)
    folds = {}
    for members in by_group.values():
        members.sort(key=lambda n: (hashlib.sha256(n.encode()).hexdigest(), n))
        for rank, name in enumerate(members):
            folds[name] = FOLDS[rank % 2]
    return folds


@dataclass(frozen=True)
class FoldResult:
    """One direction of the two-fold protocol for one profile.

    ``threshold`` is chosen on the ``chosen_on`` files (their own, optimistic, score is
    ``in_sample``); ``score`` is the ``scored_on`` files' normalised score at that threshold.
    """

    profile: Profile
    chosen_on: str
    scored_on: str
    threshold: float
    in_sample: float
    score: float
    n_windows: int


def cross_fold(
    files: Sequence[ScoredFile], folds: dict[str, str], profile: Profile
) -> list[FoldResult]:
    """Both directions of the two-fold protocol: the threshold chosen on one fold, the other
    fold scored at it; one result per fold in `FOLDS` order of ``chosen_on``."""
    results = []
    for chosen_on, scored_on in (FOLDS, FOLDS[::-1]):
        train = [f for f in files if folds[f.name] == chosen_on]
        test = [f for f in files if folds[f.name] == scored_on]
        best = score_corpus(train, profile)
        results.append(FoldResult(
            profile, chosen_on, scored_on, best.threshold, best.score,
            score_at(test, best.threshold, profile), sum(f.n_windows for f in test),
        ))
    return results


def held_out_score(
    files: Sequence[ScoredFile], profile: Profile, group: Callable[[str], str]
) -> float:
    """Normalised score when each group's threshold is chosen on the *other* groups only.

    The corpus score picks its threshold on the very files it scores; this one holds each group
    (e.g. each NAB category) out in turn, so a detector whose best threshold depends on the
    group it is scored on, i.e. one that would not transfer to unseen series, loses here.
    """
    raw = 0.0
    for g in sorted({group(f.name) for f in files}):
        train = [f for f in files if group(f.name) != g]
        threshold = score_corpus(train, profile).threshold
        raw += sum(raw_at(f, threshold, profile) for f in files if group(f.name) == g)
    return _normalise(raw, sum(f.n_windows for f in files), profile)
