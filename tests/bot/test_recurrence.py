"""A booking's next meeting: a single meeting's own, a series' next occurrence on the wall clock
of its zone (across DST), with meetings moved or cancelled on their own where they went."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.models import Booking, OccurrenceChange, ScheduleObject, TimeSlot
from bot.recurrence import Occurrence, next_occurrence

BERLIN = ZoneInfo("Europe/Berlin")
HALF = timedelta(minutes=30)
#: Tuesdays at 16:00 Berlin from 1 December 2026 (15:00 UTC in winter).
TUESDAYS = [datetime(2026, 12, day, 15, 0, tzinfo=UTC) for day in (1, 8, 15, 22, 29)]


def series(rule: str = "RRULE:FREQ=WEEKLY;BYDAY=TU", first: datetime = TUESDAYS[0]) -> Booking:
    return Booking(
        key="k1",
        team_id="T1",
        organizer_id="U1",
        participant_ids=("U2",),
        title="1:1",
        schedule=ScheduleObject.from_slot(
            TimeSlot(first, first + HALF), "Europe/Berlin", recurrence=[rule]
        ),
    )


def meeting(start: datetime) -> Occurrence:
    return Occurrence(start, TimeSlot(start, start + HALF))


def test_a_single_meeting_is_next_until_it_starts() -> None:
    """One meeting: it is next strictly before its start, and then there is none."""
    single = replace(series(), schedule=ScheduleObject.from_slot(meeting(TUESDAYS[0]).slot, "UTC"))
    assert next_occurrence(single, TUESDAYS[0] - HALF) == meeting(TUESDAYS[0])
    assert next_occurrence(single, TUESDAYS[0]) is None


def test_the_next_occurrence_of_a_weekly_series() -> None:
    """Before the first, the first; at or after a meeting's start, the following one."""
    booking = series()
    assert next_occurrence(booking, TUESDAYS[0] - timedelta(days=3)) == meeting(TUESDAYS[0])
    assert next_occurrence(booking, TUESDAYS[0]) == meeting(TUESDAYS[1])
    assert next_occurrence(booking, TUESDAYS[1] - timedelta(seconds=1)) == meeting(TUESDAYS[1])


def test_cancelled_meetings_are_skipped_and_moved_ones_are_where_they_went() -> None:
    """The 8th and 15th cancelled: the 22nd is next. The 8th moved to Thursday the 10th: it is
    next after the 1st, and the 15th after that."""
    cancelled = replace(
        series(),
        exceptions=(
            OccurrenceChange(TUESDAYS[1], None, 1),
            OccurrenceChange(TUESDAYS[2], None, 2),
        ),
    )
    assert next_occurrence(cancelled, TUESDAYS[0]) == meeting(TUESDAYS[3])

    thursday = TimeSlot(TUESDAYS[1] + timedelta(days=2), TUESDAYS[1] + timedelta(days=2) + HALF)
    moved = replace(series(), exceptions=(OccurrenceChange(TUESDAYS[1], thursday, 1),))
    assert next_occurrence(moved, TUESDAYS[0]) == Occurrence(TUESDAYS[1], thursday)
    assert next_occurrence(moved, thursday.start) == meeting(TUESDAYS[2])


def test_a_meeting_moved_earlier_than_the_rules_next_comes_first() -> None:
    """The 15th moved to Monday the 7th comes before the 8th."""
    monday = TimeSlot(TUESDAYS[1] - timedelta(days=1), TUESDAYS[1] - timedelta(days=1) + HALF)
    booking = replace(series(), exceptions=(OccurrenceChange(TUESDAYS[2], monday, 1),))
    assert next_occurrence(booking, TUESDAYS[0]) == Occurrence(TUESDAYS[2], monday)
    assert next_occurrence(booking, monday.start) == meeting(TUESDAYS[1])
    assert next_occurrence(booking, TUESDAYS[1]) == meeting(TUESDAYS[3])


def test_a_finite_series_ends_and_the_wall_clock_holds_across_dst() -> None:
    """Three Tuesdays from 24 March 2026 at 16:00 Berlin: the third is after the clocks went
    forward (14:00 UTC, not 15:00), and after it there is none."""
    first = datetime(2026, 3, 24, 16, 0, tzinfo=BERLIN)
    booking = series("RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=3", first)
    second = next_occurrence(booking, first)
    assert second is not None and second.slot.start == datetime(2026, 3, 31, 14, 0, tzinfo=UTC)
    last = next_occurrence(booking, second.slot.start)
    assert last is not None and last.slot.start == datetime(2026, 4, 7, 14, 0, tzinfo=UTC)
    assert next_occurrence(booking, last.slot.start) is None
