"""The availability engine for recurring meetings: a slot must suit every checked occurrence."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.models import Participant, TimeSlot, WorkingHours
from bot.recurrence import MIN_CHECKED, checked_starts
from bot.scheduling.slots import Availability, Series, SlotRules, find_free_slots, is_free

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # Thursday 08:00 in Berlin
ANA = Participant("U1", "Europe/Berlin", display_name="Ana")
BEN = Participant("U2", "America/New_York", display_name="Ben")
ALL_DAY = WorkingHours.uniform(time(0), time(0), weekdays=tuple(range(7)))
TUESDAYS = Series("FREQ=WEEKLY;BYDAY=TU", "Europe/Berlin")
FIRST_TUESDAY = TimeSlot(datetime(2026, 12, 1, tzinfo=BERLIN), datetime(2026, 12, 2, tzinfo=BERLIN))


def at(day: int, hour: int, month: int = 12, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=zone)


def starts(result_slots: tuple[TimeSlot, ...]) -> list[datetime]:
    return [s.start.astimezone(BERLIN) for s in result_slots]


def search(people: list[Availability], series: Series | None = TUESDAYS, **kw: object):  # type: ignore[no-untyped-def]
    return find_free_slots(
        people,
        FIRST_TUESDAY,
        HOUR,
        now=NOW,
        viewer_zone="Europe/Berlin",
        series=series,
        **kw,  # type: ignore[arg-type]
    )


def test_a_slot_busy_on_the_third_tuesday_is_not_offered() -> None:
    """Free on the first Tuesday at 09:00 but busy on the third: 09:00 is not offered."""
    busy = [TimeSlot(at(15, 9), at(15, 10))]
    single = search([Availability(ANA, busy)], series=None)
    assert at(1, 9) in starts(single.slots), "a one-off meeting may take 09:00"

    weekly = search([Availability(ANA, busy)])
    assert weekly.slots and at(1, 9) not in starts(weekly.slots)
    assert at(1, 10) in starts(weekly.slots)


def test_every_checked_occurrence_counts_and_no_more() -> None:
    """Busy on the 4th Tuesday blocks the slot; busy on the 6th (past the checked ones) not."""
    fourth = search([Availability(ANA, [TimeSlot(at(22, 9), at(22, 10))])])
    assert at(1, 9) not in starts(fourth.slots)
    sixth = search([Availability(ANA, [TimeSlot(at(5, 9, month=1), at(5, 10, month=1))])])
    assert at(1, 9) in starts(sixth.slots)


def test_later_occurrences_follow_each_persons_working_hours_across_dst() -> None:
    """Ben works 9-17 in New York: 15:00-23:00 Berlin in December, but 14:00-22:00 in March
    (the US changes its clocks on 8 March, Europe on 28 March). A weekly 22:00 Berlin meeting
    suits him in December only, so a series reaching into March cannot start at 22:00."""
    ana = Participant("U1", "Europe/Berlin", working_hours=ALL_DAY)
    people = [Availability(ana), Availability(BEN)]
    latest = {"rules": SlotRules(per_day=10, max_offered=40)}
    four = search(people, series=Series("FREQ=WEEKLY;BYDAY=TU", "Europe/Berlin"), **latest)
    assert max(starts(four.slots)) == at(1, 22)
    sixteen = Series("FREQ=WEEKLY;BYDAY=TU;COUNT=16", "Europe/Berlin")
    into_march = search(people, series=sixteen, **latest)
    assert max(starts(into_march.slots)) == at(1, 21)
    assert min(starts(into_march.slots)) == at(1, 15)
    last = (checked_starts(sixteen.rule, at(1, 21), sixteen.zone) or ())[-1]
    assert last.astimezone(BERLIN).hour == 21 and last.astimezone(NEW_YORK).hour == 16


def test_a_start_off_the_series_days_is_not_offered() -> None:
    """A window on a Monday for a Tuesday series offers nothing, and says why."""
    monday = TimeSlot(at(30, 0, month=11), at(1, 0))
    result = find_free_slots(
        [Availability(ANA)], monday, HOUR, now=NOW, viewer_zone="Europe/Berlin", series=TUESDAYS
    )
    assert result.slots == () and "repeats on" in result.reasons[0]


def test_nothing_free_on_every_occurrence_says_which_occurrence_is_taken() -> None:
    """Busy every working hour of the second Tuesday: nothing fits, and the reason names it."""
    busy = [TimeSlot(at(8, 0), at(9, 0))]
    result = search([Availability(ANA, busy)])
    assert result.slots == ()
    assert "repeats every Tuesday" in result.reasons[0] and "Tue 8 Dec" in result.reasons[0]


def test_a_finite_series_is_checked_to_its_end() -> None:
    """Daily on weekdays, 10 times: all ten are checked (the last is on 14 December)."""
    daily = Series("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=10", "Europe/Berlin")
    assert len(checked_starts(daily.rule, at(1, 9), daily.zone) or ()) == 10
    busy = [TimeSlot(at(14, 9), at(14, 10))]
    result = search([Availability(ANA, busy)], series=daily)
    assert at(1, 9) not in starts(result.slots) and at(1, 10) in starts(result.slots)


def test_an_endless_series_checks_four_weeks_but_at_least_four() -> None:
    """Weekly without end: 4 checked; daily without end: the weekdays of four weeks."""
    weekly = checked_starts("FREQ=WEEKLY", at(1, 9), "Europe/Berlin")
    assert weekly is not None and len(weekly) == MIN_CHECKED
    monthly = checked_starts("FREQ=MONTHLY", at(1, 9), "Europe/Berlin")
    assert monthly is not None and len(monthly) == MIN_CHECKED
    daily = checked_starts("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", at(1, 9), "Europe/Berlin")
    assert daily is not None and len(daily) == 20


def test_is_free_rechecks_the_later_occurrences() -> None:
    """The click-time re-check refuses a slot whose third occurrence became busy."""
    slot = TimeSlot(at(1, 9), at(1, 10))
    assert is_free([Availability(ANA)], slot, now=NOW, series=TUESDAYS)
    busy = [TimeSlot(at(15, 9, month=12), at(15, 9, month=12) + timedelta(minutes=30))]
    assert not is_free([Availability(ANA, busy)], slot, now=NOW, series=TUESDAYS)
    assert is_free([Availability(ANA, busy)], slot, now=NOW)
