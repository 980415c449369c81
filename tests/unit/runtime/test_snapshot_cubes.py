"""Open windows' cubes survive a restart: saved in the windows snapshot (version 2), within a
byte budget; a window whose cube is incomplete or was not saved closes without one."""

from __future__ import annotations

import pytest

from stream_guard.aggregate.cube import WindowCube
from stream_guard.aggregate.merger import WindowMerger
from stream_guard.runtime import snapshot
from stream_guard.runtime.snapshot import SnapshotError, decode_windows, encode_windows

SOURCES = frozenset({"a", "b"})


def _merger(state: object = None) -> WindowMerger:
    return WindowMerger(10, 2, SOURCES, state=state, cube=True)  # type: ignore[arg-type]


def _cube(n: float, seller: str = "s-1") -> WindowCube:
    return WindowCube({("EU", "toys"): [n, 1.0], ("NA", "home"): [1.0, 1.0]}, {seller: [n, 0.0]})


def _half_merged() -> WindowMerger:
    """Window 0: a has handed its cube over, b has sent data and still holds its cube."""
    m = _merger()
    m.merge("a", [(0, {(): [3.0, 2.0]})], 12, cubes=[(0, _cube(2.0))])
    m.merge("b", [(0, {(): [5.0, 2.0]})], 5)
    return m


def _restored(m: WindowMerger) -> WindowMerger:
    return _merger(decode_windows(encode_windows(m.state)))


def test_a_restored_window_closes_with_the_cube_merged_before_and_after() -> None:
    m = _restored(_half_merged())
    m.merge("b", [], 12, cubes=[(0, _cube(4.0, "s-2"))])
    [(start, acc, cube)] = list(m.close())
    assert start == 0 and acc[()] == [8.0, 4.0]
    assert cube is not None
    assert cube.leaves == {("EU", "toys"): [6.0, 2.0], ("NA", "home"): [2.0, 2.0]}
    assert cube.sellers == {"s-1": [2.0, 0.0], "s-2": [4.0, 0.0]}


def test_a_window_closing_while_a_cube_is_due_closes_without_one() -> None:
    m = _restored(_half_merged())
    [(_, acc, cube)] = list(m.close(final=True))  # the input ended: b never passed the close
    assert acc[()] == [8.0, 4.0] and cube is None


def test_a_cube_beyond_the_budget_is_restored_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "CUBE_BUDGET", 10)
    m = _restored(_half_merged())
    assert m.state.cubeless == [0]
    m.merge("b", [], 12, cubes=[(0, _cube(4.0))])
    [(_, _, cube)] = list(m.close())
    assert cube is None  # not half a cube: the configured slices explain it


def test_a_version_1_snapshot_or_a_broken_cube_is_refused_clearly() -> None:
    with pytest.raises(SnapshotError, match="version 1: this worker reads 2"):
        decode_windows(b'SGW1{"open": []}')
    blob = encode_windows(_half_merged().state).replace(b'"EU"', b"7")
    state = decode_windows(blob)  # a value is a value, whatever its JSON type
    assert ("7", "toys") in state.cubes[0].leaves
    broken = encode_windows(_half_merged().state).replace(b'"cubes":[[0,[', b'"cubes":[[0,[1,')
    with pytest.raises(SnapshotError, match="does not decode"):
        decode_windows(broken)
