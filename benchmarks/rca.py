"""Root-cause localisation benchmark (issue 13): stream_guard.explain.localize on labelled cubes.

    python benchmarks/rca.py --data DIR --out OUT.jsonl [--cross-fit] [--limit N]
                             [--method fit|sparse]

DIR is detected by layout (docs/rca.md): a folder with ``anomaly.yaml`` is an RS-style dataset
(ratio measure: numerator = cnt - value, denominator = cnt, forecast per leaf = mean of the
previous 4 minutes where the leaf was seen); a folder with ``injection_info.csv`` is one B0-style
setting (additive: real vs predict); otherwise its sub-folders of either kind are all used.

One JSON line per case: ``{"case": "<setting>/<case>", "causes": [{attr: value}, ...],
"external": bool}``. Then micro-F1 (a predicted element counts only if it equals a true one
exactly) per setting, per fold and overall, and seconds per case, on stdout; progress on stderr.

Folds: within each setting, cases in SHA-256 order of their name, dealt A, B, A, B, ...
``--cross-fit`` also chooses the localiser's constants on one fold from a small grid and scores
them on the other, both ways: the held-out figures to quote. ``--method sparse`` runs
`localize_sparse` (element-level Poisson likelihood, what the engine runs on a live window's
sparse cube) instead of the leaf-level fit of `localize`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np
import yaml

from stream_guard.explain.cube import LeafTable
from stream_guard.explain.localize import Localisation, Params, localize, localize_sparse

Element = frozenset[tuple[str, str]]
HISTORY_MINUTES = 4
GRID_TOLERANCE = (0.1, 0.25, 0.5, 0.75)
GRID_ALPHA = (0.05,)
GRID_RELATIVE = (0.05, 0.1, 0.3, 0.6)


@dataclass(frozen=True)
class Case:
    setting: str
    name: str
    path: Path
    truth: tuple[Element, ...]
    ratio: bool
    timestamp: int = 0

    @property
    def key(self) -> str:
        return f"{self.setting}/{self.name}"


def parse_elements(text: str) -> tuple[Element, ...]:
    """B0 labels: elements separated by ';', attribute pairs by '&' (``a=a1&b=b2;c=c3``)."""
    out = []
    for part in text.strip().split(";"):
        pairs = [p.split("=", 1) for p in part.split("&") if p]
        if pairs:
            out.append(frozenset((k.strip(), v.strip()) for k, v in pairs))
    return tuple(out)


def b0_cases(folder: Path) -> list[Case]:
    with open(folder / "injection_info.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        stem = str(row["timestamp"]).strip()
        path = folder / f"{stem}.csv"
        if path.exists():
            out.append(Case(folder.name, stem, path, parse_elements(row["set"]), ratio=False))
    return out


def rs_cases(folder: Path) -> list[Case]:
    with open(folder / "anomaly.yaml", encoding="utf-8") as fh:
        info = yaml.safe_load(fh) or []
    out = []
    for item in info:
        causes = item["cause"] if isinstance(item["cause"], list) else [item["cause"]]
        truth = tuple(frozenset((str(k), str(v)) for k, v in c.items()) for c in causes)
        path = folder / f"{item['data']}.csv"
        if path.exists():
            stem = str(item["data"])
            out.append(Case(folder.name, stem, path, truth, True, int(item["timestamp"])))
    return out


def discover(data: Path) -> list[Case]:
    """Every case under `data`: the folder itself if it is a setting, else its sub-folders."""
    folders = [data] if _is_setting(data) else sorted(p for p in data.iterdir() if _is_setting(p))
    if not folders:
        raise SystemExit(f"{data}: no anomaly.yaml or injection_info.csv here or one level down")
    cases: list[Case] = []
    for folder in folders:
        cases += rs_cases(folder) if (folder / "anomaly.yaml").exists() else b0_cases(folder)
    return cases


def _is_setting(p: Path) -> bool:
    return p.is_dir() and ((p / "anomaly.yaml").exists() or (p / "injection_info.csv").exists())


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        return header, [r for r in reader if r]


def load_b0(case: Case) -> LeafTable:
    header, rows = _read(case.path)
    cols = list(zip(*rows, strict=True))
    attrs = {h: cols[i] for i, h in enumerate(header) if h not in ("real", "predict")}
    real = np.asarray(cols[header.index("real")], dtype=float)
    predict = np.asarray(cols[header.index("predict")], dtype=float)
    return LeafTable.from_columns(attrs, real, predict)


def load_rs(case: Case) -> LeafTable:
    """The anomalous minute's leaves; forecasts = mean of the previous minutes they were seen."""
    header, rows = _read(case.path)
    i_min, i_val, i_cnt = header.index("min"), header.index("value"), header.index("cnt")
    dims = [i for i in range(len(header)) if i not in (i_min, i_val, i_cnt)]
    hist = {case.timestamp - 60 * k for k in range(1, HISTORY_MINUTES + 1)}
    now: dict[tuple[str, ...], tuple[float, float]] = {}
    past: dict[tuple[str, ...], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        key, minute = tuple(r[i] for i in dims), int(float(r[i_min]))
        cnt = float(r[i_cnt])
        pair = (cnt - float(r[i_val]), cnt)
        if minute == case.timestamp:
            now[key] = pair
        elif minute in hist:
            past[key].append(pair)
    keys = list(now)
    fc = np.array([np.mean(past[k], axis=0) if past[k] else (0.0, 0.0) for k in keys])
    fc = fc.reshape(len(keys), 2)
    act = np.array([now[k] for k in keys], dtype=float).reshape(len(keys), 2)
    cols = {header[d]: [k[j] for k in keys] for j, d in enumerate(dims)}
    return LeafTable.from_columns(cols, act[:, 0], fc[:, 0], act[:, 1], fc[:, 1])


def load(case: Case) -> LeafTable:
    return load_rs(case) if case.ratio else load_b0(case)


def as_elements(result: Localisation) -> tuple[Element, ...]:
    return tuple(frozenset(c.attrs.items()) for c in result.elements)


def counts(pred: Sequence[Element], truth: Sequence[Element]) -> tuple[int, int, int]:
    tp = len(set(pred) & set(truth))
    return tp, len(set(pred)) - tp, len(set(truth)) - tp


def f1(rows: Sequence[tuple[int, int, int]]) -> float:
    tp, fp, fn = (sum(r[i] for r in rows) for i in range(3))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def fold_of(case: Case, cases: Sequence[Case]) -> str:
    same = sorted((c for c in cases if c.setting == case.setting), key=_digest)
    return "AB"[same.index(case) % 2]


def _digest(c: Case) -> str:
    return hashlib.sha256(c.key.encode()).hexdigest()


METHODS = {"fit": localize, "sparse": localize_sparse}
METHOD = ["fit"]  # the one `main` was asked for


def run(cases: Sequence[Case], tables: Sequence[LeafTable], params: Params) -> list[Localisation]:
    method = METHODS[METHOD[0]]
    return [method(t, ratio=c.ratio, params=params) for c, t in zip(cases, tables, strict=True)]


def group_f1(cases: Sequence[Case], preds: Sequence[Localisation], pick: set[int]) -> float:
    return f1([counts(as_elements(preds[i]), cases[i].truth) for i in sorted(pick)])


def cross_fit(cases: Sequence[Case], tables: Sequence[LeafTable], folds: list[str]) -> None:
    """Constants chosen on one fold (per measure kind), scored on the other, both ways."""
    grid = [Params(*p) for p in product(GRID_TOLERANCE, GRID_ALPHA, GRID_RELATIVE)]
    runs = {p: run(cases, tables, p) for p in grid}
    for kind, label in ((False, "additive"), (True, "ratio")):
        idx = {i for i, c in enumerate(cases) if c.ratio == kind}
        if not idx:
            continue
        for train, test in (("A", "B"), ("B", "A")):
            tr = {i for i in idx if folds[i] == train}
            te = {i for i in idx if folds[i] == test}
            best = max(grid, key=lambda p: group_f1(cases, runs[p], tr))
            print(
                f"cross-fit {label}: chosen on {train} tolerance={best.tolerance} "
                f"alpha={best.alpha} relative_gain={best.relative_gain} "
                f"(F1 {group_f1(cases, runs[best], tr):.3f}) "
                f"-> fold {test} F1 {group_f1(cases, runs[best], te):.3f}"
            )


def report(cases: Sequence[Case], preds: Sequence[Localisation], folds: list[str]) -> None:
    by: dict[str, set[int]] = defaultdict(set)
    for i, c in enumerate(cases):
        for g in (c.setting, f"fold {folds[i]}", f"{c.setting} fold {folds[i]}", "overall"):
            by[g].add(i)
    for g in sorted(by, key=lambda g: (g == "overall", g.startswith("fold"), g)):
        print(f"{g:45s} n={len(by[g]):4d}  F1 {group_f1(cases, preds, by[g]):.3f}")


def progress(items: Sequence[Case]) -> Iterator[tuple[int, Case]]:
    for i, c in enumerate(items):
        if i % 10 == 0 or i == len(items) - 1:
            print(f"\r{i + 1}/{len(items)} {c.key:60.60s}", end="", file=sys.stderr, flush=True)
        yield i, c
    print(file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cross-fit", action="store_true", help="constants chosen per fold")
    ap.add_argument("--limit", type=int, default=0, help="first N cases only (smoke runs)")
    ap.add_argument("--method", choices=sorted(METHODS), default="fit",
                    help="fit: localize (leaf-level); sparse: localize_sparse (the live one)")
    args = ap.parse_args(argv)
    METHOD[0] = args.method
    cases = discover(args.data)
    cases = cases[: args.limit] if args.limit else cases
    tables, preds, seconds = [], [], 0.0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        for _, case in progress(cases):
            tables.append(load(case))
            t0 = time.perf_counter()
            preds.append(METHODS[args.method](tables[-1], ratio=case.ratio))
            seconds += time.perf_counter() - t0
            out.write(json.dumps(line(case, preds[-1]), ensure_ascii=False) + "\n")
    folds = [fold_of(c, cases) for c in cases]
    report(cases, preds, folds)
    print(f"seconds per case (localize only): {seconds / max(1, len(cases)):.4f}")
    if args.cross_fit:
        cross_fit(cases, tables, folds)


def line(case: Case, result: Localisation) -> dict[str, object]:
    causes = [dict(sorted(c.attrs.items())) for c in result.elements]
    return {"case": case.key, "causes": causes, "external": result.external}


if __name__ == "__main__":
    main()
