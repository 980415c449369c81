"""The `stream-guard` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from stream_guard.errors import ConfigError, StreamGuardError

if TYPE_CHECKING:
    from stream_guard.alert.history import EpisodeHistory, History

__all__ = ["main"]

console = Console(stderr=True)
out = Console()


def _rules_dir(value: str | None) -> Path:
    return Path(value or "alert_rules")


def cmd_rules(args: argparse.Namespace) -> int:
    """`rules validate|list|schema`: every problem of the directory is printed, one per line."""
    from stream_guard.config.errors import problems_of
    from stream_guard.config.rules import MetricRule
    from stream_guard.config.ruleset import check_rules_dir
    from stream_guard.config.topics import load_topics

    if args.rules_command == "schema":
        out.print_json(data=MetricRule.model_json_schema(by_alias=True))
        return 0
    if args.rules_command == "test":
        return _rules_test(args)
    try:
        rules = check_rules_dir(_rules_dir(args.dir), load_topics(args.topics_dir))
    except ConfigError as exc:
        for problem in problems_of(exc):
            # Text, not markup: a problem may quote "[/]" from the file.
            console.print(Text.assemble(("configuration error: ", "bold red"), problem),
                          soft_wrap=True)
        return 2
    if args.rules_command == "validate":
        out.print(f"{len(rules)} metric definitions are valid: "
                  + ", ".join(r.rule_id for r in rules), markup=False)
        return 0
    from rich.table import Table

    table = Table("metric", "value", "window", "dimensions", "detector", "direction", "route")
    for r in rules:
        dims = ", ".join([*r.dimensions, *(f"{a}×{b}" for a, b in r.pairs)])
        table.add_row(r.rule_id, r.value, str(r.window), dims, r.detector.type, r.direction,
                      r.alert.route)
    out.print(table)
    return 0


def _rules_test(args: argparse.Namespace) -> int:
    """`rules test RULE.yaml --input DUMP`: the rule's episodes per day, and a plot."""
    from stream_guard.backtest.rule_test import episode_lines, plot, run_rule_test, to_json

    if not args.dir or not args.input:
        console.print("error: rules test needs a rule file and --input FILE", markup=False)
        return 2
    missing = [str(p) for p in [Path(args.dir), *args.input] if not p.is_file()]
    if missing:
        console.print(f"error: no such file: {', '.join(missing)}", markup=False)
        return 1
    test = run_rule_test(Path(args.dir), args.input, args.topics_dir)
    path = plot(test, args.plot or Path(f"{test.rule.metric}-rule-test.png"))
    if args.json:
        sys.stdout.write(to_json(test).decode() + "\n")
    else:
        for line in episode_lines(test):
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        s = test.summary
        out.print(f"replayed {s.records:,} records in {s.seconds:.1f}s: "
                  f"{len(s.alerts)} alert records; plot: {path}", markup=False, soft_wrap=True)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    import orjson

    from stream_guard.backtest.progress import progress_bar
    from stream_guard.backtest.replay import build_replayer, replay
    from stream_guard.sinks.console import print_alert

    inputs = [Path(p) for p in args.input]
    dead = DeadLetterFile(Path(args.dead_letters) if args.dead_letters else None)
    replayer = build_replayer(_rules_dir(args.rules), args.topics_dir,
                              on_dead_letter=dead.write)
    with progress_bar(inputs, "replay", quiet=args.quiet) as advance:
        summary = replay(replayer, inputs, Path(args.output) if args.output else None, advance,
                         on_alert=None if args.quiet else lambda a: print_alert(out, a))
    dead.close()
    c = summary.counts()
    if args.summary:
        Path(args.summary).write_bytes(orjson.dumps(c, option=orjson.OPT_INDENT_2))
    out.print(
        f"replayed {c['records']:,} records in {summary.seconds:.1f}s "
        f"({summary.events_per_second:,.0f}/s): {sum(c['events'].values()):,} events, "
        f"{sum(c['invalid'].values()):,} invalid, {c['duplicates']:,} duplicate, "
        f"{c['late']:,} late, {c['folded']:,} slice updates folded, "
        f"{c['alert_records']} alert records ({c['episodes']} episodes)", markup=False)
    return 0


class DeadLetterFile:
    """Dead letters as JSONL (the file stand-in for the dead_letters topic)."""

    def __init__(self, path: Path | None) -> None:
        import orjson

        self._dumps = orjson.dumps
        self._fh = path.open("wb") if path else None

    def write(self, dl: object) -> None:
        if self._fh is not None:
            self._fh.write(self._dumps(dl.to_json()) + b"\n")  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def cmd_backtest(args: argparse.Namespace) -> int:
    from stream_guard.backtest.run import run_backtest

    return run_backtest(args, out)


def cmd_alerts(args: argparse.Namespace) -> int:
    """`alerts list|show`: episodes from the alerts topic (or dump files), as a table or JSON."""
    from stream_guard.alert.history import group_episodes

    try:
        episodes = group_episodes(_alert_history(args))
    except (StreamGuardError, OSError) as exc:
        console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        return 1
    if args.alerts_command == "list":
        return _alerts_list(args, episodes)
    return _alerts_show(args, episodes)


def _alert_history(args: argparse.Namespace) -> History:
    from stream_guard.alert.history import file_rows, kafka_rows, read_rows

    if args.input:
        history = read_rows(file_rows(args.input))
    else:
        from stream_guard.ingest.kafka import default_bootstrap

        history = read_rows(kafka_rows(args.bootstrap or default_bootstrap(), args.prefix))
    if history.skipped:
        console.print(f"skipped {history.skipped:,} unreadable records", markup=False)
    return history


def _alerts_list(args: argparse.Namespace, episodes: list[EpisodeHistory]) -> int:
    from stream_guard.alert.history import episode_table, filter_episodes, list_json

    found = filter_episodes(episodes, _since_ms(args), args.metric, args.status)
    if args.json:
        sys.stdout.write(list_json(found).decode() + "\n")
    else:
        out.print(episode_table(found))
    return 0


def _alerts_show(args: argparse.Namespace, episodes: list[EpisodeHistory]) -> int:
    from stream_guard.alert.history import find_episode, show_json, timeline_table

    episode = find_episode(episodes, args.episode)
    if episode is None:
        console.print(Text.assemble(("error: ", "bold red"), f"no episode {args.episode!r} "
                                    "(or several whose id starts with it)"), soft_wrap=True)
        return 1
    if args.json:
        sys.stdout.write(show_json(episode).decode() + "\n")
    else:
        out.print(timeline_table(episode))
    return 0


def _since(text: str) -> timedelta:
    from stream_guard.config.durations import parse_duration

    try:
        return parse_duration(text, low=timedelta(seconds=1))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _instant(text: str) -> int:
    from stream_guard.ingest.schema import parse_event_time

    try:
        return parse_event_time(text)
    except StreamGuardError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_alerts(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alerts = sub.add_parser("alerts", help="alert history: episodes from the alerts topic or a "
                                           "file (stream-guard dump --topic alerts)")
    actions = alerts.add_subparsers(dest="alerts_command", required=True)
    listing = actions.add_parser("list", help="episodes, most recently updated first")
    _add_period(listing)
    listing.add_argument("--metric", default=None, help="only episodes of this metric")
    listing.add_argument("--status", choices=["firing", "resolved", "silenced"], default=None,
                         help="only episodes whose last record has this status")
    show = actions.add_parser("show", help="one episode's records, acks, snoozes and feedback")
    show.add_argument("episode", help="episode id (or a prefix only one id starts with)")
    for parser in (listing, show):
        _add_history_source(parser)
        parser.set_defaults(func=cmd_alerts)


def _add_period(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=_since, default=None, metavar="DURATION",
                        help="only episodes updated in the last DURATION (30m, 24h, 7d) before "
                             "--now; default: all")
    parser.add_argument("--now", type=_instant, default=None, metavar="ISO",
                        help="the moment --since counts back from (default: the wall clock)")


def _add_history_source(parser: argparse.ArgumentParser) -> None:
    """--input / --bootstrap / --prefix: where the alerts and control topics are read from."""
    parser.add_argument("--input", type=Path, action="append", default=None,
                        metavar="FILE", help="alerts JSONL or record dump, e.g. of "
                        "`dump --topic alerts --topic control` (repeatable); default: Kafka")
    parser.add_argument("--bootstrap", default=None,
                        help="Kafka bootstrap servers (default: $STREAM_GUARD_BROKER or "
                             "127.0.0.1:9092)")
    parser.add_argument("--prefix", default="", help="prefix of every topic name")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")


def _since_ms(args: argparse.Namespace) -> int | None:
    """The start of the period `--since` / `--now` give; None for all time."""
    from stream_guard.clock import SystemClock

    now_ms = args.now if args.now is not None else SystemClock().now_ms()
    return now_ms - args.since // timedelta(milliseconds=1) if args.since else None


def cmd_feedback(args: argparse.Namespace) -> int:
    """`feedback report`: each rule's precision from the analysts' answers."""
    from stream_guard.alert.feedback import precision_by_rule, precision_table
    from stream_guard.alert.history import filter_episodes, group_episodes
    from stream_guard.config.durations import format_duration

    try:
        history = _alert_history(args)
    except (StreamGuardError, OSError) as exc:
        console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        return 1
    since_ms = _since_ms(args)
    episodes = {e.episode_id: e.last.metric
                for e in filter_episodes(group_episodes(history), since_ms)}
    answers = [f for f in history.feedback.values()
               if f.episode_id in episodes or since_ms is None or f.at_ms >= since_ms]
    rows = precision_by_rule(episodes, answers)
    if args.json:
        import orjson

        data = [r.to_dict() for r in rows]
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        period = f"the last {format_duration(args.since)}" if args.since else "all time"
        out.print(precision_table(rows, f"precision from analysts' answers, {period}"))
    return 0


def _add_feedback(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    feedback = sub.add_parser("feedback", help="analysts' answers (Real issue / False alarm)")
    actions = feedback.add_subparsers(dest="feedback_command", required=True)
    report = actions.add_parser("report", help="each rule's precision: real / judged episodes")
    _add_period(report)
    _add_history_source(report)
    report.set_defaults(func=cmd_feedback)


def package_version() -> str:
    """The installed distribution's version; the source tree's, marked so, when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stream-guard")
    except PackageNotFoundError:
        from stream_guard import __version__

        return f"{__version__} (not installed)"


def build_parser(plugins: bool = True) -> argparse.ArgumentParser:
    """The whole command line; with `plugins` False only the core commands (rules, replay,
    backtest, alerts), without importing the plugin modules (Kafka, numpy, the runtime...)."""
    parser = argparse.ArgumentParser(prog="stream-guard", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--topics-dir", type=Path, default=None, help="topic definitions")
    sub = parser.add_subparsers(dest="command", required=True)

    rules = sub.add_parser("rules", help="validate, list, describe or test metric definitions",
                           epilog="rules test RULE.yaml --input DUMP: what the rule would have "
                                  "raised (episodes per day with their slices, a plot)")
    rules.add_argument("rules_command", choices=["validate", "list", "schema", "test"])
    rules.add_argument("dir", nargs="?", default=None,
                       help="rules directory (alert_rules/); for `test`, the rule's file")
    rules.add_argument("--input", type=Path, action="append", default=None, metavar="FILE",
                       help="test: record dump or per-topic JSONL to replay (repeatable)")
    rules.add_argument("--plot", type=Path, default=None, metavar="PNG",
                       help="test: where the plot goes (default: <metric>-rule-test.png)")
    rules.add_argument("--json", action="store_true", help="test: JSON instead of a table")
    rules.set_defaults(func=cmd_rules)

    rp = sub.add_parser("replay", help="replay record dumps or per-topic JSONL through the engine")
    rp.add_argument("--rules", default=None, help="rules directory (alert_rules/)")
    rp.add_argument("--input", action="append", required=True, help="input file (repeatable)")
    rp.add_argument("--output", default=None, help="alerts JSONL")
    rp.add_argument("--dead-letters", default=None, help="dead letters JSONL")
    rp.add_argument("--summary", default=None,
                    help="JSON summary: events, invalid per reason, duplicates, late, folded")
    rp.add_argument("--quiet", action="store_true", help="no progress bar, no alert panels")
    rp.set_defaults(func=cmd_replay)

    bt = sub.add_parser("backtest", help="replay + precision/recall/delay against labels")
    bt.add_argument("--input", action="append", required=True, help="input file (repeatable)")
    labels = bt.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help="labels.json of known incidents")
    labels.add_argument("--feedback", type=Path, action="append", metavar="DUMP",
                        help="labels from analysts' answers: a dump of the alerts and control "
                             "topics (repeatable); episodes nobody judged are left out")
    bt.add_argument("--rules", action="append", default=None,
                    help="rules directory; repeat to compare configurations side by side (one "
                         "report directory each, and a diff of their episodes against the first)")
    bt.add_argument("--detector", action="append", default=None, metavar="METRIC=TYPE[,k=v]",
                    help="override a metric's detector in every configuration; values are YAML, "
                         "e.g. gmv=seasonal,horizons=[1,2,4],alpha=0.1")
    bt.add_argument("--out", default=None, help="report directory (JSON, Markdown, PNG plots)")
    bt.add_argument("--quiet", action="store_true", help="no progress bar")
    bt.set_defaults(func=cmd_backtest)
    _add_alerts(sub)
    _add_feedback(sub)

    for hook in _plugin_hooks() if plugins else []:
        hook(sub)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand `argv` names, read without a parser (None before it, e.g. ``--help``)."""
    args = iter(argv)
    for arg in args:
        if arg == "--topics-dir":
            next(args, None)
        elif not arg.startswith("-"):
            return arg
        elif not arg.startswith("--topics-dir="):
            return None
    return None


def _plugin_hooks() -> list[Callable[[argparse._SubParsersAction], None]]:
    from stream_guard.alert.silence_cli import register as silence_cli
    from stream_guard.ingest.kafka_cli import add_cli as kafka_cli
    from stream_guard.runtime.cli import add_cli as runtime_cli
    from stream_guard.simulate.cli import add_cli as simulate_cli

    return [simulate_cli, kafka_cli, runtime_cli, silence_cli]


def main(argv: list[str] | None = None) -> int:
    # `rules` starts fast: the plugin commands import Kafka, numpy and the Faust runtime.
    fast = _command(sys.argv[1:] if argv is None else argv) == "rules"
    args = build_parser(plugins=not fast).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        # the message quotes the user's files: printed as text, never as rich markup
        console.print(Text.assemble(("configuration error: ", "bold red"), str(exc)),
                      highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
