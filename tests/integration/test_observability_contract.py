"""Observability that is true (issue 11, item 7): every series docs/observability.md documents and
every series the Grafana dashboards (operations and business) query is produced by a running
worker.

One `stream-guard worker` (with the Slack notifier, against the fake Slack) is fed a small
simulated dump that closes windows and raises a gmv warning episode, plus a few duplicates and
one late event. Its /metrics, scraped over HTTP, must then hold samples of every documented name
and every name a dashboard or documented expression reads, with every label the expressions
group or match by, and a series at 0 for every label set the configuration allows (a dashboard
shows 0, not "No data"). Where a `prometheus` binary is on PATH (Debian: `apt-get install
prometheus`), a real Prometheus scrapes the worker every second and every dashboard and
documented expression is evaluated through its HTTP API.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream_guard.broker import free_port
from stream_guard.config.rules import MetricRule
from stream_guard.config.topics import TopicSpec
from stream_guard.ingest.codec import Codec
from stream_guard.ingest.files import iter_dump
from stream_guard.ingest.kafka_produce import produce_dump
from stream_guard.ingest.kafka_topics import create_topics
from stream_guard.runtime.local import LocalWorker, wait_for
from stream_guard.simulate.simulation import Simulation, SimulationConfig
from tests.conftest import REPO
from tests.fakes.slack_server import FAKE_TOKEN, FakeSlack

pytestmark = pytest.mark.integration

DOC = REPO / "docs" / "observability.md"
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
"""The operations dashboard (stream-guard.json) and the business one (stream-guard-business)."""
LABEL_VALUES = re.compile(r"label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)")
SIMULATION = SimulationConfig(days=3, seed=3, scale=0.05)
"""~23k records whose replay closes windows of every metric and raises a gmv warning episode
(firing, then resolved)."""
DUPLICATES = 3  # orders sent twice in a row
IDLE_AFTER_S = 2.0  # the last windows close this long after the dump is consumed
READY_S = 60.0  # worker start, group join, the whole dump consumed and scored
PROMETHEUS_S = 30.0  # Prometheus up and holding enough scrapes for every range
SCRAPE_S = 1
SCRAPES = 4  # before evaluating: every range below holds at least two
GRAFANA_VARIABLES = {"__rate_interval": "10s", "__interval": "1s", "__range": "1m",
                     "__interval_ms": "1000", "__range_s": "60"}
"""Grafana's built-in variables as it would set them for a 1 s scrape interval (a rate interval
of 4 scrapes at least) and a one-minute dashboard range."""
NAME = re.compile(r"\bstream_guard_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
INSTALL_HINT = ("no `{tool}` on PATH: install Debian's prometheus package (`apt-get install -y "
                "--no-install-recommends prometheus`, ~7 s, 22 MB) to {purpose}")

Series = dict[str, dict[frozenset[tuple[str, str]], float]]
"""Sample name -> its samples (label set -> value), as a scrape holds them."""


@dataclass(frozen=True)
class Expr:
    """One PromQL expression and where it comes from (a dashboard panel or the doc)."""

    where: str
    promql: str
    legend: str = ""


@dataclass
class Live:
    """The running worker and its scrape once it had alerted."""

    worker: LocalWorker
    series: Series


# reading the doc and the dashboard ---------------------------------------------------------
def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_exprs() -> list[Expr]:
    """Every target expression of every panel (rows' nested panels too) and template query of
    every dashboard; Grafana's ``label_values(SERIES, LABEL)`` is read as SERIES, whose results
    must carry LABEL."""
    return [expr for path in DASHBOARDS for expr in _board_exprs(json.loads(path.read_text()))]


def _board_exprs(board: dict[str, Any]) -> list[Expr]:
    exprs = [Expr(f"panel {p.get('title')!r}", t["expr"], t.get("legendFormat", ""))
             for p in _panels(board.get("panels", [])) for t in p.get("targets", [])
             if t.get("expr")]
    for var in board.get("templating", {}).get("list", []):
        query = var.get("query")
        text = str(query.get("query") if isinstance(query, dict) else query)
        if var.get("type") == "query" and text:
            found = LABEL_VALUES.fullmatch(text.strip())
            series, legend = (found.group(1), f"{{{{{found.group(2)}}}}}") if found else (text, "")
            exprs.append(Expr(f"variable {var.get('name')!r}", series, legend))
    return exprs


def doc_names() -> set[str]:
    """Every series name the doc mentions: its metric table, its prose and its queries."""
    return set(NAME.findall(DOC.read_text()))


def doc_table() -> set[str]:
    """The names of the doc's metric table (rows starting with a `stream_guard_` name)."""
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `stream_guard_")]
    return {NAME.findall(row)[0] for row in rows}


def doc_exprs() -> list[Expr]:
    """The doc's "useful queries": the promql code blocks, one expression a line."""
    blocks = re.findall(r"```promql\n(.*?)```", DOC.read_text(), re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [Expr("docs/observability.md", line) for line in lines if line]


def label_names(promql: str) -> set[str]:
    """Label names an expression groups, joins or matches by."""
    clauses = re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)",
                         promql)
    names = {n.strip() for c in clauses for n in c.split(",") if n.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", promql):
        names |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    return names - {"__name__"}


# the scrape ------------------------------------------------------------------------------
def parse(text: str) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return series


def resolve(name: str, series: Series) -> list[dict[str, str]]:
    """The label sets a name stands for: a sample name as Prometheus stores it, or a histogram's
    family name (its _bucket, _sum and _count). A counter named without its `_total` is not
    a series and resolves to nothing."""
    names = [name] if name in series else [name + suffix for suffix in HISTOGRAM_SUFFIXES]
    return [dict(labels) for n in names for labels in series.get(n, {})]


def total(series: Series, name: str, **labels: str) -> float:
    """The sum of a sample name's values over the label sets that have `labels`."""
    return sum(value for key, value in series.get(name, {}).items() if labels.items() <= key)


# the worker ------------------------------------------------------------------------------
def _dump(path: Path) -> None:
    """The simulation, each of its first DUPLICATES orders sent twice, and one order of its first
    window again (a new event id) at the end, when that window is long closed: late."""
    records: list[dict[str, Any]] = []
    orders = 0
    for record in Simulation(SIMULATION).records():
        records.append(record)
        if record["topic"] == "orders" and orders < DUPLICATES:
            orders += 1
            records.append(record)
    first = next(r for r in records if r["topic"] == "orders")
    records.append({**first, "value": {**first["value"], "event_id": "ev-o-late"}})
    path.write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records))


def _wait(what: str, worker: LocalWorker, done: Callable[[Series], bool]) -> Series:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        assert worker.running, f"the worker exited; see {worker.log_path}"
        text = worker.metrics()
        if text and done(series := parse(text)):
            return series
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}; see {worker.log_path}")


def _alerted_and_notified(series: Series) -> bool:
    """An alert fired and was sent to Slack, the late event was counted."""
    return (total(series, "stream_guard_alerts_total", status="firing") > 0
            and total(series, "stream_guard_notifier_outcomes_total", outcome="sent") > 0
            and total(series, "stream_guard_events_late_total") > 0)


def _env(bootstrap: str, prefix: str, data: Path, slack: FakeSlack) -> dict[str, str]:
    return {
        "STREAM_GUARD_BROKER": bootstrap, "STREAM_GUARD_TOPIC_PREFIX": prefix,
        "STREAM_GUARD_APP_ID": f"{prefix}worker",
        "STREAM_GUARD_RULES": str(REPO / "alert_rules"),
        "STREAM_GUARD_TOPICS": str(REPO / "topics"),
        "STREAM_GUARD_IDLE_AFTER": f"{IDLE_AFTER_S:g}s", "STREAM_GUARD_SESSION_TIMEOUT": "6s",
        "STREAM_GUARD_STORE": "memory://", "STREAM_GUARD_DATA_DIR": str(data),
        "SLACK_BOT_TOKEN": FAKE_TOKEN, "STREAM_GUARD_SLACK_BASE_URL": slack.base_url,
    }


@pytest.fixture(scope="module")
def live(bootstrap: str, topics: dict[str, TopicSpec],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One worker that has consumed the dump, closed windows, alerted and notified Slack; it
    runs until the module's tests are done."""
    tmp = tmp_path_factory.mktemp("observability")
    prefix = f"obs-{uuid.uuid4().hex[:8]}-"
    create_topics(bootstrap, topics.values(), prefix=prefix)
    _dump(tmp / "dump.jsonl")
    produce_dump(bootstrap, iter_dump(tmp / "dump.jsonl"), prefix=prefix)
    with FakeSlack(token=FAKE_TOKEN) as slack, \
            LocalWorker(_env(bootstrap, prefix, tmp / "data", slack), tmp / "worker.log") as worker:
        yield Live(worker, _wait("an alert sent to Slack", worker, _alerted_and_notified))


# the scrape holds what the doc and the dashboard name --------------------------------------
def test_the_scrape_holds_every_documented_series(live: Live) -> None:
    names = doc_names()
    assert len(doc_table()) >= 20, f"the doc's metric table was not found: {doc_table()}"
    missing = sorted(n for n in names if not resolve(n, live.series))
    assert missing == [], f"documented, but no sample in a running worker's scrape: {missing}"
    assert total(live.series, "stream_guard_events_duplicate_total", topic="orders") == DUPLICATES


def test_the_scrape_holds_every_series_and_label_an_expression_reads(live: Live) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 10, "the dashboard's expressions were not found"
    problems = [p for expr in [*exprs, *doc_exprs()] for p in _unmet(expr, live.series)]
    assert problems == []


def _unmet(expr: Expr, series: Series) -> list[str]:
    """What an expression reads that the scrape lacks: series, and labels on them."""
    names = sorted(set(NAME.findall(expr.promql)))
    problems = [f"{expr.where}: {n} has no sample" for n in names if not resolve(n, series)]
    present = {key for n in names for labels in resolve(n, series) for key in labels}
    legend = set(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", expr.legend))
    return problems + [f"{expr.where}: no label {label!r} on {names}"
                       for label in sorted((label_names(expr.promql) | legend) - present)]


def test_every_label_set_the_configuration_allows_is_exported(
    live: Live, rules: list[MetricRule], codec: Codec,
) -> None:
    """At 0 where nothing happened: no dropped series, no skipped window, no critical alert."""
    want = [("stream_guard_events_duplicate_total", {"topic": t}) for t in codec.event_topics]
    for rule in rules:
        m = rule.metric
        want += [("stream_guard_events_late_total", {"topic": s.topic, "metric": m})
                 for s in rule.sources]
        want += [(f"stream_guard_{n}", {"metric": m}) for n in (
            "series_dropped_total", "windows_skipped_total", "detector_score_count",
            "alert_latency_seconds_count", "late_partials_total")]
        want += [("stream_guard_alerts_total", {"metric": m, "severity": sev, "status": st})
                 for sev in ("warning", "critical") for st in ("firing", "resolved")]
        want.append(("stream_guard_partial_reports_total", {"metric": m, "outcome": "overlapping"}))
    missing = [(n, ls) for n, ls in want if frozenset(ls.items()) not in live.series.get(n, {})]
    assert missing == []


# a real Prometheus evaluates every expression ----------------------------------------------
def _prometheus_yml(path: Path, target: str) -> Path:
    path.write_text(
        f"global: {{scrape_interval: {SCRAPE_S}s, evaluation_interval: {SCRAPE_S}s}}\n"
        "scrape_configs:\n"
        f"  - job_name: stream-guard\n    static_configs: [{{targets: ['{target}']}}]\n")
    return path


def query(base: str, promql: str) -> dict[str, Any]:
    """One instant query through the HTTP API: its JSON body (errors included)."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body: dict[str, Any] = json.loads(resp.read())
    except urllib.error.HTTPError as err:  # 400/422: a bad expression, the body says why
        body = json.loads(err.read())
    return body


def _scraped(base: str) -> bool:
    try:
        body = query(base, f'count_over_time(up{{job="stream-guard"}}[1m]) >= {SCRAPES}')
    except OSError:  # not listening yet
        return False
    return body.get("status") == "success" and bool(body["data"]["result"])


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    """The `prometheus` on PATH; skips (before any worker starts) when there is none."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(INSTALL_HINT.format(
            tool="prometheus", purpose="evaluate every dashboard expression in a real Prometheus"))
    return binary


@pytest.fixture(scope="module")
def prometheus(prometheus_binary: str, live: Live,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus scraping the worker every second, once it holds SCRAPES scrapes: its URL."""
    binary = prometheus_binary
    tmp = tmp_path_factory.mktemp("prometheus")
    config = _prometheus_yml(tmp / "prometheus.yml", f"127.0.0.1:{live.worker.metrics_port}")
    address = f"127.0.0.1:{free_port()}"
    with (tmp / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address={address}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://{address}"
        ready = wait_for(lambda: proc.poll() is None and _scraped(base), PROMETHEUS_S, 0.5)
        assert ready, f"Prometheus did not scrape the worker {SCRAPES} times; see {tmp}"
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def grafana_variables() -> dict[str, str]:
    """Grafana's built-ins, and the dashboard's own variables at their current values (a
    multi-value or "All" selection as a regex matching anything)."""
    values = dict(GRAFANA_VARIABLES)
    boards = [json.loads(path.read_text()) for path in DASHBOARDS]
    for var in (v for board in boards for v in board.get("templating", {}).get("list", [])):
        current = var.get("current", {}).get("value")
        values[var["name"]] = current if isinstance(current, str) and current != "$__all" else ".*"
    return values


def concrete(promql: str, variables: dict[str, str]) -> str:
    """`$name`, `${name}` and `[[name]]` replaced by their values (longest names first)."""
    for name in sorted(variables, key=len, reverse=True):
        for form in (f"${{{name}}}", f"[[{name}]]", f"${name}"):
            promql = promql.replace(form, variables[name])
    return promql


def _filters(promql: str) -> bool:
    """A comparison without `bool` keeps only the series that pass it: empty is an answer."""
    return re.search(r"(?:[<>]=?|==|!=)\s*(?!bool\b)[\w.(]", promql) is not None


def _evaluation_problems(base: str, expr: Expr, variables: dict[str, str]) -> list[str]:
    promql = concrete(expr.promql, variables)
    if "$" in promql:
        return [f"{expr.where}: a Grafana variable is left in {promql!r}"]
    body = query(base, promql)
    if body.get("status") != "success":
        return [f"{expr.where}: {promql!r} failed: {body.get('error')}"]
    result = body["data"]["result"]
    if not result:
        return [] if _filters(promql) else [f"{expr.where}: {promql!r} returned nothing"]
    legend = set(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", expr.legend))
    return [f"{expr.where}: the legend's {{{{{label}}}}} is not on {r['metric']}"
            for r in result for label in sorted(legend - r["metric"].keys())]


def test_prometheus_evaluates_every_expression(prometheus: str, live: Live) -> None:
    exprs = [*dashboard_exprs(), *doc_exprs()]
    variables = grafana_variables()
    problems = [p for e in exprs for p in _evaluation_problems(prometheus, e, variables)]
    assert problems == []
    stored = query(prometheus, 'sum(stream_guard_events_total{job="stream-guard"})')
    assert float(stored["data"]["result"][0]["value"][1]) == total(
        parse(live.worker.metrics()), "stream_guard_events_total")


def test_the_compose_prometheus_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(INSTALL_HINT.format(
            tool="promtool", purpose="check the docker-compose Prometheus config"))
    config = REPO / "deploy" / "prometheus" / "prometheus.yml"
    checked = subprocess.run([promtool, "check", "config", str(config)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
