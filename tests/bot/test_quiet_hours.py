"""Quiet hours: when a message that can wait may reach a person, in their own zone (DST-exact)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.models import WorkingHours
from bot.scheduling.quiet_hours import quiet_until
from bot.scheduling.reminders import reminder_time

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
EVERY_DAY = (0, 1, 2, 3, 4, 5, 6)


def test_within_working_hours_it_goes_now() -> None:
    """Tuesday 10:00 in Berlin, hours 09–17: no reason to wait."""
    now = datetime(2026, 12, 1, 10, 0, tzinfo=BERLIN)
    assert quiet_until(now, WorkingHours(), "Europe/Berlin") is None


def test_the_start_of_the_window_is_within_and_its_end_is_not() -> None:
    """09:00 sharp is working time; 17:00 sharp is not: it waits for 09:00 the next day."""
    hours = WorkingHours()
    assert quiet_until(datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN), hours, "Europe/Berlin") is None
    assert quiet_until(
        datetime(2026, 12, 1, 17, 0, tzinfo=BERLIN), hours, "Europe/Berlin"
    ) == datetime(2026, 12, 2, 9, 0, tzinfo=BERLIN)


def test_before_the_day_starts_it_waits_for_the_same_day() -> None:
    """08:00 UTC is 03:00 in New York: the notice waits for 09:00 there (14:00 UTC)."""
    now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    until = quiet_until(now, WorkingHours(), "America/New_York")
    assert until == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


def test_a_friday_evening_waits_for_monday_morning() -> None:
    """Friday 18:00 in Berlin, weekends off: Monday 09:00 Berlin."""
    now = datetime(2026, 12, 4, 18, 0, tzinfo=BERLIN)
    assert quiet_until(now, WorkingHours(), "Europe/Berlin") == datetime(
        2026, 12, 7, 9, 0, tzinfo=BERLIN
    )


def test_the_weekend_waits_for_monday_in_the_persons_zone_not_the_servers() -> None:
    """Saturday 23:30 UTC is Saturday 18:30 in New York: Monday 09:00 New York."""
    now = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)
    until = quiet_until(now, WorkingHours(), "America/New_York")
    assert until == datetime(2026, 12, 7, 9, 0, tzinfo=NEW_YORK)
    assert until == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def test_the_next_window_after_a_spring_forward_night_is_at_local_nine() -> None:
    """New York, Sunday 8 March 2026 (clocks 02:00 → 03:00): from midnight EST the next
    09:00 is 13:00 UTC (EDT), not the 14:00 UTC that a fixed offset would give."""
    hours = WorkingHours.uniform(time(9), time(17), EVERY_DAY)
    now = datetime(2026, 3, 8, 0, 0, tzinfo=NEW_YORK)
    assert now.utcoffset() == timedelta(hours=-5)
    assert quiet_until(now, hours, "America/New_York") == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)


def test_a_window_starting_in_the_dst_gap_starts_when_the_clock_jumps_past_it() -> None:
    """Berlin, 29 March 2026 has no 02:30 (02:00 → 03:00): hours from 02:30 start at 03:30
    CEST (01:30 UTC), the wall time shifted forward across the gap as RFC 5545 reads it."""
    hours = WorkingHours.uniform(time(2, 30), time(6), EVERY_DAY)
    now = datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN)
    assert quiet_until(now, hours, "Europe/Berlin") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_after_fall_back_the_window_is_found_in_the_new_offset() -> None:
    """Berlin, Sunday 25 October 2026 (03:00 → 02:00): Monday 09:00 is 08:00 UTC (CET)."""
    now = datetime(2026, 10, 24, 20, 0, tzinfo=BERLIN)  # Saturday evening, CEST
    assert quiet_until(now, WorkingHours(), "Europe/Berlin") == datetime(
        2026, 10, 26, 8, 0, tzinfo=UTC
    )


def test_split_days_wait_for_the_afternoon_window() -> None:
    """Hours 09–12 and 14–18: at 12:30 the notice waits for 14:00."""
    day = ((time(9), time(12)), (time(14), time(18)))
    hours = WorkingHours(tuple(day if d < 5 else () for d in range(7)))
    now = datetime(2026, 12, 1, 12, 30, tzinfo=BERLIN)
    assert quiet_until(now, hours, "Europe/Berlin") == datetime(2026, 12, 1, 14, 0, tzinfo=BERLIN)


def test_someone_with_no_working_hours_is_never_held_back() -> None:
    """Every day off: there is no better time, so now."""
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    assert quiet_until(now, WorkingHours(((),) * 7), "UTC") is None


def test_naive_now_is_refused() -> None:
    """Time is always aware here."""
    with pytest.raises(ValueError, match="timezone-aware"):
        quiet_until(datetime(2026, 12, 1, 3, 0), WorkingHours(), "UTC")


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        (10, datetime(2026, 12, 1, 13, 50, tzinfo=UTC)),
        (0, datetime(2026, 12, 1, 14, 0, tzinfo=UTC)),
        (None, None),  # reminders off
        (1440, None),  # a day ahead of tomorrow 14:00 is already past at 16:00 today
    ],
)
def test_reminder_time_is_the_lead_before_the_start(lead: int | None, expected: object) -> None:
    """Start minus the person's lead, whole seconds; None when off or already past."""
    now = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    start = datetime(2026, 12, 1, 14, 0, 0, 500_000, tzinfo=UTC)
    assert reminder_time(start, lead, now) == expected
