"""Recurring bookings and events in the store, on SQLite and PostgreSQL: series expand into
busy time, one occurrence moves or is cancelled on its own, and migration 7 keeps old rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.calendars import Attendee, CalendarEvent, event_id_for
from bot.calendars.local import LocalCalendar
from bot.models import (
    Booking,
    BookingState,
    OccurrenceChange,
    Participant,
    ScheduleObject,
    TimeSlot,
)
from bot.recurrence import FOREVER
from bot.store import BookingConflict, Store
from tests.bot.schema_rollback import roll_back

TEAM = "T1"
RULE = "RRULE:FREQ=WEEKLY;BYDAY=TU"
TUESDAYS = [datetime(2026, 12, day, 15, 0, tzinfo=UTC) for day in (1, 8, 15, 22, 29)]
HALF = timedelta(minutes=30)
MONTH = (TUESDAYS[0] - timedelta(days=1), TUESDAYS[-1] + timedelta(days=1))


def series(
    key: str = "weekly", organizer: str = "U1", people: tuple[str, ...] = ("U2",)
) -> Booking:
    schedule = ScheduleObject.from_slot(
        TimeSlot(TUESDAYS[0], TUESDAYS[0] + HALF), "Europe/Berlin", recurrence=[RULE]
    )
    return Booking(
        key=key,
        team_id=TEAM,
        organizer_id=organizer,
        participant_ids=people,
        title="sync",
        schedule=schedule,
        state=BookingState.CONFIRMED,
    )


def single(key: str, start: datetime, people: tuple[str, ...] = ("U3",)) -> Booking:
    return Booking(
        key=key,
        team_id=TEAM,
        organizer_id="U2",
        participant_ids=people,
        title="other",
        schedule=ScheduleObject.from_slot(TimeSlot(start, start + HALF), "UTC"),
        state=BookingState.CONFIRMED,
    )


async def test_a_series_books_every_occurrence(store: Store) -> None:
    """A weekly booking is busy every Tuesday and listed until it ends (never, here)."""
    await store.claim_booking(series())
    found = await store.booked_intervals(TEAM, ["U2"], *MONTH)
    assert [slot.start for slot in found["U2"]] == TUESDAYS
    listed = await store.bookings_for_user(TEAM, "U2", TUESDAYS[3])
    assert [b.key for b in listed] == ["weekly"]


async def test_a_claim_overlapping_a_later_occurrence_conflicts(store: Store) -> None:
    """A one-off meeting on the third Tuesday at the series' time is refused; an hour later not."""
    await store.claim_booking(series(), exclusive=True)
    with pytest.raises(BookingConflict):
        await store.claim_booking(single("clash", TUESDAYS[2], ("U1",)), exclusive=True)
    _, created = await store.claim_booking(
        single("fine", TUESDAYS[2] + timedelta(hours=1), ("U1",)), exclusive=True
    )
    assert created


async def test_a_series_claim_checks_its_later_occurrences(store: Store) -> None:
    """A new series is refused when one of its checked occurrences (the 4th) is taken."""
    await store.claim_booking(single("taken", TUESDAYS[3], ("U2",)), exclusive=True)
    with pytest.raises(BookingConflict):
        await store.claim_booking(series(), exclusive=True)


async def test_one_occurrence_moves_and_another_is_cancelled(store: Store) -> None:
    """change_occurrence keeps each change by original start, raises the sequence, and busy
    time shows the moved meeting where it went and no cancelled one (compare-and-set)."""
    await store.claim_booking(series())
    moved_to = TimeSlot(TUESDAYS[1] + timedelta(days=1), TUESDAYS[1] + timedelta(days=1) + HALF)
    moved = await store.change_occurrence(
        TEAM, "weekly", OccurrenceChange(TUESDAYS[1], moved_to, 1), expect_sequence=0
    )
    assert moved is not None and moved.sequence == 1
    stale = await store.change_occurrence(
        TEAM, "weekly", OccurrenceChange(TUESDAYS[2], None, 1), expect_sequence=0
    )
    assert stale is None, "a stale sequence changes nothing"
    cancelled = await store.change_occurrence(
        TEAM, "weekly", OccurrenceChange(TUESDAYS[2], None, 2), expect_sequence=1
    )
    assert cancelled is not None and cancelled.sequence == 2
    assert [c.original_start for c in cancelled.exceptions] == TUESDAYS[1:3]
    found = await store.booked_intervals(TEAM, ["U1"], *MONTH)
    assert [slot.start for slot in found["U1"]] == [
        TUESDAYS[0],
        moved_to.start,
        TUESDAYS[3],
        TUESDAYS[4],
    ]
    again = await store.get_booking(TEAM, "weekly")
    assert again is not None and again.exceptions == cancelled.exceptions


async def test_a_moved_occurrence_cannot_land_on_another_booking(store: Store) -> None:
    """Moving one meeting onto someone's other booking raises BookingConflict."""
    await store.claim_booking(series())
    other_time = TUESDAYS[1] + timedelta(days=1)
    await store.claim_booking(single("busy", other_time, ("U1",)))
    with pytest.raises(BookingConflict):
        await store.change_occurrence(
            TEAM,
            "weekly",
            OccurrenceChange(TUESDAYS[1], TimeSlot(other_time, other_time + HALF), 1),
            expect_sequence=0,
        )


async def test_local_series_overrides_and_whole_series_changes(store: Store) -> None:
    """The local calendar expands a series into busy time, an override row moves or cancels
    one occurrence, and replacing or cancelling the series takes its overrides along."""
    calendar = LocalCalendar(store)
    ben = Participant("U2", "America/New_York", email="ben@example.com")
    event = CalendarEvent(
        event_id=event_id_for("weekly"),
        calendar_id="U1",
        summary="sync",
        start=TUESDAYS[0],
        end=TUESDAYS[0] + HALF,
        time_zone="Europe/Berlin",
        attendees=(Attendee.of(ben),),
        recurrence=(RULE,),
    )
    await calendar.create_event(TEAM, event)

    async def busy() -> list[datetime]:
        found = await calendar.free_busy(TEAM, [ben], *MONTH)
        return [slot.start for slot in found.busy["U2"]]

    assert await busy() == TUESDAYS
    later = TUESDAYS[1] + timedelta(hours=2)
    await calendar.update_event(
        TEAM,
        replace(event, start=later, end=later + HALF, recurrence=(), original_start=TUESDAYS[1]),
    )
    await calendar.delete_event(TEAM, "U1", event.event_id, original_start=TUESDAYS[2])
    assert await busy() == [TUESDAYS[0], later, *TUESDAYS[3:]]
    shown = await calendar.events_for(TEAM, "U2", *MONTH)
    assert [e.event.start for e in shown] == [TUESDAYS[0], later, *TUESDAYS[3:]]

    await calendar.update_event(TEAM, event)  # the whole series again: overrides go
    assert await busy() == TUESDAYS
    await calendar.delete_event(TEAM, "U1", event.event_id)
    assert await busy() == []


async def test_migration_7_marks_existing_series_endless(database_url: str) -> None:
    """Rows stored before migration 7 with a recurrence get series_end_at = FOREVER."""
    store = await Store.open(database_url)
    try:
        await store.claim_booking(series())
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE bookings SET series_end_at = NULL"))
            await roll_back(conn, before=7)
    finally:
        await store.close()
    store = await Store.open(database_url)
    try:
        async with store.engine.connect() as conn:
            value = (await conn.execute(sa.text("SELECT series_end_at FROM bookings"))).scalar()
        stored = await store.get_booking(TEAM, "weekly")
        assert stored is not None and stored.schedule.recurrence == [RULE]
        found = await store.booked_intervals(TEAM, ["U2"], *MONTH)
        assert len(found["U2"]) == len(TUESDAYS)
    finally:
        await store.close()
    assert value is not None and str(FOREVER.year) in str(value)
