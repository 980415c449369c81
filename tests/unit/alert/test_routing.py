"""Route matching and group keys (the file format is tested in tests/unit/config)."""

from __future__ import annotations

from stream_guard.alert.routing import AlertLabels, Matcher, Route, RouteTree, group_key


def test_matchers_combine_with_and() -> None:
    matcher = Matcher(
        metric=frozenset({"gmv"}),
        severity=frozenset({"critical"}),
        slice={"region": frozenset({"EU"})},
    )
    assert matcher.matches(AlertLabels("gmv", "critical", {"region": "EU", "channel": "app"}))
    assert not matcher.matches(AlertLabels("gmv", "warning", {"region": "EU"}))
    assert not matcher.matches(AlertLabels("gmv", "critical", {}))
    assert Matcher().matches(AlertLabels("anything", "info", {}))


def test_nested_match_falls_back_to_the_deepest_matching_node() -> None:
    leaf = Route("eu", "#eu", Matcher(slice={"region": frozenset({"EU"})}))
    mid = Route("gmv", "#gmv", Matcher(metric=frozenset({"gmv"})), children=(leaf,))
    tree = RouteTree(Route("root", "#root", children=(mid,)))
    names = lambda **s: [r.name for r in tree.match(AlertLabels("gmv", "warning", s))]  # noqa: E731
    assert names(region="EU") == ["eu"]
    assert names(region="US") == ["gmv"]
    assert [r.name for r in tree.walk()] == ["root", "gmv", "eu"]
    assert "eu" in tree and "nope" not in tree


def test_group_key_uses_group_by_labels_and_the_episode() -> None:
    route = Route("r", "#r", group_by=("metric", "region", "missing"))
    labels = AlertLabels("gmv", "warning", {"region": "EU", "category": "toys"})
    assert group_key(route, labels, "ep-1") == "metric=gmv,region=EU|ep-1"
