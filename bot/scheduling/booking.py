"""The scheduling use case: a request becomes an offer of slots; a pick becomes a booked event.

Knows nothing of Slack: people come from a ``Directory``, calendars from a ``CalendarProvider``,
the time from a clock passed in. Every step that a retry may repeat is idempotent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bot.calendars import (
    Attendee,
    CalendarEvent,
    CalendarProvider,
    CreatedEvent,
    FreeBusy,
    event_id_for,
)
from bot.errors import OfferError, PermissionDeniedError, RequestError, SlotTakenError
from bot.invites import InviteDetails, InviteParty, Method, build_invite, invite_filename
from bot.models import (
    Booking,
    BookingState,
    OccurrenceChange,
    Participant,
    ScheduleObject,
    TimeSlot,
)
from bot.recurrence import (
    Occurrence,
    booking_occurrences,
    checked_reach,
    describe_rule,
    rule_of,
    starts_between,
)
from bot.scheduling.commands import (
    COMMAND_EXAMPLE,
    Action,
    BookingCommand,
    name_words,
    read_booking_command,
    select_bookings,
    target_request,
)
from bot.scheduling.parsing import parse_request
from bot.scheduling.slots import (
    Availability,
    Series,
    SlotRules,
    SlotSearch,
    find_free_slots,
    is_free,
)
from bot.store import (
    BookingConflict,
    ClickStart,
    Delivery,
    Offer,
    PendingChange,
    Store,
    UserSettings,
)

if TYPE_CHECKING:
    from bot.webhooks import WebhookKind, Webhooks

__all__ = [
    "RESCHEDULE_WINDOW",
    "Change",
    "CommandAnswer",
    "Confirmation",
    "Directory",
    "Proposal",
    "Scheduler",
    "booking_key_for",
    "moves_booking",
]

#: Attendees above this are refused: the offer must stay readable and free/busy cheap.
MAX_ATTENDEES = 50
#: How long one deliverer may hold a booking's delivery before another may take it over.
DELIVERY_LEASE = timedelta(seconds=60)
#: The key in a booking's ``reply_to`` under which the conversation link is kept.
_LINK = "conversation_link"
#: A reschedule offers times from now until this much later (the same people and length).
RESCHEDULE_WINDOW = timedelta(days=14)
#: The key in a reschedule offer's ``extra`` naming the booking it moves.
_MOVES = "reschedule_of"
#: The key in a reschedule offer's ``extra`` naming the one occurrence it moves (its original
#: start); absent when it moves a single meeting or a whole series.
_OCCURRENCE = "occurrence_of"
#: How many upcoming occurrences a recurring booking offers to move or cancel one by one.
UPCOMING_CHOICES = 5
_UPCOMING_LOOKAHEAD = timedelta(days=180)


class Directory(Protocol):
    """Who people are: their zone, email and name (Slack's ``users.info`` behind it)."""

    async def person(self, team_id: str, user_id: str) -> Participant:
        """The person, or ``RequestError`` when there is no such (human) user."""
        ...

    async def find_handle(self, team_id: str, handle: str) -> Participant | None:
        """The person a typed ``@handle`` names, if exactly one does."""
        ...


@dataclass(frozen=True, slots=True)
class Proposal:
    """An offer as the requester sees it: what was understood, and the slots that fit."""

    offer: Offer
    participants: tuple[Participant, ...]
    has_more: bool
    reasons: tuple[str, ...]
    unreadable: tuple[str, ...]  # names of people whose calendar could not be read
    exact_start: datetime | None = None
    unreadable_reasons: tuple[str, ...] = ()  # why, in the calendar provider's words

    @property
    def slots(self) -> tuple[TimeSlot, ...]:
        return self.offer.slots

    @property
    def requester(self) -> Participant:
        return self.participants[0]

    @property
    def reschedule_of(self) -> str | None:
        """The key of the booking this offer moves, if it is a reschedule offer."""
        return moves_booking(self.offer)

    @property
    def occurrence(self) -> datetime | None:
        """The original start of the one occurrence this offer moves, if it moves only one."""
        return _occurrence_of(self.offer)

    def repeats(self, slot: TimeSlot) -> str | None:
        """How a series booked at ``slot`` repeats (``every Tuesday``); None for one meeting."""
        rule = rule_of(self.offer.recurrence)
        return describe_rule(rule, slot.start, self.offer.time_zone) if rule else None


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A booked meeting and its invite; ``fresh`` is False when an earlier click booked it.

    ``invites_attendees`` is False when the event is on a calendar the attendees do not see
    (a shared calendar): the ``.ics`` is then their only invitation.
    """

    booking: Booking
    participants: tuple[Participant, ...]
    invite: bytes
    filename: str
    fresh: bool
    offer: Offer
    invites_attendees: bool = True
    #: The right to deliver it, taken as it was created: the caller's to use at once.
    delivery: Delivery | None = None

    @property
    def delivered(self) -> bool:
        """Whether the confirmation and the .ics already reached the conversation."""
        return self.booking.state == BookingState.CONFIRMED


@dataclass(frozen=True, slots=True)
class Change:
    """A booked meeting as it stands after a move or a cancel, with the .ics that says so.

    ``previous`` is the time it was moved from (None when it was not moved); ``fresh`` is True
    only for the one call that made the change, which shares ``invite`` (REQUEST for a move,
    CANCEL for a cancel, with the booking's raised SEQUENCE).
    """

    booking: Booking
    participants: tuple[Participant, ...]
    invite: bytes
    filename: str
    fresh: bool
    previous: TimeSlot | None = None
    invites_attendees: bool = True
    #: The original start of the one occurrence this change is about (None: the whole booking).
    occurrence: datetime | None = None
    #: A series' next meetings (for choosing one to move or cancel); empty for one meeting.
    upcoming: tuple[Occurrence, ...] = ()
    #: How the series repeats, in words (``every Tuesday``); None for one meeting.
    repeats: str | None = None
    #: The change still to deliver, held by whoever got this (None: nothing to deliver).
    pending: PendingChange | None = None

    @property
    def cancelled(self) -> bool:
        """The whole booking is cancelled."""
        return self.booking.state == BookingState.CANCELLED

    @property
    def occurrence_cancelled(self) -> bool:
        """Only the occurrence ``occurrence`` is cancelled (the series goes on)."""
        if self.occurrence is None:
            return False
        change = self.booking.exception_at(self.occurrence)
        return change is not None and change.cancelled

    @property
    def occurrence_slot(self) -> TimeSlot | None:
        """Where the occurrence ``occurrence`` is now (moved, or its original time)."""
        if self.occurrence is None:
            return None
        change = self.booking.exception_at(self.occurrence)
        if change is not None and change.slot is not None:
            return change.slot
        return TimeSlot(self.occurrence, self.occurrence + self.booking.slot.duration)


def _instant(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _occurrence_of(offer: Offer) -> datetime | None:
    value = offer.extra.get(_OCCURRENCE)
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class CommandAnswer:
    """What a typed move or cancel came to: an offer of new times (``proposal``), the
    cancel to confirm (``cancelling``), meetings to choose from (``choices``), or, when
    nothing matched, the person's ``upcoming`` meetings."""

    command: BookingCommand
    proposal: Proposal | None = None
    cancelling: Change | None = None
    choices: tuple[Booking, ...] = ()
    upcoming: tuple[Booking, ...] = ()


def moves_booking(offer: Offer) -> str | None:
    """The key of the booking a reschedule offer moves; None for an offer of a new meeting."""
    key = offer.extra.get(_MOVES)
    return key if isinstance(key, str) else None


def booking_key_for(team_id: str, offer_id: str) -> str:
    """One booking per offer: the key every retry and every second click arrives at."""
    return hashlib.sha256(f"{team_id}\x00{offer_id}".encode()).hexdigest()[:40]


class Scheduler:
    """Offers slots for requests and books the one picked, exactly once."""

    def __init__(
        self,
        store: Store,
        calendar: CalendarProvider,
        *,
        clock: Callable[[], datetime],
        default_duration_minutes: int = 30,
        offer_ttl: timedelta = timedelta(hours=24),
        grid_minutes: int = 15,
        max_offered: int = 6,
        delivery_lease: timedelta = DELIVERY_LEASE,
        webhooks: Webhooks | None = None,
    ) -> None:
        self.store = store
        self.calendar = calendar
        self.clock = clock
        self.default_duration_minutes = default_duration_minutes
        self.offer_ttl = offer_ttl
        self.grid_minutes = grid_minutes
        self.max_offered = max_offered
        self.delivery_lease = delivery_lease
        self.webhooks = webhooks  # told of every booking created (SLOTBOT_WEBHOOK_URLS)

    # -- offering --

    async def propose(
        self,
        team_id: str,
        requester_id: str,
        text: str,
        directory: Directory,
        *,
        channel_id: str | None = None,
        thread_ts: str | None = None,
    ) -> Proposal:
        """Read the request, find everyone, and offer the free slots (or say why there are none)."""
        now = self.clock()
        requester = await self._person(team_id, requester_id, directory)
        settings = await self.store.get_settings(team_id, requester_id)
        request = parse_request(text, now, requester.time_zone)
        attendees = await self._attendees(team_id, request.attendees, directory)
        participants = _unique((requester, *attendees))
        duration = request.duration_minutes or settings.default_duration_minutes
        if not request.duration_minutes and settings == UserSettings():
            duration = self.default_duration_minutes
        window = TimeSlot(request.window_start, request.window_end)
        search, busy = await self._search(
            team_id,
            participants,
            window,
            duration,
            settings,
            now,
            request.exact_start,
            0,
            _series(request.recurrence, requester.time_zone),
        )
        offer = await self.store.create_offer(
            team_id=team_id,
            requester_id=requester_id,
            participant_ids=[p.user_id for p in participants],
            duration_minutes=duration,
            time_zone=requester.time_zone,
            window=window,
            slots=search.slots,
            now=now,
            ttl=self.offer_ttl,
            title=request.title,
            channel_id=channel_id,
            thread_ts=thread_ts,
            recurrence=request.recurrence,
            extra={
                "participants": [_person_json(p) for p in participants],
                "exact_start": request.exact_start.isoformat() if request.exact_start else None,
                "has_more": search.has_more,
                "reasons": list(search.reasons),
                **_unreadable_extra(participants, busy),
            },
        )
        await self._remember_if_unread(offer, busy, now)
        return _proposal(offer)

    async def rerun_pending(self, team_id: str, user_id: str) -> Proposal | None:
        """Offer again what the person last asked while their calendar could not be read.

        The new offer has the same people, window, length and title, searched now; the old
        offer is closed. None when nothing is pending or that offer has closed or expired.
        """
        offer_id = await self.store.take_pending_request(team_id, user_id)
        if offer_id is None:
            return None
        now = self.clock()
        old = await self.store.get_offer(team_id, offer_id, now)
        if old is None or not old.is_open or old.requester_id != user_id:
            return None
        settings = await self.store.get_settings(team_id, user_id)
        participants = _participants_of(old)
        exact = old.extra.get("exact_start")
        search, busy = await self._search(
            team_id,
            participants,
            old.window,
            old.duration_minutes,
            settings,
            now,
            datetime.fromisoformat(exact) if exact else None,
            0,
            _series(old.recurrence, old.time_zone),
        )
        offer = await self.store.create_offer(
            team_id=team_id,
            requester_id=user_id,
            participant_ids=old.participant_ids,
            duration_minutes=old.duration_minutes,
            time_zone=old.time_zone,
            window=old.window,
            slots=search.slots,
            now=now,
            ttl=self.offer_ttl,
            title=old.title,
            channel_id=old.channel_id,
            thread_ts=old.thread_ts,
            recurrence=old.recurrence,
            extra={
                **old.extra,
                "has_more": search.has_more,
                "reasons": list(search.reasons),
                **_unreadable_extra(participants, busy),
            },
        )
        await self.store.close_offer(team_id, old.id, now)
        await self._remember_if_unread(offer, busy, now)
        return _proposal(offer)

    async def _remember_if_unread(self, offer: Offer, busy: FreeBusy, now: datetime) -> None:
        # Without the requester's own calendar the offer is a guess; once they connect it
        # (or it becomes readable), rerun_pending offers it again properly.
        if offer.requester_id in busy.unavailable:
            await self.store.remember_pending_request(
                offer.team_id, offer.requester_id, offer.id, now
            )

    async def more_times(self, team_id: str, user_id: str, offer_id: str) -> Proposal:
        """The next page of slots for an open offer of this user's."""
        offer = await self._own_offer(team_id, user_id, offer_id)
        return await self._refresh(offer, offer.page + 1)

    async def current_offer(self, team_id: str, user_id: str, offer_id: str) -> Proposal:
        """The open offer as it stands (after a refresh, say)."""
        return _proposal(await self._own_offer(team_id, user_id, offer_id))

    async def withdraw(self, team_id: str, user_id: str, offer_id: str) -> Offer:
        """Close an offer without booking (the requester pressed Cancel)."""
        offer = await self._own_offer(team_id, user_id, offer_id)
        await self.store.close_offer(team_id, offer_id, self.clock())
        return offer

    async def _refresh(self, offer: Offer, page: int) -> Proposal:
        now = self.clock()
        settings = await self.store.get_settings(offer.team_id, offer.requester_id)
        participants = _participants_of(offer)
        exact = offer.extra.get("exact_start")
        search, busy = await self._search(
            offer.team_id,
            participants,
            offer.window,
            offer.duration_minutes,
            settings,
            now,
            datetime.fromisoformat(exact) if exact else None,
            page,
            _series(offer.recurrence, offer.time_zone),
        )
        updated = await self.store.update_offer_page(
            offer.team_id, offer.id, page=page, slots=search.slots, now=now
        )
        if updated is None:
            raise _expired()
        extra = {
            **updated.extra,
            "has_more": search.has_more,
            "reasons": list(search.reasons),
            **_unreadable_extra(participants, busy),
        }
        return _proposal(replace(updated, extra=extra))

    # -- booking --

    async def book(
        self,
        team_id: str,
        user_id: str,
        offer_id: str,
        index: int,
        *,
        conversation_link: str | None = None,
        reply_to: Mapping[str, Any] | None = None,
    ) -> Confirmation:
        """Book slot ``index`` of the offer: re-check, create the event, build the invite.

        A second call for the same offer (double click, retry, another slot) returns the
        booking the first made, with ``fresh`` False, and creates nothing. If an earlier
        attempt claimed the booking but failed to create the event (the calendar refused or
        was down), the requester's next click resumes it: same slot, same event id, and this
        call, the one that finishes it, is ``fresh``. ``conversation_link`` is where the
        request was made; the event's description points back to it. ``reply_to`` (opaque
        here) is stored with the booking from the moment it is claimed, so that whoever
        finishes it (this call, a retried click, ``resume``) knows where to confirm it.
        """
        start = await self.store.click_start(
            team_id, offer_id, booking_key_for(team_id, offer_id), user_id
        )
        return await self._book(
            team_id,
            user_id,
            offer_id,
            start,
            index,
            conversation_link=conversation_link,
            reply_to=reply_to,
        )

    async def _book(
        self,
        team_id: str,
        user_id: str,
        offer_id: str,
        start: ClickStart,
        index: int,
        *,
        conversation_link: str | None,
        reply_to: Mapping[str, Any] | None,
    ) -> Confirmation:
        """``book`` with what the click starts from read already (``Store.click_start``)."""
        now = self.clock()
        key = booking_key_for(team_id, offer_id)
        offer, existing = start.offer, start.booking
        if offer is not None and offer.expires_at <= now:
            offer = None
        if offer is None and existing is None:
            raise _expired()
        if offer is not None and offer.requester_id != user_id:
            raise PermissionDeniedError(
                f"Only <@{offer.requester_id}> can pick a time from this offer. "
                "To book something yourself, use `/schedule` with your own request."
            )
        if existing is not None and existing.organizer_id != user_id:
            raise PermissionDeniedError("This meeting was booked by someone else.")
        reply = {**(reply_to or {}), _LINK: conversation_link}
        if existing is not None and existing.state != BookingState.CONFIRMED and reply_to:
            # A newer click's reply address (its response_url) outlives the first one's.
            await self.store.set_reply_to(team_id, key, reply)
        if existing is not None and offer is not None and existing.state != BookingState.PENDING:
            return await self._confirmation(existing, offer, fresh=False, now=now)
        if offer is None or not offer.is_open:
            raise _expired()
        if not 0 <= index < len(offer.slots):
            raise OfferError("That time is no longer on offer. Pick one of the times shown.")

        slot = offer.slots[index]
        participants = _participants_of(offer)
        if existing is None and not await self._still_free(
            team_id,
            participants,
            slot,
            start.settings,
            now,
            _series(offer.recurrence, offer.time_zone),
        ):
            await self._refresh(offer, 0)
            raise SlotTakenError(
                "That time was just taken. Here are fresh times that still work for everyone."
            )
        organizer = participants[0]
        event_id = event_id_for(key)
        schedule = ScheduleObject.from_slot(
            slot,
            offer.time_zone,
            calendar_event_id=event_id,
            calendar_id=organizer.user_id,
            recurrence=list(offer.recurrence) or None,
        )
        try:
            # The re-check above reads calendars; this claim is the atomic part: it fails if
            # anyone involved got another booking over this time since, on any instance.
            booking, fresh = await self.store.claim_booking(
                Booking(
                    key=key,
                    team_id=team_id,
                    organizer_id=organizer.user_id,
                    participant_ids=tuple(p.user_id for p in participants[1:]),
                    title=offer.title,
                    schedule=schedule,
                    uid="",
                    offer_id=offer.id,
                    channel_id=offer.channel_id,
                    thread_ts=offer.thread_ts,
                ),
                exclusive=True,
                reply_to=reply,
            )
        except BookingConflict:
            await self._refresh(offer, 0)
            raise SlotTakenError(
                "That time was just taken. Here are fresh times that still work for everyone."
            ) from None
        if not fresh and booking.state != BookingState.PENDING:
            return await self._confirmation(booking, offer, fresh=False, now=now)
        return await self._create(booking, offer, conversation_link, now)

    async def _create(
        self, booking: Booking, offer: Offer, conversation_link: str | None, now: datetime
    ) -> Confirmation:
        """Create a pending booking's event (idempotent by its id) and mark it created."""
        team_id, key = booking.team_id, booking.key
        participants = _participants_of(offer)
        event_id = booking.schedule.calendar_event_id or event_id_for(key)
        created = await self.calendar.create_event(
            team_id, _calendar_event(booking, participants, event_id, conversation_link)
        )
        # Created and its webhooks enqueued in one transaction: neither happens without the other.
        hook = self.webhooks
        stored = await self.store.mark_booking_created(
            team_id,
            key,
            uid=created.ical_uid,
            schedule=booking.schedule.with_event(created.event_id, created.calendar_id),
            event_link=created.html_link,
            announce=hook.announcer("booking.created", link=conversation_link, now=now)
            if hook
            else None,
            now=now,
            close_offer=offer.id,
            # The caller delivers next: the lease comes with the mark, not a round trip later.
            lease_until=now + self.delivery_lease,
        )
        if stored is not None and hook is not None:
            hook.wake()
        if stored is None:  # another attempt moved it on first (and closed the offer)
            current = await self.store.get_booking(team_id, key)
            assert current is not None
            return await self._confirmation(current, offer, fresh=False, now=now)
        return await self._confirmation(
            stored.booking, offer, fresh=True, now=now, created=created, delivery=stored.delivery
        )

    async def resume(self, team_id: str, key: str) -> Confirmation | None:
        """Finish a half-done booking (after a crash): create its event if that never
        completed, and return its confirmation to deliver. None when there is nothing to
        finish (unknown, delivered, cancelled, or its offer is gone)."""
        booking = await self.store.get_booking(team_id, key)
        if booking is None or booking.offer_id is None:
            return None
        if booking.state not in (BookingState.PENDING, BookingState.CREATED):
            return None
        offer = await self.store.get_offer(team_id, booking.offer_id, None)
        if offer is None:
            return None
        now = self.clock()
        if booking.state == BookingState.PENDING:
            delivery = await self.store.get_delivery(team_id, key)
            link = delivery.reply_to.get(_LINK) if delivery else None
            return await self._create(booking, offer, link if isinstance(link, str) else None, now)
        return await self._confirmation(booking, offer, fresh=False, now=now)

    async def unfinished(self, limit: int = 100) -> list[Booking]:
        """Bookings left half-done that nobody is working on (a crash, a lapsed lease)."""
        return await self.store.unfinished_bookings(self.clock(), self.delivery_lease, limit=limit)

    # -- delivering: one deliverer at a time, whoever it is --

    async def lease_delivery(self, team_id: str, key: str) -> Delivery | None:
        """The right to deliver a created booking for a while; None if someone else has it
        or there is nothing to deliver."""
        now = self.clock()
        return await self.store.lease_delivery(team_id, key, now, now + self.delivery_lease)

    async def record_invite(
        self, team_id: str, key: str, *, file_id: str | None, channel_id: str | None
    ) -> None:
        """Remember the invite upload in progress, before it can be shared."""
        await self.store.record_invite(team_id, key, file_id=file_id, channel_id=channel_id)

    async def release_delivery(self, team_id: str, key: str) -> None:
        """Delivering failed; the next attempt may start at once."""
        await self.store.release_delivery(team_id, key)

    async def upcoming(self, team_id: str, user_id: str, limit: int = 20) -> list[Booking]:
        """The person's meetings that have not ended yet, soonest first.

        A series is listed as its next meeting: the booking with its schedule's times set to
        that meeting's (moved ones where they went, cancelled ones skipped; the recurrence
        kept). Its key, state and sequence are the series' own.
        """
        now = self.clock()
        found = await self.store.bookings_for_user(team_id, user_id, now, limit=limit)
        listed: list[Booking] = []
        for booking in found:
            if not booking.recurring:
                listed.append(booking)
                continue
            meetings = booking_occurrences(booking, now, now + _UPCOMING_LOOKAHEAD)
            upcoming = next((o for o in meetings if o.slot.end > now), None)
            if upcoming is None:
                continue
            schedule = ScheduleObject.from_slot(
                upcoming.slot,
                booking.schedule.start_time.time_zone,
                calendar_event_id=booking.schedule.calendar_event_id,
                calendar_id=booking.schedule.calendar_id,
                recurrence=booking.schedule.recurrence,
            )
            listed.append(replace(booking, schedule=schedule))
        return sorted(listed, key=lambda b: (b.slot.start, b.key))

    async def settings_of(self, team_id: str, user_id: str) -> UserSettings:
        """The person's scheduling settings (the defaults until they save their own)."""
        return await self.store.get_settings(team_id, user_id)

    async def save_settings(self, team_id: str, user_id: str, settings: UserSettings) -> None:
        """Keep the person's settings; the next search for them follows these at once."""
        await self.store.save_settings(team_id, user_id, settings)

    async def mark_delivered(
        self, team_id: str, key: str, *, channel_id: str | None, message_ts: str | None
    ) -> Booking | None:
        """The confirmation and the .ics reached the conversation (its lease ends); the
        booking as it now stands, None if it was not waiting for delivery."""
        return await self.store.finish_delivery(
            team_id, key, channel_id=channel_id, message_ts=message_ts
        )

    # -- changing a booking: only its organizer may --

    async def pick(
        self,
        team_id: str,
        user_id: str,
        offer_id: str,
        index: int,
        directory: Directory,
        *,
        conversation_link: str | None = None,
        reply_to: Mapping[str, Any] | None = None,
    ) -> Confirmation | Change:
        """A click on an offer's time: a move when the offer reschedules a booking, else
        ``book``."""
        start = await self.store.click_start(
            team_id, offer_id, booking_key_for(team_id, offer_id), user_id
        )
        offer = start.offer
        if offer is not None and moves_booking(offer) is not None:
            return await self.move(team_id, user_id, offer, index, directory, reply_to=reply_to)
        return await self._book(
            team_id,
            user_id,
            offer_id,
            start,
            index,
            conversation_link=conversation_link,
            reply_to=reply_to,
        )

    async def reschedule(
        self,
        team_id: str,
        user_id: str,
        key: str,
        directory: Directory,
        *,
        window: TimeSlot | None = None,
        exact_start: datetime | None = None,
        occurrence: datetime | None = None,
    ) -> Proposal:
        """An offer of new times for a booking: same people and length, searched in
        ``window`` (by default the next ``RESCHEDULE_WINDOW`` from now), ``exact_start``
        first if it is free. Picking one of them moves the booking.

        A series moves as a whole (its times checked on every occurrence, as when booked)
        unless ``occurrence`` names one of its meetings by original start: then only that one.
        """
        booking = await self._own_booking(team_id, user_id, key)
        if booking.state == BookingState.CANCELLED:
            raise OfferError("This meeting was cancelled, so there is nothing to move.")
        now = self.clock()
        if occurrence is not None:
            self._require_occurrence(booking, occurrence, now)
        participants = await self._members(booking, directory)
        settings = await self.store.get_settings(team_id, user_id)
        duration = int(booking.slot.duration.total_seconds() // 60)
        if window is None:
            window = TimeSlot(now, now + RESCHEDULE_WINDOW)
        recurrence = () if occurrence is not None else tuple(booking.schedule.recurrence or ())
        zone = participants[0].time_zone
        search, busy = await self._search(
            team_id,
            participants,
            window,
            duration,
            settings,
            now,
            exact_start,
            0,
            _series(recurrence, zone),
        )
        extra: dict[str, Any] = {
            "participants": [_person_json(p) for p in participants],
            "exact_start": exact_start.isoformat() if exact_start else None,
            "has_more": search.has_more,
            "reasons": list(search.reasons),
            _MOVES: booking.key,
            **_unreadable_extra(participants, busy),
        }
        if occurrence is not None:
            extra[_OCCURRENCE] = occurrence.isoformat()
        offer = await self.store.create_offer(
            team_id=team_id,
            requester_id=user_id,
            participant_ids=[p.user_id for p in participants],
            duration_minutes=duration,
            time_zone=zone,
            window=window,
            slots=search.slots,
            now=now,
            ttl=self.offer_ttl,
            title=booking.title,
            channel_id=booking.channel_id,
            thread_ts=booking.thread_ts,
            recurrence=recurrence,
            extra=extra,
        )
        return _proposal(offer)

    def _require_occurrence(self, booking: Booking, original: datetime, now: datetime) -> None:
        """Refuse an occurrence that is not one of the series' live upcoming meetings."""
        rule = rule_of(booking.schedule.recurrence)
        zone = booking.schedule.start_time.time_zone
        first = booking.slot.start
        exists = rule is not None and starts_between(
            rule, first, zone, original, original + timedelta(seconds=1)
        ) == [original]
        change = booking.exception_at(original)
        if not exists or (change is not None and change.cancelled):
            raise OfferError("That meeting of the series is not on the calendar any more.")
        current = change.slot if change is not None and change.slot else None
        if (current.end if current else original + booking.slot.duration) <= now:
            raise OfferError("That meeting of the series is already over.")

    async def manage(
        self, team_id: str, user_id: str, text: str, directory: Directory
    ) -> CommandAnswer:
        """A typed move or cancel ("move my 3pm with Ana to tomorrow", "cancel the 1:1"):
        the one upcoming meeting of the person's it means gets a reschedule offer in the
        new window, or its cancel to confirm; several are offered as a choice; none, the
        person's upcoming meetings. Only the organizer may act: a meeting they only attend
        is refused, naming its organizer."""
        now = self.clock()
        requester = await self._person(team_id, user_id, directory)
        zone = requester.time_zone
        command = read_booking_command(text, now, zone)
        if command is None:
            raise RequestError(f"That is not a move or a cancel I can read. {COMMAND_EXAMPLE}")
        # A series as its next meeting, as the lists show it: "my 3pm" is that meeting's time.
        upcoming = await self.upcoming(team_id, user_id, limit=200)
        selector = command.selector
        resolved: dict[str, str] = {}
        typed = [*(p for p in selector.people if p.startswith("@")), *selector.names]
        for term in typed:
            found = await directory.find_handle(team_id, term.removeprefix("@"))
            if found is not None:
                resolved[term.removeprefix("@")] = found.user_id
        known: dict[str, tuple[str, ...]] = {}
        if typed or selector.words:
            members = (u for b in upcoming for u in (b.organizer_id, *b.participant_ids))
            for person_id in dict.fromkeys(members):
                try:
                    person = await directory.person(team_id, person_id)
                except RequestError:
                    continue  # someone who left the workspace is known by id only
                known[person_id] = name_words(person.display_name)
        selection = select_bookings(
            upcoming, selector, user_id=user_id, tz=zone, known=known, resolved=resolved
        )
        if not selection.own and selection.others:
            organizers = " or ".join(
                f"<@{o}>" for o in dict.fromkeys(b.organizer_id for b in selection.others)
            )
            one = len(selection.others) == 1
            raise PermissionDeniedError(
                f"Only {organizers}, who booked {'that meeting' if one else 'those meetings'}, "
                f"can move or cancel {'it' if one else 'them'}. Ask them, or reply in the "
                "meeting's thread."
            )
        if not selection.own:
            return CommandAnswer(command, upcoming=tuple(upcoming))
        if len(selection.own) > 1:
            return CommandAnswer(command, choices=selection.own)
        booking = selection.own[0]
        if command.action == Action.CANCEL:
            current = await self.current(team_id, user_id, booking.key, directory)
            return CommandAnswer(command, cancelling=current)
        target = target_request(command, booking.slot.start, now, zone)
        proposal = await self.reschedule(
            team_id,
            user_id,
            booking.key,
            directory,
            window=TimeSlot(target.window_start, target.window_end) if target else None,
            exact_start=target.exact_start if target else None,
        )
        return CommandAnswer(command, proposal=proposal)

    async def move(
        self,
        team_id: str,
        user_id: str,
        offer: Offer,
        index: int,
        directory: Directory,
        *,
        reply_to: Mapping[str, Any] | None = None,
    ) -> Change:
        """Move the booking a reschedule offer is for to slot ``index`` of it.

        The move is decided atomically in the store (no overlap with anyone's other bookings,
        compare-and-set on the sequence) and recorded as a pending change, then the same
        calendar event is changed (see ``_carry_out``). A second click for the time already
        moved to returns that move with ``fresh`` False. ``reply_to`` (opaque) is kept with
        the change: where to show it if someone else has to finish it after a crash.
        """
        now = self.clock()
        key = str(offer.extra[_MOVES])
        booking = await self._own_booking(team_id, user_id, key)
        if offer.requester_id != user_id:
            raise PermissionDeniedError(f"Only <@{offer.requester_id}> can pick from this offer.")
        occurrence = _occurrence_of(offer)
        if occurrence is not None:
            return await self._move_occurrence(
                booking, offer, index, occurrence, directory, now, reply_to
            )
        if not 0 <= index < len(offer.slots):
            raise OfferError("That time is no longer on offer. Pick one of the times shown.")
        slot = offer.slots[index]
        participants = await self._members(booking, directory)
        if booking.slot == slot and booking.state != BookingState.CANCELLED:
            return self._change(booking, participants, now, fresh=False, previous=None)
        if not offer.is_open or offer.expires_at <= now:
            raise _expired()
        if booking.state == BookingState.CANCELLED:
            raise OfferError("This meeting was cancelled meanwhile, so it cannot be moved.")
        settings = await self.store.get_settings(team_id, user_id)
        series = _series(offer.recurrence, offer.time_zone)
        if not await self._still_free(team_id, participants, slot, settings, now, series):
            await self._refresh(offer, 0)
            raise SlotTakenError(
                "That time was just taken. Here are fresh times that still work for everyone."
            )
        schedule = ScheduleObject.from_slot(
            slot,
            booking.schedule.start_time.time_zone,
            calendar_event_id=booking.schedule.calendar_event_id,
            calendar_id=booking.schedule.calendar_id,
            recurrence=booking.schedule.recurrence,
        )
        pending = await self._pending(
            booking, "moved", offer=offer, previous=booking.slot, reply_to=reply_to
        )
        try:
            moved = await self.store.move_booking(
                team_id,
                key,
                schedule=schedule,
                expect_sequence=booking.sequence,
                change=pending,
                lease_until=now + self.delivery_lease,
            )
        except BookingConflict:
            await self._refresh(offer, 0)
            raise SlotTakenError(
                "That time was just taken. Here are fresh times that still work for everyone."
            ) from None
        if moved is None:  # another click changed it first
            current = await self.store.get_booking(team_id, key)
            if current is not None and current.slot == slot:
                return self._change(current, participants, now, fresh=False, previous=None)
            raise OfferError("This meeting changed meanwhile. Press Reschedule again.")
        return await self._carry_out(booking, moved, participants, pending, now)

    async def cancel(
        self,
        team_id: str,
        user_id: str,
        key: str,
        directory: Directory,
        *,
        occurrence: datetime | None = None,
        reply_to: Mapping[str, Any] | None = None,
    ) -> Change:
        """Cancel the booking: its sequence rises, its calendar event goes, and the change
        carries a METHOD:CANCEL .ics. A second call (double click, retry) is not ``fresh``.
        Like a move, recorded as a pending change first (``reply_to`` kept with it).

        With ``occurrence`` (an original start) only that meeting of a series is cancelled:
        the calendar drops that instance and the .ics cancels it by RECURRENCE-ID.
        """
        booking = await self._own_booking(team_id, user_id, key)
        now = self.clock()
        participants = await self._members(booking, directory)
        if booking.state == BookingState.PENDING:
            raise OfferError("This meeting is still being booked. Try again in a moment.")
        if occurrence is not None:
            return await self._cancel_occurrence(booking, occurrence, participants, now, reply_to)
        for _ in range(3):  # a move racing this cancel raises the sequence once more
            if booking.state == BookingState.CANCELLED:
                return self._change(booking, participants, now, fresh=False, previous=None)
            pending = await self._pending(booking, "cancelled", reply_to=reply_to)
            cancelled = await self.store.cancel_booking(
                team_id,
                key,
                expect_sequence=booking.sequence,
                change=pending,
                lease_until=now + self.delivery_lease,
            )
            if cancelled is not None:
                return await self._carry_out(booking, cancelled, participants, pending, now)
            current = await self.store.get_booking(team_id, key)
            if current is None:
                break
            booking = current
        raise OfferError("This meeting changed meanwhile. Press Cancel meeting again.")

    async def _move_occurrence(
        self,
        booking: Booking,
        offer: Offer,
        index: int,
        original: datetime,
        directory: Directory,
        now: datetime,
        reply_to: Mapping[str, Any] | None,
    ) -> Change:
        """Move one meeting of a series: an exception in the store (compare-and-set on the
        sequence), then that instance in the calendar; the series itself stays."""
        team_id, key = booking.team_id, booking.key
        if not 0 <= index < len(offer.slots):
            raise OfferError("That time is no longer on offer. Pick one of the times shown.")
        slot = offer.slots[index]
        participants = await self._members(booking, directory)
        done = booking.exception_at(original)
        if done is not None and done.slot == slot:
            return self._change(booking, participants, now, fresh=False, occurrence=original)
        if not offer.is_open or offer.expires_at <= now:
            raise _expired()
        if booking.state == BookingState.CANCELLED:
            raise OfferError("This meeting was cancelled meanwhile, so it cannot be moved.")
        self._require_occurrence(booking, original, now)
        settings = await self.store.get_settings(team_id, booking.organizer_id)
        if not await self._still_free(team_id, participants, slot, settings, now):
            await self._refresh(offer, 0)
            raise SlotTakenError(
                "That time was just taken. Here are fresh times that still work for everyone."
            )
        previous = done.slot if done is not None and done.slot else None
        previous = previous or TimeSlot(original, original + booking.slot.duration)
        change = OccurrenceChange(original, slot, booking.sequence + 1)
        pending = await self._pending(
            booking,
            "moved",
            offer=offer,
            previous=previous,
            occurrence=change,
            reply_to=reply_to,
        )
        try:
            moved = await self.store.change_occurrence(
                team_id,
                key,
                change,
                expect_sequence=booking.sequence,
                pending=pending,
                lease_until=now + self.delivery_lease,
            )
        except BookingConflict:
            await self._refresh(offer, 0)
            raise SlotTakenError(
                "That time was just taken. Here are fresh times that still work for everyone."
            ) from None
        if moved is None:  # another click changed it first
            current = await self.store.get_booking(team_id, key)
            now_at = current.exception_at(original) if current is not None else None
            if current is not None and now_at is not None and now_at.slot == slot:
                return self._change(current, participants, now, fresh=False, occurrence=original)
            raise OfferError("This meeting changed meanwhile. Press Reschedule again.")
        return await self._carry_out(booking, moved, participants, pending, now)

    async def _cancel_occurrence(
        self,
        booking: Booking,
        original: datetime,
        participants: tuple[Participant, ...],
        now: datetime,
        reply_to: Mapping[str, Any] | None,
    ) -> Change:
        """Cancel one meeting of a series: that instance leaves the calendar, the booking
        keeps the exception, and the change carries a CANCEL .ics with its RECURRENCE-ID."""
        team_id, key = booking.team_id, booking.key
        for _ in range(3):  # another change of the series racing this one raises the sequence
            done = booking.exception_at(original)
            if booking.state == BookingState.CANCELLED or (done is not None and done.cancelled):
                return self._change(booking, participants, now, fresh=False, occurrence=original)
            self._require_occurrence(booking, original, now)
            change = OccurrenceChange(original, None, booking.sequence + 1)
            pending = await self._pending(
                booking, "cancelled", occurrence=change, reply_to=reply_to
            )
            cancelled = await self.store.change_occurrence(
                team_id,
                key,
                change,
                expect_sequence=booking.sequence,
                pending=pending,
                lease_until=now + self.delivery_lease,
            )
            if cancelled is not None:
                return await self._carry_out(booking, cancelled, participants, pending, now)
            current = await self.store.get_booking(team_id, key)
            if current is None:
                break
            booking = current
        raise OfferError("This meeting changed meanwhile. Press Cancel meeting again.")

    # -- a change on its way: decided, applied to the calendar, delivered --

    async def _pending(
        self,
        booking: Booking,
        kind: Literal["moved", "cancelled"],
        *,
        offer: Offer | None = None,
        previous: TimeSlot | None = None,
        occurrence: OccurrenceChange | None = None,
        reply_to: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """What a change must remember so that anyone can finish it: what it does, what it
        replaces, the offer it was picked from and where to show it."""
        delivery = await self.store.get_delivery(booking.team_id, booking.key)
        link = delivery.reply_to.get(_LINK) if delivery else None
        extra: dict[str, Any] = {}
        if occurrence is not None:
            extra["occurrence"] = occurrence.to_json()
        elif kind == "moved":
            extra["previous_schedule"] = booking.schedule.to_json()
        return {
            "kind": kind,
            "occurrence": occurrence.original_start.isoformat() if occurrence else None,
            "previous": [previous.start.isoformat(), previous.end.isoformat()]
            if previous
            else None,
            "offer_id": offer.id if offer else None,
            "link": link if isinstance(link, str) else None,
            "webhook_extra": extra,
            "reply_to": dict(reply_to) if reply_to else None,
        }

    async def _carry_out(
        self,
        before: Booking,
        after: Booking,
        participants: tuple[Participant, ...],
        pending: Mapping[str, Any],
        now: datetime,
    ) -> Change:
        """Apply a change just decided (``before`` → ``after``, leased to this caller) to the
        calendar and mark it applied; if the calendar refuses, take the change back in the
        store too, so the two never disagree."""
        try:
            await self._apply(after, participants, pending)
        except BaseException:
            await self.store.update_booking(
                after.team_id,
                after.key,
                state=before.state,
                schedule=before.schedule,
                sequence=before.sequence,
                exceptions=before.exceptions,
                drop_change=after.sequence,
            )
            raise
        await self._applied(after, pending, now)
        change = PendingChange(after.team_id, after.key, after.sequence, "applied", pending)
        return self._pending_change(after, participants, change, now)

    async def _apply(
        self, booking: Booking, participants: tuple[Participant, ...], pending: Mapping[str, Any]
    ) -> None:
        """Make the calendar show ``booking`` as the change left it; doing it twice is
        harmless (the same time set again, a deleted event deleted again)."""
        team_id = booking.team_id
        event_id = booking.schedule.calendar_event_id or event_id_for(booking.key)
        calendar_id = booking.schedule.calendar_id or booking.organizer_id
        occurrence = _instant(pending.get("occurrence"))
        if pending["kind"] == "cancelled":
            await self.calendar.delete_event(
                team_id,
                calendar_id,
                event_id,
                organizer=Attendee.of(participants[0]),
                original_start=occurrence,
            )
            return
        link = pending.get("link")
        event = replace(
            _calendar_event(
                booking, participants, event_id, link if isinstance(link, str) else None
            ),
            calendar_id=calendar_id,
            sequence=booking.sequence,
        )
        if occurrence is not None:
            moved = booking.exception_at(occurrence)
            assert moved is not None and moved.slot is not None
            event = replace(
                event,
                start=moved.slot.start,
                end=moved.slot.end,
                recurrence=(),
                original_start=occurrence,
            )
        await self.calendar.update_event(team_id, event)

    async def _applied(self, booking: Booking, pending: Mapping[str, Any], now: datetime) -> None:
        """The calendar follows: in one transaction the change is marked applied, its
        webhooks queued and its offer closed."""
        kind: WebhookKind = (
            "booking.cancelled" if pending["kind"] == "cancelled" else "booking.moved"
        )
        link = pending.get("link")
        messages = (
            self.webhooks.messages(
                booking,
                kind,
                link=link if isinstance(link, str) else None,
                now=now,
                extra=pending.get("webhook_extra") or None,
            )
            if self.webhooks is not None
            else []
        )
        applied = await self.store.change_applied(
            booking.team_id,
            booking.key,
            booking.sequence,
            webhooks=messages,
            close_offer=pending.get("offer_id"),
            now=now,
        )
        if applied and messages and self.webhooks is not None:
            self.webhooks.wake()

    def _pending_change(
        self,
        booking: Booking,
        participants: tuple[Participant, ...],
        change: PendingChange,
        now: datetime,
    ) -> Change:
        """The ``fresh`` Change a pending change's holder delivers."""
        previous = change.payload.get("previous")
        return self._change(
            booking,
            participants,
            now,
            fresh=True,
            previous=TimeSlot(_instant(previous[0]), _instant(previous[1]))  # type: ignore[arg-type]
            if previous
            else None,
            occurrence=_instant(change.payload.get("occurrence")),
            pending=change,
        )

    async def resume_change(self, team_id: str, key: str, directory: Directory) -> Change | None:
        """Finish a move or cancel a crash (or a failure) left on its way, if nobody else is:
        apply it to the calendar if that never completed, and return it to deliver. None when
        there is nothing to finish or another worker holds it."""
        now = self.clock()
        change = await self.store.lease_change(team_id, key, now, now + self.delivery_lease)
        if change is None:
            return None
        booking = await self.store.get_booking(team_id, key)
        if booking is None or booking.sequence != change.sequence:
            # Taken back, or overtaken by a change that did not record itself: nothing to say.
            await self.store.finish_change(team_id, key, change.sequence)
            return None
        try:
            participants = await self._members(booking, directory)
            if change.stage == "applying":
                await self._apply(booking, participants, change.payload)
                await self._applied(booking, change.payload, now)
        except BaseException:
            await self.store.release_change(team_id, key)
            raise
        return self._pending_change(booking, participants, replace(change, stage="applied"), now)

    async def unfinished_changes(self, limit: int = 100) -> list[PendingChange]:
        """Moves and cancels left on their way that nobody is working on."""
        return await self.store.unfinished_changes(self.clock(), self.delivery_lease, limit=limit)

    async def record_change_file(
        self, change: PendingChange, file_id: str, channel_id: str
    ) -> None:
        """Remember the change's .ics upload before it can be shared."""
        await self.store.record_change_file(
            change.team_id,
            change.booking_key,
            change.sequence,
            file_id=file_id,
            channel_id=channel_id,
        )

    async def change_delivered(self, change: PendingChange) -> None:
        """The change's .ics and its new look reached Slack: it is done."""
        await self.store.finish_change(change.team_id, change.booking_key, change.sequence)

    async def release_change(self, change: PendingChange) -> None:
        """Delivering the change failed; the next attempt may start at once."""
        await self.store.release_change(change.team_id, change.booking_key)

    async def current(self, team_id: str, user_id: str, key: str, directory: Directory) -> Change:
        """The booking as it stands, for showing it again (Keep it, a withdrawn reschedule)."""
        booking = await self._own_booking(team_id, user_id, key)
        participants = await self._members(booking, directory)
        return self._change(booking, participants, self.clock(), fresh=False, previous=None)

    async def _own_booking(self, team_id: str, user_id: str, key: str) -> Booking:
        booking = await self.store.get_booking(team_id, key)
        if booking is None:
            raise OfferError("I can't find that meeting any more.")
        if booking.organizer_id != user_id:
            raise PermissionDeniedError(
                f"Only <@{booking.organizer_id}>, who booked this meeting, can move or cancel "
                "it. Ask them, or reply in the thread."
            )
        return booking

    async def _members(self, booking: Booking, directory: Directory) -> tuple[Participant, ...]:
        """The organizer, then the attendees, as the directory and their settings know them."""
        return _unique(
            tuple(
                [
                    await self._person(booking.team_id, user_id, directory)
                    for user_id in (booking.organizer_id, *booking.participant_ids)
                ]
            )
        )

    def _change(
        self,
        booking: Booking,
        participants: tuple[Participant, ...],
        now: datetime,
        *,
        fresh: bool,
        previous: TimeSlot | None = None,
        occurrence: datetime | None = None,
        pending: PendingChange | None = None,
    ) -> Change:
        change = Change(
            booking=booking,
            participants=participants,
            pending=pending,
            invite=b"",
            filename="",
            fresh=fresh,
            previous=previous,
            invites_attendees=self.calendar.invites_attendees,
            occurrence=occurrence,
            upcoming=_upcoming(booking, now),
            repeats=_repeats(booking),
        )
        if change.occurrence_cancelled and occurrence is not None:
            # RFC 5546 3.2.5: cancelling one instance is a CANCEL with its RECURRENCE-ID.
            invite = build_invite(
                _occurrence_details(booking, participants, occurrence),
                method="CANCEL",
                stamp=now,
            )
        else:
            method: Method = "CANCEL" if booking.state == BookingState.CANCELLED else "REQUEST"
            invite = _series_invite(booking, participants, now, method)
        shown = change.occurrence_slot or booking.slot
        return replace(
            change,
            invite=invite,
            filename=invite_filename(booking.title, shown.start.astimezone(_zone(booking))),
        )

    async def _confirmation(
        self,
        booking: Booking,
        offer: Offer,
        *,
        fresh: bool,
        now: datetime,
        created: CreatedEvent | None = None,
        delivery: Delivery | None = None,
    ) -> Confirmation:
        participants = _participants_of(offer)
        if not booking.uid and created is not None:
            booking = replace(booking, uid=created.ical_uid)
        invite = _series_invite(booking, participants, now, "REQUEST")
        return Confirmation(
            booking=booking,
            participants=participants,
            invite=invite,
            filename=invite_filename(booking.title, booking.slot.start.astimezone(_zone(booking))),
            fresh=fresh,
            offer=offer,
            invites_attendees=self.calendar.invites_attendees,
            delivery=delivery,
        )

    # -- helpers --

    async def _person(self, team_id: str, user_id: str, directory: Directory) -> Participant:
        person = await directory.person(team_id, user_id)
        settings = await self.store.get_settings(team_id, user_id)
        return _with_settings(person, settings)

    async def _attendees(
        self, team_id: str, names: Sequence[str], directory: Directory
    ) -> list[Participant]:
        if len(names) > MAX_ATTENDEES:
            raise RequestError(
                f"That is {len(names)} people; I can schedule up to {MAX_ATTENDEES} at once."
            )
        found: list[Participant] = []
        for name in names:
            if name.startswith("@"):
                person = await directory.find_handle(team_id, name[1:])
                if person is None:
                    raise RequestError(
                        f"I couldn't find {name} in this workspace. Mention people so Slack "
                        "links them, e.g. `/schedule sync with @Ana tomorrow afternoon`."
                    )
                found.append(await self._person(team_id, person.user_id, directory))
            else:
                found.append(await self._person(team_id, name, directory))
        return found

    async def _own_offer(self, team_id: str, user_id: str, offer_id: str) -> Offer:
        offer = await self.store.get_offer(team_id, offer_id, self.clock())
        if offer is None or not offer.is_open:
            raise _expired()
        if offer.requester_id != user_id:
            raise PermissionDeniedError(
                f"Only <@{offer.requester_id}> can change this offer. "
                "Use `/schedule` to ask for your own meeting."
            )
        return offer

    async def _search(
        self,
        team_id: str,
        participants: Sequence[Participant],
        window: TimeSlot,
        duration_minutes: int,
        settings: UserSettings,
        now: datetime,
        exact_start: datetime | None,
        page: int,
        series: Series | None = None,
    ) -> tuple[SlotSearch, FreeBusy]:
        rules = self._rules(settings)
        horizon_end = now + rules.horizon
        read_end = max(min(window.end, horizon_end), window.start) + rules.buffer_after
        if series is not None:
            # Every checked occurrence of a series starting anywhere in the window is read.
            read_end += checked_reach(series.rule, window.start, series.zone)
        busy = await self.calendar.free_busy(
            team_id,
            participants,
            window.start - rules.buffer_before,
            read_end + timedelta(minutes=duration_minutes),
        )
        availabilities = await self._availabilities(
            team_id,
            participants,
            busy,
            window.start - rules.buffer_before,
            read_end + timedelta(minutes=duration_minutes),
        )
        search = find_free_slots(
            availabilities,
            window,
            timedelta(minutes=duration_minutes),
            now=now,
            viewer_zone=participants[0].time_zone,
            rules=rules,
            exact_start=exact_start,
            page=page,
            series=series,
        )
        return search, busy

    async def _still_free(
        self,
        team_id: str,
        participants: Sequence[Participant],
        slot: TimeSlot,
        settings: UserSettings,
        now: datetime,
        series: Series | None = None,
    ) -> bool:
        rules = self._rules(settings)
        start, end = slot.start - rules.buffer_before, slot.end + rules.buffer_after
        if series is not None:
            end += checked_reach(series.rule, slot.start, series.zone)
        busy = await self.calendar.free_busy(team_id, participants, start, end)
        availabilities = await self._availabilities(team_id, participants, busy, start, end)
        # The notice was met when the slot was offered; a slow click must not lose it.
        return is_free(
            availabilities,
            slot,
            rules=replace(rules, minimum_notice=timedelta(0)),
            now=now,
            series=series,
        )

    async def _availabilities(
        self,
        team_id: str,
        participants: Sequence[Participant],
        busy: FreeBusy,
        start: datetime,
        end: datetime,
    ) -> list[Availability]:
        """Calendar busy time plus our own live bookings, which a calendar may not show yet
        (a booking still being created, or an external calendar's free/busy lagging)."""
        booked = await self.store.booked_intervals(
            team_id, [p.user_id for p in participants], start, end
        )
        return [
            Availability(p, (*busy.busy.get(p.user_id, ()), *booked.get(p.user_id, ())))
            for p in participants
        ]

    def _rules(self, settings: UserSettings) -> SlotRules:
        return SlotRules(
            grid_minutes=self.grid_minutes,
            minimum_notice=timedelta(minutes=settings.minimum_notice_minutes),
            buffer_before=timedelta(minutes=settings.buffer_before_minutes),
            buffer_after=timedelta(minutes=settings.buffer_after_minutes),
            horizon=timedelta(days=settings.horizon_days),
            max_offered=self.max_offered,
        )


def _series(recurrence: Sequence[str] | None, zone: str) -> Series | None:
    """The series an offer's slots must start (its RRULE in the requester's zone), if any."""
    rule = rule_of(recurrence)
    return Series(rule, zone) if rule else None


def _expired() -> OfferError:
    return OfferError(
        "This offer has expired or was cancelled. Run `/schedule` again to see fresh times."
    )


def _unreadable_extra(participants: Sequence[Participant], busy: FreeBusy) -> dict[str, Any]:
    """The offer's record of whose calendar could not be read, and the provider's reasons."""
    unread = [p for p in participants if p.user_id in busy.unavailable]
    return {
        "unreadable": [p.name for p in unread],
        "unreadable_reasons": [busy.unavailable[p.user_id] for p in unread],
    }


def _unique(people: Sequence[Participant]) -> tuple[Participant, ...]:
    return tuple(
        {p.user_id: p for p in reversed(people)}[u]
        for u in dict.fromkeys(p.user_id for p in people)
    )


def _with_settings(person: Participant, settings: UserSettings) -> Participant:
    return replace(
        person,
        time_zone=settings.time_zone or person.time_zone,
        working_hours=settings.working_hours,
    )


def _person_json(person: Participant) -> dict[str, Any]:
    return {
        "user_id": person.user_id,
        "time_zone": person.time_zone,
        "email": person.email,
        "display_name": person.display_name,
        "working_hours": [
            [[start.isoformat("minutes"), end.isoformat("minutes")] for start, end in day]
            for day in person.working_hours.days
        ],
    }


def _person_from_json(data: Mapping[str, Any]) -> Participant:
    from datetime import time

    from bot.models import WorkingHours

    hours = WorkingHours(
        tuple(
            tuple((time.fromisoformat(a), time.fromisoformat(b)) for a, b in day)
            for day in data["working_hours"]
        )
    )
    return Participant(
        user_id=data["user_id"],
        time_zone=data["time_zone"],
        email=data.get("email"),
        display_name=data.get("display_name"),
        working_hours=hours,
    )


def _participants_of(offer: Offer) -> tuple[Participant, ...]:
    return tuple(_person_from_json(p) for p in offer.extra["participants"])


def _proposal(offer: Offer) -> Proposal:
    exact = offer.extra.get("exact_start")
    return Proposal(
        offer=offer,
        participants=_participants_of(offer),
        has_more=bool(offer.extra.get("has_more")),
        reasons=tuple(offer.extra.get("reasons", ())),
        unreadable=tuple(offer.extra.get("unreadable", ())),
        exact_start=datetime.fromisoformat(exact) if exact else None,
        unreadable_reasons=tuple(offer.extra.get("unreadable_reasons", ())),
    )


def _details(
    booking: Booking, participants: Sequence[Participant], slot: TimeSlot
) -> InviteDetails:
    organizer, *others = participants
    return InviteDetails(
        uid=booking.uid or booking.key,
        title=booking.title,
        start=slot.start,
        end=slot.end,
        time_zone=booking.schedule.start_time.time_zone,
        organizer=_party(organizer),
        attendees=tuple(_party(p) for p in others),
        description="Booked with Slotbot from Slack.",
        url=booking.event_link,
        sequence=booking.sequence,
    )


def _series_invite(
    booking: Booking, participants: Sequence[Participant], now: datetime, method: Method
) -> bytes:
    """The whole meeting as it stands: one VEVENT, or a series (RRULE, EXDATE for meetings
    cancelled on their own) followed by a VEVENT per meeting moved on its own."""
    rule = rule_of(booking.schedule.recurrence)
    series = _details(booking, participants, booking.slot)
    if rule is None:
        return build_invite(series, method=method, stamp=now)
    cancelled = tuple(c.original_start for c in booking.exceptions if c.cancelled)
    series = replace(series, rrule=rule, exdates=cancelled)
    moved = () if method == "CANCEL" else booking.exceptions
    occurrences = [
        _occurrence_details(booking, participants, c.original_start)
        for c in moved
        if not c.cancelled
    ]
    return build_invite(series, method=method, stamp=now, occurrences=occurrences)


def _occurrence_details(
    booking: Booking, participants: Sequence[Participant], original: datetime
) -> InviteDetails:
    """One meeting of a series as its own VEVENT: where it is now, named by RECURRENCE-ID."""
    change = booking.exception_at(original)
    slot = change.slot if change is not None and change.slot is not None else None
    slot = slot or TimeSlot(original, original + booking.slot.duration)
    return replace(_details(booking, participants, slot), recurrence_id=original)


def _upcoming(booking: Booking, now: datetime) -> tuple[Occurrence, ...]:
    if not booking.recurring or booking.state == BookingState.CANCELLED:
        return ()
    found = booking_occurrences(booking, now, now + _UPCOMING_LOOKAHEAD)
    return tuple(o for o in found if o.slot.start >= now)[:UPCOMING_CHOICES]


def _repeats(booking: Booking) -> str | None:
    rule = rule_of(booking.schedule.recurrence)
    if rule is None:
        return None
    return describe_rule(rule, booking.slot.start, booking.schedule.start_time.time_zone)


def _party(person: Participant) -> InviteParty:
    # libical's iTIP rules need an ORGANIZER address; a person Slack gives no email for gets
    # one in the reserved .invalid domain, which no mail system will ever deliver to.
    email = person.email or f"{person.user_id.lower()}@slack-user.invalid"
    return InviteParty(person.name, email)


def _zone(booking: Booking) -> Any:
    from bot.models import zone_of

    return zone_of(booking.schedule.start_time.time_zone)


def _calendar_event(
    booking: Booking,
    participants: Sequence[Participant],
    event_id: str,
    conversation_link: str | None = None,
) -> CalendarEvent:
    slot = booking.slot
    description = "Booked with Slotbot from Slack."
    if conversation_link:
        description = f"Booked with Slotbot from Slack: {conversation_link}"
    return CalendarEvent(
        event_id=event_id,
        calendar_id=booking.organizer_id,
        summary=booking.title or "Meeting",
        start=slot.start,
        end=slot.end,
        time_zone=booking.schedule.start_time.time_zone,
        description=description,
        attendees=tuple(Attendee.of(p) for p in participants[1:]),
        organizer=Attendee.of(participants[0]),
        recurrence=tuple(booking.schedule.recurrence or ()),
    )
