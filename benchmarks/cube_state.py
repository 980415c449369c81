"""Bytes of the leaf cube and sellers: in reports, in the owner's saved state, and worst cases.

    python benchmarks/cube_state.py [--data DIR] [--rules DIR]

1. **Replay of the simulated week** (the dump of benchmarks/replay.py), with the rules' explain
   settings: per source hand-over, the encoded cube's bytes (what a report carries once per
   window); per metric, after every merge, the windows snapshot's bytes
   (runtime/snapshot.py `encode_windows`: open windows with their cubes) and at the end the
   model snapshot's (`encode_model`: leaf forecasts, seller baseline, lagged windows).
2. **Worst case**, synthetic and deterministic (seed 7): a window merged from `SOURCES`
   partitions, each at its caps (`LEAF_CAP` leaves of 5 dimensions with 32-character values,
   `SELLERS_KEPT` + 1 sellers with 32-character ids), held back for 1 to `HELD` windows; the
   windows snapshot's bytes, and the table value (base64) against Kafka's 8 MB.
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stream_guard.aggregate.cube import (  # noqa: E402
    LEAF_CAP,
    OTHER,
    SELLERS_KEPT,
    WindowCube,
    encode_cube,
)
from stream_guard.aggregate.merger import MergerState, WindowMerger  # noqa: E402
from stream_guard.backtest.replay import build_replayer, iter_inputs, run_replayer  # noqa: E402
from stream_guard.runtime.snapshot import (  # noqa: E402
    ModelSnapshot,
    encode_model,
    encode_windows,
)

SOURCES = 8  # complaint_rate's: 4 complaints + 4 orders partitions
HELD = (1, 4, 16, 64)
MB = 1024 * 1024


def _replay(data: Path, rules: Path) -> None:
    replayer = build_replayer(rules)
    handed: list[int] = []
    windows_max: dict[str, int] = {}
    merge = WindowMerger.merge

    def measured(self: WindowMerger, *args: object, **kw: object) -> str:
        out = merge(self, *args, **kw)  # type: ignore[arg-type]
        for _, cube in kw.get("cubes", ()):  # type: ignore[attr-defined]
            handed.append(len(orjson.dumps(encode_cube(cube))))
        if self.state.cubes:
            name = next(r.metric for r, m in zip(replayer.rules, replayer.mergers,
                                                   strict=True) if m is self)
            size = len(encode_windows(self.state))
            windows_max[name] = max(windows_max.get(name, 0), size)
        return out

    WindowMerger.merge = measured  # type: ignore[method-assign]
    try:
        run_replayer(replayer, iter_inputs([data / "events.jsonl"]), lambda _: None)
    finally:
        WindowMerger.merge = merge  # type: ignore[method-assign]
    if handed:
        print(f"cube hand-overs: {len(handed):,}; bytes each: median "
              f"{statistics.median(handed):,.0f}, max {max(handed):,}")
    for metric, size in sorted(windows_max.items()):
        print(f"{metric}: largest windows snapshot with cubes {size:,} bytes")
    engine = replayer.engine
    for m, rule in enumerate(replayer.rules):
        blob = encode_model(ModelSnapshot(engine.metric_state(m), engine.shared_state(), None, 0))
        print(f"{rule.metric}: model snapshot at the end {len(blob):,} bytes")


def _worst_cube(rng: random.Random) -> WindowCube:
    values = [[f"{d}-{rng.getrandbits(96):024x}-{i:03d}"[:32] for i in range(LEAF_CAP)]
              for d in range(5)]
    cube = WindowCube()
    for s in range(SOURCES):
        for i in range(LEAF_CAP):
            leaf = tuple(values[d][(i * (d + 1) + s * 7) % LEAF_CAP] for d in range(5))
            cube.leaves[leaf] = [rng.random() * 1e6, float(rng.randrange(1, 10**6))]
        for i in range(SELLERS_KEPT):
            cube.sellers[f"s-{s:02d}-{i:05d}-{rng.getrandbits(64):016x}"[:32]] = [
                float(rng.randrange(1, 10**4)), 0.0]
        cube.sellers.setdefault(OTHER, [0.0, 0.0])[0] += 1e6
    return cube


def _worst_case() -> None:
    rng = random.Random(7)
    cube = _worst_cube(rng)
    one = len(orjson.dumps(encode_cube(cube)))
    print(f"worst-case window cube ({len(cube.leaves):,} leaves, {len(cube.sellers):,} "
          f"sellers): {one:,} bytes encoded")
    for held in HELD:
        state = MergerState(cubes={i * 900_000: cube for i in range(held)})
        blob = encode_windows(state)
        table = len(base64.b64encode(blob))
        saved = held - len(orjson.loads(blob[4:])["cubeless"])
        print(f"  {held:>3} held-back windows: snapshot {len(blob) / MB:.2f} MB, table value "
              f"{table / MB:.2f} MB of 8 ({saved} cubes saved, the rest restored without)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=REPO / "benchmarks" / ".data" / "sim-7d-seed11")
    p.add_argument("--rules", type=Path, default=REPO / "alert_rules")
    args = p.parse_args(argv)
    if (args.data / "events.jsonl").exists():
        _replay(args.data, args.rules)
    else:
        print(f"no dump at {args.data} (benchmarks/replay.py simulates it): replay skipped")
    _worst_case()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
