"""Recurrence rules (RFC 5545 RRULE) read as wall-clock times in the meeting's own zone.

Pure: expanding a rule, the occurrences a new series must be free on, words for a rule, and the
instance ids calendars use for one occurrence. A weekly 10:00 in Berlin stays 10:00 in Berlin
across daylight saving time, whatever instant that is elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice

from dateutil.rrule import rrule, rrulestr

from bot.models import Booking, TimeSlot, zone_of

__all__ = [
    "CHECK_SPAN",
    "FOREVER",
    "MAX_CHECKED",
    "MIN_CHECKED",
    "Occurrence",
    "booking_occurrences",
    "checked_reach",
    "checked_starts",
    "describe_rule",
    "next_occurrence",
    "occurrence_id",
    "parse_occurrence_id",
    "rule_of",
    "series_end",
    "series_last_start",
    "starts_between",
]

#: A new series must be free on at least this many occurrences ...
MIN_CHECKED = 4
#: ... on every occurrence within this span of the first ...
CHECK_SPAN = timedelta(days=28)
#: ... and on all of them for a finite series, up to this many (daily for a month fits).
MAX_CHECKED = 26
#: The end of a series that never ends, for range queries (a real instant, far away).
FOREVER = datetime(9999, 1, 1, tzinfo=UTC)

_OCCURRENCE_ID = re.compile(r"(\d{8}T\d{6})Z")
_DAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
_DAY_WORDS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WORKWEEK = frozenset(range(5))


def rule_of(recurrence: Iterable[str] | None) -> str | None:
    """The RRULE of a recurrence list (``["RRULE:FREQ=WEEKLY;BYDAY=TU"]``) without its name."""
    for line in recurrence or ():
        text = line.strip()
        if text.upper().startswith("RRULE:"):
            return text[len("RRULE:") :]
    return None


@lru_cache(maxsize=512)
def _rule(rule: str, first: datetime) -> rrule:
    parsed = rrulestr(rule, dtstart=first)
    assert isinstance(parsed, rrule)  # one RRULE, never a set
    return parsed


def _local(first: datetime, zone: str) -> datetime:
    # The rule runs on wall times of the zone: dateutil keeps the wall time and the tzinfo,
    # and zoneinfo then reads each (a spring-gap time shifts forward, as RFC 5545 wants).
    return first.astimezone(zone_of(zone)).replace(microsecond=0)


def starts_between(
    rule: str, first: datetime, zone: str, start: datetime, end: datetime
) -> list[datetime]:
    """The occurrences (start instants, in UTC) of a series starting at ``first`` that begin in
    ``[start, end)``; ``first`` counts when the rule generates it."""
    begin = max(start, first)
    if end <= begin:
        return []
    found = _rule(rule, _local(first, zone)).between(begin, end, inc=True)
    return [moment.astimezone(UTC) for moment in found if moment < end]


def series_last_start(rule: str, first: datetime, zone: str) -> datetime | None:
    """The last occurrence's start, or None for a series without end (no COUNT or UNTIL)."""
    parsed = _rule(rule, _local(first, zone))
    if "COUNT=" not in rule.upper() and "UNTIL=" not in rule.upper():
        return None
    last = None
    for moment in islice(parsed, 100_000):
        last = moment
    return last.astimezone(UTC) if last is not None else None


def checked_starts(rule: str, first: datetime, zone: str) -> tuple[datetime, ...] | None:
    """The occurrences a new series starting at ``first`` must be free on, first included.

    All of a finite series of at most ``MAX_CHECKED``; otherwise those within ``CHECK_SPAN`` of
    the first, at least ``MIN_CHECKED`` and at most ``MAX_CHECKED``. None when ``first`` is not
    itself an occurrence (a Monday for a rule on Tuesdays): such a start cannot begin it.
    """
    return _checked(rule, _local(first, zone))


@lru_cache(maxsize=4096)
def _checked(rule: str, local_first: datetime) -> tuple[datetime, ...] | None:
    found = _select(rule, list(islice(_rule(rule, local_first), MAX_CHECKED + 1)))
    if not found or found[0] != local_first:
        return None
    return tuple(moment.astimezone(UTC) for moment in found)


def _select(rule: str, found: list[datetime]) -> list[datetime]:
    finite = "COUNT=" in rule.upper() or "UNTIL=" in rule.upper()
    if found and not (finite and len(found) <= MAX_CHECKED):
        horizon = found[0] + CHECK_SPAN
        within = [moment for moment in found if moment < horizon]
        found = found[: min(max(len(within), MIN_CHECKED), MAX_CHECKED)]
    return found


def checked_reach(rule: str, start: datetime, zone: str) -> timedelta:
    """How far after ``start`` the checked occurrences of a series beginning then (or at its
    first occurrence after ``start``) may reach: the busy time a search must read."""
    local = _local(start, zone)
    found = _select(rule, list(islice(_rule(rule, local), MAX_CHECKED + 1)))
    # A day more: the series may begin on any day of the window, and months differ in length.
    return (found[-1] - local if found else timedelta(0)) + timedelta(days=1)


def series_end(recurrence: Iterable[str] | None, first: TimeSlot, zone: str) -> datetime | None:
    """When a series' last occurrence ends (``FOREVER`` without an end); None for a single
    meeting. Range queries use it to find series that began before a range."""
    rule = rule_of(recurrence)
    if rule is None:
        return None
    last = series_last_start(rule, first.start, zone)
    return FOREVER if last is None else last + first.duration


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One meeting of a booking: when the rule put it (``original_start``) and when it is."""

    original_start: datetime
    slot: TimeSlot

    @property
    def moved(self) -> bool:
        return self.slot.start != self.original_start


def booking_occurrences(booking: Booking, start: datetime, end: datetime) -> list[Occurrence]:
    """The booking's live meetings overlapping ``[start, end)``, soonest first: a single
    booking's one, or a series' occurrences with its moved ones moved and cancelled ones gone."""
    first = booking.slot
    rule = rule_of(booking.schedule.recurrence)
    if rule is None:
        return [Occurrence(first.start, first)] if first.start < end and start < first.end else []
    duration = first.duration
    changed = {change.original_start: change for change in booking.exceptions}
    found = []
    for original in starts_between(
        rule, first.start, booking.schedule.start_time.time_zone, start - duration, end
    ):
        if original not in changed:
            found.append(Occurrence(original, TimeSlot(original, original + duration)))
    for change in booking.exceptions:
        if change.slot is not None and change.slot.start < end and start < change.slot.end:
            found.append(Occurrence(change.original_start, change.slot))
    return sorted(found, key=lambda o: (o.slot.start, o.original_start))


def next_occurrence(booking: Booking, after: datetime) -> Occurrence | None:
    """The booking's first live meeting starting after ``after``: a single booking's one, or a
    series' next occurrence (a moved one where it went, cancelled ones skipped); None when
    there is none (the series ended)."""
    first = booking.slot
    rule = rule_of(booking.schedule.recurrence)
    if rule is None:
        return Occurrence(first.start, first) if first.start > after else None
    changed = {change.original_start for change in booking.exceptions}
    moved = min(
        (
            Occurrence(change.original_start, change.slot)
            for change in booking.exceptions
            if change.slot is not None and change.slot.start > after
        ),
        key=lambda o: (o.slot.start, o.original_start),
        default=None,
    )
    parsed = _rule(rule, _local(first.start, booking.schedule.start_time.time_zone))
    cursor = after
    # Each occurrence skipped is one changed on its own: the one after them all is the rule's.
    for _ in range(len(changed) + 1):
        moment = parsed.after(cursor)
        if moment is None:
            break
        original = moment.astimezone(UTC)
        if moved is not None and (original, original) > (moved.slot.start, moved.original_start):
            break
        if original not in changed:
            return Occurrence(original, TimeSlot(original, original + first.duration))
        cursor = moment
    return moved


def occurrence_id(original_start: datetime) -> str:
    """``20261201T090000Z``: an occurrence's original start in UTC, as Google's instance ids
    (``<eventId>_<this>``) and our own override rows name it."""
    return original_start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_occurrence_id(text: str) -> datetime | None:
    """The instant an ``occurrence_id`` names, or None for anything else."""
    match = _OCCURRENCE_ID.fullmatch(text)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _parts(rule: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in rule.upper().split(";") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def describe_rule(rule: str, first: datetime, zone: str) -> str:
    """Words for a rule: ``every Tuesday``, ``every other Friday``, ``every weekday, 10 times``."""
    parts = _parts(rule)
    freq = parts.get("FREQ", "")
    interval = int(parts.get("INTERVAL", "1") or 1)
    local = _local(first, zone)
    days = sorted(
        _DAYS[code[-2:]] for code in parts.get("BYDAY", "").split(",") if code[-2:] in _DAYS
    )
    if freq == "WEEKLY" and not days:
        days = [local.weekday()]
    if freq in ("DAILY", "WEEKLY") and set(days) == _WORKWEEK and interval == 1:
        words = "every weekday"
    elif freq == "DAILY" and not days:
        words = "every day" if interval == 1 else f"every {interval} days"
    elif freq in ("DAILY", "WEEKLY"):
        names = _listed([_DAY_WORDS[d] for d in days])
        every = {1: "every", 2: "every other"}.get(interval, f"every {interval} weeks on")
        words = f"{every} {names}"
    elif freq == "MONTHLY":
        every = "every month" if interval == 1 else f"every {interval} months"
        words = f"{every} on the {_ordinal(local.day)}"
    elif freq == "YEARLY":
        words = "every year"
    else:
        words = "repeating"
    if "COUNT" in parts:
        words += f", {parts['COUNT']} times"
    elif "UNTIL" in parts:
        until = _until(parts["UNTIL"])
        if until is not None:
            words += f", until {until.astimezone(local.tzinfo):%a %d %b %Y}"
    return words


def _until(text: str) -> datetime | None:
    for pattern in ("%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S", "%Y%m%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"
