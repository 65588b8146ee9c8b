"""Pure Block Kit builders: domain values in, ``slack_sdk.models`` blocks out. No I/O.

Times are shown with Slack's ``<!date^…>`` token, so every viewer reads them in their own zone;
the fallback text is in the requester's zone. User text is escaped before it reaches mrkdwn.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from itertools import groupby

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.models import Booking, OccurrenceChange, Participant, TimeSlot, zone_of
from bot.recurrence import describe_rule, rule_of
from bot.scheduling.booking import Change, Confirmation, Proposal
from bot.scheduling.commands import COMMAND_EXAMPLE, Action
from bot.scheduling.reminders import Note, NoteKind
from bot.store import UserSettings
from handlers import ids

__all__ = [
    "cancel_prompt_blocks",
    "cancel_prompt_text",
    "change_blocks",
    "change_text",
    "choice_blocks",
    "choice_text",
    "confirmation_blocks",
    "confirmation_text",
    "connect_blocks",
    "connected_text",
    "date_token",
    "day_hours_text",
    "disconnected_text",
    "escape",
    "help_blocks",
    "home_blocks",
    "list_blocks",
    "list_text",
    "no_match_blocks",
    "no_match_text",
    "note_text",
    "nothing_to_connect_text",
    "occurrence_choice_blocks",
    "occurrence_choice_text",
    "offer_blocks",
    "offer_text",
    "settings_modal",
    "withdrawn_blocks",
]

HELP_EXAMPLES = (
    "/schedule design review with @ana 45m next tuesday afternoon",
    "/schedule 1:1 with @ben tomorrow at 3",
    "/schedule quick sync with @ana @ben this week",
    '/schedule "Q1 planning" with @cara 2h between thu and fri',
)


def escape(text: str) -> str:
    """User text as inert mrkdwn: ``&``, ``<`` and ``>`` escaped, so nothing can ping or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def date_token(moment: datetime, fmt: str, zone: str) -> str:
    """Slack's date token: each viewer sees ``moment`` in their zone; ``zone`` is the fallback."""
    local = moment.astimezone(zone_of(zone))
    fallback = local.strftime("%a %d %b %H:%M ") + (local.tzname() or zone)
    return f"<!date^{int(moment.timestamp())}^{fmt}|{fallback}>"


def _title(title: str | None) -> str:
    return escape(title) if title else "Meeting"


def _duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"{hours} h {rest} min"
    return f"{hours} h" if hours else f"{rest} min"


def _people(participants: Sequence[Participant]) -> str:
    return ", ".join(f"<@{p.user_id}>" for p in participants)


def _summary(proposal: Proposal) -> str:
    offer = proposal.offer
    others = proposal.participants[1:]
    who = f" with {_people(others)}" if others else " (just you)"
    return f"*{_title(offer.title)}* · {_duration(offer.duration_minutes)}{who}"


def _window(proposal: Proposal) -> str:
    window, zone = proposal.offer.window, proposal.offer.time_zone
    if proposal.exact_start is not None:
        return (
            f"You asked for {date_token(proposal.exact_start, '{date_short_pretty} {time}', zone)}."
        )
    last = window.end - timedelta(seconds=1)
    return (
        f"Looking between {date_token(window.start, '{date_short_pretty} {time}', zone)} "
        f"and {date_token(last, '{date_short_pretty} {time}', zone)}, within everyone's "
        "working hours."
    )


def offer_text(proposal: Proposal) -> str:
    """The notification text of an offer (shown where blocks are not)."""
    # Notifications read this as mrkdwn too, so a title must not be able to ping anyone.
    title = escape(proposal.offer.title or "your meeting")
    count = len(proposal.slots)
    if not count:
        return f"No time fits for {title}."
    return f"{count} time{'' if count == 1 else 's'} for {title}: pick one."


def offer_blocks(proposal: Proposal, *, note: str | None = None) -> list[Block]:
    """What was understood, then the free slots grouped by day, each with a Book button."""
    offer = proposal.offer
    blocks: list[Block] = []
    if note:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f":warning: {escape(note)}")))
    blocks.append(SectionBlock(text=MarkdownTextObject(text=_summary(proposal))))
    context = [_window(proposal)]
    if proposal.occurrence is not None:
        when = date_token(
            proposal.occurrence, "{date_short_pretty} {time}", proposal.offer.time_zone
        )
        context.append(
            f"Moving only the meeting of {when}: the rest of the series stays where it is."
        )
    elif proposal.reschedule_of:
        context.append("Moving the booked meeting: it keeps its time until you pick a new one.")
    if rule_of(proposal.offer.recurrence):
        context.append(
            "It repeats: each time is free for everyone on the next meetings of the series too."
        )
    if proposal.unreadable:
        names = ", ".join(escape(n) for n in proposal.unreadable)
        context.append(
            f"I could not read the calendar of {names}; those times follow working hours only."
        )
        # The provider's own words say what to do about it (connect, share, ask an admin).
        context.extend(
            escape(_clip(reason, 200)) for reason in dict.fromkeys(proposal.unreadable_reasons[:5])
        )
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=" ".join(context))]))

    if not proposal.slots:
        reasons = "\n".join(f"• {escape(r)}" for r in proposal.reasons) or "• Nothing fits."
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"*No time fits.*\n{reasons}\n"
                    "Try a wider window, e.g. `next week` or `in the next 2 weeks`, "
                    "or a shorter meeting."
                )
            )
        )
        blocks.append(_offer_actions(proposal, has_more=False))
        return blocks

    zone = zone_of(offer.time_zone)
    index = {slot: i for i, slot in enumerate(offer.slots)}
    for _, day_slots in groupby(offer.slots, key=lambda s: s.start.astimezone(zone).date()):
        day = list(day_slots)
        blocks.append(DividerBlock())
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"*{date_token(day[0].start, '{date_long_pretty}', offer.time_zone)}*"
                )
            )
        )
        blocks.extend(
            _slot_row(slot, index[slot], offer.id, offer.time_zone, proposal.repeats(slot))
            for slot in day
        )
    blocks.append(DividerBlock())
    blocks.append(_offer_actions(proposal, has_more=proposal.has_more))
    return blocks


def _slot_row(
    slot: TimeSlot, index: int, offer_id: str, zone: str, repeats: str | None = None
) -> SectionBlock:
    start = date_token(slot.start, "{time}", zone)
    end = date_token(slot.end, "{time}", zone)
    text = f"{start} – {end}"
    if repeats:
        text += f" · {repeats} from {date_token(slot.start, '{date_short_pretty}', zone)}"
    return SectionBlock(
        text=MarkdownTextObject(text=text),
        accessory=ButtonElement(
            text="Book",
            action_id=ids.book_slot_action(index),
            value=ids.slot_value(offer_id, index),
            style="primary",
        ),
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _offer_actions(proposal: Proposal, *, has_more: bool) -> ActionsBlock:
    offer_id = proposal.offer.id
    buttons = []
    if has_more:
        buttons.append(ButtonElement(text="More times", action_id=ids.MORE_TIMES, value=offer_id))
    # Withdrawing a reschedule offer leaves the meeting where it is.
    label = "Keep the current time" if proposal.reschedule_of else "Cancel"
    buttons.append(ButtonElement(text=label, action_id=ids.CANCEL_OFFER, value=offer_id))
    return ActionsBlock(elements=buttons)


def confirmation_text(confirmation: Confirmation) -> str:
    """The notification text of a confirmation (escaped, as it is read as mrkdwn)."""
    return f"Booked: {_title(confirmation.booking.title)}"


def confirmation_blocks(confirmation: Confirmation) -> list[Block]:
    """The booked meeting: title, time in each viewer's zone, who, a link, what to do next."""
    booking = confirmation.booking
    lines = [
        f":white_check_mark: *{_title(booking.title)}* is booked",
        _when(booking.slot, booking),
    ]
    return _booked_blocks(
        booking,
        lines + _repeat_lines(booking),
        confirmation.participants,
        confirmation.filename,
        invites_attendees=confirmation.invites_attendees,
    )


def change_text(change: Change) -> str:
    """The notification text of a booking after a move or cancel (escaped mrkdwn)."""
    title = _title(change.booking.title)
    if change.cancelled:
        return f"Cancelled: {title}"
    if change.occurrence_cancelled:
        return f"Cancelled one meeting: {title}"
    if change.occurrence is not None and change.previous:
        return f"Moved one meeting: {title}"
    return f"Moved: {title}" if change.previous else f"Booked: {title}"


def change_blocks(change: Change) -> list[Block]:
    """A booking after a change: cancelled (its time struck through), moved (the old time
    struck through above the new one), or as it stands."""
    booking = change.booking
    title, when = _title(booking.title), _when(booking.slot, booking)
    occurrence = change.occurrence_slot
    if occurrence is not None and change.occurrence_cancelled:
        lines = [
            f":x: One meeting of *{title}* was cancelled",
            f"~{_when(occurrence, booking)}~",
            *_repeat_lines(booking, "The series goes on: "),
        ]
        return _booked_blocks(
            booking,
            lines,
            change.participants,
            change.filename,
            invites_attendees=change.invites_attendees,
            cancelled_one=True,
        )
    if occurrence is not None and change.previous is not None:
        lines = [
            f":white_check_mark: One meeting of *{title}* moved",
            f"~{_when(change.previous, booking)}~",
            _when(occurrence, booking),
            *_repeat_lines(booking, "The rest of the series stays: "),
        ]
        return _booked_blocks(
            booking,
            lines,
            change.participants,
            change.filename,
            invites_attendees=change.invites_attendees,
            updated=True,
        )
    if change.cancelled:
        return [
            SectionBlock(text=MarkdownTextObject(text=f":x: *{title}* was cancelled\n~{when}~")),
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"With {_people(change.participants)} · "
                        f"`{escape(change.filename)}` removes it from calendars that "
                        "imported the invite."
                    )
                ]
            ),
        ]
    if change.previous is not None:
        lines = [
            f":white_check_mark: *{title}* moved",
            f"~{_when(change.previous, booking)}~",
            when,
            *_repeat_lines(booking),
        ]
    else:
        lines = [f":white_check_mark: *{title}* is booked", when, *_repeat_lines(booking)]
    return _booked_blocks(
        booking,
        lines,
        change.participants,
        change.filename,
        invites_attendees=change.invites_attendees,
        updated=change.previous is not None,
    )


def cancel_prompt_text(change: Change) -> str:
    """The notification text of the confirm step before a cancel."""
    return f"Cancel {escape(change.booking.title or 'the meeting')}?"


def _lead(minutes: int) -> str:
    if minutes <= 0:
        return "Starting now"
    hours, rest = divmod(minutes, 60)
    if hours and not rest:
        return f"Starting in {hours} hour{'s' if hours > 1 else ''}"
    return f"Starting in {minutes} minute{'s' if minutes > 1 else ''}"


def note_text(note: Note) -> str:
    """A reminder or a notice of a change, as one mrkdwn DM (the title escaped, times as date
    tokens, the calendar event linked when the calendar gave a link). A series' notice says
    how it repeats, and names a meeting changed on its own by its day in the reader's zone.
    The same note always gives the same text: a message is found again after a crash by its
    text's digest."""
    booking = note.booking
    title, when = _title(booking.title), _when(booking.slot, booking)
    link = f"\n<{booking.event_link}|Open the event>" if booking.event_link else ""
    organizer = f"<@{booking.organizer_id}>"
    zone = booking.schedule.start_time.time_zone
    words = _series_words(booking)
    repeats = f"{escape(words)} from " if words else ""
    if note.kind == NoteKind.REMINDER:
        meeting = _when(note.meeting or booking.slot, booking)
        return f":alarm_clock: {_lead(note.lead_minutes)}: *{title}*, {meeting}{link}"
    if note.kind == NoteKind.CANCELLED:
        return f":x: {organizer} cancelled *{title}* with you, ~{repeats}{when}~"
    news = [_meeting_change(change, note, organizer) for change in note.changes]
    if note.kind == NoteKind.MOVED and note.previous_start is not None:
        was = date_token(note.previous_start, "{date_long_pretty} {time}", zone)
        moved = f":arrows_counterclockwise: {organizer} moved *{title}* from ~{was}~ to {repeats}"
        return "\n".join([moved + when, *news]) + link
    if note.kind == NoteKind.CHANGED and news:
        return "\n".join(news) + link
    if words:
        return f":calendar: {organizer} booked *{title}* with you, {repeats}{when}{link}"
    return f":calendar: {organizer} booked *{title}* with you for {when}{link}"


def _meeting_change(change: OccurrenceChange, note: Note, organizer: str) -> str:
    """One meeting of a series moved or cancelled on its own, named by the day the series
    put it on (in the reader's zone): ``moved the Tue 8 Dec meeting of *1:1* from ~…~ to …``."""
    booking = note.booking
    local = change.original_start.astimezone(zone_of(note.zone))
    meeting = f"the {local:%a} {local.day} {local:%b} meeting of *{_title(booking.title)}*"
    original = _when(
        TimeSlot(change.original_start, change.original_start + booking.slot.duration), booking
    )
    if change.slot is None:
        return f":x: {organizer} cancelled {meeting}, ~{original}~; the rest of the series stays"
    return (
        f":arrows_counterclockwise: {organizer} moved {meeting} from ~{original}~ to "
        f"{_when(change.slot, booking)}"
    )


def cancel_prompt_blocks(change: Change, occurrence: datetime | None = None) -> list[Block]:
    """The confirm step before a cancel: what goes, and the two ways out. With
    ``occurrence`` (an original start) only that meeting of the series goes."""
    booking = change.booking
    title = _title(booking.title)
    if occurrence is not None:
        slot = booking.exception_at(occurrence)
        shown = slot.slot if slot is not None and slot.slot is not None else None
        shown = shown or TimeSlot(occurrence, occurrence + booking.slot.duration)
        question = (
            f"Cancel only the meeting of *{title}* on {_when(shown, booking)}? The rest of the "
            f"series stays, and {_people(change.participants)} get a cancellation of that "
            "one meeting to import."
        )
    elif change.repeats:
        question = (
            f"Cancel every meeting of *{title}* ({escape(change.repeats)}, from "
            f"{_when(booking.slot, booking)})? The series leaves the calendar, and "
            f"{_people(change.participants)} get a cancellation to import."
        )
    else:
        question = (
            f"Cancel *{title}*, {_when(booking.slot, booking)}? "
            f"It leaves the calendar, and {_people(change.participants)} get a "
            "cancellation to import."
        )
    value = ids.occurrence_value(booking.key, occurrence)
    return [
        SectionBlock(text=MarkdownTextObject(text=question)),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Cancel meeting",
                    action_id=ids.CONFIRM_CANCEL,
                    value=value,
                    style="danger",
                ),
                ButtonElement(text="Keep it", action_id=ids.KEEP_BOOKING, value=booking.key),
            ]
        ),
    ]


def occurrence_choice_text(change: Change) -> str:
    """The notification text of the "which meeting?" choice."""
    return f"Which meeting of {_title(change.booking.title)}?"


def occurrence_choice_blocks(change: Change, *, cancel: bool) -> list[Block]:
    """A series' Reschedule or Cancel meeting: one of its next meetings, or the whole series."""
    booking = change.booking
    verb = "Cancel" if cancel else "Move"
    one = ids.CANCEL_OCCURRENCE if cancel else ids.RESCHEDULE_OCCURRENCE
    every = ids.CANCEL_SERIES if cancel else ids.RESCHEDULE_SERIES
    repeats = f" ({escape(change.repeats)})" if change.repeats else ""
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text=f"*{_title(booking.title)}* repeats{repeats}. "
                f"{verb} one meeting, or the whole series?"
            )
        )
    ]
    for index, meeting in enumerate(change.upcoming):
        moved = " (moved)" if meeting.moved else ""
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(text=_when(meeting.slot, booking) + moved),
                accessory=ButtonElement(
                    text=f"{verb} this one",
                    action_id=f"{one}_{index}",
                    value=ids.occurrence_value(booking.key, meeting.original_start),
                ),
            )
        )
    blocks.append(
        ActionsBlock(
            elements=[
                ButtonElement(
                    text=f"{verb} the whole series",
                    action_id=every,
                    value=booking.key,
                    style="danger" if cancel else None,
                ),
                ButtonElement(text="Back", action_id=ids.KEEP_BOOKING, value=booking.key),
            ]
        )
    )
    return blocks


def _series_words(booking: Booking) -> str | None:
    """How a series repeats (``every Tuesday``); None for one meeting. A series listed as its
    next meeting may show one moved on its own: the rule's words come from where the rule put
    it, not from the day it went to."""
    rule = rule_of(booking.schedule.recurrence)
    if rule is None:
        return None
    anchor = next(
        (c.original_start for c in booking.exceptions if c.slot == booking.slot),
        booking.slot.start,
    )
    return describe_rule(rule, anchor, booking.schedule.start_time.time_zone)


def _repeat_lines(booking: Booking, lead: str = "") -> list[str]:
    """``Repeats every Tuesday`` (and how many meetings were changed on their own)."""
    words = _series_words(booking)
    if words is None:
        return []
    line = f"{lead}repeats {escape(words)}" if lead else f"Repeats {escape(words)}"
    moved = sum(1 for c in booking.exceptions if not c.cancelled)
    cancelled = len(booking.exceptions) - moved
    notes = [f"{n} {what}" for n, what in ((moved, "moved"), (cancelled, "cancelled")) if n]
    if notes:
        line += f" ({', '.join(notes)} on their own)"
    return [line]


def _when(slot: TimeSlot, booking: Booking) -> str:
    zone = booking.schedule.start_time.time_zone
    return (
        f"{date_token(slot.start, '{date_long_pretty} {time}', zone)} – "
        f"{date_token(slot.end, '{time}', zone)}"
    )


def _booked_blocks(
    booking: Booking,
    lines: Sequence[str],
    participants: Sequence[Participant],
    filename: str,
    *,
    invites_attendees: bool,
    updated: bool = False,
    cancelled_one: bool = False,
) -> list[Block]:
    details = [f"With {_people(participants)}"]
    if booking.event_link:
        details.append(f"<{escape(booking.event_link)}|Open in calendar>")
    if cancelled_one:
        details.append(f"`{escape(filename)}` removes that meeting from imported calendars.")
    elif updated:
        details.append(f"The updated invite is attached as `{escape(filename)}`.")
    elif invites_attendees:
        details.append(f"The invite is attached as `{escape(filename)}`.")
    else:
        details.append(
            "The event is on the team calendar, not in anyone's own calendar: "
            f"`{escape(filename)}` above is the invitation, so open it to add "
            "the meeting to yours."
        )
    return [
        SectionBlock(text=MarkdownTextObject(text="\n".join(lines))),
        ContextBlock(elements=[MarkdownTextObject(text=" · ".join(details))]),
        ActionsBlock(
            elements=[
                ButtonElement(text="Reschedule", action_id=ids.RESCHEDULE, value=booking.key),
                ButtonElement(
                    text="Cancel meeting",
                    action_id=ids.CANCEL_BOOKING,
                    value=booking.key,
                    style="danger",
                ),
            ]
        ),
    ]


def _booking_row(booking: Booking, user_id: str | None, *, from_home: bool) -> list[Block]:
    """One upcoming meeting (a series: the next of its meetings, saying how it repeats); its
    organizer also gets Reschedule and Cancel meeting, which for a series ask which meetings."""
    slot, zone = booking.slot, booking.schedule.start_time.time_zone
    people = ", ".join(f"<@{u}>" for u in (booking.organizer_id, *booking.participant_ids))
    words = _series_words(booking)
    repeats = f" (repeats {escape(words)})" if words else ""
    row: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text=f"*{_title(booking.title)}*{repeats}\n"
                f"{date_token(slot.start, '{date_long_pretty} {time}', zone)} – "
                f"{date_token(slot.end, '{time}', zone)} · {people}"
            )
        )
    ]
    if user_id is not None and booking.organizer_id == user_id:
        reschedule = ids.HOME_RESCHEDULE if from_home else ids.RESCHEDULE
        cancel = ids.HOME_CANCEL_BOOKING if from_home else ids.CANCEL_BOOKING
        row.append(
            ActionsBlock(
                elements=[
                    ButtonElement(text="Reschedule", action_id=reschedule, value=booking.key),
                    ButtonElement(
                        text="Cancel meeting",
                        action_id=cancel,
                        value=booking.key,
                        style="danger",
                    ),
                ]
            )
        )
    return row


#: Meetings shown at most in a list or the Home tab (a message holds 50 blocks, a view 100).
LIST_LIMIT = 15


def list_text(bookings: Sequence[Booking]) -> str:
    """The notification text of ``/schedule list``."""
    count = len(bookings)
    if not count:
        return "No upcoming meetings booked with Slotbot."
    return f"{count} upcoming meeting{'' if count == 1 else 's'}"


def list_blocks(bookings: Sequence[Booking], user_id: str) -> list[Block]:
    """``/schedule list``: the person's upcoming meetings, soonest first, with Reschedule and
    Cancel meeting on the ones they organize (a click turns the list into that flow)."""
    if not bookings:
        return [
            SectionBlock(
                text=MarkdownTextObject(
                    text="No upcoming meetings booked with Slotbot. "
                    "`/schedule 1:1 with @ana tomorrow` books one."
                )
            )
        ]
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"*Your upcoming meetings* ({len(bookings)})"))
    ]
    for booking in bookings[:LIST_LIMIT]:
        blocks.extend(_booking_row(booking, user_id, from_home=False))
    if len(bookings) > LIST_LIMIT:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(text=f"…and {len(bookings) - LIST_LIMIT} more later on.")
                ]
            )
        )
    return blocks


def choice_text(bookings: Sequence[Booking]) -> str:
    """The notification text when a typed move or cancel matches several meetings."""
    return f"{len(bookings)} of your meetings match: which one?"


def choice_blocks(bookings: Sequence[Booking], user_id: str, action: Action) -> list[Block]:
    """Several of the person's meetings match a typed move or cancel: each with its
    Reschedule and Cancel meeting, so a click goes on as from its confirmation."""
    verb = "move" if action == Action.MOVE else "cancel"
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text=f"*Which meeting do you want to {verb}?* {len(bookings)} of yours match."
            )
        )
    ]
    for booking in bookings[:LIST_LIMIT]:
        blocks.extend(_booking_row(booking, user_id, from_home=False))
    hint = "Or say which one, with its time or who is in it. " + COMMAND_EXAMPLE
    if action == Action.MOVE:
        hint = "*Reschedule* here offers times over the next two weeks. " + hint
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=hint)]))
    return blocks


def no_match_text() -> str:
    """The notification text when a typed move or cancel matches none of the person's meetings."""
    return "I couldn't find that meeting."


def no_match_blocks(upcoming: Sequence[Booking], user_id: str) -> list[Block]:
    """No meeting of the person's matches a typed move or cancel: say so, list the meetings
    they do have (with their buttons), and show commands that work."""
    if not upcoming:
        lead = "I couldn't find that meeting: you have no upcoming meetings booked with Slotbot."
    else:
        lead = "I couldn't find a meeting of yours that matches. Your upcoming meetings:"
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=lead))]
    for booking in upcoming[:LIST_LIMIT]:
        blocks.extend(_booking_row(booking, user_id, from_home=False))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=COMMAND_EXAMPLE)]))
    return blocks


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
OFF = "off"
MIDNIGHT_END = "24:00"  # a day that works until midnight; stored as time(0)

#: block_id of each settings field; the form reader in ``handlers.views`` reads these.
ZONE_BLOCK = "time_zone"
#: (block_id, label, lowest, highest, hint) of the number fields.
NUMBER_FIELDS = (
    ("buffer_before", "Buffer before meetings (minutes)", 0, 120, None),
    ("buffer_after", "Buffer after meetings (minutes)", 0, 120, None),
    ("minimum_notice", "Minimum notice (minutes)", 0, 10080, "How soon a meeting may start."),
    ("default_duration", "Default duration (minutes)", 5, 480, None),
    ("horizon", "Search horizon (days)", 1, 90, "How far ahead offers may look."),
    ("reminder_lead", "Reminder before meetings (minutes)", 0, 1440, "Empty: no reminder."),
)
FIELD_ACTION = "value"  # the action_id of every settings field's element
DAY_HOURS_MAX_LENGTH = 150


def hours_block(day: int) -> str:
    """The block_id of a weekday's working hours field (Monday = 0)."""
    return f"hours_{day}"


def _clock(moment: time) -> str:
    return moment.strftime("%H:%M")


def day_hours_text(intervals: Sequence[tuple[time, time]]) -> str:
    """A day's working intervals as the form shows them: ``09:00-12:00, 13:00-17:30`` or
    ``off``; an end at midnight is ``24:00``."""
    if not intervals:
        return OFF
    return ", ".join(
        f"{_clock(a)}-{MIDNIGHT_END if b == time(0) else _clock(b)}" for a, b in intervals
    )


def _number_values(settings: UserSettings) -> dict[str, int | None]:
    return {
        "buffer_before": settings.buffer_before_minutes,
        "buffer_after": settings.buffer_after_minutes,
        "minimum_notice": settings.minimum_notice_minutes,
        "default_duration": settings.default_duration_minutes,
        "horizon": settings.horizon_days,
        "reminder_lead": settings.reminder_lead_minutes,
    }


def settings_modal(settings: UserSettings) -> View:
    """The settings form: hours per weekday (several intervals, or off), zone override, and
    numbers; each field starts with what is saved."""
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text="*Working hours* in your time zone. Offers only use these hours. "
                "Give each day one or more intervals, e.g. `09:00-12:00, 13:00-17:30` for a "
                "lunch break, or `off` to keep the day free."
            )
        )
    ]
    for day, name in enumerate(WEEKDAYS):
        blocks.append(
            InputBlock(
                block_id=hours_block(day),
                label=name,
                optional=True,
                hint="e.g. 09:00-12:00, 13:00-17:30 · off (or empty): a day off",
                element=PlainTextInputElement(
                    action_id=FIELD_ACTION,
                    placeholder="off",
                    initial_value=day_hours_text(settings.working_hours.days[day]),
                    max_length=DAY_HOURS_MAX_LENGTH,
                ),
            )
        )
    blocks.append(DividerBlock())
    blocks.append(
        InputBlock(
            block_id=ZONE_BLOCK,
            label="Time zone",
            optional=True,
            hint="An IANA name such as Europe/Berlin. Empty: your Slack profile's zone.",
            element=PlainTextInputElement(
                action_id=FIELD_ACTION,
                placeholder="Europe/Berlin",
                initial_value=settings.time_zone or None,
                max_length=64,
            ),
        )
    )
    numbers = _number_values(settings)
    for block_id, label, lowest, highest, hint in NUMBER_FIELDS:
        value = numbers[block_id]
        blocks.append(
            InputBlock(
                block_id=block_id,
                label=label,
                optional=block_id == "reminder_lead",
                hint=hint,
                element=NumberInputElement(
                    action_id=FIELD_ACTION,
                    is_decimal_allowed=False,
                    initial_value=None if value is None else str(value),
                    min_value=str(lowest),
                    max_value=str(highest),
                ),
            )
        )
    return View(
        type="modal",
        callback_id=ids.SETTINGS_VIEW,
        title="Scheduling settings",
        submit="Save",
        close="Cancel",
        blocks=blocks,
    )


def _hours_summary(settings: UserSettings) -> str:
    lines = []
    for name, intervals in zip(WEEKDAYS, settings.working_hours.days, strict=True):
        spans = ", ".join(
            f"{_clock(a)}–{MIDNIGHT_END if b == time(0) else _clock(b)}" for a, b in intervals
        )
        lines.append(f"{name[:3]} {spans or 'off'}")
    return " · ".join(lines)


def _settings_section(settings: UserSettings) -> list[Block]:
    zone = escape(settings.time_zone) if settings.time_zone else "your Slack profile's"
    reminder = (
        "no reminders"
        if settings.reminder_lead_minutes is None
        else f"reminder {settings.reminder_lead_minutes} min before"
    )
    facts = (
        f"*Hours:* {_hours_summary(settings)}\n"
        f"*Time zone:* {zone} · *Buffers:* {settings.buffer_before_minutes} min before, "
        f"{settings.buffer_after_minutes} min after · "
        f"*Notice:* {settings.minimum_notice_minutes} min\n"
        f"*Default length:* {_duration(settings.default_duration_minutes)} · "
        f"*Looks ahead:* {settings.horizon_days} days · {reminder}"
    )
    return [
        HeaderBlock(text="Your scheduling settings"),
        SectionBlock(
            text=MarkdownTextObject(text=facts),
            accessory=ButtonElement(
                text="Edit settings", action_id=ids.EDIT_SETTINGS, value="settings"
            ),
        ),
    ]


def home_blocks(
    bookings: Sequence[Booking],
    *,
    user_id: str | None = None,
    settings: UserSettings | None = None,
) -> list[Block]:
    """The App Home tab: upcoming meetings (Reschedule and Cancel on the ones ``user_id``
    organizes), the person's settings with an Edit button, then how to ask for a meeting."""
    blocks: list[Block] = [
        HeaderBlock(text="Your upcoming meetings"),
    ]
    if not bookings:
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text="Nothing booked with Slotbot yet."))
        )
    for booking in bookings[:LIST_LIMIT]:
        blocks.extend(_booking_row(booking, user_id, from_home=True))
    if settings is not None:
        blocks.append(DividerBlock())
        blocks.extend(_settings_section(settings))
    blocks.append(DividerBlock())
    return blocks + help_blocks()


def connect_blocks(link: str, minutes: int) -> list[Block]:
    """The private connect link: where it goes, what Google will ask, how long it lasts."""
    return [
        SectionBlock(
            text=MarkdownTextObject(
                text=f"*<{escape(link)}|Connect your Google Calendar>*\n"
                "Google will ask to let Slotbot see your free/busy times and manage the events "
                "it books for you. Slotbot never reads your events' details."
            )
        ),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"The link is yours alone and works once, for {minutes} minutes. "
                    "`/schedule disconnect` removes the connection at any time."
                )
            ]
        ),
    ]


def connected_text() -> str:
    """The DM after someone connected their Google account."""
    return (
        ":white_check_mark: Your Google Calendar is connected: I'll offer times around your "
        "meetings and put what you book on your calendar. `/schedule disconnect` undoes it."
    )


def disconnected_text(was_connected: bool, revoked: bool) -> str:
    """The answer to ``/schedule disconnect``."""
    if not was_connected:
        return "Your Google Calendar was not connected, so there was nothing to disconnect."
    if revoked:
        return (
            "Disconnected: Google has withdrawn Slotbot's access and I have forgotten your "
            "token. Offers now follow your working hours only."
        )
    return (
        "Disconnected: I have forgotten your token, but Google did not answer, so please also "
        "remove Slotbot at https://myaccount.google.com/permissions."
    )


def nothing_to_connect_text(calendar_name: str) -> str:
    """``/schedule connect`` when people do not connect their own accounts here."""
    if calendar_name == "google":
        return (
            "Google Calendar is set up for the whole workspace here, so there is nothing for "
            "you to connect."
        )
    return "This Slotbot keeps its own calendar; there is no Google account to connect."


def withdrawn_blocks() -> list[Block]:
    """An offer the requester cancelled."""
    return [
        SectionBlock(
            text=MarkdownTextObject(
                text="Cancelled: nothing was booked. `/schedule` to start over."
            )
        )
    ]


def help_blocks() -> list[Block]:
    """How to ask, with examples that work."""
    examples = "\n".join(f"• `{e}`" for e in HELP_EXAMPLES)
    return [
        SectionBlock(
            text=MarkdownTextObject(
                text="*Ask for a meeting in your own words.* Say who (mention them), how long, "
                "and when; I will offer times that suit everyone's calendar and working hours."
            )
        ),
        SectionBlock(text=MarkdownTextObject(text=examples)),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="You can also DM me the same words, or mention me in a channel. "
                    "Times are searched in your Slack time zone unless you name another "
                    "(`3pm ET`, `10:00 CET`). Move or cancel a booked meeting the same way: "
                    "`move my 3pm with @ana to tomorrow`, `cancel the design review`."
                )
            ]
        ),
    ]
