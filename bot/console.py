"""Try Slotbot without Slack: a terminal conversation with demo people on the local calendar.

The same scheduler as in Slack (parse → offer → book → .ics), on SQLite, with four demo
colleagues in different zones whose calendars already hold a few meetings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import IO

from bot.calendars import Attendee, CalendarEvent, event_id_for
from bot.calendars.local import LocalCalendar
from bot.config import Settings
from bot.errors import RequestError, SlotbotError
from bot.models import Participant, wall_to_instant, zone_of
from bot.scheduling.booking import Proposal, Scheduler
from bot.store import Store, database_url_from

__all__ = ["DEMO_PEOPLE", "DEMO_TEAM", "DemoDirectory", "run_console", "seed_demo_calendars"]

DEMO_TEAM = "T0LOCAL"
YOU = "U0YOU"

#: Demo colleagues: handle → (user id, zone, name). Their meetings are seeded daily.
DEMO_PEOPLE = {
    "ana": Participant("U0ANA", "Europe/Berlin", "ana@example.com", "Ana"),
    "ben": Participant("U0BEN", "America/New_York", "ben@example.com", "Ben"),
    "chen": Participant("U0CHEN", "Asia/Tokyo", "chen@example.com", "Chen"),
    "dev": Participant("U0DEV", "Asia/Kolkata", "dev@example.com", "Dev"),
}
#: Each demo person's recurring busy hours on weekdays, in their own zone.
DEMO_BUSY = {"ana": (time(10), time(11)), "ben": (time(13), time(14)), "dev": (time(15), time(16))}

EXAMPLES = (
    "design review with @ana 45m tomorrow afternoon",
    "1:1 with @ben next tuesday at 3pm ET",
    "sync with @ana @dev this week",
)


@dataclass(frozen=True)
class DemoDirectory:
    """The people of the local demo workspace; you are in ``zone``."""

    zone: str

    async def person(self, team_id: str, user_id: str) -> Participant:
        if user_id == YOU:
            return Participant(YOU, self.zone, "sam@example.com", "Sam")
        for person in DEMO_PEOPLE.values():
            if person.user_id == user_id:
                return person
        raise RequestError(f"There is nobody called {user_id} here. Try @ana, @ben, @chen or @dev.")

    async def find_handle(self, team_id: str, handle: str) -> Participant | None:
        return DEMO_PEOPLE.get(handle.lower())


async def seed_demo_calendars(calendar: LocalCalendar, now: datetime, days: int = 14) -> None:
    """Give the demo people their usual meetings for the next ``days`` (idempotent)."""
    for handle, (start, end) in DEMO_BUSY.items():
        person = DEMO_PEOPLE[handle]
        today = now.astimezone(zone_of(person.time_zone)).date()
        for offset in range(days):
            day = today + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            begin = wall_to_instant(datetime.combine(day, start), person.time_zone)
            finish = wall_to_instant(datetime.combine(day, end), person.time_zone)
            await calendar.create_event(
                DEMO_TEAM,
                CalendarEvent(
                    event_id=event_id_for(f"demo:{handle}:{day.isoformat()}"),
                    calendar_id=person.user_id,
                    summary=f"{person.name}'s team meeting",
                    start=begin,
                    end=finish,
                    time_zone=person.time_zone,
                    organizer=Attendee.of(person),
                ),
            )


def _show(proposal: Proposal, zone: str, out: IO[str]) -> None:
    tz = zone_of(zone)
    offer = proposal.offer
    names = ", ".join(p.name for p in proposal.participants[1:]) or "just you"
    out.write(f"\n{offer.title or 'Meeting'} · {offer.duration_minutes} min · with {names}\n")
    if not proposal.slots:
        out.write("No time fits:\n" + "".join(f"  - {r}\n" for r in proposal.reasons))
        out.write("Try a wider window, e.g. 'next week'.\n")
        return
    for number, slot in enumerate(proposal.slots, 1):
        local = slot.start.astimezone(tz)
        others = "  ".join(
            f"{p.name} {slot.start.astimezone(zone_of(p.time_zone)):%H:%M}"
            for p in proposal.participants[1:]
        )
        out.write(f"  {number}. {local:%a %d %b %H:%M}–{slot.end.astimezone(tz):%H:%M}  {others}\n")
    more = ", 'more' for other times" if proposal.has_more else ""
    out.write(f"Type a number to book{more}, or a new request.\n")


async def run_console(
    settings: Settings,
    stdin: IO[str],
    out: IO[str],
    *,
    clock: Callable[[], datetime],
) -> int:
    """Read requests from ``stdin`` until EOF or 'quit'; book picks on the local calendar."""
    store = await Store.open(database_url_from(settings.database_url, settings.data_dir))
    try:
        calendar = LocalCalendar(store)
        await seed_demo_calendars(calendar, clock())
        scheduler = Scheduler(
            store, calendar, clock=clock, default_duration_minutes=settings.default_duration_minutes
        )
        directory = DemoDirectory(settings.default_time_zone)
        invites = settings.data_dir / "invites"
        out.write(
            f"Slotbot, locally. You are Sam, in {settings.default_time_zone} "
            "(SLOTBOT_DEFAULT_TZ changes it).\n"
            "Colleagues: @ana Berlin, @ben New York, @chen Tokyo, @dev Kolkata.\n"
            "Ask like in Slack, e.g.:\n" + "".join(f"  {e}\n" for e in EXAMPLES)
        )
        proposal: Proposal | None = None
        while True:
            out.write("> ")
            out.flush()
            line = await asyncio.to_thread(stdin.readline)
            if not line or line.strip().lower() in ("quit", "exit", "q"):
                out.write("\n")
                return 0
            text = line.strip()
            if not text:
                continue
            try:
                if proposal and text.isdigit():
                    await _book(scheduler, proposal, int(text), invites, out)
                    proposal = None
                elif proposal and text.lower() == "more":
                    proposal = await scheduler.more_times(DEMO_TEAM, YOU, proposal.offer.id)
                    _show(proposal, settings.default_time_zone, out)
                else:
                    proposal = await scheduler.propose(DEMO_TEAM, YOU, text, directory)
                    _show(proposal, settings.default_time_zone, out)
            except SlotbotError as exc:
                out.write(f"{exc.user_message}\n")
    finally:
        await store.close()


async def _book(
    scheduler: Scheduler, proposal: Proposal, number: int, invites: Path, out: IO[str]
) -> None:
    if not 1 <= number <= len(proposal.slots):
        raise RequestError(f"Pick a number from 1 to {len(proposal.slots)}.")
    confirmation = await scheduler.book(DEMO_TEAM, YOU, proposal.offer.id, number - 1)
    path = invites / confirmation.filename
    await asyncio.to_thread(_write, path, confirmation.invite)
    await scheduler.mark_delivered(
        DEMO_TEAM, confirmation.booking.key, channel_id=None, message_ts=None
    )
    out.write(f"Booked {confirmation.booking.title or 'the meeting'}. Invite: {path}\n")


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
