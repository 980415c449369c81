"""Topic files: every broken one is reported, with file, field and reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stream_guard.config.errors import ConfigErrors
from stream_guard.config.topics import load_topics
from tests.conftest import REPO


def test_every_broken_topic_file_is_reported(tmp_path: Path) -> None:
    shutil.copy(REPO / "topics" / "orders.yaml", tmp_path / "orders.yaml")
    (tmp_path / "a.yaml").write_text("name: a\npartitions: 0\nkey: id\n")
    (tmp_path / "b.yaml").write_text("[name, b]\n")
    with pytest.raises(ConfigErrors) as err:
        load_topics(tmp_path)
    assert err.value.problems == [
        f"{tmp_path / 'a.yaml'}: partitions: Input should be greater than or equal to 1",
        f"{tmp_path / 'b.yaml'}: (top level): expected a mapping of topic fields",
    ]
