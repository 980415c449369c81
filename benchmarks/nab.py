"""Run stream-guard detectors on the Numenta Anomaly Benchmark and score them with NAB's rules.

    python benchmarks/nab.py [--data DIR] [--windows FILE] [--out RESULTS_DIR] [--detector NAME]...
    python benchmarks/nab.py --fold A            # only: chosen on fold A, scored on fold B
    python benchmarks/nab.py --ablation          # every configuration below, one table
    python benchmarks/nab.py --list-folds        # the two folds, file by file, and exit
    python benchmarks/nab.py --held-out          # in-sample table also: leave-one-category-out
    python benchmarks/nab.py --synthetic         # also the seeded stress series (see below)

Validation protocol (docs/validation.md): the files are split into two fixed folds, stratified
by category (`assign_folds`: within each category, files in SHA-256 order of their name
``<category>/<file>.csv``, dealt A, B, A, B, ...). Everything the script chooses -- the
threshold of each profile, and with ``--ablation`` the configuration -- is chosen on one fold
and scored on the other, both ways: those fold scores are the headline and the only figures to
quote. The in-sample table (threshold chosen on the very files it scores, the historical
README figure) is still printed first, for comparison only.

Each file is replayed strictly online: every row is scored before the detector learns it, and
nothing from later rows or from the labels reaches the detector. One configuration serves the
whole corpus. The z-like score is squashed to [0, 1] by one fixed monotone function
(`squash`), so the threshold NAB sweeps is a z-level in disguise. Results land in
``RESULTS_DIR/<category>/<file>.csv`` (timestamp,value,anomaly_score) for the first detector.

Per category, each direction's scored fold is also scored alone at the threshold chosen on the
other fold (the category rows of the headline), with its false-positive rows.

``--synthetic`` adds a seeded stress corpus (`stress_corpus`) of the shapes issue 12 asks a
detector to be robust to and the dev categories lack: daily Poisson counts, sparse counts,
Student-t(3) noise, routine spikes, a noise-regime change, a drifting level, integer speeds, a
sensor stuck for a day. One labelled anomaly per file, NAB-shaped window. It is scored at each
fold's chosen threshold: nothing is chosen on it, so it reads how one threshold transfers.

The data folder defaults to $STREAM_GUARD_NAB_DIR, else ../shared/nab next to the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stream_guard.backtest.nab import (  # noqa: E402
    FOLDS,
    PROFILES,
    FoldResult,
    ScoredFile,
    assign_folds,
    cross_fold,
    held_out_score,
    score_at,
    score_corpus,
    window_indices,
)
from stream_guard.detect.auto import AutoDetector  # noqa: E402
from stream_guard.detect.auto_seasonal import AutoSeasonal  # noqa: E402
from stream_guard.detect.base import Detector, score_stream  # noqa: E402
from stream_guard.detect.ensemble import CalibratedEnsemble  # noqa: E402
from stream_guard.detect.median_shift import MedianShift  # noqa: E402
from stream_guard.detect.refractory import Refractory  # noqa: E402
from stream_guard.detect.robust_zscore import RobustZScore  # noqa: E402
from stream_guard.detect.seasonal_residual import SeasonalResidual  # noqa: E402
from stream_guard.detect.tail_surprise import RobustResidual, TailSurprise  # noqa: E402


def _ensemble(*extra: SeasonalResidual | RobustZScore) -> CalibratedEnsemble:
    """AutoSeasonal's default ensemble (fast and slow level members, median shift), plus
    ``extra`` members read at every horizon, for the rows that rebuild it by hand."""
    members = [SeasonalResidual(), SeasonalResidual(level_window=48), MedianShift(144), *extra]
    horizons = [(1, 8, 48), (48,), (1,)] + [(1, 8, 48)] * len(extra)
    return CalibratedEnsemble(members, horizons=horizons)


def _run_rule(run_level: float = 2.5) -> Refractory:
    """TailSurprise with `Refractory`'s opt-in run rule (docs/validation.md, third pass)."""
    ts = TailSurprise()
    return Refractory(ts.ensemble, level=ts.level, hold=ts.hold, damping=ts.damping,
                      margin=ts.margin, run_level=run_level)


# The configurations the ablation compares; the first is the default. Each "ts" line removes (-)
# or adds (+) one part of TailSurprise; the lines after "auto_seasonal" (the default before
# TailSurprise, which is TailSurprise plus a slow-level member) do the same for AutoSeasonal.
CONFIGS: dict[str, Callable[[], Detector]] = {
    "tail_surprise": TailSurprise,
    "ts -median shift": lambda: TailSurprise(shift_window=None),
    "ts -horizons 16,48": lambda: TailSurprise(horizons=(1,)),
    "ts -horizon 16": lambda: TailSurprise(horizons=(1, 48)),
    "ts horizons 1,16": lambda: TailSurprise(horizons=(1, 16)),
    "ts horizons 1,8,48": lambda: TailSurprise(horizons=(1, 8, 48)),
    "ts horizons 1,4,48": lambda: TailSurprise(horizons=(1, 4, 48)),
    "ts -trust count": lambda: TailSurprise(trust_count=None),
    "ts -calibration clip": lambda: TailSurprise(clip=None),
    "ts -refractory": lambda: TailSurprise(hold=0),
    "ts -calibration": lambda: Refractory(RobustResidual(), level=3.5, damping=0.25),
    "ts -count floor": lambda: TailSurprise(count_floor=False),
    "ts +local scale 128": lambda: TailSurprise(local_scale_window=128),
    "ts +run rule 2.5": _run_rule,
    "ts +run rule 3.0": lambda: _run_rule(3.0),
    # What a rule with no detector gets, on a plain series (5-minute windows: NAB's usual).
    "auto": lambda: AutoDetector(window=300.0),
    "auto_seasonal": AutoSeasonal,
    "-slow level member": lambda: AutoSeasonal(slow_level_window=None),
    "-median shift member": lambda: AutoSeasonal(shift_window=None),
    "median shift k=96": lambda: AutoSeasonal(shift_window=96),
    "median shift k=128": lambda: AutoSeasonal(shift_window=128),
    "median shift k=192": lambda: AutoSeasonal(shift_window=192),
    "-refractory": _ensemble,
    "-refractory margin": lambda: AutoSeasonal(margin=0.0),
    "refractory margin 2": lambda: AutoSeasonal(margin=2.0),
    "-refractory peak following": lambda: Refractory(
        _ensemble(),
        level=3.5,
        damping=0.25,
        follow_peak=False,
    ),
    "refractory level 4": lambda: AutoSeasonal(level=4.0),
    "-calibration clip": lambda: AutoSeasonal(clip=None),
    "-fast horizon 48": lambda: AutoSeasonal(horizons=(1, 8)),
    "-fast horizons 8,48": lambda: AutoSeasonal(horizons=(1,)),
    "-period detection": lambda: AutoSeasonal(max_period=0),
    "-level correction": lambda: Refractory(
        CalibratedEnsemble([SeasonalResidual(level_correction=False)], horizons=(1, 8, 48)),
        level=3.5,
        damping=0.25,
    ),
    "-calibration": lambda: Refractory(SeasonalResidual(), level=3.5, damping=0.25),
    "hold 200": lambda: AutoSeasonal(hold=200),
    "+long robust z": lambda: Refractory(
        _ensemble(RobustZScore()),
        level=3.5,
        damping=0.25,
    ),
    # Reference: a calibrated windowed robust z-score, roughly NAB's "windowed Gaussian".
    "robust z only": lambda: Refractory(CalibratedEnsemble([RobustZScore()], horizons=(1,))),
}

# Squashing z-like scores into NAB's [0, 1]: 1 - 2^(-z/4) reaches 0.5 at the warning level 4.
SQUASH_HALF_LEVEL = 4.0


def squash(z: float) -> float:
    """Fixed monotone map of a z-like score (>= 0) to [0, 1]."""
    return 1.0 - 2.0 ** (-max(z, 0.0) / SQUASH_HALF_LEVEL)


def unsquash(p: float) -> float:
    """Inverse of `squash` (inf for thresholds that never fire)."""
    return -SQUASH_HALF_LEVEL * math.log2(1.0 - p) if p < 1.0 else math.inf


@dataclass(frozen=True)
class Series:
    name: str  # "<category>/<file>.csv"
    timestamps: list[datetime]
    values: list[float]
    windows: list[tuple[int, int]]


def category(name: str) -> str:
    """The NAB category of ``<category>/<file>.csv``."""
    return name.split("/", 1)[0]


def default_data_dir() -> Path:
    env = os.environ.get("STREAM_GUARD_NAB_DIR")
    return Path(env) if env else REPO.parent / "shared" / "nab"


def load_corpus(data: Path, windows_file: Path) -> list[Series]:
    """Every labelled file, with its windows as inclusive row ranges."""
    labels = json.loads(windows_file.read_text())
    corpus = []
    for name in sorted(labels):
        with open(data / "data" / name, newline="") as fh:
            rows = list(csv.DictReader(fh))
        stamps = [datetime.fromisoformat(r["timestamp"]) for r in rows]
        spans = [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in labels[name]]
        values = [float(r["value"]) for r in rows]
        corpus.append(Series(name, stamps, values, window_indices(stamps, spans)))
    return corpus


# -- the stress corpus (--synthetic) ---------------------------------------------------------
STRESS_ROWS = 4000  # about NAB's typical file (5-minute rows, two weeks)
STRESS_DAY = 288  # rows per day
STRESS_SEEDS = (1, 2, 3)


def _poisson(rng: random.Random, lam: float) -> float:
    """A Poisson draw (Knuth's method; normal approximation above 50)."""
    if lam > 50:
        return float(max(0, round(rng.gauss(lam, math.sqrt(lam)))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k, p = k + 1, p * rng.random()
    return float(k)


def _cycle(i: int) -> float:
    return math.sin(2 * math.pi * i / STRESS_DAY)


def _student3(rng: random.Random) -> float:
    return rng.gauss(0, 1) / math.sqrt(sum(rng.gauss(0, 1) ** 2 for _ in range(3)) / 3)


def _counts(rng: random.Random, at: int, i: int) -> float:  # daily counts, a burst x4
    return _poisson(rng, 20 * (1 + 0.6 * _cycle(i)) * (4 if at <= i < at + 12 else 1))


def _sparse(rng: random.Random, at: int, i: int) -> float:  # rate 0.3, a burst of rate 5
    return _poisson(rng, 5.0 if at <= i < at + 6 else 0.3)


def _heavy(rng: random.Random, at: int, i: int) -> float:  # t(3) noise, a lasting +6 shift
    return 50 + 10 * _cycle(i) + _student3(rng) + (6 if i >= at else 0)


def _spiky(rng: random.Random, at: int, i: int) -> float:  # 1% spikes x2-5, a drop by a third
    v = 30 + rng.gauss(0, 1) - (10 if i >= at else 0)
    return v * rng.uniform(2, 5) if rng.random() < 0.01 else v


def _regime(rng: random.Random, at: int, i: int) -> float:  # noise x3 (unlabelled), a spike
    return 100 + rng.gauss(0, 3 if i >= STRESS_ROWS // 3 else 1) + (24 if i == at else 0)


def _speed(rng: random.Random, at: int, i: int) -> float:  # integer speeds, halved a while
    return float(round(rng.gauss(62, 3) * (0.5 if at <= i < at + 24 else 1)))


def _drift(rng: random.Random, at: int) -> list[float]:  # a random walk, a step of 5 sigmas
    level, out = 0.0, []
    for i in range(STRESS_ROWS):
        level += rng.gauss(0, 0.05)
        out.append(level + rng.gauss(0, 1) + (5 if i >= at else 0))
    return out


def _stuck(rng: random.Random, at: int) -> list[float]:  # a daily cycle, frozen for a day
    out: list[float] = []
    for i in range(STRESS_ROWS):
        v = 10 + 5 * _cycle(i) + rng.gauss(0, 0.5)
        out.append(out[-1] if at <= i < at + STRESS_DAY else v)
    return out


_POINTWISE: dict[str, Callable[[random.Random, int, int], float]] = {
    "counts": _counts, "sparse": _sparse, "heavy": _heavy, "spiky": _spiky,
    "regime": _regime, "speed": _speed,
}
_WHOLE: dict[str, Callable[[random.Random, int], list[float]]] = {
    "drift": _drift, "stuck": _stuck,
}


def stress_corpus(seeds: tuple[int, ...] = STRESS_SEEDS) -> list[Series]:
    """Seeded stress series, one anomaly each, placed after the probation at random; its
    window is 10% of the file wide and centred on the anomaly's first row, as NAB's are."""
    start, step, half = datetime(2026, 1, 1), timedelta(minutes=5), STRESS_ROWS // 20
    corpus = []
    for seed in seeds:
        for kind in [*_POINTWISE, *_WHOLE]:
            rng = random.Random(f"{kind}-{seed}")
            at = rng.randrange(int(0.4 * STRESS_ROWS), int(0.85 * STRESS_ROWS))
            if kind in _POINTWISE:
                values = [_POINTWISE[kind](rng, at, i) for i in range(STRESS_ROWS)]
            else:
                values = _WHOLE[kind](rng, at)
            stamps = [start + k * step for k in range(STRESS_ROWS)]
            corpus.append(Series(f"stress/{kind}-{seed}.csv", stamps, values,
                                 [(at - half, at + half)]))
    return corpus


def run_series(config: str, series: Series) -> tuple[list[float], float]:
    """Replay one series through a fresh detector: z-like scores and seconds spent."""
    detector = CONFIGS[config]()
    start = time.process_time()
    scores = score_stream(detector, (
        {"t": ts.timestamp(), "value": v, "numerator": v, "denominator": 1.0}
        for ts, v in zip(series.timestamps, series.values, strict=True)))
    return scores, time.process_time() - start


def write_results(out: Path, series: Series, scores: list[float]) -> None:
    path = out / series.name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for ts, v, z in zip(series.timestamps, series.values, scores, strict=True):
            writer.writerow([ts.isoformat(sep=" "), v, f"{squash(z):.6f}"])


def evaluate(
    config: str, corpus: list[Series], pool: ProcessPoolExecutor, progress: Progress
) -> tuple[list[ScoredFile], list[list[float]], list[float]]:
    """Run a configuration over the corpus: scored files, raw scores, CPU seconds per file."""
    task = progress.add_task(config, total=len(corpus))
    futures = [pool.submit(run_series, config, s) for s in corpus]
    runs = []
    for f in futures:
        runs.append(f.result())
        progress.advance(task)
    progress.remove_task(task)
    files = [
        ScoredFile.build(s.name, [squash(z) for z in scores], s.windows)
        for s, (scores, _) in zip(corpus, runs, strict=True)
    ]
    return files, [r[0] for r in runs], [r[1] for r in runs]


def us_per_point(corpus: list[Series], seconds: list[float], keep: Callable[[str], bool]) -> float:
    """CPU µs per row over the files ``keep`` selects."""
    chosen = [(s, t) for s, t in zip(corpus, seconds, strict=True) if keep(s.name)]
    points = sum(len(s.values) for s, _ in chosen)
    return 1e6 * sum(t for _, t in chosen) / points if points else 0.0


@dataclass
class Evaluation:
    """One configuration's figures: in-sample, per fold direction, held out by category."""

    config: str
    in_sample: list[float]  # per profile, threshold chosen on all files
    folds: list[list[FoldResult]]  # per profile, one result per direction (chosen on A, on B)
    pooled: list[float]  # per profile: every file scored at the other fold's threshold
    by_category: list[float]  # per profile: leave-one-category-out
    cost: float  # µs per point over all files
    fold_cost: dict[str, float]  # µs per point over each fold's files

    def direction(self, chosen_on: str) -> list[FoldResult]:
        """The per-profile results of one direction."""
        return [next(r for r in per if r.chosen_on == chosen_on) for per in self.folds]


def assess(
    config: str, corpus: list[Series], files: list[ScoredFile], seconds: list[float],
    folds: dict[str, str],
) -> Evaluation:
    return Evaluation(
        config,
        [score_corpus(files, p).score for p in PROFILES],
        [cross_fold(files, folds, p) for p in PROFILES],
        [held_out_score(files, p, folds.__getitem__) for p in PROFILES],
        [held_out_score(files, p, category) for p in PROFILES],
        us_per_point(corpus, seconds, lambda _: True),
        {k: us_per_point(corpus, seconds, partial(_in_fold, folds, k)) for k in FOLDS},
    )


def _in_fold(folds: dict[str, str], fold: str, name: str) -> bool:
    return folds[name] == fold


def _three(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def fold_lines(corpus: list[Series], folds: dict[str, str]) -> list[str]:
    """The split, one line per category and fold: explicit, so it can be quoted and checked."""
    lines = []
    for cat in sorted({category(s.name) for s in corpus}):
        for k in FOLDS:
            members = [s for s in corpus if category(s.name) == cat and folds[s.name] == k]
            names = ", ".join(s.name.split("/", 1)[1].removesuffix(".csv") for s in members)
            windows = sum(len(s.windows) for s in members)
            lines.append(f"{k}  {cat} ({len(members)} files, {windows} windows): {names}")
    for k in FOLDS:
        members = [s for s in corpus if folds[s.name] == k]
        lines.append(f"{k}  total: {len(members)} files, "
                     f"{sum(len(s.windows) for s in members)} windows (before probation), "
                     f"{sum(len(s.values) for s in members)} rows")
    return lines


def fold_table(ev: Evaluation, directions: list[str]) -> Table:
    """The headline for one configuration: one row per direction, then the pooled and the
    leave-one-category-out figures."""
    t = Table("chosen on", "scored on", "standard", "low FP", "low FN", "windows scored",
              "thresholds (z)", "in-sample on chosen fold", "µs/point (scored fold)",
              title=f"[bold]{ev.config}: held-out scores (quote these)[/]")
    for column in t.columns[2:]:
        column.justify = "right"
    for chosen_on in directions:
        rs = ev.direction(chosen_on)
        t.add_row(chosen_on, rs[0].scored_on, *(f"{r.score:.1f}" for r in rs),
                  str(rs[0].n_windows), " / ".join(f"{unsquash(r.threshold):.2f}" for r in rs),
                  _three([r.in_sample for r in rs]), f"{ev.fold_cost[rs[0].scored_on]:.1f}")
    t.add_section()
    n = sum(r.n_windows for r in ev.folds[0])
    if len(directions) == len(FOLDS):
        t.add_row("other fold", "A + B", *(f"{v:.1f}" for v in ev.pooled), str(n), "", "",
                  f"{ev.cost:.1f}")
    t.add_row("other categories", "each category", *(f"{v:.1f}" for v in ev.by_category),
              str(n), "", "", f"{ev.cost:.1f}")
    return t


def ablation_table(evs: list[Evaluation], directions: list[str]) -> Table:
    """Many configurations: fold scores per direction (standard / low FP / low FN)."""
    heads = [f"chosen on {k}, scored on {next(j for j in FOLDS if j != k)}" for k in directions]
    t = Table("detector", *heads, "leave-one-category-out", "in-sample (not for quoting)",
              "µs/point", title="[bold]held-out scores, standard / low FP / low FN[/]")
    for ev in evs:
        cells = [_three([r.score for r in ev.direction(k)]) for k in directions]
        t.add_row(ev.config, *cells, _three(ev.by_category), _three(ev.in_sample),
                  f"{ev.cost:.1f}")
    return t


def selection_lines(evs: list[Evaluation], directions: list[str]) -> list[str]:
    """The configuration the ablation would pick on one fold (its in-sample standard score
    there), and what that pick scores on the other fold: the choice itself held out."""
    lines = []
    for k in directions:
        best = max(evs, key=lambda ev: ev.direction(k)[0].in_sample)
        rs = best.direction(k)
        lines.append(f"configuration chosen on fold {k}: {best.config!r} (in-sample "
                     f"{rs[0].in_sample:.1f}); scored on fold {rs[0].scored_on}: "
                     f"{_three([r.score for r in rs])}")
    return lines


def detail_table(files: list[ScoredFile], threshold: float) -> Table:
    """Per file, at the standard profile's threshold: windows hit and false-positive rows."""
    table = Table("file", "windows", "hit", "FP rows", "first hit positions")
    for f in files:
        fired = (f.scores >= threshold) & f.scored
        hits = []
        for k in range(f.n_windows):
            rows = [i for i in range(len(f.scores)) if fired[i] and f.window[i] == k]
            hits.append(f"{f.weight[rows[0]]:.2f}" if rows else "-")
        fps = int((fired & (f.window < 0)).sum())
        table.add_row(
            f.name, str(f.n_windows), str(sum(h != "-" for h in hits)), str(fps), " ".join(hits)
        )
    return table


def category_table(ev: Evaluation, files: list[ScoredFile], folds: dict[str, str],
                   directions: list[str]) -> Table:
    """Each direction's scored fold, category by category, at the threshold chosen on the
    other fold; false-positive rows at the standard profile's threshold."""
    t = Table("chosen on", "scored on", "category", "files", "windows", "standard", "low FP",
              "low FN", "FP rows", title=f"[bold]{ev.config}: held-out scores per category[/]")
    for chosen_on in directions:
        rs = ev.direction(chosen_on)
        scored = [f for f in files if folds[f.name] == rs[0].scored_on]
        for cat in sorted({category(f.name) for f in scored}):
            members = [f for f in scored if category(f.name) == cat]
            t.add_row(chosen_on, rs[0].scored_on, cat, str(len(members)),
                      str(sum(f.n_windows for f in members)),
                      *(f"{score_at(members, r.threshold, r.profile):.1f}" for r in rs),
                      str(_fp_rows(members, rs[0].threshold)))
        t.add_section()
    return t


def _fp_rows(files: list[ScoredFile], threshold: float) -> int:
    return sum(int(((f.scores >= threshold) & f.scored & (f.window < 0)).sum()) for f in files)


def stress_table(ev: Evaluation, stress: list[ScoredFile], directions: list[str]) -> Table:
    """The stress corpus at each direction's chosen thresholds (nothing chosen on it)."""
    kinds = sorted({f.name.split("/", 1)[1].rsplit("-", 1)[0] for f in stress})
    t = Table("threshold chosen on", "standard", "low FP", "low FN",
              *(f"{k} hit/FP" for k in kinds), title=f"[bold]{ev.config}: stress corpus "
              f"({len(stress)} files; windows hit / false-positive rows, standard)[/]")
    for chosen_on in directions:
        rs = ev.direction(chosen_on)
        cells = []
        for kind in kinds:
            mine = [f for f in stress if f.name.split("/", 1)[1].rsplit("-", 1)[0] == kind]
            hit = sum(bool(((f.scores >= rs[0].threshold) & f.scored & (f.window >= 0)).any())
                      for f in mine)
            cells.append(f"{hit}/{len(mine)} {_fp_rows(mine, rs[0].threshold)}")
        t.add_row(chosen_on, *(f"{score_at(stress, r.threshold, r.profile):.1f}" for r in rs),
                  *cells)
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--windows", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "results")
    parser.add_argument("--detector", action="append", choices=list(CONFIGS))
    parser.add_argument("--ablation", action="store_true", help="run every configuration")
    parser.add_argument("--detail", action="store_true", help="per-file hits and false positives")
    parser.add_argument(
        "--fold",
        choices=[*FOLDS, "both"],
        default="both",
        help="the fold settings are chosen on (scored on the other one); default: both ways",
    )
    parser.add_argument("--list-folds", action="store_true", help="print the split and exit")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="in-sample table: also each category at the threshold chosen on the others",
    )
    parser.add_argument("--synthetic", action="store_true",
                        help="also score the seeded stress corpus at the folds' thresholds")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPUs)")
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()
    windows_file = args.windows or data / "labels" / "combined_windows.json"
    configs = list(CONFIGS) if args.ablation else (args.detector or [next(iter(CONFIGS))])
    directions = list(FOLDS) if args.fold == "both" else [args.fold]
    console = Console(width=max(Console().width, 160))
    corpus = load_corpus(data, windows_file)
    folds = assign_folds([s.name for s in corpus], category)
    console.print("[bold]folds[/] (stratified by category; within each, SHA-256 order of the "
                  "file name, dealt A, B, A, ...):", highlight=False)
    for line in fold_lines(corpus, folds):
        console.print("  " + line, markup=False, highlight=False)
    if args.list_folds:
        return 0
    # Short headers: profile names, then "held out" (leave-one-category-out) ones if asked.
    held_out = [f"{p.name} held out" for p in PROFILES] if args.held_out else []
    summary = Table("detector", *(p.name for p in PROFILES), *held_out, "µs/point",
                    title="in-sample: thresholds chosen on the files scored "
                          "(historical figure, not for quoting)")
    evaluations = []
    first_files: list[ScoredFile] = []
    stress = stress_corpus() if args.synthetic else []
    stress_tables = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    started = time.monotonic()
    with ProcessPoolExecutor(args.jobs) as pool, \
            Progress(*columns, console=console, transient=True) as progress:
        overall = progress.add_task("[bold]configurations", total=len(configs))
        for n, config in enumerate(configs):
            files, raw, seconds = evaluate(config, corpus, pool, progress)
            ev = assess(config, corpus, files, seconds, folds)
            evaluations.append(ev)
            cells = [f"{v:.1f}" for v in ev.in_sample]
            if args.held_out:
                cells += [f"{v:.1f}" for v in ev.by_category]
            summary.add_row(config, *cells, f"{ev.cost:.1f}")
            if n == 0:
                first_files = files
                for s, scores in zip(corpus, raw, strict=True):
                    write_results(args.out, s, scores)
            if stress:
                stress_tables.append(stress_table(ev, evaluate(config, stress, pool, progress)[0],
                                                  directions))
            if len(configs) > 1:
                done = ", ".join(f"chosen on {k}: {_three([r.score for r in ev.direction(k)])}"
                                 for k in directions)
                console.print(f"{config}: {done}", markup=False, highlight=False)
            if args.detail:
                results = [score_corpus(files, p) for p in PROFILES]
                levels = ", ".join(f"{r.profile.name}={unsquash(r.threshold):.2f}" for r in results)
                console.print(f"[bold]{config}[/]: thresholds as z-like levels: {levels}")
                console.print(detail_table(files, results[0].threshold))
            progress.advance(overall)
    console.print(summary)
    if len(evaluations) == 1:
        console.print(fold_table(evaluations[0], directions))
        console.print(category_table(evaluations[0], first_files, folds, directions))
    else:
        console.print(ablation_table(evaluations, directions))
        for line in selection_lines(evaluations, directions):
            console.print(line, markup=False, highlight=False)
    for table in stress_tables:
        console.print(table)
    console.print(f"wall time {time.monotonic() - started:.0f} s", highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
