"""The embedded default calendar: events live in Slotbot's own database.

A person's calendar id is their Slack user id; they are busy during the events in it and the
events they attend. Nothing leaves the process, so every calendar is always readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.calendars import Attendee, CalendarEvent, CreatedEvent, FreeBusy
from bot.errors import CalendarError
from bot.models import Participant, TimeSlot
from bot.store import LocalEvent, Store, merge_slots

__all__ = ["ICAL_DOMAIN", "LocalCalendar"]

ICAL_DOMAIN = "slotbot.local"


class LocalCalendar:
    """A ``CalendarProvider`` over the ``local_events`` table."""

    name = "local"
    #: Attendees are busy in their own local calendar during the event.
    invites_attendees = True

    def __init__(self, store: Store) -> None:
        self._store = store

    async def free_busy(
        self, team_id: str, people: Sequence[Participant], start: datetime, end: datetime
    ) -> FreeBusy:
        """Busy intervals of each person, from their own calendar and what they attend."""
        keys = {
            person.user_id: [person.user_id, *([person.email] if person.email else [])]
            for person in people
        }
        found = await self._store.busy_intervals(
            team_id, [key for ids in keys.values() for key in ids], start, end
        )
        busy: dict[str, tuple[TimeSlot, ...]] = {
            user_id: tuple(merge_slots(slot for key in ids for slot in found[key]))
            for user_id, ids in keys.items()
        }
        return FreeBusy(busy=busy)

    async def create_event(self, team_id: str, event: CalendarEvent) -> CreatedEvent:
        """Store the event; the same ``event_id`` again returns the stored one unchanged."""
        stored, _ = await self._store.insert_local_event(
            team_id, event, f"{event.event_id}@{ICAL_DOMAIN}"
        )
        return _created(stored)

    async def update_event(self, team_id: str, event: CalendarEvent) -> CreatedEvent:
        """Replace the event's time, text and attendees (or one occurrence's); it must exist."""
        if event.original_start is not None:
            stored = await self._store.put_local_occurrence(
                team_id, event.calendar_id, event.event_id, event.original_start, event
            )
        else:
            stored = await self._store.replace_local_event(team_id, event)
        if stored is None:
            raise CalendarError("That calendar event no longer exists, so it cannot be changed.")
        return _created(stored)

    async def delete_event(
        self,
        team_id: str,
        calendar_id: str,
        event_id: str,
        *,
        organizer: Attendee | None = None,
        original_start: datetime | None = None,
    ) -> None:
        """Mark the event (or one occurrence) cancelled; unknown or already cancelled events
        are left alone."""
        if original_start is not None:
            await self._store.put_local_occurrence(
                team_id, calendar_id, event_id, original_start, None
            )
            return
        await self._store.cancel_local_event(team_id, calendar_id, event_id)

    async def events_for(
        self,
        team_id: str,
        user_id: str,
        start: datetime,
        end: datetime,
        *,
        include_cancelled: bool = False,
    ) -> list[LocalEvent]:
        """The person's events overlapping ``[start, end)``, soonest first (for an .ics feed)."""
        return await self._store.local_events_for(
            team_id, user_id, start, end, include_cancelled=include_cancelled
        )


def _created(stored: LocalEvent) -> CreatedEvent:
    # An occurrence's override reports its series: the event the booking knows.
    event_id = stored.event.event_id.split("_", 1)[0]
    return CreatedEvent(event_id, stored.event.calendar_id, stored.ical_uid, None)
