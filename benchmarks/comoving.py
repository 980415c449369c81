"""Co-moving metrics on a simulated week: the owners' hints against the notifier's links.

Simulates a week per seed (`stream-guard simulate --days 7 --seed S`, cached under --out),
replays it (the same path as `stream-guard replay`: owners per partials partition, so the
engine's co-moving hints relate only metrics homed on one partition), then feeds the alert
records to the notifier's `Correlator` (alert/correlate.py):

- in replay's order and in --orders random interleavings that keep each episode's order (as
  owners publishing side by side would): the links must be the same every time;
- which metric pairs the owners' hints named, and which the links name (the loss of
  notes/s8.md: hints across partitions missing);
- the Slack updates the links cost: a parent updated because a peer came after it (one
  chat.update per episode that gained a peer after its first record; an upper bound: an
  episode muted and never posted costs none);
- CPU per record of `Correlator.observe` (time.process_time, median of --repeat passes), and
  with --stress N episodes of other metrics stored, all overlapping in time (the worst case:
  every stored episode passes the span check and compares slices).

    python benchmarks/comoving.py                      # seeds 3 and 11, ~1 min the first time
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stream_guard.alert.correlate import Correlator  # noqa: E402
from stream_guard.backtest.replay import build_replayer, replay  # noqa: E402
from stream_guard.cli import main as stream_guard  # noqa: E402
from stream_guard.types import AlertRecord  # noqa: E402
from tests.unit.alert.test_correlate import interleave  # noqa: E402

Pair = tuple[str, str]


def records_of(sim: Path, seed: int, rules: Path) -> list[AlertRecord]:
    if not (sim / "events.jsonl").exists():
        status = stream_guard(["simulate", "--days", "7", "--seed", str(seed), "--out", str(sim),
                               "--quiet"])
        if status:
            raise SystemExit(status)
    return replay(build_replayer(rules), [sim / "events.jsonl"]).alerts


def interleaved(records: list[AlertRecord], rng: random.Random) -> list[AlertRecord]:
    """A random merge of the episodes' records, each episode in order (one key, one order)."""
    by_episode: dict[str, list[AlertRecord]] = defaultdict(list)
    for r in records:
        by_episode[r.episode_id].append(r)
    return interleave(by_episode, rng)


def correlate(records: list[AlertRecord]) -> tuple[Correlator, int]:
    """The links, and how many times an episode gained a peer after its first record."""
    corr, seen, late = Correlator({}), set(), 0
    for r in records:
        late += sum(1 for e in corr.observe(r) if e in seen and e != r.episode_id)
        seen.add(r.episode_id)
    return corr, late


def links(corr: Correlator) -> dict[str, list[str]]:
    return {e: corr.linked_to(e) for e in sorted(corr.store)}


def metric_pairs(corr: Correlator) -> set[Pair]:
    metric = {e: v["peer"]["metric"] for e, v in corr.store.items()}
    return {tuple(sorted((metric[e], p.metric))) for e in corr.store  # type: ignore[misc]
            for p in corr.peers(e)}


def hint_pairs(records: list[AlertRecord]) -> set[Pair]:
    return {tuple(sorted((r.metric, h.details["metric"]))) for r in records  # type: ignore[misc]
            for h in r.hints if h.kind == "metric"}


def cpu_per_record(records: list[AlertRecord], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        correlate(records)
        runs.append(time.process_time() - start)
    return statistics.median(runs) / max(len(records), 1)


def stress(n: int, repeat: int) -> float:
    """CPU per record with `n` stored episodes of other metrics overlapping in time."""
    def record(metric: str, episode: str, region: str) -> AlertRecord:
        return AlertRecord.parse({
            "schema": 1, "fingerprint": episode, "episode_id": episode, "sequence": 0,
            "status": "firing", "reason": "new", "metric": metric, "description": "",
            "rule_version": f"{metric}@1", "owner": None, "runbook": None, "dashboard": None,
            "route": "default", "slice": {"region": region}, "direction": "up",
            "window_start": "2026-03-04T14:00:00Z", "window_end": "2026-03-04T14:15:00Z",
            "value": 1.0, "expected": 0.5, "score": 5.0, "severity": "warning",
            "started_at": "2026-03-04T14:15:00Z", "peak_score": 5.0, "firing_slices": [],
            "hints": []})

    stored = [record(f"m{i % 100}", f"e{i}", f"r{i}") for i in range(n)]
    probes = [record("probe", f"p{k}", "elsewhere") for k in range(50)]
    runs = []
    for _ in range(repeat):
        corr = Correlator({})
        for r in stored:
            corr.observe(r)
        start = time.process_time()
        for r in probes:
            corr.observe(r)
        runs.append((time.process_time() - start) / len(probes))
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 11])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "comoving")
    parser.add_argument("--rules", type=Path, default=REPO / "alert_rules")
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stress", type=int, nargs="*", default=[100, 1000])
    args = parser.parse_args()
    for n in args.stress:
        print(f"{n} stored episodes overlapping in time: {stress(n, args.repeat) * 1e6:.0f} us "
              f"CPU per record (median of {args.repeat})")
    for seed in args.seeds:
        records = [r for r in records_of(args.out / f"seed{seed}", seed, args.rules)
                   if r.status in ("firing", "resolved")]
        corr, late = correlate(records)
        rng = random.Random(seed)
        same = all(links(correlate(interleaved(records, rng))[0]) == links(corr)
                   for _ in range(args.orders))
        linked = sum(1 for e in corr.store if corr.peers(e))
        print(f"seed {seed}: {len(records)} records, {len(corr.store)} episodes, "
              f"{linked} with a co-moving peer")
        print(f"  owners' hints name metric pairs {sorted(hint_pairs(records))}")
        print(f"  notifier links metric pairs     {sorted(metric_pairs(corr))}")
        print(f"  same links in {args.orders} random arrival orders: {same}")
        print(f"  parents updated for a later peer (chat.update, upper bound): {late}")
        print(f"  Correlator.observe: {cpu_per_record(records, args.repeat) * 1e6:.0f} us CPU "
              f"per record (median of {args.repeat})")


if __name__ == "__main__":
    main()
