"""A rules directory checked as a whole, and `stream-guard rules validate` reporting every broken
file -- metric files, routes.yaml, calendar.yaml -- in one run, never with a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stream_guard.cli import main
from stream_guard.config.errors import ConfigErrors
from stream_guard.config.ruleset import check_rules_dir
from stream_guard.config.topics import TopicSpec
from tests.conftest import REPO

BAD = Path(__file__).parent / "bad_rules"


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A copy of the shipped alert_rules/."""
    return Path(shutil.copytree(REPO / "alert_rules", tmp_path / "rules"))


def break_files(directory: Path) -> list[str]:
    """Breaks routes.yaml, calendar.yaml and two metric files; the problems, in report order."""
    routes = directory / "routes.yaml"
    routes.write_text(routes.read_text().replace("repeat_interval: 2h", "repeat_interval: 0s"))
    calendar = directory / "calendar.yaml"
    calendar.write_text(calendar.read_text().replace("2026-03-22", "2026-03-19"))
    gmv = directory / "gmv.yaml"
    gmv.write_text(gmv.read_text().replace("lateness: 2m", "lateness: -600"))
    (directory / "x.yaml").mkdir()
    return [
        f"{routes}: route.routes.0.repeat_interval: Value error, must be between 1m and 30d, "
        "not '0s'",
        f"{calendar}: entries.0: Value error, end must be after start",
        f"{gmv}: lateness: Value error, must be between 0s and 1d, not -600",
        f"{directory / 'x.yaml'}: is a directory, not a file",
    ]


def test_every_broken_file_is_reported(rules_dir: Path, topics: dict[str, TopicSpec]) -> None:
    expected = break_files(rules_dir)
    with pytest.raises(ConfigErrors) as err:
        check_rules_dir(rules_dir, topics)
    assert err.value.problems == expected


def test_routes_are_checked_when_routes_yaml_is_valid(
    rules_dir: Path, topics: dict[str, TopicSpec]
) -> None:
    gmv = rules_dir / "gmv.yaml"
    gmv.write_text(gmv.read_text().replace("route: commerce-oncall", "route: nobody"))
    with pytest.raises(ConfigErrors) as err:
        check_rules_dir(rules_dir, topics)
    assert err.value.problems == [
        f"{gmv}: alert.route: undefined route 'nobody' used in metric 'gmv'"
    ]


def test_a_calendar_of_comments_only_is_empty(
    rules_dir: Path, topics: dict[str, TopicSpec]
) -> None:
    (rules_dir / "calendar.yaml").write_text("# no campaign this month\n")
    (rules_dir / "routes.yaml").unlink()
    assert len(check_rules_dir(rules_dir, topics)) == 4


def test_cli_prints_every_problem_and_exits_2(
    rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = break_files(rules_dir)
    assert main(["rules", "validate", str(rules_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"configuration error: {p}" for p in expected]
    assert main(["rules", "list", str(rules_dir)]) == 2


def test_cli_prints_a_problem_quoting_markup_verbatim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (BAD / "unknown_detector.yaml").read_text().replace("type: magic", 'type: "[/]"')
    (tmp_path / "gmv.yaml").write_text(text)
    assert main(["rules", "validate", str(tmp_path)]) == 2
    assert "unknown detector type '[/]'" in capsys.readouterr().err


def test_cli_valid_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", str(REPO / "alert_rules")]) == 0
    assert capsys.readouterr().out.replace("\n", "") == (
        "4 metric definitions are valid: bad_seller_onboarding_rate@1, complaint_rate@1, "
        "gmv@1, violation_rate@1"
    )


def test_cli_process_exit_code_and_no_traceback(rules_dir: Path) -> None:
    expected = break_files(rules_dir)
    shutil.copy(BAD / "invalid_utf8.yaml", rules_dir / "invalid_utf8.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "stream_guard.cli", "rules", "validate", str(rules_dir)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == len(expected) + 1
    assert f"{rules_dir / 'invalid_utf8.yaml'}: not valid UTF-8: byte 0xe9 on line 4" in done.stderr
