"""routes.yaml: the shipped file, inheritance, and golden bad files with their exact errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from stream_guard.alert.routing import AlertLabels, RouteTree
from stream_guard.config.routes import load_routes
from stream_guard.errors import ConfigError

SHIPPED = Path(__file__).parents[3] / "alert_rules" / "routes.yaml"


def destinations(
    tree: RouteTree, metric: str, severity: str = "warning", entry: str | None = None, **slice_: str
) -> list[tuple[str, str]]:
    return [(r.name, r.channel) for r in tree.match(AlertLabels(metric, severity, slice_), entry)]


def test_shipped_routes() -> None:
    tree = load_routes(SHIPPED)
    assert tree.names() == {
        "default",
        "commerce-oncall",
        "trust-safety",
        "trust-safety-page",
        "trust-safety-team",
    }
    assert destinations(tree, "gmv") == [("commerce-oncall", "#commerce-oncall")]
    assert destinations(tree, "orders_per_minute") == [("default", "#stream-guard-alerts")]
    assert destinations(tree, "complaint_rate") == [("trust-safety-team", "#trust-safety-alerts")]
    for metric in ("complaint_rate", "violation_rate", "bad_seller_onboarding_rate"):
        assert destinations(tree, metric, "critical") == [
            ("trust-safety-page", "#trust-safety-page"),
            ("trust-safety-team", "#trust-safety-alerts"),
        ]
    # A rule naming a route enters there: its own matchers are not checked.
    assert destinations(tree, "gmv", "critical", entry="trust-safety") == [
        ("trust-safety-page", "#trust-safety-page"),
        ("trust-safety-team", "#trust-safety-alerts"),
    ]


def test_inheritance_of_channel_group_by_and_repeat_interval() -> None:
    tree = load_routes(SHIPPED)
    team, page = tree.get("trust-safety-team"), tree.get("trust-safety-page")
    assert team.channel == "#trust-safety-alerts"
    assert team.repeat_interval == timedelta(hours=4)
    assert page.repeat_interval == timedelta(hours=1)
    assert team.group_by == page.group_by == ("metric",)
    assert tree.get("commerce-oncall").repeat_interval == timedelta(hours=2)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return path


def test_slice_matchers_and_defaults(tmp_path: Path) -> None:
    tree = load_routes(
        write(
            tmp_path,
            """
route:
  name: root
  channel: C0123ABC
  routes:
    - name: eu
      match: {slice: {region: [EU, UK]}}
      channel: "#eu"
""",
        )
    )
    assert destinations(tree, "gmv", region="UK") == [("eu", "#eu")]
    assert destinations(tree, "gmv", region="US") == [("root", "C0123ABC")]
    assert destinations(tree, "gmv") == [("root", "C0123ABC")]
    assert tree.root.repeat_interval == timedelta(hours=4)
    assert tree.root.group_by == ("metric",)


def test_first_match_wins_unless_continue(tmp_path: Path) -> None:
    text = """
route:
  name: root
  channel: "#root"
  routes:
    - {name: a, match: {metric: gmv}, channel: "#a", continue: %s}
    - {name: b, match: {metric: gmv}, channel: "#b"}
"""
    assert destinations(load_routes(write(tmp_path, text % "false")), "gmv") == [("a", "#a")]
    both = destinations(load_routes(write(tmp_path, text % "true")), "gmv")
    assert both == [("a", "#a"), ("b", "#b")]


ROOT = "route:\n  name: root\n  channel: '#root'\n"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            ROOT + "  routes:\n    - {name: a, repeat_interval: 4x}\n",
            "route.routes.0.repeat_interval: Value error, '4x' is not a duration",
        ),
        (
            ROOT + "  routes:\n    - {name: a, repeat_interval: 0s}\n",
            "route.routes.0.repeat_interval: Value error, must be between 1m and 30d, not '0s'",
        ),
        (ROOT + "  recievers: []\n", "route.recievers: Extra inputs are not permitted"),
        (
            ROOT + "  routes:\n    - {name: a, match: {region: EU}}\n",
            "route.routes.0.match.region: Extra inputs are not permitted",
        ),
        (
            ROOT + "  routes:\n    - {name: a}\n    - {name: a}\n",
            "route.routes.1.name: duplicate route name 'a' (first at route.routes.0)",
        ),
        (
            "route:\n  name: root\n",
            "route.channel: the root route needs a channel",
        ),
        (
            ROOT + "  match: {metric: gmv}\n",
            "route.match: the root route matches every alert",
        ),
        (ROOT + "  continue: true\n", "route.continue: not allowed on the root route"),
        (
            ROOT + "  routes:\n    - {name: a, channel: 'general'}\n",
            "route.routes.0.channel: String should match pattern",
        ),
        (
            ROOT + "  group_by: [severity]\n",
            "route.group_by: Value error, severity changes during an episode",
        ),
        (ROOT + "  name: other\n", "not valid YAML: duplicate key 'name' (line 4, column 3)"),
        (ROOT + "  repeat_interval: .inf\n", "route.repeat_interval: Value error, must be between"),
        ("", "(top level): the file is empty; expected a mapping with the root route"),
        ("- route\n", "(top level): expected a mapping with the root route under `route`"),
        (ROOT.replace("root", "Bad Name", 1), "route.name: String should match pattern"),
        ("routes: []\n", "route: Field required"),
        ("route: [\n", "not valid YAML"),
    ],
)
def test_bad_files_name_file_field_and_reason(tmp_path: Path, text: str, error: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_routes(path)
    assert str(info.value).startswith(f"{path}: ")
    assert error in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file or directory"):
        load_routes(tmp_path / "nope.yaml")


def test_shipped_rules_name_defined_routes() -> None:
    from stream_guard.config.rules import load_rules
    from stream_guard.config.topics import load_topics

    repo = SHIPPED.parents[1]
    names = load_routes(SHIPPED).names()
    rules = load_rules(repo / "alert_rules", load_topics(repo / "topics"), routes=names)
    assert {rule.alert.route for rule in rules} <= names


INHIBIT_ROUTES = """
route:
  name: default
  channel: "#alerts"
inhibit_rules:
  - name: gmv-outage
    source_match: {metric: gmv, severity: critical}
    target_match: {metric: complaint_rate}
    equal: [region]
"""


def test_inhibit_rules_follow_the_built_in_one(tmp_path: Path) -> None:
    from stream_guard.alert.inhibit import CRITICAL_OVER_WARNING

    rules = load_routes(write(tmp_path, INHIBIT_ROUTES)).inhibit_rules
    assert [r.name for r in rules] == [CRITICAL_OVER_WARNING.name, "gmv-outage"]
    assert rules[1].equal == ("region",)
    assert rules[1].inhibits(AlertLabels("gmv", "critical", {"region": "EU"}),
                             AlertLabels("complaint_rate", "warning", {"region": "EU"}))
    assert load_routes(SHIPPED).inhibit_rules == (CRITICAL_OVER_WARNING,)


@pytest.mark.parametrize(("rule", "error"), [
    ("{name: x, target_match: {metric: gmv}}", "inhibit_rules.0.source_match"),
    ("{name: x, source_match: {}}", "an empty source matcher"),
    ("{name: x, source_match: {metric: gmv}, equal: [Region]}", "inhibit_rules.0.equal.0"),
    ("{name: x, source_match: {metric: gmv}, surce: 1}", "inhibit_rules.0.surce"),
    ("{name: critical-over-warning, source_match: {metric: gmv}}", "duplicate inhibit rule"),
])
def test_bad_inhibit_rules_are_refused_with_field_and_reason(
    tmp_path: Path, rule: str, error: str
) -> None:
    text = 'route: {name: default, channel: "#a"}\ninhibit_rules: [' + rule + "]\n"
    with pytest.raises(ConfigError, match=r"routes\.yaml") as exc:
        load_routes(write(tmp_path, text))
    assert error in str(exc.value)
