"""Link templates: checked at rule load (file, field, reason), filled in percent-encoded."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_guard.config.links import check_template, expand
from stream_guard.config.rules import load_rule
from stream_guard.config.topics import load_topics
from stream_guard.errors import ConfigError
from tests.conftest import REPO


@pytest.mark.parametrize(("template", "reason"), [
    ("https://g/d?x={seller}", "unknown placeholder {seller}"),
    ("https://g/d?x={metric.__class__}", "unknown placeholder {metric.__class__}"),
    ("https://g/d?x={metric!r}", "unknown placeholder {metric!r}"),
    ("https://g/d?x={metric:10}", "unknown placeholder {metric:10}"),
    ("https://g/d?x={dim:}", "unknown placeholder {dim}"),
    ("https://g/d?x={metric", "expected '}'"),
    ("https://{slice}.evil/", "scheme or host"),
    ("{metric}://g/d", "not an http(s) URL"),
    ("javascript:alert(1)", "not an http(s) URL"),
    ("https://g/d?x={metric}|<!here>", "not allowed in a link"),
    ("https://g/d x", "not allowed in a link"),
    ("https://user@g/d", "not a plain host"),
])
def test_bad_templates_are_refused_with_the_reason(template: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        check_template(template)
    assert reason in str(info.value)


def test_plain_urls_and_literal_braces_are_fine() -> None:
    for url in ("https://wiki.example.com/runbooks/gmv", "http://g:3000/d/x?a=1&b={{x}}"):
        assert check_template(url) == url
    assert expand("http://g:3000/d/x?a={{x}}&m={metric}", "gmv", {}) == (
        "http://g:3000/d/x?a={x}&m=gmv")


def test_values_are_percent_encoded_and_missing_dimensions_empty() -> None:
    url = expand("https://g/d/{metric}?s={slice}&r={dim:region}&c={dim:category}&e={episode_id}",
                 "gmv", {"region": "EU & <NA>", "tier": "new"}, "gmv-1/2")
    assert url == ("https://g/d/gmv?s=region%3DEU%20%26%20%3CNA%3E%2C%20tier%3Dnew"
                   "&r=EU%20%26%20%3CNA%3E&c=&e=gmv-1%2F2")


def test_a_rule_with_a_bad_template_is_refused_with_file_field_and_reason(tmp_path: Path) -> None:
    text = (REPO / "alert_rules" / "gmv.yaml").read_text()
    bad = tmp_path / "gmv.yaml"
    bad.write_text(text.replace("dashboard: https://grafana.example.com/d/stream-guard/gmv",
                                'dashboard: "https://grafana/d/x?var-seller={seller_id}"'))
    with pytest.raises(ConfigError) as info:
        load_rule(bad, load_topics())
    assert str(info.value).startswith(f"{bad}: dashboard: ")
    assert "unknown placeholder {seller_id}" in str(info.value)
