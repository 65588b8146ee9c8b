"""Slotbot's vocabulary: the schedule object (the seed's JSON shape) and our frozen values.

Every datetime here is timezone-aware; constructors refuse naive ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

__all__ = [
    "Booking",
    "BookingState",
    "MeetingRequest",
    "OccurrenceChange",
    "Participant",
    "ScheduleObject",
    "SchedulePoint",
    "TimeSlot",
    "WorkingHours",
    "format_datetime",
    "require_aware",
    "wall_to_instant",
    "zone_of",
]


def require_aware(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` if it carries a UTC offset; raise ``ValueError`` for a naive one."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value


def zone_of(name: str) -> ZoneInfo | timezone:
    """The tzinfo for an IANA name; ``UTC`` and ``GMT`` are the fixed zone."""
    if name in ("UTC", "GMT", "Etc/UTC", "Z"):
        return UTC
    return ZoneInfo(name)


# --- the schedule object --------------------------------------------------------------------


class _DateJSON(TypedDict):
    year: int
    month: int
    day: int


class _TimeJSON(TypedDict):
    hour: int
    minute: int
    second: int
    millisecond: int


class SchedulePointJSON(TypedDict):
    date: _DateJSON
    time: _TimeJSON
    timeZone: str


class ScheduleObjectJSON(TypedDict):
    start_time: SchedulePointJSON
    end_time: SchedulePointJSON
    calendar_event_id: str
    calendar_id: str
    recurrence: Any


@dataclass(frozen=True, slots=True)
class SchedulePoint:
    """A wall-clock date and time in a named zone, as the seed's ``start_time``/``end_time``."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int = 0
    millisecond: int = 0
    time_zone: str = "UTC"

    @classmethod
    def from_datetime(cls, value: datetime, time_zone: str) -> SchedulePoint:
        """The wall-clock reading of the instant ``value`` in ``time_zone``."""
        local = require_aware(value, "value").astimezone(zone_of(time_zone))
        return cls(
            local.year,
            local.month,
            local.day,
            local.hour,
            local.minute,
            local.second,
            local.microsecond // 1000,
            time_zone,
        )

    def to_datetime(self) -> datetime:
        """The aware instant; an ambiguous wall time reads as its first occurrence (fold=0)."""
        return datetime(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.millisecond * 1000,
            tzinfo=zone_of(self.time_zone),
        )

    def to_json(self) -> SchedulePointJSON:
        return {
            "date": {"year": self.year, "month": self.month, "day": self.day},
            "time": {
                "hour": self.hour,
                "minute": self.minute,
                "second": self.second,
                "millisecond": self.millisecond,
            },
            "timeZone": self.time_zone,
        }

    @classmethod
    def from_json(cls, data: SchedulePointJSON) -> SchedulePoint:
        d, t = data["date"], data["time"]
        point = cls(
            int(d["year"]),
            int(d["month"]),
            int(d["day"]),
            int(t["hour"]),
            int(t["minute"]),
            int(t.get("second", 0)),
            int(t.get("millisecond", 0)),
            str(data["timeZone"]),
        )
        point.to_datetime()  # validates the date, the time and the zone name
        return point


def format_datetime(point: SchedulePoint | datetime) -> str:
    """RFC 3339 with the UTC offset, like the seed's ``FORMAT_DATETIME`` (``…T20:00:00Z``)."""
    value = point.to_datetime() if isinstance(point, SchedulePoint) else require_aware(point)
    offset = value.utcoffset()
    spec = "milliseconds" if value.microsecond else "seconds"
    text = value.replace(tzinfo=None).isoformat(timespec=spec)
    if offset == timedelta(0):
        return text + "Z"
    return text + value.isoformat()[-6:]


@dataclass(frozen=True, slots=True)
class ScheduleObject:
    """The seed's schedule object: the selected slot plus the calendar event it became."""

    start_time: SchedulePoint
    end_time: SchedulePoint
    calendar_event_id: str = ""
    calendar_id: str = ""
    recurrence: Any = None

    def __post_init__(self) -> None:
        if self.end_time.to_datetime() <= self.start_time.to_datetime():
            raise ValueError("a schedule object must end after it starts")

    @classmethod
    def from_slot(
        cls,
        slot: TimeSlot,
        time_zone: str,
        *,
        calendar_event_id: str = "",
        calendar_id: str = "",
        recurrence: Any = None,
    ) -> ScheduleObject:
        return cls(
            SchedulePoint.from_datetime(slot.start, time_zone),
            SchedulePoint.from_datetime(slot.end, time_zone),
            calendar_event_id,
            calendar_id,
            recurrence,
        )

    @property
    def slot(self) -> TimeSlot:
        return TimeSlot(self.start_time.to_datetime(), self.end_time.to_datetime())

    def to_json(self) -> ScheduleObjectJSON:
        return {
            "start_time": self.start_time.to_json(),
            "end_time": self.end_time.to_json(),
            "calendar_event_id": self.calendar_event_id,
            "calendar_id": self.calendar_id,
            "recurrence": self.recurrence,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: ScheduleObjectJSON) -> ScheduleObject:
        return cls(
            SchedulePoint.from_json(data["start_time"]),
            SchedulePoint.from_json(data["end_time"]),
            str(data.get("calendar_event_id", "")),
            str(data.get("calendar_id", "")),
            data.get("recurrence"),
        )

    @classmethod
    def loads(cls, text: str) -> ScheduleObject:
        return cls.from_json(json.loads(text))

    def with_event(self, calendar_event_id: str, calendar_id: str) -> ScheduleObject:
        return ScheduleObject(
            self.start_time, self.end_time, calendar_event_id, calendar_id, self.recurrence
        )


# --- slots, people, requests, bookings -------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class TimeSlot:
    """A half-open interval ``[start, end)`` between two aware instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        require_aware(self.start, "start")
        require_aware(self.end, "end")
        if self.end <= self.start:
            raise ValueError("a slot must end after it starts")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def overlaps(self, other: TimeSlot) -> bool:
        return self.start < other.end and other.start < self.end


DEFAULT_WORKDAYS = (0, 1, 2, 3, 4)


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """Per-weekday working intervals in the person's own zone (Monday = 0).

    ``days[i]`` is a tuple of ``(start, end)`` wall times; an empty tuple is a day off.
    An ``end`` of ``time(0)`` means midnight at the end of the day.
    """

    days: tuple[tuple[tuple[time, time], ...], ...] = field(
        default_factory=lambda: tuple(
            ((time(9), time(17)),) if d in DEFAULT_WORKDAYS else () for d in range(7)
        )
    )

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError("working hours need exactly seven weekdays")
        for day in self.days:
            for start, end in day:
                if end != time(0) and end <= start:
                    raise ValueError("a working interval must end after it starts")

    @classmethod
    def uniform(
        cls, start: time, end: time, weekdays: tuple[int, ...] = DEFAULT_WORKDAYS
    ) -> WorkingHours:
        return cls(tuple(((start, end),) if d in weekdays else () for d in range(7)))

    def intervals_on(self, day: date, zone: str) -> list[TimeSlot]:
        """The working intervals of one local calendar day, as instants (DST-exact)."""
        tz = zone_of(zone)
        result = []
        for start, end in self.days[day.weekday()]:
            begin = _wall_to_instant(datetime.combine(day, start), tz)
            if end == time(0):
                finish = _wall_to_instant(datetime.combine(day + timedelta(days=1), time(0)), tz)
            else:
                finish = _wall_to_instant(datetime.combine(day, end), tz)
            if finish > begin:
                result.append(TimeSlot(begin, finish))
        return result


def _wall_to_instant(naive: datetime, tz: ZoneInfo | timezone) -> datetime:
    """Read a wall time in ``tz`` per RFC 5545: gaps shift forward, overlaps take the first."""
    aware = naive.replace(tzinfo=tz, fold=0)
    # A wall time in a gap does not survive a round trip through UTC.
    round_trip = aware.astimezone(UTC).astimezone(tz)
    if round_trip.replace(tzinfo=None) != naive:
        # Use the offset before the gap (fold=0 gives it for a gap in zoneinfo), i.e. shift.
        return aware.astimezone(UTC).astimezone(tz)
    return aware


def wall_to_instant(naive: datetime, zone: str) -> datetime:
    """Public form of the RFC 5545 wall-time reading for an IANA zone name."""
    return _wall_to_instant(naive, zone_of(zone))


@dataclass(frozen=True, slots=True)
class Participant:
    """Someone whose calendar and working hours constrain a meeting."""

    user_id: str
    time_zone: str = "UTC"
    email: str | None = None
    display_name: str | None = None
    working_hours: WorkingHours = field(default_factory=WorkingHours)

    def __post_init__(self) -> None:
        zone_of(self.time_zone)  # raises for an unknown zone name

    @property
    def name(self) -> str:
        return self.display_name or self.user_id


@dataclass(frozen=True, slots=True)
class MeetingRequest:
    """What one line of chat asked for: where to search, for how long, with whom, about what."""

    window_start: datetime
    window_end: datetime
    exact_start: datetime | None = None
    duration_minutes: int | None = None
    attendees: tuple[str, ...] = ()
    title: str | None = None
    time_zone: str = "UTC"
    recurrence: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require_aware(self.window_start, "window_start")
        require_aware(self.window_end, "window_end")
        if self.exact_start is not None:
            require_aware(self.exact_start, "exact_start")
        if self.window_end <= self.window_start:
            raise ValueError("the search window must end after it starts")
        if self.duration_minutes is not None and self.duration_minutes <= 0:
            raise ValueError("a meeting must last at least a minute")

    def to_json(self) -> dict[str, Any]:
        """The shape ``slotbot parse`` prints (REQUEST-LANGUAGE.md section 0)."""
        return {
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "exact_start": self.exact_start.isoformat() if self.exact_start else None,
            "duration_minutes": self.duration_minutes,
            "attendees": list(self.attendees),
            "title": self.title,
        }


class BookingState(StrEnum):
    """Where a booking is on its way from a click to a delivered invite."""

    PENDING = "pending"  # decided to book; the calendar event may or may not exist yet
    CREATED = "created"  # the calendar event exists
    CONFIRMED = "confirmed"  # the confirmation and the .ics reached Slack
    CANCELLED = "cancelled"

    @property
    def is_live(self) -> bool:
        """The meeting stands (its event exists, it is not cancelled): it may be changed."""
        return self in (BookingState.CREATED, BookingState.CONFIRMED)


@dataclass(frozen=True, slots=True)
class OccurrenceChange:
    """One occurrence of a recurring booking changed on its own: moved to ``slot``, or
    cancelled (``slot`` None). ``original_start`` is where the rule puts it (its RECURRENCE-ID);
    ``sequence`` is the booking's SEQUENCE when it changed."""

    original_start: datetime
    slot: TimeSlot | None
    sequence: int

    def __post_init__(self) -> None:
        require_aware(self.original_start, "original_start")

    @property
    def cancelled(self) -> bool:
        return self.slot is None

    def to_json(self) -> dict[str, Any]:
        return {
            "original_start": self.original_start.astimezone(UTC).isoformat(),
            "start": self.slot.start.astimezone(UTC).isoformat() if self.slot else None,
            "end": self.slot.end.astimezone(UTC).isoformat() if self.slot else None,
            "sequence": self.sequence,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OccurrenceChange:
        start, end = data.get("start"), data.get("end")
        slot = (
            TimeSlot(datetime.fromisoformat(start), datetime.fromisoformat(end))
            if start and end
            else None
        )
        return cls(datetime.fromisoformat(data["original_start"]), slot, int(data["sequence"]))


@dataclass(frozen=True, slots=True)
class Booking:
    """A meeting Slotbot booked: one per booking key, whatever happens on the way."""

    key: str
    team_id: str
    organizer_id: str
    participant_ids: tuple[str, ...]
    title: str | None
    schedule: ScheduleObject
    state: BookingState = BookingState.PENDING
    sequence: int = 0
    uid: str = ""
    offer_id: str | None = None
    channel_id: str | None = None
    thread_ts: str | None = None
    message_ts: str | None = None
    event_link: str | None = None
    #: Occurrences of a recurring booking moved or cancelled on their own, by original start.
    exceptions: tuple[OccurrenceChange, ...] = ()

    @property
    def slot(self) -> TimeSlot:
        """The (first) meeting's time; a series' first occurrence."""
        return self.schedule.slot

    @property
    def recurring(self) -> bool:
        return bool(self.schedule.recurrence)

    def exception_at(self, original_start: datetime) -> OccurrenceChange | None:
        return next((c for c in self.exceptions if c.original_start == original_start), None)
