"""The availability engine: working hours, busy times and rules in; ranked free slots out.

Pure: no I/O and no clock; ``now`` and every zone are arguments. When nothing fits, the
result says why in words a person understands.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache
from itertools import chain
from zoneinfo import ZoneInfo

from bot.models import Participant, TimeSlot, WorkingHours, zone_of
from bot.recurrence import checked_starts, describe_rule

__all__ = [
    "DEFAULT_RULES",
    "Availability",
    "Series",
    "SlotRules",
    "SlotSearch",
    "find_free_slots",
    "is_free",
]

# Internally every instant is whole seconds since the epoch: integer sweeps and bisects are
# what keep 50 people with 2,000 busy intervals well inside the 2 ms budget.
#
# Caches (all pure functions of their arguments, bounded, safe to share between threads):
# working spans per (zone, hours, local days), local midnights per (zone, days) and a zone's
# offsets per (zone, UTC days). Keys move once a day, so repeated searches for one team reuse
# them; a first search computes them in well under a millisecond.
_Span = tuple[int, int]  # [start, end)
_Tz = ZoneInfo | timezone
_DAY = 86_400
_SAMPLE = 6 * 3600  # offsets are sampled this often; no real zone changes twice within 6 h
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class SlotRules:
    """How slots are searched, spaced and paged."""

    grid_minutes: int = 15  # starts on :00/:15/:30/:45 of the viewer's wall clock
    minimum_notice: timedelta = timedelta(minutes=30)
    buffer_before: timedelta = timedelta(0)  # free time required before a slot
    buffer_after: timedelta = timedelta(0)  # free time required after a slot
    horizon: timedelta = timedelta(days=14)  # no start later than now + horizon
    max_offered: int = 6  # slots per page
    per_day: int = 3  # on each page, at most this many per day before filling

    def __post_init__(self) -> None:
        if self.grid_minutes <= 0 or (24 * 60) % self.grid_minutes:
            raise ValueError("grid_minutes must divide a day (e.g. 5, 10, 15, 30, 60)")
        if self.max_offered <= 0 or self.per_day <= 0:
            raise ValueError("max_offered and per_day must be positive")
        if min(self.minimum_notice, self.buffer_before, self.buffer_after) < timedelta(0):
            raise ValueError("notice and buffers cannot be negative")


DEFAULT_RULES = SlotRules()


@dataclass(frozen=True, slots=True)
class Availability:
    """One participant's constraints: their working hours (via ``participant``) and busy times."""

    participant: Participant
    busy: Sequence[TimeSlot] = ()  # any order, may overlap


@dataclass(frozen=True, slots=True)
class Series:
    """A recurring meeting: a slot must start it, and be free on its next occurrences too.

    ``rule`` is an RRULE value (``FREQ=WEEKLY;BYDAY=TU``) read on the wall clock of ``zone``;
    which occurrences count is ``bot.recurrence.checked_starts``.
    """

    rule: str
    zone: str


@dataclass(frozen=True, slots=True)
class SlotSearch:
    """One page of ranked free slots, or the reasons why none fit."""

    slots: tuple[TimeSlot, ...]
    has_more: bool
    reasons: tuple[str, ...] = field(default=())  # empty when slots were found


def find_free_slots(
    availabilities: Sequence[Availability],
    window: TimeSlot,
    duration: timedelta,
    *,
    now: datetime,
    viewer_zone: str,
    rules: SlotRules = DEFAULT_RULES,
    exact_start: datetime | None = None,
    page: int = 0,
    exclude: Sequence[TimeSlot] = (),
    series: Series | None = None,
) -> SlotSearch:
    """Free slots of ``duration`` inside ``window`` that suit everyone, ranked and paged.

    Without ``exact_start`` a page holds earlier slots first, at most ``rules.per_day`` per
    day (then filled from the earliest days); within a day, non-overlapping starts come before
    overlapping ones, and each page is returned in chronological order. With ``exact_start``
    every page is ordered by distance from it (ties: earlier first), so a free exact start is
    the first slot, followed by its nearest alternatives; an exact start need not be on the grid.
    A candidate overlapping any ``exclude`` slot is skipped. ``page`` n continues where page
    n-1 stopped, never repeating a slot. Slots are in UTC; render them in any zone.

    With ``series`` a start is offered only if it begins the series and every checked later
    occurrence is free for everyone within their working hours too (notice and horizon apply
    to the first only); ``availabilities`` must then cover those occurrences' busy time.
    """
    if duration <= timedelta(0):
        raise ValueError("a meeting must last longer than zero")
    if page < 0:
        raise ValueError("page cannot be negative")
    viewer_tz = zone_of(viewer_zone)
    dur = math.ceil(duration.total_seconds())
    window_start, window_end = _ceil(window.start), _floor(window.end)
    now_s = _ceil(now)
    notice_end = now_s + math.ceil(rules.minimum_notice.total_seconds())
    horizon_end = now_s + math.floor(rules.horizon.total_seconds())
    earliest = max(window_start, notice_end)
    latest_start = min(window_end - dur, horizon_end)
    talk = _Narrator(viewer_zone, viewer_tz, dur)
    if earliest > latest_start:
        reasons = _window_reasons(talk, window_start, window_end, now_s, notice_end, horizon_end)
        return SlotSearch((), False, reasons)

    search = (earliest, latest_start + dur)
    people = [a.participant for a in availabilities]
    hours = _WorkingCalendar(search[0], search[1])
    common = [search]
    for zone, working_hours in dict.fromkeys((p.time_zone, p.working_hours) for p in people):
        common = _fitting(_intersect(common, hours.spans_for(zone, working_hours)), dur)
        if not common:
            break
    if not common:
        reasons = _working_reasons(
            talk, people, (window_start, window_end), search, now_s, notice_end, horizon_end
        )
        return SlotSearch((), False, reasons)

    before = math.ceil(rules.buffer_before.total_seconds())
    after = math.ceil(rules.buffer_after.total_seconds())
    calendars = [_busy_offsets(a.busy, search[0]) for a in availabilities]
    busy = _Busy.together(search[0], calendars)
    free = busy.free_parts(common, before, after, dur)
    if not free:
        reasons = _busy_reasons(talk, availabilities, calendars, busy, common, before, after)
        return SlotSearch((), False, reasons)

    clock = _zone_clock(viewer_zone, search[0] // _DAY, search[1] // _DAY + 1)
    grid = rules.grid_minutes * 60
    starts = _grid_starts(free, dur, clock, grid, latest_start)
    exact = _ceil(exact_start) if exact_start is not None else None
    if exact is not None and _fits_in(free, exact, exact + dur):
        position = bisect_left(starts, exact)
        if position == len(starts) or starts[position] != exact:
            starts.insert(position, exact)
    if not starts:
        return SlotSearch(
            (),
            False,
            (f"No free time for {talk.meeting} starts on the {rules.grid_minutes}-minute grid.",),
        )
    if series is not None:
        people_hours = list(dict.fromkeys((p.time_zone, p.working_hours) for p in people))
        starts, clash = _series_starts(starts, dur, series, people_hours, busy, before, after)
        if not starts:
            return SlotSearch((), False, (_series_reason(talk, series, clash),))
    blocked = _merge([(_floor(s.start), _ceil(s.end)) for s in exclude])
    if blocked:
        starts = [t for t in starts if not _overlaps_any(blocked, t, t + dur)]
        if not starts:
            return SlotSearch((), False, ("Every time that fits has already been offered.",))

    if exact is not None:
        ranked = sorted(starts, key=lambda t: (abs(t - exact), t))
        chosen = ranked[page * rules.max_offered : (page + 1) * rules.max_offered]
        has_more = len(ranked) > (page + 1) * rules.max_offered
    else:
        chosen, has_more = _page_by_day(starts, dur, clock, rules, page)
    if not chosen:
        return SlotSearch((), False, ("There are no more times in that window.",))
    # UTC on purpose: two wall times of one zone compare and subtract as naive times, which
    # breaks across a fall-back (01:00 EDT to 01:00 EST would look like zero minutes).
    slots = tuple(
        TimeSlot(datetime.fromtimestamp(t, UTC), datetime.fromtimestamp(t + dur, UTC))
        for t in chosen
    )
    return SlotSearch(slots, has_more, ())


def is_free(
    availabilities: Sequence[Availability],
    slot: TimeSlot,
    *,
    rules: SlotRules = DEFAULT_RULES,
    now: datetime,
    series: Series | None = None,
) -> bool:
    """Whether ``slot`` still suits everyone: notice, horizon, working hours, busy and buffers.

    The grid is not checked: a start someone asked for explicitly may be off the grid. With
    ``series``, the slot must begin it and its checked later occurrences must suit everyone
    too (working hours, busy and buffers).
    """
    start, end = _floor(slot.start), _ceil(slot.end)
    now_s = _ceil(now)
    if start < now_s + math.ceil(rules.minimum_notice.total_seconds()):
        return False
    if start > now_s + math.floor(rules.horizon.total_seconds()):
        return False
    hours = _WorkingCalendar(start, end)
    for availability in availabilities:
        if hours.spans(availability.participant) != [(start, end)]:
            return False
    before = math.ceil(rules.buffer_before.total_seconds())
    after = math.ceil(rules.buffer_after.total_seconds())
    busy = _Busy.together(start, [_busy_offsets(a.busy, start) for a in availabilities])
    if busy.free_parts([(start, end)], before, after, end - start) != [(start, end)]:
        return False
    if series is None:
        return True
    people = list(dict.fromkeys((a.participant.time_zone, a.participant.working_hours)
                                for a in availabilities))  # fmt: skip
    kept, _ = _series_starts([start], end - start, series, people, busy, before, after)
    return kept == [start]


def _series_starts(
    starts: list[int],
    duration: int,
    series: Series,
    people: Sequence[tuple[str, WorkingHours]],
    busy: _Busy,
    before: int,
    after: int,
) -> tuple[list[int], tuple[int, int] | None]:
    """The starts that begin ``series`` with every checked later occurrence free in everyone's
    working hours; and the first refused start with its blocked occurrence (None if none was
    blocked, only off the series' days)."""
    plans: dict[int, list[int]] = {}
    reach = 0
    for start in starts:
        occurrences = checked_starts(series.rule, datetime.fromtimestamp(start, UTC), series.zone)
        if occurrences is None:
            continue
        later = [_floor(moment) for moment in occurrences[1:]]
        plans[start] = later
        if later:
            reach = max(reach, later[-1] + duration)
    free: list[_Span] = []
    if reach:
        low = min(later[0] for later in plans.values() if later)
        hours = _WorkingCalendar(low, reach)
        common = [(low, reach)]
        for zone, working_hours in people:
            common = _fitting(_intersect(common, hours.spans_for(zone, working_hours)), duration)
        free = busy.free_parts(common, before, after, duration)
    kept: list[int] = []
    clash: tuple[int, int] | None = None
    for start, later in plans.items():
        blocked = next((t for t in later if not _fits_in(free, t, t + duration)), None)
        if blocked is None:
            kept.append(start)
        elif clash is None:
            clash = (start, blocked)
    return kept, clash


def _series_reason(talk: _Narrator, series: Series, clash: tuple[int, int] | None) -> str:
    """Why no start suits a series: the first free time's later occurrence is taken, or no
    free time falls on the series' days."""
    if clash is None:
        return (
            "No free time in that window falls on a day the meeting repeats on; ask for one "
            "of its days, e.g. `every tuesday at 10`."
        )
    first, blocked = clash
    words = describe_rule(series.rule, datetime.fromtimestamp(first, UTC), series.zone)
    return (
        f"The meeting repeats {words}: {talk.when(first)} is free, but {talk.when(blocked)} is "
        "not (someone is busy or outside their working hours), and so on for every free time. "
        "Try another time of day or another day."
    )


# --- instants and spans -----------------------------------------------------------------------


def _floor(value: datetime) -> int:
    return math.floor(value.timestamp())


def _ceil(value: datetime) -> int:
    return math.ceil(value.timestamp())


def _merge(spans: list[_Span]) -> list[_Span]:
    """Sorted, disjoint spans covering the same instants (touching spans join)."""
    if not spans:
        return []
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            if end > last_end:
                merged[-1] = (last_start, end)
        else:
            merged.append((start, end))
    return merged


def _intersect(first: list[_Span], second: list[_Span]) -> list[_Span]:
    """The instants in both (each input sorted and disjoint)."""
    result: list[_Span] = []
    i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            result.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return result


def _subtract(spans: list[_Span], holes: list[_Span]) -> list[_Span]:
    """``spans`` minus ``holes`` (both sorted and disjoint), in one sweep."""
    result: list[_Span] = []
    j = 0
    for start, end in spans:
        while j < len(holes) and holes[j][1] <= start:
            j += 1
        k = j
        cursor = start
        while k < len(holes) and holes[k][0] < end:
            if holes[k][0] > cursor:
                result.append((cursor, holes[k][0]))
            cursor = max(cursor, holes[k][1])
            k += 1
        if cursor < end:
            result.append((cursor, end))
    return result


def _fitting(spans: list[_Span], length: int) -> list[_Span]:
    return [span for span in spans if span[1] - span[0] >= length]


def _fits_in(spans: list[_Span], start: int, end: int) -> bool:
    i = bisect_right(spans, (start, math.inf)) - 1
    return i >= 0 and spans[i][0] <= start and end <= spans[i][1]


def _overlaps_any(spans: list[_Span], start: int, end: int) -> bool:
    i = bisect_right(spans, (end, -math.inf)) - 1  # the last span starting before ``end``
    return i >= 0 and spans[i][1] > start


def _busy_offsets(busy: Sequence[TimeSlot], origin: int) -> tuple[list[int], list[int]]:
    """Each busy slot's start rounded down and end rounded up, in seconds after ``origin``.

    Seconds near ``origin`` stay below 2**30, where CPython compares and sorts ints fastest.
    """
    floor_origin = datetime.fromtimestamp(origin, UTC)
    # 999,999 µs earlier, so the floor of the difference is the ceiling of the true one.
    ceil_origin = floor_origin - _UNDER_A_SECOND
    # An aware difference is exact in any zone (and quickest for UTC, which needs no offset);
    # its whole days and seconds are its floor. Both beat datetime.timestamp() and a float.
    starts = [(d := s.start - floor_origin).days * _DAY + d.seconds for s in busy]
    ends = [(d := s.end - ceil_origin).days * _DAY + d.seconds for s in busy]
    return starts, ends


_UNDER_A_SECOND = timedelta(microseconds=999_999)


class _Busy:
    """Busy intervals as two separately sorted lists, starts and ends, in seconds after origin.

    Sorting starts and ends apart forgets which end belongs to which start, but not the union:
    an instant is free exactly when as many intervals have ended as have started by then. So
    the k-th smallest end closes a busy run exactly when the (k+1)-th smallest start is later.
    """

    __slots__ = ("ends", "origin", "starts")

    def __init__(self, origin: int, starts: Iterable[int], ends: Iterable[int]) -> None:
        self.origin = origin
        self.starts = sorted(starts)
        self.ends = sorted(ends)

    @classmethod
    def together(cls, origin: int, calendars: Sequence[tuple[list[int], list[int]]]) -> _Busy:
        """Everyone's busy time at once, from ``_busy_offsets`` taken at ``origin``."""
        starts = chain.from_iterable(starts for starts, _ in calendars)
        return cls(origin, starts, chain.from_iterable(ends for _, ends in calendars))

    def free_parts(
        self, spans: Iterable[_Span], before: int, after: int, length: int
    ) -> list[_Span]:
        """The free pieces, at least ``length`` long, of ``spans`` (sorted and disjoint).

        A slot [a, b) needs [a - before, b + after) free, i.e. it must miss [s - after, e + before)
        for every busy [s, e). Only intervals ending inside a span are visited.
        """
        starts, ends, count = self.starts, self.ends, len(self.starts)
        lead = self.origin - after  # starts[k] + lead: the k-th grown start, in epoch seconds
        trail = self.origin + before  # ends[k] + trail: the k-th grown end
        parts: list[_Span] = []
        for low, high in spans:
            k = bisect_right(ends, low - trail)  # how many intervals have ended by ``low``
            cursor = low
            while cursor < high:
                if k < count and starts[k] + lead <= cursor:  # more started than ended: busy
                    k += 1
                    while (
                        k < count
                        and ends[k - 1] + trail < high
                        and starts[k] + lead <= ends[k - 1] + trail
                    ):
                        k += 1
                    cursor = ends[k - 1] + trail  # the run ends (or reaches past ``high``)
                else:
                    stop = min(starts[k] + lead, high) if k < count else high
                    if stop - cursor >= length:
                        parts.append((cursor, stop))
                    cursor = stop
        return parts


# --- zones and working hours ------------------------------------------------------------------


class _ZoneClock:
    """A zone's UTC offsets over a range, as segments found by sampling and bisection."""

    __slots__ = ("offsets", "starts")

    def __init__(self, tz: _Tz, low: int, high: int) -> None:
        def offset(instant: int) -> int:
            delta = datetime.fromtimestamp(instant, tz).utcoffset()
            return int(delta.total_seconds()) if delta is not None else 0

        self.starts = [low]
        self.offsets = [offset(low)]
        previous = low
        while previous < high:
            sample = min(previous + _SAMPLE, high)
            current = offset(sample)
            if current != self.offsets[-1]:
                before, after = previous, sample
                while after - before > 1:
                    middle = (before + after) // 2
                    if offset(middle) == self.offsets[-1]:
                        before = middle
                    else:
                        after = middle
                self.starts.append(after)
                self.offsets.append(current)
            previous = sample

    def offset_at(self, instant: int) -> int:
        return self.offsets[max(bisect_right(self.starts, instant) - 1, 0)]

    def local_day(self, instant: int) -> int:
        return (instant + self.offset_at(instant)) // _DAY


def _grid_starts(
    free: list[_Span], duration: int, clock: _ZoneClock, grid: int, latest: int
) -> list[int]:
    """Every instant whose wall time in the clock's zone is on the grid, with room to fit.

    Wall times are read from real instants, so a time that does not exist locally (a DST gap)
    can never come out.
    """
    starts: list[int] = []
    last = len(clock.starts) - 1
    for span_start, span_end in free:
        low, high = span_start, min(span_end - duration, latest)
        i = max(bisect_right(clock.starts, low) - 1, 0)
        while low <= high:
            offset = clock.offsets[i]
            top = high if i == last else min(high, clock.starts[i + 1] - 1)
            first = -(-(low + offset) // grid) * grid - offset
            starts.extend(range(first, top + 1, grid))
            low = top + 1
            i += 1
    return starts


@lru_cache(maxsize=64)
def _zone_clock(zone: str, first_day: int, last_day: int) -> _ZoneClock:
    """The zone's offsets over whole UTC days (epoch day numbers), shared between searches."""
    return _ZoneClock(zone_of(zone), first_day * _DAY, last_day * _DAY)


class _WorkingCalendar:
    """Working spans over one range, per participant; shares the work between equal people."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self._spans: dict[tuple[str, WorkingHours], list[_Span]] = {}

    def spans(self, person: Participant) -> list[_Span]:
        return self.spans_for(person.time_zone, person.working_hours)

    def spans_for(self, zone: str, hours: WorkingHours) -> list[_Span]:
        key = (zone, hours)
        if key not in self._spans:
            low, high = self.low, self.high
            tz = zone_of(zone)
            first = datetime.fromtimestamp(low, tz).date()
            last = datetime.fromtimestamp(high, tz).date()
            days = _working_days(zone, hours, first, (last - first).days + 1)
            self._spans[key] = [
                (max(s, low), min(e, high)) for s, e in days if e > low and s < high
            ]
        return self._spans[key]


@lru_cache(maxsize=1024)
def _working_days(zone: str, hours: WorkingHours, first: date, count: int) -> tuple[_Span, ...]:
    """Merged working spans of ``count`` local days from ``first``, DST-exact."""
    midnights = _local_midnights(zone, first, count + 1)
    spans: list[_Span] = []
    for index in range(count):
        day = first + timedelta(days=index)
        periods = hours.days[day.weekday()]
        if not periods:
            continue
        midnight = midnights[index]
        if midnights[index + 1] - midnight == _DAY:  # no offset change on this day
            for start, end in periods:
                finish = _DAY if end == time(0) else _seconds_of(end)
                spans.append((midnight + _seconds_of(start), midnight + finish))
        else:  # a DST day: let the model read each wall time exactly
            spans.extend(
                (_floor(slot.start), _ceil(slot.end)) for slot in hours.intervals_on(day, zone)
            )
    return tuple(_merge(spans))


@lru_cache(maxsize=256)
def _local_midnights(zone: str, first: date, count: int) -> tuple[int, ...]:
    """Epoch seconds of ``count`` local midnights from ``first``."""
    tz = zone_of(zone)
    return tuple(
        _floor(datetime.combine(first + timedelta(days=n), time(0), tz)) for n in range(count)
    )


def _seconds_of(value: time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second


# --- ranking ----------------------------------------------------------------------------------


def _page_by_day(
    starts: list[int], duration: int, clock: _ZoneClock, rules: SlotRules, page: int
) -> tuple[list[int], bool]:
    """Page ``page`` of the day-spread ranking, chronological; and whether more remain."""
    queues: dict[int, list[int]] = {}
    for start in starts:
        queues.setdefault(clock.local_day(start), []).append(start)
    days = [_spread_within_day(queues[day], duration) for day in sorted(queues)]
    cursors = [0] * len(days)
    chosen: list[int] = []
    for _ in range(page + 1):
        chosen = []
        # First spread over the days (at most per_day each), then fill from the earliest.
        for cap in (rules.per_day, rules.max_offered):
            for index, queue in enumerate(days):
                room = min(rules.max_offered - len(chosen), cap)
                take = queue[cursors[index] : cursors[index] + room]
                cursors[index] += len(take)
                chosen.extend(take)
    chosen.sort()
    return chosen, any(cursor < len(queue) for cursor, queue in zip(cursors, days, strict=True))


def _spread_within_day(starts: list[int], duration: int) -> list[int]:
    """A day's starts, non-overlapping ones first (earliest-first chains), then the rest."""
    order: list[int] = []
    pending = starts
    while pending:
        later: list[int] = []
        free_from = -math.inf
        for start in pending:
            if start >= free_from:
                order.append(start)
                free_from = start + duration
            else:
                later.append(start)
        pending = later
    return order


# --- reasons ----------------------------------------------------------------------------------


class _Narrator:
    """Words for instants, lengths and people, in the viewer's zone."""

    def __init__(self, viewer_zone: str, viewer_tz: _Tz, duration: int) -> None:
        self.viewer_zone = viewer_zone
        self.viewer_tz = viewer_tz
        self.duration = duration
        self.meeting = f"the {_length_words(duration, adjective=True)} meeting"

    def when(self, instant: int) -> str:
        """``Thu 26 Nov 14:00`` in the viewer's zone."""
        local = datetime.fromtimestamp(instant, self.viewer_tz)
        month = _MONTHS[local.month - 1]
        return f"{_WEEKDAYS[local.weekday()]} {local.day} {month} {local:%H:%M}"

    def wall(self, instant: int, zone: str) -> str:
        """``17:00 Berlin time, 10:00 for you`` (``17:00 your time`` in the viewer's zone)."""
        theirs = f"{datetime.fromtimestamp(instant, zone_of(zone)):%H:%M}"
        if zone == self.viewer_zone:
            return f"{theirs} your time"
        yours = f"{datetime.fromtimestamp(instant, self.viewer_tz):%H:%M}"
        return f"{theirs} {_city(zone)} time, {yours} for you"


def _city(zone: str) -> str:
    return zone.rsplit("/", 1)[-1].replace("_", " ")


def _length_words(seconds: int, *, adjective: bool = False) -> str:
    """``30 minutes``, ``1 hour 30 minutes``, ``14 days``; as an adjective ``90-minute``."""
    minutes = seconds // 60
    if adjective:
        return f"{minutes // 60}-hour" if minutes % 60 == 0 else f"{minutes}-minute"
    days, rest = divmod(minutes, 24 * 60)
    if days and not rest:
        return f"{days} day" + ("s" if days != 1 else "")
    hours, minutes = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(f"{hours} hour" + ("s" if hours != 1 else ""))
    if minutes or not hours:
        parts.append(f"{minutes} minute" + ("s" if minutes != 1 else ""))
    return " ".join(parts)


def _names(people: Sequence[str]) -> str:
    if len(people) == 1:
        return people[0]
    return ", ".join(people[:-1]) + " and " + people[-1]


def _window_reasons(
    talk: _Narrator,
    window_start: int,
    window_end: int,
    now: int,
    notice_end: int,
    horizon_end: int,
) -> tuple[str, ...]:
    """Why no start can exist at all, before anyone's hours or calendar matter."""
    duration = talk.duration
    if window_end - window_start < duration:
        return (
            f"The window from {talk.when(window_start)} to {talk.when(window_end)} is shorter "
            f"than {talk.meeting}.",
        )
    if window_end - duration < now:
        return (f"That time is already in the past (the window ends {talk.when(window_end)}).",)
    if window_end - duration < notice_end:
        return (
            f"I need {_length_words(notice_end - now)} notice, so the earliest start is "
            f"{talk.when(notice_end)}: too late for {talk.meeting} before the window ends "
            f"at {talk.when(window_end)}.",
        )
    if window_start > horizon_end:
        return (
            f"I only look {_length_words(horizon_end - now)} ahead (until "
            f"{talk.when(horizon_end)}), and that window starts later.",
        )
    return ("The minimum notice and the horizon leave no possible start time.",)


def _common_fit(people: Sequence[Participant], low: int, high: int, duration: int) -> bool:
    hours = _WorkingCalendar(low, high)
    common = [(low, high)]
    for person in people:
        common = _fitting(_intersect(common, hours.spans(person)), duration)
    return bool(common)


def _working_reasons(
    talk: _Narrator,
    people: Sequence[Participant],
    window: _Span,
    search: _Span,
    now: int,
    notice_end: int,
    horizon_end: int,
) -> tuple[str, ...]:
    """Why working hours leave no room: notice or horizon, someone off, or a pair apart."""
    duration = talk.duration
    open_window = (max(window[0], now), window[1])
    if _common_fit(people, *open_window, duration):
        # Hours do meet inside the window, only not between the notice and the horizon.
        if search[0] > open_window[0] and _common_fit(people, open_window[0], search[1], duration):
            return (
                f"I need {_length_words(notice_end - now)} notice, so the earliest start is "
                f"{talk.when(notice_end)}, and working hours leave no room for {talk.meeting} "
                "after that in the window.",
            )
        return (
            f"I only look {_length_words(horizon_end - now)} ahead (until "
            f"{talk.when(horizon_end)}); everyone's working hours meet only later.",
        )
    hours = _WorkingCalendar(*search)
    idle = [p.name for p in people if not _fitting(hours.spans(p), duration)]
    if idle:
        verb = "doesn't" if len(idle) == 1 else "don't"
        return (f"{_names(idle)} {verb} work long enough in that window for {talk.meeting}.",)
    common = [search]
    for k, person in enumerate(people):
        common = _fitting(_intersect(common, hours.spans(person)), duration)
        if common:
            continue
        for other in people[:k]:
            if not _fitting(_intersect(hours.spans(other), hours.spans(person)), duration):
                return (_apart(talk, other, hours.spans(other), person, hours.spans(person)),)
        together = _names([p.name for p in people[: k + 1]])
        return (f"There is no time in that window when {together} all work, {talk.meeting}.",)
    return ("Working hours leave no room in that window.",)  # unreachable when called right


def _apart(
    talk: _Narrator,
    first: Participant,
    first_spans: list[_Span],
    second: Participant,
    second_spans: list[_Span],
) -> str:
    """``Ana's day ends at 17:00 Berlin time, 08:00 for you; Bob's starts at 09:00 …``."""
    if second_spans[0][1] < first_spans[0][1]:
        first, first_spans, second, second_spans = second, second_spans, first, first_spans
    ends = first_spans[0][1]
    nearest = next((s for s in second_spans if s[1] > first_spans[0][0]), second_spans[0])
    return (
        f"Working hours don't overlap for {talk.meeting}: {first.name}'s day ends at "
        f"{talk.wall(ends, first.time_zone)}; {second.name}'s starts at "
        f"{talk.wall(nearest[0], second.time_zone)}."
    )


def _busy_reasons(
    talk: _Narrator,
    availabilities: Sequence[Availability],
    calendars: Sequence[tuple[list[int], list[int]]],
    busy: _Busy,
    common: list[_Span],
    before: int,
    after: int,
) -> tuple[str, ...]:
    """Who is busy throughout the shared working time, or that calendars together fill it.

    ``calendars`` are each person's ``_busy_offsets`` and ``busy`` all of them together, as the
    search already has them; nothing is converted twice.
    """
    duration = talk.duration
    throughout = [
        availability.participant.name
        for availability, (starts, ends) in zip(availabilities, calendars, strict=True)
        if not _Busy(busy.origin, starts, ends).free_parts(common, 0, 0, duration)
    ]
    if throughout:
        verb = "is" if len(throughout) == 1 else "are"
        return (f"{_names(throughout)} {verb} busy throughout the shared working hours.",)
    if (before or after) and busy.free_parts(common, 0, 0, duration):
        return (
            f"Calendars together leave no gap long enough for {talk.meeting} with the "
            "buffer kept around other meetings.",
        )
    return (f"Calendars together leave no gap long enough for {talk.meeting} in that window.",)
