"""The notifier takes alert records in offset order from its saved position (runtime/cursor.py):
a record Faust skipped is read back from the log and handled before the next, and a record
handled before a restart is not handled again."""

from __future__ import annotations

import asyncio
from typing import Any

from stream_guard.runtime.cursor import Cursor
from stream_guard.runtime.notifier import Intake

LOG = {offset: f"record {offset}".encode() for offset in range(10)}


def _intake(positions: dict[str, str], handled: list[Any]) -> Intake:
    async def handle(partition: int, value: Any) -> None:
        handled.append(value)

    async def read(partition: int, lo: int, hi: int) -> list[bytes]:
        return [LOG[o] for o in range(lo, hi)]

    return Intake(Cursor(positions), handle, read, "alerts")


def test_a_skipped_record_is_handled_first_and_a_handled_one_not_again() -> None:
    positions: dict[str, str] = {}
    handled: list[Any] = []
    intake = _intake(positions, handled)

    async def deliver(*offsets: int) -> None:
        for o in offsets:
            await intake.alert(0, o, LOG[o])

    asyncio.run(deliver(0, 1, 4, 5))  # 2 and 3 acked by Faust's stream, never yielded
    assert handled == [LOG[o] for o in range(6)]
    assert positions == {"position/alerts/0": "6"}

    handled.clear()
    restarted = _intake(positions, handled)  # Faust redelivers from an older commit
    asyncio.run(restarted.alert(0, 3, LOG[3]))
    asyncio.run(restarted.alert(0, 6, LOG[6]))
    assert handled == [LOG[6]]
