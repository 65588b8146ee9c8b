"""Unit tests for the availability engine: hours, busy times, rules, DST, ranking and reasons."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.models import Participant, TimeSlot, WorkingHours
from bot.scheduling.slots import (
    Availability,
    SlotRules,
    SlotSearch,
    _WorkingCalendar,
    find_free_slots,
    is_free,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # Thursday 08:00 in Berlin

ANA = Participant("U1", "Europe/Berlin", display_name="Ana")
BOB = Participant("U2", "America/Los_Angeles", display_name="Bob")
KENJI = Participant("U3", "Asia/Tokyo", display_name="Kenji")
ALL_DAY = WorkingHours.uniform(time(0), time(0), weekdays=tuple(range(7)))


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def slot(start: datetime, length: timedelta = HOUR) -> TimeSlot:
    return TimeSlot(start, start + length)


def search(people: list[Availability], window: TimeSlot, **kwargs: object) -> SlotSearch:
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("viewer_zone", "Europe/Berlin")
    duration = kwargs.pop("duration", HOUR)
    return find_free_slots(people, window, duration, **kwargs)  # type: ignore[arg-type]


NEXT_WEEK = TimeSlot(berlin(2026, 11, 30), berlin(2026, 12, 5))  # Monday to Friday


def test_first_page_spreads_over_days_and_keeps_hours() -> None:
    """The first page takes three non-overlapping starts a day, earliest days first."""
    result = search([Availability(ANA)], NEXT_WEEK)
    starts = [s.start.astimezone(BERLIN) for s in result.slots]
    assert starts == [
        berlin(2026, 11, 30, 9),
        berlin(2026, 11, 30, 10),
        berlin(2026, 11, 30, 11),
        berlin(2026, 12, 1, 9),
        berlin(2026, 12, 1, 10),
        berlin(2026, 12, 1, 11),
    ]
    assert result.has_more and result.reasons == ()
    assert all(s.duration == HOUR for s in result.slots)


def test_slots_come_back_in_utc() -> None:
    """Returned instants are UTC, whatever the viewer's zone."""
    result = search([Availability(ANA)], NEXT_WEEK, viewer_zone="America/New_York")
    assert result.slots[0].start.tzinfo == UTC
    assert result.slots[0].start.astimezone(NEW_YORK).hour == 3  # 09:00 Berlin


def test_intersection_of_working_hours_across_zones() -> None:
    """Berlin and New York overlap only from 09:00 to 11:00 New York time."""
    nyc = Participant("U4", "America/New_York", display_name="Nia")
    result = search([Availability(ANA), Availability(nyc)], NEXT_WEEK)
    for found in result.slots:
        local = found.start.astimezone(NEW_YORK)
        assert time(9) <= local.time() and (local + HOUR).time() <= time(11)
    assert result.slots[0].start == datetime(2026, 11, 30, 9, tzinfo=NEW_YORK)


def test_paging_never_repeats_and_covers_every_start() -> None:
    """Walking the pages yields each possible start exactly once, then has_more turns false."""
    window = TimeSlot(berlin(2026, 11, 30), berlin(2026, 12, 2))
    everything = search(
        [Availability(ANA)], window, rules=SlotRules(max_offered=1000, per_day=1000)
    )
    seen: list[TimeSlot] = []
    page = 0
    while True:
        result = search([Availability(ANA)], window, page=page)
        seen.extend(result.slots)
        if not result.has_more:
            break
        page += 1
    assert len(seen) == len(set(seen)) == len(everything.slots) == 2 * 29
    assert sorted(seen) == sorted(everything.slots)
    after = search([Availability(ANA)], window, page=page + 1)
    assert after.slots == () and after.reasons == ("There are no more times in that window.",)


def test_fills_from_one_day_when_only_one_day_is_free() -> None:
    """With one working day in the window the page is still full, beyond the per-day cap."""
    window = TimeSlot(berlin(2026, 11, 30), berlin(2026, 12, 1))
    result = search([Availability(ANA)], window)
    assert len(result.slots) == 6
    assert len({s.start.date() for s in result.slots}) == 1


def test_busy_intervals_unsorted_and_overlapping_are_avoided() -> None:
    """Busy times in any order and overlapping block exactly the time they cover."""
    busy = [
        slot(berlin(2026, 11, 30, 10), 2 * HOUR),
        slot(berlin(2026, 11, 30, 9, 30)),
        slot(berlin(2026, 11, 30, 11)),
    ]
    window = TimeSlot(berlin(2026, 11, 30, 9), berlin(2026, 11, 30, 14))
    result = search([Availability(ANA, busy)], window)
    assert [s.start.astimezone(BERLIN).time() for s in result.slots] == [
        time(12),
        time(12, 15),
        time(12, 30),
        time(12, 45),
        time(13),
    ]


def test_buffers_keep_free_time_around_busy_time() -> None:
    """buffer_before needs free time before a slot, buffer_after after it."""
    busy = [slot(berlin(2026, 11, 30, 12))]
    window = TimeSlot(berlin(2026, 11, 30, 10), berlin(2026, 11, 30, 15))
    rules = SlotRules(
        buffer_before=timedelta(minutes=15),
        buffer_after=timedelta(minutes=30),
        max_offered=100,
        per_day=100,
    )
    starts = {s.start for s in search([Availability(ANA, busy)], window, rules=rules).slots}
    assert berlin(2026, 11, 30, 10, 30) in starts  # ends 11:30, 30 minutes before 12:00
    assert berlin(2026, 11, 30, 10, 45) not in starts
    assert berlin(2026, 11, 30, 13, 15) in starts  # 15 minutes after 13:00
    assert berlin(2026, 11, 30, 13) not in starts


def test_minimum_notice_and_grid() -> None:
    """No start before now + notice; the first start is the next quarter hour after that."""
    now = berlin(2026, 11, 30, 9, 52)
    window = TimeSlot(berlin(2026, 11, 30, 9), berlin(2026, 11, 30, 17))
    result = search([Availability(ANA)], window, now=now)
    assert result.slots[0].start == berlin(2026, 11, 30, 10, 30)


def test_grid_follows_the_viewer_wall_clock_in_a_half_hour_zone() -> None:
    """In Kolkata (+05:30) an hourly grid starts on the hour there, i.e. at :30 UTC."""
    window = TimeSlot(datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    result = search(
        [Availability(ANA)], window, viewer_zone="Asia/Kolkata", rules=SlotRules(grid_minutes=60)
    )
    assert result.slots
    for found in result.slots:
        assert found.start.astimezone(UTC).minute == 30
        assert found.start.astimezone(ZoneInfo("Asia/Kolkata")).minute == 0


def test_new_york_fall_back_day_has_twenty_five_hourly_starts() -> None:
    """On 2026-11-01 in New York both 01:00s are offered and every start is on the hour."""
    person = Participant("U5", "America/New_York", working_hours=ALL_DAY)
    day = TimeSlot(datetime(2026, 11, 1, tzinfo=NEW_YORK), datetime(2026, 11, 2, tzinfo=NEW_YORK))
    rules = SlotRules(grid_minutes=60, max_offered=100, per_day=100)
    result = search(
        [Availability(person)],
        day,
        now=datetime(2026, 10, 30, tzinfo=UTC),
        viewer_zone="America/New_York",
        rules=rules,
    )
    starts = [s.start for s in result.slots]
    assert len(starts) == 25  # a 25-hour day holds 25 one-hour meetings
    assert all(b - a == HOUR for a, b in itertools.pairwise(starts))
    assert [s.astimezone(NEW_YORK).hour for s in starts].count(1) == 2
    assert all(s.astimezone(NEW_YORK).minute == 0 for s in starts)


def test_berlin_spring_forward_day_skips_the_missing_hour() -> None:
    """On 2027-03-28 in Berlin no offered start reads 02:xx, and the grid stays on :00/:30."""
    person = Participant("U6", "Europe/Berlin", working_hours=ALL_DAY)
    day = TimeSlot(berlin(2027, 3, 28), berlin(2027, 3, 29))
    rules = SlotRules(grid_minutes=30, max_offered=100, per_day=100)
    result = search(
        [Availability(person)],
        day,
        now=datetime(2027, 3, 20, tzinfo=UTC),
        duration=timedelta(minutes=30),
        rules=rules,
    )
    walls = [s.start.astimezone(BERLIN) for s in result.slots]
    assert len(walls) == 46  # 23 hours of half-hour starts
    assert all(w.hour != 2 and w.minute in (0, 30) for w in walls)
    assert walls[3].time() == time(1, 30) and walls[4].time() == time(3)


def test_working_hours_follow_each_zone_across_different_dst_dates() -> None:
    """Berlin 09:00 is 04:00 in New York between the two fall-back dates, 03:00 after."""
    window = TimeSlot(
        datetime(2026, 10, 29, tzinfo=NEW_YORK), datetime(2026, 11, 3, tzinfo=NEW_YORK)
    )
    result = search(
        [Availability(ANA)],
        window,
        now=datetime(2026, 10, 20, tzinfo=UTC),
        viewer_zone="America/New_York",
        rules=SlotRules(max_offered=100, per_day=100),
    )
    firsts: dict[date, time] = {}
    for found in result.slots:
        local = found.start.astimezone(NEW_YORK)
        firsts.setdefault(local.date(), local.time())
    assert firsts[date(2026, 10, 29)] == time(4)
    assert firsts[date(2026, 11, 2)] == time(3)


def test_three_continents_without_overlap_explain_whose_day_ends() -> None:
    """Berlin, Los Angeles and Tokyo 9-to-5 never overlap; the reason names people and cities."""
    people = [Availability(ANA), Availability(BOB), Availability(KENJI)]
    first = search(people, NEXT_WEEK, viewer_zone="America/New_York")
    again = search(people, NEXT_WEEK, viewer_zone="America/New_York")
    assert first.slots == () and not first.has_more
    assert (
        first.reasons
        == again.reasons
        == (
            "Working hours don't overlap for the 1-hour meeting: Ana's day ends at 17:00 Berlin "
            "time, 11:00 for you; Bob's starts at 09:00 Los Angeles time, 12:00 for you.",
        )
    )


def test_reason_for_someone_who_does_not_work_in_the_window() -> None:
    """A weekend window names the people who are off."""
    weekend = TimeSlot(berlin(2026, 11, 28, 12), berlin(2026, 11, 29, 23))
    result = search([Availability(ANA), Availability(BOB)], weekend)
    assert result.reasons == (
        "Ana and Bob don't work long enough in that window for the 1-hour meeting.",
    )


def test_reason_for_someone_busy_throughout() -> None:
    """When one calendar fills the shared hours, that person is named."""
    busy = [TimeSlot(berlin(2026, 11, 30), berlin(2026, 12, 5))]
    result = search([Availability(ANA, busy), Availability(KENJI)], NEXT_WEEK, viewer_zone="UTC")
    nobody_shares = search([Availability(ANA, busy)], NEXT_WEEK)
    assert result.reasons[0].startswith("Working hours don't overlap")  # Tokyo and Berlin
    assert nobody_shares.reasons == ("Ana is busy throughout the shared working hours.",)


def test_reason_when_only_the_buffers_leave_no_room() -> None:
    """Back-to-back meetings with a one-hour gap fail only because of the buffers."""
    busy = [
        TimeSlot(berlin(2026, 11, 30, 9), berlin(2026, 11, 30, 12)),
        TimeSlot(berlin(2026, 11, 30, 13), berlin(2026, 11, 30, 17)),
    ]
    window = TimeSlot(berlin(2026, 11, 30, 9), berlin(2026, 11, 30, 17))
    rules = SlotRules(buffer_before=timedelta(minutes=10))
    assert search([Availability(ANA, busy)], window).slots
    result = search([Availability(ANA, busy)], window, rules=rules)
    assert result.reasons == (
        "Calendars together leave no gap long enough for the 1-hour meeting with the buffer "
        "kept around other meetings.",
    )


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (
            TimeSlot(berlin(2026, 11, 30, 9), berlin(2026, 11, 30, 9, 30)),
            "The window from Mon 30 Nov 09:00 to Mon 30 Nov 09:30 is shorter than the 1-hour "
            "meeting.",
        ),
        (
            TimeSlot(berlin(2026, 11, 20, 9), berlin(2026, 11, 20, 17)),
            "That time is already in the past (the window ends Fri 20 Nov 17:00).",
        ),
        (
            TimeSlot(berlin(2026, 11, 26, 8), berlin(2026, 11, 26, 9, 15)),
            "I need 30 minutes notice, so the earliest start is Thu 26 Nov 08:30: too late for "
            "the 1-hour meeting before the window ends at Thu 26 Nov 09:15.",
        ),
        (
            TimeSlot(berlin(2027, 1, 4, 9), berlin(2027, 1, 4, 17)),
            "I only look 14 days ahead (until Thu 10 Dec 08:00), and that window starts later.",
        ),
    ],
)
def test_window_reasons(window: TimeSlot, expected: str) -> None:
    """A window that is too short, past, too soon or too far is explained in words."""
    assert search([Availability(ANA)], window).reasons == (expected,)


def test_reason_when_notice_pushes_past_the_working_day() -> None:
    """Working hours fit the window, but not after the minimum notice."""
    now = berlin(2026, 11, 30, 15, 45)
    window = TimeSlot(berlin(2026, 11, 30, 9), berlin(2026, 11, 30, 20))
    result = search([Availability(ANA)], window, now=now)
    assert result.reasons == (
        "I need 30 minutes notice, so the earliest start is Mon 30 Nov 16:15, and working hours "
        "leave no room for the 1-hour meeting after that in the window.",
    )


def test_exact_start_hit_comes_first_even_off_the_grid() -> None:
    """A free exact start is the first slot; the rest are its nearest alternatives."""
    exact = berlin(2026, 11, 30, 14, 10)
    result = search([Availability(ANA)], NEXT_WEEK, exact_start=exact)
    assert result.slots[0] == slot(exact)
    distances = [abs(s.start - exact) for s in result.slots]
    assert distances == sorted(distances)
    assert result.slots[1].start in (berlin(2026, 11, 30, 14), berlin(2026, 11, 30, 14, 15))


def test_exact_start_miss_offers_the_nearest_free_starts() -> None:
    """A busy exact start yields the nearest free starts, by distance, none overlapping it."""
    busy = [TimeSlot(berlin(2026, 11, 30, 13), berlin(2026, 11, 30, 15))]
    exact = berlin(2026, 11, 30, 14)
    result = search([Availability(ANA, busy)], NEXT_WEEK, exact_start=exact)
    starts = [s.start for s in result.slots]
    assert starts[0] == berlin(2026, 11, 30, 15)
    assert berlin(2026, 11, 30, 12) in starts  # as near as 16:00, and earlier
    assert all(not s.overlaps(busy[0]) for s in result.slots)
    nxt = search([Availability(ANA, busy)], NEXT_WEEK, exact_start=exact, page=1)
    assert not set(nxt.slots) & set(result.slots)
    assert min(abs(s.start - exact) for s in nxt.slots) >= max(abs(s - exact) for s in starts)


def test_excluded_slots_are_not_offered_again() -> None:
    """Slots already offered are skipped, and so is anything overlapping them."""
    first = search([Availability(ANA)], NEXT_WEEK)
    again = search([Availability(ANA)], NEXT_WEEK, exclude=first.slots)
    assert again.slots
    assert not any(a.overlaps(b) for a in again.slots for b in first.slots)


def test_is_free_rechecks_hours_busy_buffers_and_notice() -> None:
    """is_free accepts an offered slot and refuses busy, off-hours, buffered or too-soon ones."""
    busy = [slot(berlin(2026, 11, 30, 12))]
    people = [Availability(ANA, busy)]
    rules = SlotRules(buffer_after=timedelta(minutes=15))
    assert is_free(people, slot(berlin(2026, 11, 30, 10, 45)), rules=rules, now=NOW)
    assert not is_free(people, slot(berlin(2026, 11, 30, 11)), rules=rules, now=NOW)
    assert not is_free(people, slot(berlin(2026, 11, 30, 12, 30)), now=NOW)
    assert not is_free(people, slot(berlin(2026, 11, 30, 16, 30)), now=NOW)
    assert not is_free(people, slot(berlin(2026, 11, 26, 9)), now=berlin(2026, 11, 26, 8, 45))
    assert not is_free(people, slot(berlin(2026, 12, 21, 10)), now=NOW)  # beyond the horizon


ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Santiago",
    "UTC",
]


@st.composite
def working_hours(draw: st.DrawFn) -> WorkingHours:
    start = draw(st.integers(0, 20))
    end = draw(st.integers(start + 1, 24))
    days = draw(st.sets(st.integers(0, 6), min_size=1))
    return WorkingHours.uniform(time(start), time(0) if end == 24 else time(end), tuple(days))


@given(
    zone=st.sampled_from(ZONES),
    hours=working_hours(),
    day=st.dates(date(2026, 1, 1), date(2027, 12, 31)),
)
def test_fast_working_spans_match_the_model(zone: str, hours: WorkingHours, day: date) -> None:
    """The engine's working spans equal WorkingHours.intervals_on, DST days included."""
    low = datetime.combine(day, time(0), UTC).timestamp() - 86_400
    calendar = _WorkingCalendar(int(low), int(low) + 5 * 86_400)
    person = Participant("U", zone, working_hours=hours)
    expected: list[tuple[int, int]] = []
    current = day - timedelta(days=2)
    while current <= day + timedelta(days=6):
        for found in hours.intervals_on(current, zone):
            start = max(int(found.start.timestamp()), int(low))
            end = min(int(found.end.timestamp()), int(low) + 5 * 86_400)
            if start < end:
                if expected and expected[-1][1] >= start:
                    expected[-1] = (expected[-1][0], max(end, expected[-1][1]))
                else:
                    expected.append((start, end))
        current += timedelta(days=1)
    assert calendar.spans(person) == expected


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[Availability], TimeSlot, timedelta, datetime, str, SlotRules]:
    base = datetime(2026, 10, 20, tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(0, 200 * 24 * 4)) * 15
    )
    now = base + timedelta(minutes=draw(st.integers(-3000, 3000)))
    window = TimeSlot(base, base + timedelta(hours=draw(st.integers(1, 24 * 10))))
    people = []
    for index in range(draw(st.integers(1, 4))):
        busy = [
            slot(
                base + timedelta(minutes=draw(st.integers(-600, 24 * 60 * 10))),
                timedelta(minutes=draw(st.integers(5, 600))),
            )
            for _ in range(draw(st.integers(0, 15)))
        ]
        person = Participant(
            f"U{index}", draw(st.sampled_from(ZONES)), working_hours=draw(working_hours())
        )
        people.append(Availability(person, busy))
    duration = timedelta(minutes=draw(st.sampled_from([15, 30, 45, 60, 90, 120])))
    rules = SlotRules(
        grid_minutes=draw(st.sampled_from([5, 15, 30, 60])),
        buffer_before=timedelta(minutes=draw(st.sampled_from([0, 5, 15]))),
        buffer_after=timedelta(minutes=draw(st.sampled_from([0, 10]))),
        horizon=timedelta(days=draw(st.integers(1, 14))),
    )
    return people, window, duration, now, draw(st.sampled_from(ZONES)), rules


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scenarios(), page=st.integers(0, 2))
def test_every_offered_slot_obeys_every_rule(
    case: tuple[list[Availability], TimeSlot, timedelta, datetime, str, SlotRules], page: int
) -> None:
    """Offered slots are in the window, on the grid, in everyone's hours, clear of busy time."""
    people, window, duration, now, viewer, rules = case
    result = find_free_slots(
        people, window, duration, now=now, viewer_zone=viewer, rules=rules, page=page
    )
    assert bool(result.slots) != bool(result.reasons)
    assert len(result.slots) <= rules.max_offered
    viewer_tz = UTC if viewer == "UTC" else ZoneInfo(viewer)
    for found in result.slots:
        assert found.duration == duration
        assert window.start <= found.start and found.end <= window.end
        assert now + rules.minimum_notice <= found.start <= now + rules.horizon
        wall = found.start.astimezone(viewer_tz)
        assert wall.second == 0 and (wall.hour * 60 + wall.minute) % rules.grid_minutes == 0
        assert is_free(people, found, rules=rules, now=now)
        for availability in people:
            person = availability.participant
            tz = UTC if person.time_zone == "UTC" else ZoneInfo(person.time_zone)
            day = found.start.astimezone(tz).date()
            spans = [
                s
                for d in (day - timedelta(days=1), day, day + timedelta(days=1))
                for s in person.working_hours.intervals_on(d, person.time_zone)
            ]
            covered = found.start
            for span in sorted(spans):
                if span.start <= covered < span.end:
                    covered = span.end
            assert covered >= found.end
            for busy in availability.busy:
                assert not found.overlaps(
                    TimeSlot(busy.start - rules.buffer_after, busy.end + rules.buffer_before)
                )


# --- differential: the optimized engine against a straightforward reference -------------------


def _floor(value: float) -> int:
    return int(value // 1)


def _ceil(value: float) -> int:
    return -int(-value // 1)


def _epoch_slot(start: int, seconds: int) -> TimeSlot:
    return TimeSlot(
        datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + seconds, UTC)
    )


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _reference_starts(
    people: list[Availability],
    window: TimeSlot,
    seconds: int,
    now: datetime,
    viewer_zone: str,
    rules: SlotRules,
    exact_start: datetime | None,
) -> list[int]:
    """Every start the rules allow, found by trying each grid instant (plus the exact start)."""
    now_s = _ceil(now.timestamp())
    earliest = max(
        _ceil(window.start.timestamp()),
        now_s + _ceil(rules.minimum_notice.total_seconds()),
    )
    latest = min(
        _floor(window.end.timestamp()) - seconds,
        now_s + _floor(rules.horizon.total_seconds()),
    )
    before = _ceil(rules.buffer_before.total_seconds())
    after = _ceil(rules.buffer_after.total_seconds())
    first_day = datetime.fromtimestamp(earliest, UTC).date() - timedelta(days=2)
    days = [first_day + timedelta(days=n) for n in range((latest - earliest) // 86_400 + 5)]
    working = [
        _merged(
            [
                (_floor(s.start.timestamp()), _ceil(s.end.timestamp()))
                for d in days
                for s in a.participant.working_hours.intervals_on(d, a.participant.time_zone)
            ]
        )
        for a in people
    ]
    busy = [
        (_floor(b.start.timestamp()) - after, _ceil(b.end.timestamp()) + before)
        for a in people
        for b in a.busy
    ]

    def allowed(t: int) -> bool:
        return (
            earliest <= t <= latest
            and all(any(s <= t and t + seconds <= e for s, e in spans) for spans in working)
            and not any(s < t + seconds and t < e for s, e in busy)
        )

    viewer = UTC if viewer_zone == "UTC" else ZoneInfo(viewer_zone)
    grid = rules.grid_minutes * 60
    starts = set()
    for t in range(earliest - earliest % 300, latest + 1, 300):  # every grid divides 5 min
        wall = datetime.fromtimestamp(t, viewer)
        if (wall.hour * 3600 + wall.minute * 60 + wall.second) % grid == 0 and allowed(t):
            starts.add(t)
    if exact_start is not None and allowed(_ceil(exact_start.timestamp())):
        starts.add(_ceil(exact_start.timestamp()))
    return sorted(starts)


def _reference_page(
    starts: list[int], seconds: int, viewer_zone: str, rules: SlotRules, page: int
) -> tuple[list[int], bool]:
    """Days first (at most per_day each, earliest days first), then filled; chronological."""
    viewer = UTC if viewer_zone == "UTC" else ZoneInfo(viewer_zone)
    by_day: dict[date, list[int]] = {}
    for t in starts:
        by_day.setdefault(datetime.fromtimestamp(t, viewer).date(), []).append(t)
    queues = []
    for day in sorted(by_day):
        rest, order = by_day[day], []
        while rest:  # repeated earliest-first chains of non-overlapping starts
            chain, later, free_from = [], [], -1e18
            for t in rest:
                (chain if t >= free_from else later).append(t)
                if t >= free_from:
                    free_from = t + seconds
            order += chain
            rest = later
        queues.append(order)
    taken = [0] * len(queues)
    chosen: list[int] = []
    for _ in range(page + 1):
        chosen = []
        for cap in (rules.per_day, rules.max_offered):
            for i, queue in enumerate(queues):
                room = min(rules.max_offered - len(chosen), cap)
                more = queue[taken[i] : taken[i] + room]
                taken[i] += len(more)
                chosen += more
    return sorted(chosen), any(t < len(q) for t, q in zip(taken, queues, strict=True))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=scenarios(),
    page=st.integers(0, 2),
    notice=st.sampled_from([0, 30, 600]),
    exact=st.none() | st.integers(-600, 24 * 60 * 10),
    excluded=st.integers(0, 2),
)
def test_engine_matches_a_straightforward_reference(
    case: tuple[list[Availability], TimeSlot, timedelta, datetime, str, SlotRules],
    page: int,
    notice: int,
    exact: int | None,
    excluded: int,
) -> None:
    """find_free_slots returns exactly the slots and has_more a brute-force search finds."""
    people, window, duration, now, viewer, rules = case
    rules = SlotRules(
        grid_minutes=rules.grid_minutes,
        minimum_notice=timedelta(minutes=notice),
        buffer_before=rules.buffer_before,
        buffer_after=rules.buffer_after,
        horizon=rules.horizon,
    )
    exact_start = None
    if exact is not None:  # some exact starts are off the grid, some by seconds
        exact_start = window.start + timedelta(minutes=exact, seconds=7 * (exact % 3))
    seconds = int(duration.total_seconds())
    everything = _reference_starts(people, window, seconds, now, viewer, rules, None)
    exclude = tuple(_epoch_slot(t, seconds) for t in everything[:excluded])
    result = find_free_slots(
        people,
        window,
        duration,
        now=now,
        viewer_zone=viewer,
        rules=rules,
        exact_start=exact_start,
        page=page,
        exclude=exclude,
    )
    starts = _reference_starts(people, window, seconds, now, viewer, rules, exact_start)
    blocked = [(int(x.start.timestamp()), int(x.end.timestamp())) for x in exclude]
    starts = [t for t in starts if not any(s < t + seconds and t < e for s, e in blocked)]
    if exact_start is not None:
        target = _ceil(exact_start.timestamp())
        ranked = sorted(starts, key=lambda t: (abs(t - target), t))
        size = rules.max_offered
        chosen, more = ranked[page * size : (page + 1) * size], len(ranked) > (page + 1) * size
    else:
        chosen, more = _reference_page(starts, seconds, viewer, rules, page)
    expected = tuple(_epoch_slot(t, seconds) for t in chosen)
    assert result.slots == expected
    assert result.has_more == (more and bool(chosen))
    assert bool(result.reasons) == (not chosen)
    for found in result.slots:
        assert is_free(people, found, rules=rules, now=now)
