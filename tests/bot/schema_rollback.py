"""Taking a database back to an earlier schema version with its rows kept, for tests of what a
migration step does to data stored before it. Each step after 5 says here how it is undone."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

#: What undoes each migration step (from 6 on), in the order to run it.
UNDO: dict[int, tuple[str, ...]] = {
    6: ("DROP TABLE booking_messages",),
    7: (
        "ALTER TABLE bookings DROP COLUMN series_end_at",
        "ALTER TABLE bookings DROP COLUMN exceptions",
        "ALTER TABLE local_events DROP COLUMN series_end_at",
        "ALTER TABLE local_events DROP COLUMN recurring_event_id",
        "ALTER TABLE local_events DROP COLUMN original_start_at",
    ),
    8: ("DROP TABLE booking_changes",),
    9: ("ALTER TABLE booking_messages DROP COLUMN told_sequence",),
}


async def roll_back(conn: AsyncConnection, before: int) -> None:
    """Undo every step from ``before`` on, newest first, as if they had never run."""
    for version in sorted((v for v in UNDO if v >= before), reverse=True):
        for statement in UNDO[version]:
            await conn.execute(sa.text(statement))
    await conn.execute(sa.text("DELETE FROM schema_version WHERE version >= :v"), {"v": before})
