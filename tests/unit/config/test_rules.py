"""Rule files: the shipped ones load; each broken one is refused with file, field and reason.

Each file of bad_rules/ starts with ``# error: <the exact message>``, paths relative to this
directory; a message ending in ``...`` is a prefix (the rest lists things that change, such as
the known detector types).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from stream_guard.cli import main
from stream_guard.config.errors import ConfigErrors
from stream_guard.config.rules import MetricRule, load_rule, load_rules
from stream_guard.config.topics import TopicSpec
from stream_guard.errors import ConfigError
from tests.conftest import REPO

BAD = Path(__file__).parent / "bad_rules"


def test_shipped_rules_have_the_four_metrics(rules: list[MetricRule]) -> None:
    by_name = {r.metric: r for r in rules}
    assert set(by_name) == {"gmv", "complaint_rate", "violation_rate",
                            "bad_seller_onboarding_rate"}
    assert by_name["gmv"].direction == "both" and by_name["gmv"].pairs == [
        ("region", "payment_method")]
    # a drop of violations is an enforcement outage, of complaints an intake outage (the rate
    # test's numerator guard tells it from an order flood: alert_rules/complaint_rate.yaml)
    assert {m: r.direction for m, r in by_name.items() if m != "gmv"} == {
        "complaint_rate": "both", "violation_rate": "both", "bad_seller_onboarding_rate": "up"}
    onboarding = by_name["bad_seller_onboarding_rate"]
    assert onboarding.numerator and onboarding.numerator.where == {
        "decision": "approved", "flagged_bad": True}


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_rule_file_is_refused_with_file_field_and_reason(
    path: Path, topics: dict[str, TopicSpec]
) -> None:
    # Bytes: one golden file is not UTF-8 past its first line.
    expected = path.read_bytes().split(b"\n")[0].decode().removeprefix("# error: ")
    with pytest.raises(ConfigError) as err:
        load_rule(path, topics)
    message = str(err.value).replace(str(BAD.parent) + "/", "")
    if expected.endswith("..."):
        assert message.startswith(expected.removesuffix("..."))
    else:
        assert message == expected


def test_a_byte_order_mark_is_fine(tmp_path: Path, topics: dict[str, TopicSpec]) -> None:
    path = tmp_path / "gmv.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (REPO / "alert_rules" / "gmv.yaml").read_bytes())
    assert load_rule(path, topics).metric == "gmv"


def test_bounds_a_real_rule_uses_are_accepted(topics: dict[str, TopicSpec]) -> None:
    text = (BAD / "negative_lateness.yaml").read_text().split("\n", 1)[1]
    for window, lateness in [("1s", "0s"), ("1.5s", "1d"), ("15m", 600), ("1d", "2h"), ("7d", 0)]:
        rule = MetricRule.model_validate(
            {**yaml.safe_load(text), "window": window, "lateness": lateness}
        )
        rule.check_against(topics)


def test_every_broken_file_of_a_directory_is_reported(
    tmp_path: Path, topics: dict[str, TopicSpec]
) -> None:
    for name in ("duplicate_pair", "negative_lateness", "empty"):
        shutil.copy(BAD / f"{name}.yaml", tmp_path / f"{name}.yaml")
    shutil.copy(REPO / "alert_rules" / "gmv.yaml", tmp_path / "gmv.yaml")
    (tmp_path / "x.yaml").mkdir()
    with pytest.raises(ConfigErrors) as err:
        load_rules(tmp_path, topics)
    assert [p.split(": ", 2)[:2] for p in err.value.problems] == [
        [str(tmp_path / "duplicate_pair.yaml"), "pairs"],
        [str(tmp_path / "empty.yaml"), "(top level)"],
        [str(tmp_path / "negative_lateness.yaml"), "lateness"],
        [str(tmp_path / "x.yaml"), "is a directory, not a file"],
    ]


def test_duplicate_metric_and_undefined_route_are_refused(
    tmp_path: Path, topics: dict[str, TopicSpec]
) -> None:
    shutil.copy(REPO / "alert_rules" / "gmv.yaml", tmp_path / "a.yaml")
    shutil.copy(REPO / "alert_rules" / "gmv.yaml", tmp_path / "b.yaml")
    with pytest.raises(ConfigError, match=r"b.yaml: metric: 'gmv' is already defined in .*a.yaml"):
        load_rules(tmp_path, topics)
    (tmp_path / "b.yaml").unlink()
    with pytest.raises(ConfigError, match="undefined route 'commerce-oncall' used in metric 'gmv'"):
        load_rules(tmp_path, topics, routes={"default"})


def test_cli_validate_reports_errors_with_exit_code_2(tmp_path: Path, capsys) -> None:
    shutil.copy(BAD / "unknown_key.yaml", tmp_path / "gmv.yaml")
    assert main(["rules", "validate", str(tmp_path)]) == 2
    assert "windw: Extra inputs are not permitted" in capsys.readouterr().err
    assert main(["rules", "validate", str(REPO / "alert_rules")]) == 0


def test_committed_json_schema_is_current() -> None:
    import orjson

    committed = orjson.loads((REPO / "alert_rules" / "metric-rule.schema.json").read_bytes())
    assert committed == MetricRule.model_json_schema(by_alias=True)
