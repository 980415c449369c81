"""The strict YAML reader: files that cannot be committed as golden files (directories, FIFOs,
unreadable files, 20k-deep documents) are refused with a ConfigError naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stream_guard.config.yamlfile import read_mapping, read_yaml
from stream_guard.errors import ConfigError


def refused(path: Path) -> str:
    """The message of the ConfigError reading `path` raises, without the path prefix."""
    with pytest.raises(ConfigError) as err:
        read_yaml(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_what_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    os.mkfifo(tmp_path / "fifo.yaml")  # reading it would block forever
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "nowhere")
    assert refused(tmp_path / "dir.yaml") == "is a directory, not a file"
    assert refused(tmp_path / "fifo.yaml") == "is not a regular file"
    assert refused(tmp_path / "dangling.yaml") == "cannot read: No such file or directory"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "gmv.yaml"
    path.write_text("metric: gmv\n")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod 000 does not stop root
    assert refused(path) == "cannot read: Permission denied"


@pytest.mark.parametrize(
    "text", ["a: " + "[" * 20_000 + "]" * 20_000, "a: " + "{a: " * 20_000 + "1" + "}" * 20_000]
)
def test_deep_nesting_is_refused_without_recursion_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    assert refused(path).startswith("not valid YAML: nested deeper than 64 levels (line 1, ")


def test_aliases(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: &x [1, *x]\n")
    assert refused(path) == "not valid YAML: an alias refers to its own anchor (line 1, column 4)"
    # Merge keys may be overridden: not a duplicate key.
    path.write_text("base: &b {x: 1, y: 1}\nc:\n  <<: *b\n  x: 2\n")
    assert read_yaml(path)["c"] == {"x": 2, "y": 1}


def test_control_characters_and_unhashable_keys(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_bytes(b"a: \x00\n")
    assert refused(path).startswith("not valid YAML: unacceptable character #x0000")
    path.write_text("? [a]\n: 1\n")
    assert refused(path) == (
        "not valid YAML: while constructing a mapping: found unhashable key (line 1, column 3)"
    )


def test_read_mapping(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_bytes(b"\xef\xbb\xbf# a BOM and a comment\na: 1\n")
    assert read_mapping(path, "a mapping") == {"a": 1}
    path.write_text("# nothing but a comment\n")
    with pytest.raises(ConfigError, match=r"a.yaml: \(top level\): the file is empty; expected x$"):
        read_mapping(path, "x")
