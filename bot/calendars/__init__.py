"""The calendar seam: one small protocol every provider speaks, and the values it trades.

Providers: ``local`` (events in our own database, the default) and ``google``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.models import Participant, TimeSlot, require_aware, zone_of

__all__ = [
    "Attendee",
    "CalendarEvent",
    "CalendarProvider",
    "CreatedEvent",
    "FreeBusy",
    "event_id_for",
]

# Google Calendar's rule for client-supplied ids: base32hex characters, 5 to 1024 of them;
# one occurrence of a series is "<id>_<original start, YYYYMMDDTHHMMSSZ>".
_EVENT_ID = re.compile(r"[a-v0-9]{5,1024}(?:_\d{8}T\d{6}Z)?")


def event_id_for(booking_key: str) -> str:
    """The calendar event id for a booking key: a lowercase base32hex SHA-256, 52 characters."""
    digest = hashlib.sha256(booking_key.encode()).digest()
    return base64.b32hexencode(digest).decode().rstrip("=").lower()


@dataclass(frozen=True, slots=True)
class Attendee:
    """A person on an event; the local calendar matches on ``user_id``, others on ``email``."""

    email: str | None = None
    name: str | None = None
    user_id: str | None = None

    def __post_init__(self) -> None:
        if not (self.email or self.user_id):
            raise ValueError("an attendee needs an email or a user id")

    @classmethod
    def of(cls, person: Participant) -> Attendee:
        return cls(person.email, person.display_name, person.user_id)


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """An event we ask a provider to hold; ``event_id`` is ours, so retries cannot duplicate it."""

    event_id: str
    calendar_id: str
    summary: str
    start: datetime
    end: datetime
    time_zone: str = "UTC"
    description: str = ""
    attendees: tuple[Attendee, ...] = ()
    organizer: Attendee | None = None
    recurrence: tuple[str, ...] = ()
    sequence: int = 0
    #: Set when the event is one occurrence of the series ``event_id``: its original start.
    original_start: datetime | None = None

    def __post_init__(self) -> None:
        if not _EVENT_ID.fullmatch(self.event_id):
            raise ValueError(f"event id {self.event_id!r} is not 5-1024 base32hex characters")
        if not self.calendar_id:
            raise ValueError("an event needs a calendar id")
        require_aware(self.start, "start")
        require_aware(self.end, "end")
        if self.end <= self.start:
            raise ValueError("an event must end after it starts")
        zone_of(self.time_zone)  # raises for an unknown zone name
        if self.sequence < 0:
            raise ValueError("a sequence number is never negative")

    @property
    def slot(self) -> TimeSlot:
        return TimeSlot(self.start, self.end)


@dataclass(frozen=True, slots=True)
class CreatedEvent:
    """What a provider answers for an event it holds."""

    event_id: str
    calendar_id: str
    ical_uid: str
    html_link: str | None = None


@dataclass(frozen=True, slots=True)
class FreeBusy:
    """Busy intervals by user id, and the user ids whose calendar could not be read, with why."""

    busy: Mapping[str, tuple[TimeSlot, ...]] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)


class CalendarProvider(Protocol):
    """A calendar Slotbot can read busy times from and write events to."""

    name: str

    @property
    def invites_attendees(self) -> bool:
        """Whether events land on the attendees' own calendars; if not, the .ics is the invite."""
        ...

    async def free_busy(
        self, team_id: str, people: Sequence[Participant], start: datetime, end: datetime
    ) -> FreeBusy:
        """Busy intervals of each person within ``[start, end)``."""
        ...

    async def create_event(self, team_id: str, event: CalendarEvent) -> CreatedEvent:
        """Create the event; creating the same ``event_id`` again returns the existing one."""
        ...

    async def update_event(self, team_id: str, event: CalendarEvent) -> CreatedEvent:
        """Replace an existing event's time, text and attendees; with ``event.original_start``
        only that occurrence of the series ``event.event_id`` (the rest stays as it is)."""
        ...

    async def delete_event(
        self,
        team_id: str,
        calendar_id: str,
        event_id: str,
        *,
        organizer: Attendee | None = None,
        original_start: datetime | None = None,
    ) -> None:
        """Cancel the event (with ``original_start``, only that occurrence of the series); an
        unknown or already cancelled event is not an error.

        ``organizer`` says whose calendar holds it where the calendar id alone does not
        (Google with per-user OAuth, where every organizer's calendar is ``primary``).
        """
        ...
