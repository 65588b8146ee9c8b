"""Reminders and notices: the direct messages a booking owes its people, each once, in its time.

Everyone on a confirmed booking gets a reminder before it starts, at their own lead (their
setting; none when it is off). Everyone but the organizer, who made the change in the
conversation, gets a notice when it is booked, moved or cancelled; a notice can wait, so outside
the person's working hours it is scheduled for the start of their next working window (quiet
hours). A reminder is urgent and goes at its time. A series keeps one reminder per person,
for its next meeting; once it has gone, the reconcile schedules the one for the meeting after.
A meeting of a series moved or cancelled on its own is news the notice names by its day.

Each (booking, person, kind) has a row in the store. A worker leases the row before it talks to
the messenger and records its intent before each call, so a retried click, the reconcile or a
crash in between never leaves a second copy: after a crash the messages scheduled at the
recorded time are listed and the one with the recorded text's digest is kept. ``sync`` brings
every row of a booking in step with the booking as it stands, whatever changed; a notice still
waiting when the booking changes again is taken back and replaced, never sent stale.

Knows nothing of Slack: a ``Messenger`` renders and sends (``handlers.messenger`` is Slack's).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol

from bot.errors import RequestError
from bot.models import Booking, BookingState, OccurrenceChange, TimeSlot
from bot.recurrence import next_occurrence
from bot.scheduling.quiet_hours import quiet_until
from bot.store import BookingMessage, Store, UserSettings

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.scheduling.booking import Directory

__all__ = [
    "SCHEDULE_LIMIT",
    "MessageRefused",
    "Messenger",
    "Note",
    "NoteKind",
    "Reminders",
    "reminder_time",
]

logger = logging.getLogger("slotbot.reminders")

#: How far ahead a message can be scheduled (Slack's limit); later ones wait in the store.
SCHEDULE_LIMIT = timedelta(days=120)
#: How long one worker may hold a person's reminder or notice before another may take over.
LEASE = timedelta(seconds=60)

_REMINDER = "reminder"
_NOTICE = "notice"
# A row in one of these states may have a message waiting with the messenger.
_WAITING = ("scheduled", "pending", "waiting")


class NoteKind(StrEnum):
    REMINDER = "reminder"
    BOOKED = "booked"
    MOVED = "moved"
    CANCELLED = "cancelled"
    CHANGED = "changed"  # meetings of a series moved or cancelled on their own


@dataclass(frozen=True, slots=True)
class Note:
    """What one message says: a reminder ``lead_minutes`` ahead of ``meeting`` (a series' next;
    None: the booking's own time), or a notice of a change (``previous_start`` is where a
    moved meeting was; ``changes`` are a series' meetings changed on their own that the reader
    has not heard of, named by their day in the reader's ``zone``)."""

    kind: NoteKind
    booking: Booking
    lead_minutes: int = 0
    previous_start: datetime | None = None
    meeting: TimeSlot | None = None
    changes: tuple[OccurrenceChange, ...] = ()
    zone: str = "UTC"


class MessageRefused(Exception):
    """The messenger will not take the message: ``too_far`` ahead (try again later),
    ``in_past`` (its time went by) or ``undeliverable`` (the person cannot be messaged)."""

    def __init__(self, reason: Literal["too_far", "in_past", "undeliverable"]) -> None:
        super().__init__(reason)
        self.reason = reason


class Messenger(Protocol):
    """Direct messages to people, now or at a time (Slack's chat.scheduleMessage behind it)."""

    def text(self, note: Note) -> str:
        """The message for ``note``, the same every time for the same note."""
        ...

    async def direct_channel(self, user_id: str) -> str:
        """The conversation with the person."""
        ...

    async def post(self, channel: str, text: str) -> None: ...

    async def schedule(self, channel: str, text: str, post_at: datetime) -> str:
        """Schedule the message; its id. ``MessageRefused`` when it cannot be."""
        ...

    async def unschedule(self, channel: str, message_id: str) -> None:
        """Take a scheduled message back; one already sent or gone is no error."""
        ...

    async def scheduled_at(self, channel: str, post_at: datetime) -> list[tuple[str, str]]:
        """The (id, text) of the messages waiting in ``channel`` for exactly ``post_at``."""
        ...


def reminder_time(start: datetime, lead_minutes: int | None, now: datetime) -> datetime | None:
    """When the reminder for a meeting at ``start`` goes (whole seconds); None when the person
    wants none or that time has already passed."""
    if lead_minutes is None:
        return None
    at = (start - timedelta(minutes=lead_minutes)).replace(microsecond=0)
    return at if at > now else None


def _digest(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if text is not None else None


class Reminders:
    """Keeps each booking's reminders and notices in step with it (see the module)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        lease: timedelta = LEASE,
        schedule_limit: timedelta = SCHEDULE_LIMIT,
    ) -> None:
        self.store = store
        self.clock = clock
        self.lease = lease
        self.schedule_limit = schedule_limit

    async def sync(
        self,
        messenger: Messenger,
        directory: Directory,
        team_id: str,
        key: str,
        booking: Booking | None = None,
    ) -> None:
        """Bring the booking's reminders and notices in step with it as it stands (``booking``
        when the caller has just read it). A failure for one person is logged and left for the
        reconcile; it never reaches the caller."""
        booking = booking or await self.store.get_booking(team_id, key)
        if booking is not None:
            await self.sync_bookings(messenger, directory, [booking])

    async def sync_bookings(
        self, messenger: Messenger, directory: Directory, bookings: Sequence[Booking]
    ) -> None:
        """``sync`` for bookings of one team as they stand, all at once: one read of everyone's
        settings, and one statement per step for all their rows."""
        # Not delivered yet (or gone): its confirmation comes first.
        due = [b for b in bookings if b.state in (BookingState.CONFIRMED, BookingState.CANCELLED)]
        if not due:
            return
        team_id = due[0].team_id
        if any(b.team_id != team_id for b in due):
            raise ValueError("bookings of one team at a time")
        # Read once for everyone. A change committed after this read is not lost: the worker
        # that made it (or the reconcile, which compares sequences) brings the rows in step.
        everyone = dict.fromkeys(p for b in due for p in (b.organizer_id, *b.participant_ids))
        settings = await self.store.settings_of(team_id, list(everyone))
        by_key = {b.key: b for b in due}
        wanted: list[tuple[str, str, str]] = []
        for booking in by_key.values():
            people = list(dict.fromkeys((booking.organizer_id, *booking.participant_ids)))
            wanted += [(booking.key, user_id, _REMINDER) for user_id in people]
            wanted += [
                (booking.key, user_id, _NOTICE)
                for user_id in people
                if user_id != booking.organizer_id
            ]

        async def plan(held: BookingMessage, now: datetime) -> _Step:
            booking, person = by_key[held.booking_key], settings[held.user_id]
            if held.kind == _REMINDER:
                return await self._remind(messenger, booking, held, person, now)
            return await self._notice(messenger, directory, held, booking, person, now)

        await self._in_step(team_id, wanted, plan)

    async def sync_person(self, messenger: Messenger, team_id: str, user_id: str) -> None:
        """After the person changed their settings: their upcoming reminders follow the lead."""
        upcoming = await self.store.bookings_for_user(team_id, user_id, self.clock(), limit=500)
        settings = await self.store.get_settings(team_id, user_id)
        for booking in upcoming:
            if booking.state == BookingState.CONFIRMED:

                async def plan(held: BookingMessage, now: datetime, b: Booking = booking) -> _Step:
                    return await self._remind(messenger, b, held, settings, now)

                await self._in_step(team_id, [(booking.key, user_id, _REMINDER)], plan)

    async def unsynced(self, limit: int = 100) -> list[tuple[str, str]]:
        """(team, key) of bookings whose messages are behind and free to work on."""
        return await self.store.bookings_owing_messages(
            self.clock(), self.schedule_limit, limit=limit
        )

    async def _in_step(
        self,
        team_id: str,
        wanted: list[tuple[str, str, str]],
        plan: Callable[[BookingMessage, datetime], Awaitable[_Step]],
    ) -> None:
        """Bring the ``wanted`` rows, each a (booking, person, kind), in step: lease them, plan
        each, record every intent, make the calls, record how each ended. The store sees one
        statement per step for all of them; a failure for one row is logged and its lease
        given back, the others go on."""
        now = self.clock()
        try:
            held = await self.store.claim_booking_messages(team_id, wanted, now, now + self.lease)
        except Exception as exc:  # noqa: BLE001 - left for the reconcile
            _log(wanted[0][2] if wanted else _REMINDER, exc)
            return
        stuck: list[BookingMessage] = []  # leases to give back: their rows failed
        try:
            steps: list[_Step] = []
            for row in held:
                try:
                    steps.append(await plan(row, now))
                except Exception as exc:  # noqa: BLE001 - one person must not stop the rest
                    stuck.append(row)
                    _log(row.kind, exc)
            # Recorded first: a crash from here leaves each row saying what was under way. A
            # scheduled message can be found again after a crash, so those are recorded all at
            # once; a post cannot (it is never repeated), so each is recorded just before it.
            await self.store.save_booking_messages(
                [s.intent for s in steps if s.intent is not None and not s.posts], release=False
            )
            finals: list[BookingMessage] = []
            for step in steps:
                try:
                    if step.posts and step.intent is not None:
                        await self.store.save_booking_messages([step.intent], release=False)
                    finals.append(await step.finish())
                except Exception as exc:  # noqa: BLE001 - one person must not stop the rest
                    stuck.append(step.held)
                    _log(step.held.kind, exc)
            await self.store.save_booking_messages(finals, release=True)
        except BaseException as exc:
            # Every lease goes back (a cancel, a database hiccup); each row says how far it got.
            await self.store.release_booking_messages(held)
            if not isinstance(exc, Exception):
                raise
            _log(held[0].kind if held else _REMINDER, exc)
            return
        await self.store.release_booking_messages(stuck)

    # -- one person's reminder --

    async def _remind(
        self,
        messenger: Messenger,
        booking: Booking,
        held: BookingMessage,
        settings: UserSettings,
        now: datetime,
    ) -> _Step:
        lead = settings.reminder_lead_minutes
        at, meeting = None, None
        if booking.state == BookingState.CONFIRMED and lead is not None:
            # The next meeting whose reminder is still to come (a series' are one by one).
            found = next_occurrence(booking, now + timedelta(minutes=lead))
            meeting = found.slot if found is not None else None
            at = reminder_time(meeting.start, lead, now) if meeting is not None else None
        text = None
        if at is not None and meeting is not None:
            text = messenger.text(Note(NoteKind.REMINDER, booking, lead or 0, meeting=meeting))
        row = replace(
            held,
            sequence=booking.sequence,
            note=NoteKind.REMINDER.value,
            about_start=meeting.start if text is not None and meeting is not None else None,
        )
        return await self._place(messenger, held, row, text, at, now, urgent=True)

    # -- one person's notice --

    async def _notice(
        self,
        messenger: Messenger,
        directory: Directory,
        held: BookingMessage,
        booking: Booking,
        settings: UserSettings,
        now: datetime,
    ) -> _Step:
        # What the person knows: what the last notice said once it went out (or when there was
        # nothing to say), as of the sequence it was made for; while it still waits, what they
        # knew before it.
        waiting = held.state in _WAITING and held.post_at is not None and held.post_at > now
        if held.state == "new":
            known, known_start, known_sequence = None, None, -1
        elif waiting:
            known, known_start = held.told_note, held.told_start
            known_sequence = held.sequence if held.told_sequence is None else held.told_sequence
        else:
            known, known_start, known_sequence = held.note, held.about_start, held.sequence
        knows_of_it = known in (NoteKind.BOOKED, NoteKind.MOVED, NoteKind.CHANGED)
        start = booking.slot.start
        kind: NoteKind | None = None
        news: tuple[OccurrenceChange, ...] = ()
        if booking.state == BookingState.CANCELLED:
            kind = NoteKind.CANCELLED if knows_of_it else None
        elif not knows_of_it:
            kind = NoteKind.BOOKED
        else:
            # Each meeting changed on its own carries the sequence it was changed at.
            news = tuple(c for c in booking.exceptions if c.sequence > known_sequence)
            if known_start != start:
                kind = NoteKind.MOVED
            elif news:
                kind = NoteKind.CHANGED
        row = replace(
            held,
            sequence=booking.sequence,
            note=kind.value if kind else known,
            about_start=start if kind else known_start,
            told_note=known,
            told_start=known_start,
            told_sequence=known_sequence,
        )
        if kind is None:
            return await self._place(messenger, held, row, None, None, now, urgent=False)
        try:
            person = await directory.person(booking.team_id, held.user_id)
        except RequestError:  # no longer a person Slack can message (deactivated, say)
            return _Step(held, done=replace(row, state="failed", post_at=None, message_id=None))
        zone = settings.time_zone or person.time_zone
        when = quiet_until(now, settings.working_hours, zone)
        previous = known_start if kind == NoteKind.MOVED else None
        text = messenger.text(Note(kind, booking, previous_start=previous, changes=news, zone=zone))
        return await self._place(messenger, held, row, text, when or now, now, urgent=when is None)

    # -- placing a message with the messenger --

    async def _place(
        self,
        messenger: Messenger,
        held: BookingMessage,
        row: BookingMessage,
        text: str | None,
        at: datetime | None,
        now: datetime,
        *,
        urgent: bool,
    ) -> _Step:
        """What makes the messenger hold exactly ``text`` for ``at`` for this row (nothing when
        ``text`` is None); ``urgent`` with ``at`` now posts at once."""
        digest = _digest(text)
        kept = await self._take_back(messenger, held, at, digest, now)
        base = replace(row, post_at=at, digest=digest, message_id=None)
        if text is None or at is None:
            return _Step(held, done=replace(base, state="none", post_at=None))
        if kept is not None:
            return _Step(held, done=replace(base, state="scheduled", message_id=kept))
        try:
            channel = held.channel_id or await messenger.direct_channel(held.user_id)
        except MessageRefused:
            return _Step(held, done=replace(base, state="failed"))  # not worth retrying
        base = replace(base, channel_id=channel)
        if urgent and at <= now:

            async def post() -> BookingMessage:
                try:
                    await messenger.post(channel, text)
                except MessageRefused:
                    return replace(base, state="failed")
                return replace(base, state="posted")

            # Recorded first: a crash mid-post leaves "posting", never posted again.
            return _Step(held, intent=replace(base, state="posting"), send=post, posts=True)
        if at > now + self.schedule_limit:
            return _Step(held, done=replace(base, state="waiting"))  # scheduled once in range

        async def schedule() -> BookingMessage:
            try:
                message_id = await messenger.schedule(channel, text, at)
            except MessageRefused as refused:
                if refused.reason == "too_far":
                    return replace(base, state="waiting")
                if refused.reason == "in_past" and not urgent:
                    await messenger.post(channel, text)  # a notice due this very moment
                    return replace(base, state="posted")
                return replace(base, state="none" if refused.reason == "in_past" else "failed")
            return replace(base, state="scheduled", message_id=message_id)

        return _Step(held, intent=replace(base, state="pending"), send=schedule)

    async def _take_back(
        self,
        messenger: Messenger,
        held: BookingMessage,
        at: datetime | None,
        digest: str | None,
        now: datetime,
    ) -> str | None:
        """Take back what the messenger may hold for this row, except a message that is
        exactly the one wanted (``digest`` for ``at``): its id is returned."""
        wanted = at is not None and held.post_at == at and held.digest == digest
        channel, due = held.channel_id, held.post_at
        if channel is None or due is None or due <= now:
            return None  # nothing held, or it has gone out already
        if held.state == "scheduled" and held.message_id:
            if wanted:
                return held.message_id
            await messenger.unschedule(channel, held.message_id)
        elif held.state == "pending":
            # A worker stopped between asking and recording the answer: find what it left.
            kept = None
            for message_id, text in await messenger.scheduled_at(channel, due):
                if _digest(text) != held.digest:
                    continue
                if wanted and kept is None:
                    kept = message_id
                else:
                    await messenger.unschedule(channel, message_id)
            return kept
        return None


def _log(kind: str, exc: Exception) -> None:
    # Left for the reconcile; the type only: messages may carry people's text.
    logger.warning("could not bring a %s in step yet: %s", kind, type(exc).__name__)


@dataclass(frozen=True, slots=True)
class _Step:
    """Where one leased row goes next: ``done`` when no call is needed; else ``intent`` is
    recorded first, then ``send`` makes the call and says how the row ended."""

    held: BookingMessage
    done: BookingMessage | None = None
    intent: BookingMessage | None = None
    send: Callable[[], Awaitable[BookingMessage]] | None = None
    posts: bool = False  # ``send`` posts at once (rather than schedules)

    async def finish(self) -> BookingMessage:
        if self.send is not None:
            return await self.send()
        assert self.done is not None
        return self.done
