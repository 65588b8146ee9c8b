"""The local calendar provider: idempotent events, free/busy from owned and attended events."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.calendars import Attendee, CalendarEvent, CalendarProvider, event_id_for
from bot.calendars.local import LocalCalendar
from bot.errors import CalendarError
from bot.models import Participant, TimeSlot
from bot.store import EventStatus, Store

# Until tests/conftest.py imports them, the storage fixtures are borrowed here.

DAY_START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)
ALICE = Participant("U1", "Europe/Paris", email="alice@example.com")
BOB = Participant("U2", "America/New_York", email="Bob@Example.com")
CAROL = Participant("U3", "UTC")


def at(hour: int, minute: int = 0) -> datetime:
    return DAY_START.replace(hour=hour, minute=minute)


def make_event(key: str = "booking-1", start: int = 10, minutes: int = 30) -> CalendarEvent:
    return CalendarEvent(
        event_id=event_id_for(key),
        calendar_id=ALICE.user_id,
        summary="Design sync",
        start=at(start),
        end=at(start) + timedelta(minutes=minutes),
        time_zone="Europe/Paris",
        description="Booked by Slotbot",
        attendees=(Attendee.of(ALICE), Attendee(email="bob@example.com", name="Bob")),
        organizer=Attendee.of(ALICE),
    )


@pytest.fixture
def calendar(store: Store) -> LocalCalendar:
    return LocalCalendar(store)


async def busy_of(
    calendar: LocalCalendar, *people: Participant, team_id: str = "T1"
) -> Mapping[str, tuple[TimeSlot, ...]]:
    return (await calendar.free_busy(team_id, people, DAY_START, DAY_END)).busy


def test_event_ids_are_deterministic_base32hex() -> None:
    """The same booking key gives the same Google-valid id; different keys differ."""
    first = event_id_for("T1:offer-1")
    assert first == event_id_for("T1:offer-1")
    assert first != event_id_for("T1:offer-2")
    assert re.fullmatch(r"[a-v0-9]{5,1024}", first)


def test_events_refuse_bad_ids_and_naive_times() -> None:
    """An event id outside base32hex, or a naive start, is rejected at construction."""
    with pytest.raises(ValueError, match="base32hex"):
        replace(make_event(), event_id="Booking_1")
    with pytest.raises(ValueError, match="aware"):
        replace(make_event(), start=datetime(2026, 12, 1, 10))


def test_local_calendar_is_a_calendar_provider(store: Store) -> None:
    """LocalCalendar has every method of the CalendarProvider protocol."""
    provider: CalendarProvider = LocalCalendar(store)
    for method in ("free_busy", "create_event", "update_event", "delete_event"):
        assert callable(getattr(provider, method))
    assert provider.name == "local"


async def test_creating_twice_makes_one_event(calendar: LocalCalendar) -> None:
    """A second create with the same id returns the first event and stores no duplicate."""
    event = make_event()
    first = await calendar.create_event("T1", event)
    second = await calendar.create_event("T1", replace(event, summary="Changed"))
    assert first == second
    assert first.ical_uid == f"{event.event_id}@slotbot.local"
    events = await calendar.events_for("T1", "U1", DAY_START, DAY_END)
    assert [e.event.summary for e in events] == ["Design sync"]


async def test_concurrent_creates_make_one_event(calendar: LocalCalendar) -> None:
    """Ten simultaneous creates of one event id store it exactly once."""
    results = await asyncio.gather(*(calendar.create_event("T1", make_event()) for _ in range(10)))
    assert len(set(results)) == 1
    assert len(await calendar.events_for("T1", "U1", DAY_START, DAY_END)) == 1


async def test_free_busy_covers_owner_and_attendees(calendar: LocalCalendar) -> None:
    """The owner, a user-id attendee and an email attendee (any case) are busy; others free."""
    await calendar.create_event("T1", make_event())
    busy = await busy_of(calendar, ALICE, BOB, CAROL)
    expected = (TimeSlot(at(10), at(10, 30)),)
    assert busy == {"U1": expected, "U2": expected, "U3": ()}


async def test_free_busy_merges_and_clips(calendar: LocalCalendar) -> None:
    """Overlapping events merge into one interval and busy time is clipped to the window."""
    await calendar.create_event("T1", make_event("a", start=9, minutes=60))
    await calendar.create_event("T1", make_event("b", start=9, minutes=90))
    late = make_event("c", start=23, minutes=120)
    await calendar.create_event("T1", late)
    busy = await busy_of(calendar, ALICE)
    assert busy["U1"] == (TimeSlot(at(9), at(10, 30)), TimeSlot(at(23), DAY_END))


async def test_delete_frees_the_time(calendar: LocalCalendar) -> None:
    """A deleted event stops being busy, stays as cancelled, and deleting again is harmless."""
    event = make_event()
    await calendar.create_event("T1", event)
    await calendar.delete_event("T1", "U1", event.event_id)
    await calendar.delete_event("T1", "U1", event.event_id)
    await calendar.delete_event("T1", "U1", event_id_for("never-created"))
    assert await busy_of(calendar, ALICE, BOB) == {"U1": (), "U2": ()}
    kept = await calendar.events_for("T1", "U1", DAY_START, DAY_END, include_cancelled=True)
    assert [e.status for e in kept] == [EventStatus.CANCELLED]


async def test_update_moves_the_event(calendar: LocalCalendar) -> None:
    """An update moves busy time and attendees, and never lowers the sequence."""
    event = make_event()
    await calendar.create_event("T1", replace(event, sequence=2))
    moved = replace(event, start=at(14), end=at(15), attendees=(Attendee.of(CAROL),), sequence=1)
    created = await calendar.update_event("T1", moved)
    assert created.ical_uid == f"{event.event_id}@slotbot.local"
    busy = await busy_of(calendar, ALICE, BOB, CAROL)
    assert busy == {"U1": (TimeSlot(at(14), at(15)),), "U2": (), "U3": (TimeSlot(at(14), at(15)),)}
    (stored,) = await calendar.events_for("T1", "U3", DAY_START, DAY_END)
    assert stored.event.sequence == 2


async def test_updating_an_unknown_event_fails(calendar: LocalCalendar) -> None:
    """Updating an event that was never created raises a CalendarError with a user message."""
    with pytest.raises(CalendarError) as raised:
        await calendar.update_event("T1", make_event())
    assert "no longer exists" in raised.value.user_message


async def test_other_teams_see_nothing(calendar: LocalCalendar) -> None:
    """Team B's free/busy and feed ignore team A's events, and B can keep the same id."""
    await calendar.create_event("T1", make_event())
    assert await busy_of(calendar, ALICE, BOB, team_id="T2") == {"U1": (), "U2": ()}
    assert await calendar.events_for("T2", "U1", DAY_START, DAY_END) == []
    await calendar.delete_event("T2", "U1", make_event().event_id)
    assert (await busy_of(calendar, ALICE))["U1"] != ()


async def test_events_come_back_aware_in_their_zone(calendar: LocalCalendar) -> None:
    """Stored events read back with aware times in the event's zone, at the same instants."""
    event = make_event()
    await calendar.create_event("T1", event)
    (stored,) = await calendar.events_for("T1", "bob@example.com", DAY_START, DAY_END)
    assert stored.event == event
    assert stored.event.start.tzinfo == ZoneInfo("Europe/Paris")
    assert stored.created_at.utcoffset() == timedelta(0)
