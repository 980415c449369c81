"""docker-compose.yml, the Dockerfile and deploy/ cannot run here (no Docker engine): these tests
keep them consistent with each other and with the code: ports, listeners, names, env vars."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream_guard.observability import RuntimeMetrics
from tests.conftest import REPO

WORKER_ENV = {
    "STREAM_GUARD_BROKER", "STREAM_GUARD_TOPIC_PREFIX", "STREAM_GUARD_RULES", "STREAM_GUARD_STORE",
    "STREAM_GUARD_METRICS_PORT", "STREAM_GUARD_WEB_PORT", "STREAM_GUARD_DATA_DIR",
    "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "STREAM_GUARD_SLACK_BASE_URL",
}
SECRETS = {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"}
ENV_NAME = re.compile(r"""["'](STREAM_GUARD_[A-Z0-9_]+|SLACK_[A-Z0-9_]+)["']""")
METRIC_NAME = re.compile(r"\bstream_guard_[a-z_]+")
DOCS = REPO / "docs" / "observability.md"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    services: dict[str, Any] = compose["services"]
    return services


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def _listeners(value: str) -> dict[str, str]:
    """'NAME://host:port,...' → {NAME: 'host:port'}."""
    return dict(item.split("://", 1) for item in value.split(","))


def test_the_stack_and_its_start_order(services: dict[str, Any]) -> None:
    assert set(services) == {"kafka", "topics", "worker", "ingress", "prometheus", "grafana"}
    worker = services["worker"]
    assert worker["command"] == ["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["depends_on"] == {"kafka": {"condition": "service_healthy"},
                                    "topics": {"condition": "service_completed_successfully"}}
    assert services["topics"]["command"][:2] == ["topics", "create"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "ports" not in worker  # replicas cannot share host ports


def test_worker_environment_is_complete_and_secrets_come_from_the_environment(
    services: dict[str, Any],
) -> None:
    env = _env(services["worker"])
    assert set(env) == WORKER_ENV
    for name in SECRETS:
        assert env[name] == f"${{{name}:-}}", f"{name} must come from the environment"


def test_kafka_kraft_listeners_are_consistent(services: dict[str, Any]) -> None:
    env = _env(services["kafka"])
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]

    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert set(listeners) == set(protocols)
    assert controller in listeners and controller not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    voter_id, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert voter_id == env["KAFKA_NODE_ID"]
    assert voter == f"kafka:{listeners[controller].rsplit(':', 1)[1]}"
    assert env["CLUSTER_ID"]

    broker = _env(services["worker"])["STREAM_GUARD_BROKER"].removeprefix("kafka://")
    assert broker in advertised.values()
    topics_cmd = services["topics"]["command"]
    assert topics_cmd[topics_cmd.index("--bootstrap") + 1] == broker
    host_ports = {p.split(":")[0] for p in services["kafka"]["ports"]}
    assert {a.rsplit(":", 1)[1] for a in advertised.values() if a.startswith("localhost:")} == (
        host_ports)


def test_prometheus_scrapes_every_worker_on_its_metrics_port(services: dict[str, Any]) -> None:
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "stream-guard")
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["type"] == "A"
    assert str(sd["port"]) == _env(services["worker"])["STREAM_GUARD_METRICS_PORT"]


def test_grafana_dashboards_use_the_provisioned_datasource_and_existing_metrics() -> None:
    (source,) = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    exported = _exported_families()
    used: dict[str, set[str]] = {}
    for path in sorted((REPO / "deploy/grafana/dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        variables = dashboard.get("templating", {}).get("list", [])
        for item in [*dashboard["panels"], *(v for v in variables if "datasource" in v)]:
            assert item["datasource"]["uid"] == source["uid"], (path.name, item.get("title"))
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        used[path.stem] = {_family(n) for e in exprs for n in METRIC_NAME.findall(e)}
        assert used[path.stem] <= exported, f"{path.name} queries unknown metrics"
    assert {"stream_guard_events", "stream_guard_events_invalid", "stream_guard_events_late",
            "stream_guard_processing_lag_seconds", "stream_guard_alert_latency_seconds",
            "stream_guard_alerts"} <= used["stream-guard"]
    assert {"stream_guard_metric_value", "stream_guard_metric_expected",
            "stream_guard_open_episodes"} <= used["stream-guard-business"]


def test_every_exported_metric_and_env_var_is_documented() -> None:
    docs = DOCS.read_text()
    for family in _exported_families():
        assert f"`{family}" in docs, f"{family} is not in {DOCS.name}"
    for name in _env_read_by_the_package() | WORKER_ENV:
        assert f"`{name}`" in docs, f"{name} is not in {DOCS.name}"


def test_compose_sets_only_variables_the_package_reads() -> None:
    """A typo in docker-compose.yml would silently leave a setting at its default."""
    assert _env_read_by_the_package() >= WORKER_ENV


def test_dockerfile_builds_from_what_dockerignore_lets_in() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    allowed = {line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    copied = [src for line in dockerfile.splitlines() if line.startswith("COPY ")
              for src in line.split()[1:-1]]
    assert copied and set(copied) <= allowed
    assert all((REPO / src).exists() for src in copied)
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M), "the image must not run as root"
    assert "rocksdict" in dockerfile
    assert 'ENTRYPOINT ["stream-guard"]' in dockerfile


def _env_read_by_the_package() -> set[str]:
    return {name for path in (REPO / "stream_guard").rglob("*.py")
            for name in ENV_NAME.findall(path.read_text())}


def _exported_families() -> set[str]:
    families = {f.name for f in RuntimeMetrics().registry.collect()}
    return {name for name in families if name.startswith("stream_guard_")}


def _family(sample: str) -> str:
    """A sample name's family: counters lose `_total`, histograms `_bucket`/`_sum`/`_count`."""
    return re.sub(r"_(total|bucket|sum|count)$", "", sample)


def test_yaml_files_under_deploy_parse() -> None:
    paths = list((REPO / "deploy").rglob("*.yml"))
    assert paths
    for path in paths:
        assert isinstance(yaml.safe_load(Path(path).read_text()), dict), path


INGRESS = REPO / "deploy" / "ingress" / "slack.conf"


def _directives(conf: str) -> list[list[str]]:
    """nginx directives as word lists (comments dropped; blocks' braces kept as words)."""
    text = re.sub(r"#[^\n]*", "", conf).replace("{", " { ;").replace("}", " } ;")
    return [d.split() for d in text.split(";") if d.split()]


def test_the_ingress_forwards_only_the_interactivity_path_to_every_worker(
    services: dict[str, Any],
) -> None:
    """`--scale worker=N` needs no change: the workers publish no port and Slack's one request
    URL reaches any of them through the ingress, which resolves the service name per request."""
    from stream_guard.runtime.notifier import NotifierSettings
    from stream_guard.sinks.interactivity import MAX_BODY

    ingress = services["ingress"]
    assert len(ingress["ports"]) == 1 and ingress["ports"][0].endswith(":8080")
    assert ingress["volumes"] == ["./deploy/ingress/slack.conf:/etc/nginx/conf.d/default.conf:ro"]
    words = _directives(INGRESS.read_text())
    web_port = _env(services["worker"])["STREAM_GUARD_WEB_PORT"]
    path = NotifierSettings.__dataclass_fields__["interactivity_path"].default
    assert ["set", "$workers", "worker"] in words  # the compose service: every replica
    assert ["resolver", "127.0.0.11", "valid=10s", "ipv6=off"] in words
    assert ["listen", "8080"] in words
    assert ["client_max_body_size", f"{MAX_BODY // 1024}k"] in words
    proxied = [w for w in words if w[0] == "proxy_pass"]
    assert proxied == [["proxy_pass", f"http://$workers:{web_port}"]]
    locations = [w[1:-1] for w in words if w[0] == "location"]
    assert locations == [["=", path], ["/"]]  # everything else: 404
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]


@pytest.mark.skipif(shutil.which("nginx") is None,
                    reason="nginx not installed (Debian's nginx-light): syntax not checked")
def test_the_ingress_config_is_valid_nginx(tmp_path: Path) -> None:
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
                    f"events {{}}\nhttp {{ access_log off; include {INGRESS}; }}\n")
    done = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(main)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
