"""Run stream-guard detectors on the Numenta Anomaly Benchmark and score them with NAB's rules.

    python benchmarks/nab.py [--data DIR] [--windows FILE] [--out RESULTS_DIR] [--detector NAME]...
    python benchmarks/nab.py --ablation          # every configuration below, one table
    python benchmarks/nab.py --held-out          # also: thresholds chosen on the other categories

Each file is replayed strictly online: every row is scored before the detector learns it, and
nothing from later rows or from the labels reaches the detector. One configuration serves the
whole corpus. The z-like score is squashed to [0, 1] by one fixed monotone function
(`squash`), so the threshold NAB sweeps is a z-level in disguise. Results land in
``RESULTS_DIR/<category>/<file>.csv`` (timestamp,value,anomaly_score) for the first detector.

The data folder defaults to $STREAM_GUARD_NAB_DIR, else ../shared/nab next to the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stream_guard.backtest.nab import (  # noqa: E402
    PROFILES,
    ScoredFile,
    held_out_score,
    score_corpus,
    window_indices,
)
from stream_guard.detect.auto_seasonal import AutoSeasonal  # noqa: E402
from stream_guard.detect.base import Detector, score_stream  # noqa: E402
from stream_guard.detect.ensemble import CalibratedEnsemble  # noqa: E402
from stream_guard.detect.median_shift import MedianShift  # noqa: E402
from stream_guard.detect.refractory import Refractory  # noqa: E402
from stream_guard.detect.robust_zscore import RobustZScore  # noqa: E402
from stream_guard.detect.seasonal_residual import SeasonalResidual  # noqa: E402


def _ensemble(*extra: SeasonalResidual | RobustZScore) -> CalibratedEnsemble:
    """AutoSeasonal's default ensemble (fast and slow level members, median shift), plus
    ``extra`` members read at every horizon, for the rows that rebuild it by hand."""
    members = [SeasonalResidual(), SeasonalResidual(level_window=48), MedianShift(144), *extra]
    horizons = [(1, 8, 48), (48,), (1,)] + [(1, 8, 48)] * len(extra)
    return CalibratedEnsemble(members, horizons=horizons)


# The configurations the ablation compares; the first is the default. Each line removes (-) or
# adds (+) one component of AutoSeasonal, to show what it contributes.
CONFIGS: dict[str, Callable[[], Detector]] = {
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
) -> tuple[list[ScoredFile], list[list[float]], float]:
    """Run a configuration over the corpus; scored files and µs per point."""
    task = progress.add_task(config, total=len(corpus))
    futures = [pool.submit(run_series, config, s) for s in corpus]
    runs = []
    for f in futures:
        runs.append(f.result())
        progress.advance(task)
    files = [
        ScoredFile.build(s.name, [squash(z) for z in scores], s.windows)
        for s, (scores, _) in zip(corpus, runs, strict=True)
    ]
    n_points = sum(len(s.values) for s in corpus)
    return files, [r[0] for r in runs], 1e6 * sum(r[1] for r in runs) / n_points


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--windows", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "results")
    parser.add_argument("--detector", action="append", choices=list(CONFIGS))
    parser.add_argument("--ablation", action="store_true", help="run every configuration")
    parser.add_argument("--detail", action="store_true", help="per-file hits and false positives")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="also score each category at the threshold chosen on the other categories",
    )
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()
    windows_file = args.windows or data / "labels" / "combined_windows.json"
    configs = list(CONFIGS) if args.ablation else (args.detector or [next(iter(CONFIGS))])
    console = Console(width=max(Console().width, 160))
    corpus = load_corpus(data, windows_file)
    # Short headers: profile names, then "held out" (leave-one-category-out) ones if asked.
    held_out = [f"{p.name} held out" for p in PROFILES] if args.held_out else []
    summary = Table("detector", *(p.name for p in PROFILES), *held_out, "µs/point")
    with ProcessPoolExecutor() as pool, Progress(console=console, transient=True) as progress:
        for n, config in enumerate(configs):
            files, raw, cost = evaluate(config, corpus, pool, progress)
            results = [score_corpus(files, p) for p in PROFILES]
            cells = [f"{r.score:.1f}" for r in results]
            if args.held_out:
                cells += [f"{held_out_score(files, p, category):.1f}" for p in PROFILES]
            summary.add_row(config, *cells, f"{cost:.1f}")
            if n == 0:
                for s, scores in zip(corpus, raw, strict=True):
                    write_results(args.out, s, scores)
            if args.detail:
                levels = ", ".join(f"{r.profile.name}={unsquash(r.threshold):.2f}" for r in results)
                console.print(f"[bold]{config}[/]: thresholds as z-like levels: {levels}")
                console.print(detail_table(files, results[0].threshold))
    console.print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
