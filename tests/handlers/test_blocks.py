"""The pure Block Kit builders: offers grouped by day in the requester's zone, date tokens,
buttons the handlers answer, escaped user text, and messages real Slack would accept."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.invites import invite_filename
from bot.models import Booking, BookingState, Participant, ScheduleObject, TimeSlot
from bot.scheduling.booking import Change, Confirmation, Proposal
from bot.store import Offer
from handlers import blocks, ids
from playground.slack_api import MESSAGE_BLOCK_LIMIT, block_kit_errors

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ANA = Participant("U0ANA0001", "Europe/Berlin", "ana@example.com", "Ana")
BEN = Participant("U0BEN0002", "America/New_York", "ben@example.com", "Ben")
NASTY = "<!channel> <!here> <@U123> & <b> > x"
DATE_TOKEN = re.compile(r"<!date\^(\d+)\^([^|>]*)\|([^>]*)>")


def at(day: int, hour: int, minute: int = 0, *, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def slot(start: datetime, minutes: int = 30) -> TimeSlot:
    return TimeSlot(start, start + timedelta(minutes=minutes))


def make_offer(
    slots: tuple[TimeSlot, ...],
    *,
    zone: str = "Europe/Berlin",
    title: str | None = "Design review",
    offer_id: str = "off_abc123",
) -> Offer:
    return Offer(
        id=offer_id,
        team_id="T000TEAM1",
        requester_id=ANA.user_id,
        channel_id="C000GEN01",
        thread_ts=None,
        participant_ids=(ANA.user_id, BEN.user_id),
        duration_minutes=30,
        title=title,
        time_zone=zone,
        window=TimeSlot(at(1, 0), at(5, 0)),
        slots=slots,
        page=0,
        created_at=NOW,
        expires_at=NOW + timedelta(hours=24),
    )


def make_proposal(
    slots: tuple[TimeSlot, ...] = (),
    *,
    zone: str = "Europe/Berlin",
    title: str | None = "Design review",
    has_more: bool = False,
    reasons: tuple[str, ...] = (),
    unreadable: tuple[str, ...] = (),
) -> Proposal:
    return Proposal(
        offer=make_offer(slots, zone=zone, title=title),
        participants=(ANA, BEN),
        has_more=has_more,
        reasons=reasons,
        unreadable=unreadable,
    )


def make_confirmation(
    *, title: str | None = "Design review", link: str | None = "https://cal.example/e/1"
) -> Confirmation:
    picked = slot(at(1, 13), 45)
    offer = make_offer((picked,), title=title)
    booking = Booking(
        key="k" * 40,
        team_id="T000TEAM1",
        organizer_id=ANA.user_id,
        participant_ids=(BEN.user_id,),
        title=title,
        schedule=ScheduleObject.from_slot(picked, "Europe/Berlin"),
        state=BookingState.CREATED,
        offer_id=offer.id,
        event_link=link,
    )
    return Confirmation(
        booking=booking,
        participants=(ANA, BEN),
        invite=b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
        filename=invite_filename(title, picked.start),
        fresh=True,
        offer=offer,
    )


def rendered(built: list[Any]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in built]


def buttons(message: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for block in message:
        for element in [block.get("accessory"), *(block.get("elements") or [])]:
            if isinstance(element, dict) and element.get("type") == "button":
                found.append(element)
    return found


def day_groups(message: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(day header text, [slot row texts]) in message order."""
    groups: list[tuple[str, list[str]]] = []
    for block in message:
        text = (block.get("text") or {}).get("text", "")
        if block["type"] == "section" and "{date_long_pretty}" in text:
            groups.append((text, []))
        elif block["type"] == "section" and "accessory" in block:
            groups[-1][1].append(text)
    return groups


def as_text(message: list[dict[str, Any]]) -> str:
    return json.dumps(message, ensure_ascii=False)


def tokens(text: str) -> list[tuple[int, str, str]]:
    return [(int(e), fmt, fallback) for e, fmt, fallback in DATE_TOKEN.findall(text)]


# --- offers -----------------------------------------------------------------------------------


def test_slots_are_grouped_by_day_in_the_requesters_zone() -> None:
    """Three slots on two Berlin days give two day headers, each with its own rows."""
    slots = (slot(at(1, 9)), slot(at(1, 13)), slot(at(2, 10)))
    groups = day_groups(rendered(blocks.offer_blocks(make_proposal(slots))))
    assert [len(rows) for _, rows in groups] == [2, 1]
    assert "Tue 01 Dec" in groups[0][0] and "Wed 02 Dec" in groups[1][0]


def test_a_zone_ahead_of_utc_merges_two_utc_days_into_one() -> None:
    """In Auckland (UTC+13) slots on 30 Nov and 1 Dec UTC all fall on Tue 1 Dec local time."""
    slots = (slot(at(30, 20, month=11)), slot(at(30, 22, month=11)), slot(at(1, 1)))
    groups = day_groups(
        rendered(blocks.offer_blocks(make_proposal(slots, zone="Pacific/Auckland")))
    )
    assert len(groups) == 1
    [(header, rows)] = groups
    [(epoch, _, fallback)] = tokens(header)
    assert epoch == int(slots[0].start.timestamp())
    assert fallback.startswith("Tue 01 Dec") and len(rows) == 3


def test_a_zone_behind_utc_splits_one_utc_day_into_two() -> None:
    """In Los Angeles two slots on 1 Dec UTC fall on Mon 30 Nov and Tue 1 Dec local time."""
    slots = (slot(at(1, 1)), slot(at(1, 17)))
    groups = day_groups(
        rendered(blocks.offer_blocks(make_proposal(slots, zone="America/Los_Angeles")))
    )
    assert [tokens(header)[0][2][:10] for header, _ in groups] == ["Mon 30 Nov", "Tue 01 Dec"]


def test_each_slot_has_one_book_button_with_a_unique_action_id_and_its_value() -> None:
    """One Book button per slot: action_id book_slot_<i>, unique, value offer_id:index."""
    slots = tuple(slot(at(1 + i // 3, 9 + 2 * (i % 3))) for i in range(6))
    message = rendered(blocks.offer_blocks(make_proposal(slots)))
    book = [b for b in buttons(message) if b["action_id"].startswith(ids.BOOK_SLOT)]
    assert len(book) == 6
    assert len({b["action_id"] for b in book}) == 6
    assert all(ids.BOOK_SLOT_PATTERN.match(b["action_id"]) for b in book)
    assert [b["value"] for b in book] == [f"off_abc123:{i}" for i in range(6)]
    assert [ids.read_slot_value(b["value"]) for b in book] == [("off_abc123", i) for i in range(6)]


def test_slot_rows_carry_date_tokens_with_the_right_epochs_and_zone_fallbacks() -> None:
    """A row shows start and end tokens; epochs are the instants, fallbacks Berlin wall time."""
    picked = slot(at(1, 13), 45)
    [row] = [
        rows for _, rows in day_groups(rendered(blocks.offer_blocks(make_proposal((picked,)))))
    ]
    [(start, start_fmt, start_fallback), (end, _, end_fallback)] = tokens(row[0])
    assert (start, end) == (int(picked.start.timestamp()), int(picked.end.timestamp()))
    assert start_fmt == "{time}"
    assert start_fallback == "Tue 01 Dec 14:00 CET"
    assert end_fallback == "Tue 01 Dec 14:45 CET"


def test_date_token_falls_back_to_the_named_zone_across_dst() -> None:
    """date_token's fallback is the wall time in the zone given, with its abbreviation."""
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert blocks.date_token(summer, "{time}", "Europe/Berlin") == (
        f"<!date^{int(summer.timestamp())}^{{time}}|Wed 01 Jul 14:00 CEST>"
    )
    assert blocks.date_token(summer, "{time}", "UTC").endswith("|Wed 01 Jul 12:00 UTC>")


@pytest.mark.parametrize("has_more", [True, False])
def test_more_times_only_when_there_are_more_and_cancel_always(has_more: bool) -> None:
    """ "More times" appears exactly when has_more; Cancel (cancel_offer) is always there."""
    message = rendered(blocks.offer_blocks(make_proposal((slot(at(1, 9)),), has_more=has_more)))
    action_ids = [b["action_id"] for b in buttons(message)]
    assert (ids.MORE_TIMES in action_ids) is has_more
    [cancel] = [b for b in buttons(message) if b["action_id"] == ids.CANCEL_OFFER]
    assert cancel["value"] == "off_abc123"


def test_no_slots_lists_the_reasons_and_suggests_a_wider_window() -> None:
    """Without slots: each reason as a bullet, a wider window suggested, only Cancel offered."""
    reasons = ("Ben is busy all Tuesday.", "Ana works 9-17 Berlin time.")
    message = rendered(blocks.offer_blocks(make_proposal((), reasons=reasons, has_more=True)))
    text = as_text(message)
    assert "No time fits" in text
    assert all(f"• {r}" in text for r in reasons)
    assert "wider window" in text and "next week" in text
    assert [b["action_id"] for b in buttons(message)] == [ids.CANCEL_OFFER]
    assert blocks.offer_text(make_proposal(())) == "No time fits for Design review."


def test_no_slots_without_reasons_still_says_nothing_fits() -> None:
    """An empty reason list is rendered as a generic bullet rather than nothing."""
    text = as_text(rendered(blocks.offer_blocks(make_proposal(()))))
    assert "• Nothing fits." in text


def test_unreadable_calendars_are_named() -> None:
    """People whose calendars could not be read are named, with what that means."""
    proposal = make_proposal((slot(at(1, 9)),), unreadable=("Ben", "Cara"))
    text = as_text(rendered(blocks.offer_blocks(proposal)))
    assert "could not read the calendar of Ben, Cara" in text
    assert "could not read" not in as_text(rendered(blocks.offer_blocks(make_proposal(()))))


def test_summary_names_title_duration_and_other_participants() -> None:
    """The first section says what was understood: title, duration and who else."""
    message = rendered(blocks.offer_blocks(make_proposal((slot(at(1, 9)),))))
    assert message[0]["text"]["text"] == "*Design review* · 30 min with <@U0BEN0002>"


def test_offer_text_counts_slots() -> None:
    """The notification text says how many times are offered and for what."""
    proposal = make_proposal((slot(at(1, 9)), slot(at(1, 10))))
    assert blocks.offer_text(proposal) == "2 times for Design review: pick one."


# --- escaping ---------------------------------------------------------------------------------


def assert_inert(text: str) -> None:
    for ping in ("<!channel>", "<!here>", "<@U123>", "<b>"):
        assert ping not in text
    assert "&lt;!channel&gt;" in text and "&lt;!here&gt;" in text and "&lt;@U123&gt;" in text
    assert "&amp;" in text


def test_escape_makes_mentions_and_markup_inert() -> None:
    """escape() turns &, < and > into entities, ampersand first so nothing is double-escaped."""
    assert (
        blocks.escape(NASTY)
        == "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &amp; &lt;b&gt; &gt; x"
    )


def test_a_hostile_title_cannot_ping_in_offers() -> None:
    """A title full of mentions and markup is escaped in the offer and its notification text."""
    proposal = make_proposal((slot(at(1, 9)),), title=NASTY)
    assert_inert(as_text(rendered(blocks.offer_blocks(proposal))))
    assert "<!channel>" not in blocks.offer_text(proposal)
    assert "<!channel>" not in blocks.offer_text(make_proposal((), title=NASTY))


def test_hostile_reasons_names_and_notes_are_escaped() -> None:
    """Reasons, unreadable names and the note are user-derived text and are escaped too."""
    proposal = make_proposal((), reasons=(NASTY,), unreadable=(NASTY,))
    assert_inert(as_text(rendered(blocks.offer_blocks(proposal, note=NASTY))))
    with_slots = make_proposal((slot(at(1, 9)),), unreadable=(NASTY,))
    assert_inert(as_text(rendered(blocks.offer_blocks(with_slots))))


def test_a_hostile_title_cannot_ping_in_the_confirmation() -> None:
    """The confirmation's title and notification text are escaped as well."""
    confirmation = make_confirmation(title=NASTY)
    assert_inert(as_text(rendered(blocks.confirmation_blocks(confirmation))))
    assert "<!channel>" not in blocks.confirmation_text(confirmation)


# --- confirmation -----------------------------------------------------------------------------


def test_confirmation_shows_title_times_people_link_and_next_steps() -> None:
    """Title, start and end tokens, participants, the link, Reschedule and Cancel buttons."""
    confirmation = make_confirmation()
    message = rendered(blocks.confirmation_blocks(confirmation))
    text = as_text(message)
    assert "*Design review* is booked" in text
    found = tokens(message[0]["text"]["text"])
    assert [epoch for epoch, _, _ in found] == [
        int(at(1, 13).timestamp()),
        int(at(1, 13, 45).timestamp()),
    ]
    assert found[0][2] == "Tue 01 Dec 14:00 CET"
    assert "<@U0ANA0001>" in text and "<@U0BEN0002>" in text
    assert "<https://cal.example/e/1|Open in calendar>" in text
    assert confirmation.filename in text
    by_id = {b["action_id"]: b for b in buttons(message)}
    assert set(by_id) == {ids.RESCHEDULE, ids.CANCEL_BOOKING}
    assert by_id[ids.RESCHEDULE]["value"] == by_id[ids.CANCEL_BOOKING]["value"] == "k" * 40
    assert blocks.confirmation_text(confirmation) == "Booked: Design review"


def test_confirmation_without_a_link_has_no_link() -> None:
    """With no event link there is no 'Open in calendar' and no bare angle-bracket link."""
    text = as_text(rendered(blocks.confirmation_blocks(make_confirmation(link=None))))
    assert "Open in calendar" not in text
    assert "<http" not in text


def test_untitled_meetings_are_called_meeting() -> None:
    """No title: the offer and the confirmation say 'Meeting'."""
    proposal = make_proposal((slot(at(1, 9)),), title=None)
    assert rendered(blocks.offer_blocks(proposal))[0]["text"]["text"].startswith("*Meeting*")
    assert blocks.offer_text(proposal) == "1 time for your meeting: pick one."
    assert blocks.confirmation_text(make_confirmation(title=None)) == "Booked: Meeting"


# --- Slack's limits ---------------------------------------------------------------------------


def six_slots_on_six_days() -> tuple[TimeSlot, ...]:
    return tuple(slot(at(1 + i, 9)) for i in range(6))


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(lambda: blocks.offer_blocks(make_proposal(six_slots_on_six_days())), id="6"),
        pytest.param(
            lambda: blocks.offer_blocks(
                make_proposal(six_slots_on_six_days(), title="T" * 200, has_more=True),
                note="N" * 200,
            ),
            id="max-page-long-title",
        ),
        pytest.param(
            lambda: blocks.offer_blocks(
                make_proposal(
                    (), title=NASTY, reasons=tuple("R" * 150 for _ in range(5)), unreadable=("x",)
                )
            ),
            id="no-slots",
        ),
        pytest.param(lambda: blocks.confirmation_blocks(make_confirmation()), id="confirmation"),
        pytest.param(
            lambda: blocks.confirmation_blocks(make_confirmation(title="T" * 200, link=None)),
            id="confirmation-long-title",
        ),
        pytest.param(blocks.help_blocks, id="help"),
        pytest.param(blocks.withdrawn_blocks, id="withdrawn"),
    ],
)
def test_every_built_message_is_valid_block_kit(message: Any) -> None:
    """Offers, confirmations, help and withdrawn messages pass Slack's Block Kit limits."""
    built = rendered(message())
    assert built
    assert block_kit_errors(built, limit=MESSAGE_BLOCK_LIMIT) == []


def test_a_full_page_fits_well_within_the_block_limit() -> None:
    """The largest page (6 slots, 6 days, a note, More times) stays under 50 blocks."""
    proposal = make_proposal(six_slots_on_six_days(), has_more=True)
    assert len(blocks.offer_blocks(proposal, note="taken")) < MESSAGE_BLOCK_LIMIT


def test_help_examples_all_start_with_the_command() -> None:
    """Every help example is a /schedule line people can copy."""
    text = as_text(rendered(blocks.help_blocks()))
    assert all(example.startswith(ids.COMMAND + " ") for example in blocks.HELP_EXAMPLES)
    assert all(json.dumps(example)[1:-1] in text for example in blocks.HELP_EXAMPLES)


def test_berlin_fallback_uses_zoneinfo_abbreviations() -> None:
    """The fallback abbreviation comes from the zone database, not a fixed offset."""
    moment = datetime(2026, 12, 1, 13, tzinfo=ZoneInfo("Europe/Berlin"))
    assert blocks.date_token(moment, "{time}", "Asia/Tokyo").endswith("|Tue 01 Dec 21:00 JST>")


def make_change(
    *, state: BookingState, previous: TimeSlot | None = None, title: str = "Design review"
) -> Change:
    booking = replace(make_confirmation(title=title).booking, state=state, sequence=1)
    return Change(
        booking=booking,
        participants=(ANA, BEN),
        invite=b"",
        filename=invite_filename(title, booking.slot.start),
        fresh=True,
        previous=previous,
    )


def test_a_moved_meeting_strikes_the_old_time_through_above_the_new_one() -> None:
    """After a move: the old time struck through, the new time, both as date tokens."""
    old = slot(at(1, 9), 45)
    message = rendered(
        blocks.change_blocks(make_change(state=BookingState.CONFIRMED, previous=old))
    )
    text = as_text(message)
    old_token = f"<!date^{int(old.start.timestamp())}^"
    new_token = f"<!date^{int(at(1, 13).timestamp())}^"
    assert f"~{old_token}" in text and new_token in text
    assert text.index(old_token) < text.index(new_token)
    assert {b["action_id"] for b in buttons(message)} == {ids.RESCHEDULE, ids.CANCEL_BOOKING}
    assert block_kit_errors(message, limit=MESSAGE_BLOCK_LIMIT) == []


def test_a_cancelled_meeting_shows_its_time_struck_through_and_no_buttons() -> None:
    """Cancelled: the time struck through, the CANCEL file named, nothing left to click."""
    message = rendered(blocks.change_blocks(make_change(state=BookingState.CANCELLED)))
    text = as_text(message)
    assert "was cancelled" in text and "~<!date^" in text
    assert not buttons(message)
    assert blocks.change_text(make_change(state=BookingState.CANCELLED)).startswith("Cancelled")


def test_the_cancel_prompt_offers_confirm_and_keep_with_the_booking_key() -> None:
    """The confirm step: a danger confirm_cancel and a keep_booking, both carrying the key."""
    change = make_change(state=BookingState.CONFIRMED, title="<!channel> retro")
    message = rendered(blocks.cancel_prompt_blocks(change))
    found = {b["action_id"]: b for b in buttons(message)}
    assert set(found) == {ids.CONFIRM_CANCEL, ids.KEEP_BOOKING}
    assert {b["value"] for b in found.values()} == {change.booking.key}
    assert found[ids.CONFIRM_CANCEL]["style"] == "danger"
    assert "&lt;!channel&gt;" in as_text(message) and "<!channel>" not in as_text(message)
