"""Files and CLI: byte-identical for the same arguments, consistent with the in-memory records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from stream_guard.simulate import iter_records, write_simulation
from stream_guard.simulate.cli import main

ARGS = {"days": 3, "seed": 21, "scale": 0.02, "invalid_fraction": 0.002}


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    first = write_simulation(tmp_path / "a", **ARGS)
    second = write_simulation(tmp_path / "b", **ARGS)
    for name in ("events.jsonl", "labels.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert first.counts == second.counts and first.incidents == second.incidents >= 1


def test_another_seed_gives_other_traffic_and_incidents(tmp_path: Path) -> None:
    write_simulation(tmp_path / "a", **ARGS)
    write_simulation(tmp_path / "b", **{**ARGS, "seed": 22})
    for name in ("events.jsonl", "labels.json"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_file_lines_are_the_in_memory_records_and_the_summary_counts_them(tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    summary = write_simulation(tmp_path, **ARGS, progress=lambda d, t: progress.append((d, t)))
    lines = summary.events_path.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == list(iter_records(**ARGS))
    assert len(lines) == summary.total == summary.events + summary.invalid
    assert summary.invalid == sum(summary.invalid_by_kind.values()) > 0
    assert progress[-1] == (summary.total, summary.total)
    labels = orjson.loads(summary.labels_path.read_bytes())
    assert len(labels["incidents"]) == summary.incidents


def test_start_moves_the_whole_run(tmp_path: Path) -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    summary = write_simulation(tmp_path, days=2, seed=1, scale=0.01, start=start)
    labels = orjson.loads(summary.labels_path.read_bytes())
    assert (labels["start"], labels["end"]) == ("2026-06-01T00:00:00Z", "2026-06-03T00:00:00Z")
    assert all(i["start"] >= "2026-06-02T12:00:00Z" for i in labels["incidents"])


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="zone"):
        write_simulation(tmp_path, days=1, seed=1, start=datetime(2026, 3, 2))
    with pytest.raises(ValueError):
        write_simulation(tmp_path, days=1, seed=1, scale=0)


def test_cli_writes_both_files_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--days", "2", "--seed", "4", "--out", str(tmp_path), "--scale", "0.01"]
    assert main([*argv, "--start", "2026-03-02T00:00:00Z", "--quiet"]) == 0
    assert (tmp_path / "events.jsonl").stat().st_size > 0
    assert (tmp_path / "labels.json").exists()
    assert "orders" in capsys.readouterr().out


def test_cli_refuses_a_start_without_zone(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--days", "1", "--seed", "1", "--out", "x", "--start", "2026-03-02"])
    assert "zone" in capsys.readouterr().err
