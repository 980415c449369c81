"""What an on-call analyst would have seen in Slack during the simulated week.

Simulates the week (`stream-guard simulate --days 7 --seed 11`, cached in --sim), replays it
through the engine (the same path as `stream-guard replay`), sends every alert record through
the notifier's stages (alert/dispatch.py then alert/notify.py, routes and inhibit rules of
alert_rules/routes.yaml) against the fake Slack server, each at the end of its window (the
moment the live worker would see it), with the reminders due every 5 minutes as the worker's
ticks send them, and prints the Slack messages per labelled incident and in total: parents (new
threads, they notify), thread replies, broadcast replies (reminders: they notify too),
chat.update edits and the API calls of the charts uploaded into the threads. Episodes that
match no incident are listed as noise; incidents without any message as misses.

    python benchmarks/slack_week.py                    # ~40 s the first time, ~20 s cached
    python benchmarks/slack_week.py --sim out/demo     # an existing simulation
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from slack_sdk import WebClient  # noqa: E402

from stream_guard.alert.dispatch import Dispatcher  # noqa: E402
from stream_guard.alert.inhibit import Inhibitor  # noqa: E402
from stream_guard.alert.notify import Notifier  # noqa: E402
from stream_guard.alert.silences import ControlView  # noqa: E402
from stream_guard.backtest.evaluate import evaluate, load_labels  # noqa: E402
from stream_guard.backtest.replay import build_replayer, replay  # noqa: E402
from stream_guard.cli import main as stream_guard  # noqa: E402
from stream_guard.config.routes import load_routes  # noqa: E402
from stream_guard.config.rules import load_rules  # noqa: E402
from stream_guard.config.topics import load_topics  # noqa: E402
from stream_guard.sinks.slack import SlackSink  # noqa: E402
from stream_guard.sinks.slack_integration import SlackIntegration  # noqa: E402
from stream_guard.types import AlertRecord, epoch_ms  # noqa: E402
from tests.fakes.slack_server import FAKE_TOKEN, FakeSlack, SlackCall  # noqa: E402

KINDS = ("parents", "replies", "broadcasts", "updates", "chart calls")
out = Console(width=150)


def kind(call: SlackCall) -> str:
    if call.method.startswith("files."):  # a chart's upload into the thread (2 API calls)
        return "chart calls"
    if call.method == "chat.update":
        return "updates"
    if "thread_ts" not in call.body:
        return "parents"
    return "broadcasts" if call.body.get("reply_broadcast") in (True, "true", "1") else "replies"


def simulate(sim: Path) -> None:
    if not (sim / "events.jsonl").exists() or not (sim / "labels.json").exists():
        status = stream_guard(["simulate", "--days", "7", "--seed", "11", "--out", str(sim),
                               "--quiet"])
        if status:
            raise SystemExit(status)


def alert_records(sim: Path, rules_dir: Path) -> list[AlertRecord]:
    return replay(build_replayer(rules_dir), [sim / "events.jsonl"]).alerts


TICK_MS = 5 * 60_000
DAY_MS = 24 * 3_600_000


def send_all(records: list[AlertRecord], rules_dir: Path) -> dict[str, Counter[str]]:
    """Every record through the notifier at its window end, reminders every tick; Slack calls
    counted per episode."""
    per_episode: dict[str, Counter[str]] = defaultdict(Counter)
    routes = load_routes(rules_dir / "routes.yaml")
    pending = sorted(records, key=lambda r: r.window_end, reverse=True)
    with FakeSlack(token=FAKE_TOKEN) as fake:
        client = WebClient(token=FAKE_TOKEN, base_url=fake.base_url, retry_handlers=[])
        notifier = Notifier(routes, SlackIntegration(SlackSink(client)), {}, sleep=lambda s: None)
        stages = Dispatcher(Inhibitor(routes.inhibit_rules, {}), ControlView(), {})
        seen = 0

        def count(episode_id: str) -> None:
            nonlocal seen
            per_episode[episode_id].update(kind(c) for c in fake.calls[seen:])
            seen = len(fake.calls)

        start = epoch_ms(pending[-1].window_end) if pending else 0
        end = epoch_ms(pending[0].window_end) + DAY_MS if pending else 0
        for now in range(start, end, TICK_MS):
            while pending and epoch_ms(pending[-1].window_end) <= now:
                alert = pending.pop()
                threaded = bool(notifier.log.threads(alert.episode_id))
                if stages.triage(alert, now, has_thread=threaded).action == "notify":
                    notifier.notify(alert, now)
                    count(alert.episode_id)
                    stages.remember(alert, orjson.loads(alert.to_json()),
                                    has_thread=bool(notifier.log.threads(alert.episode_id)))
            for alert in list(stages.due(now, lambda _: True, notifier.reminders_due(now))):
                notifier.remind(alert, now)
                count(alert.episode_id)
    return per_episode


def report(records: list[AlertRecord], sent: dict[str, Counter[str]], sim: Path,
           rules_dir: Path) -> None:
    rules = load_rules(rules_dir, load_topics())
    windows = {r.metric: int(r.window.total_seconds() * 1000) for r in rules}
    incidents = load_labels(sim / "labels.json")
    ev = evaluate(records, incidents, windows)
    table = Table("incident", "metric", "slice", "start (UTC)", "episodes", *KINDS,
                  "notifying", title="Slack messages per labelled incident")
    total: Counter[str] = Counter()
    missed, undetected = [], []
    for inc in incidents:
        counts: Counter[str] = Counter()
        for episode in ev.matches[inc.id]:
            counts.update(sent.get(episode, Counter()))
        total.update(counts)
        if not ev.matches[inc.id]:
            undetected.append(inc.id)  # no episode: a detection miss, nothing to send
        elif not counts["parents"]:
            missed.append(inc.id)  # an episode, but no message: a notifier failure
        table.add_row(inc.id, inc.metric, _slice(inc.slice), _utc(inc.start_ms),
                      str(len(ev.matches[inc.id])), *(str(counts[k]) for k in KINDS),
                      str(counts["parents"] + counts["broadcasts"]))
    out.print(table)
    noise = list(ev.false_episodes)
    noise_counts: Counter[str] = Counter()
    for e in noise:
        noise_counts.update(sent.get(e.episode_id, Counter()))
    everything: Counter[str] = Counter()
    for counts in sent.values():
        everything.update(counts)
    summary = Table("", *KINDS, "notifying", "all calls", title="Totals")
    for label, counts in (("labelled incidents", total), ("false episodes", noise_counts),
                          ("whole week", everything)):
        summary.add_row(label, *(str(counts[k]) for k in KINDS),
                        str(counts["parents"] + counts["broadcasts"]), str(sum(counts.values())))
    out.print(summary)
    out.print(f"{len(records)} alert records, {len(sent)} episodes, {len(incidents)} incidents\n"
              f"detected incidents without any message: {', '.join(missed) or 'none'}\n"
              f"incidents without an episode (detection misses): "
              f"{', '.join(undetected) or 'none'}\n"
              f"false episodes: {', '.join(e.episode_id for e in noise) or 'none'}\n"
              "(incident rows can share an episode; the whole-week row counts each call once)",
              markup=False)


def _slice(labels: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(all)"


def _utc(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%a %H:%M}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sim", type=Path, default=REPO / "out" / "slack_week" / "sim")
    parser.add_argument("--rules", type=Path, default=REPO / "alert_rules")
    args = parser.parse_args()
    simulate(args.sim)
    records = alert_records(args.sim, args.rules)
    report(records, send_all(records, args.rules), args.sim, args.rules)


if __name__ == "__main__":
    main()
