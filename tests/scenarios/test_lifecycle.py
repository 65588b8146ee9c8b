"""End to end through Slack's wire: a booked meeting is moved and cancelled from its
confirmation, and every calendar that imported the .ics can follow (same UID, rising SEQUENCE).

The scenarios run on SQLite and on PostgreSQL, like the booking scenarios."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.models import Booking, BookingState, ScheduleObject, TimeSlot
from bot.scheduling.booking import booking_key_for
from bot.store import BookingConflict, EventStatus, Store
from tests.ical_check import libical_report
from tests.scenarios.google_harness import SHARED_CALENDAR, GoogleBot, start_google, stop_google
from tests.scenarios.harness import (
    ANA,
    BEN,
    EVE,
    Harness,
    Offer,
    offer_from_ephemeral,
    on_each_database,
)
from tests.scenarios.test_google_oauth import connect

BERLIN = ZoneInfo("Europe/Berlin")
UPLOAD_DONE = "files.completeUploadExternal"
RESPONSE = "response_url"
BOOKED_AT = datetime(2026, 12, 1, 15, 0, tzinfo=BERLIN)


@dataclass
class Booked:
    """A delivered booking: its key and the confirmation message Ana sees."""

    key: str
    confirmation: Offer


async def book_meeting(bot: Harness) -> Booked:
    """Ana books 45 minutes with Ben tomorrow afternoon (the first slot: 15:00 Berlin)."""
    status, _ = await bot.command(f"design review with <@{BEN.id}> 45m tomorrow afternoon")
    assert status == 200
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    button = offer.buttons("book_slot")[0]
    await click_and_wait(bot, offer, button)
    await bot.wait_for(UPLOAD_DONE)
    key = booking_key_for(bot.slack.team_id, button["value"].rsplit(":", 1)[0])
    return Booked(key, offer_from_ephemeral(bot))


async def booking_of(bot: Harness, key: str) -> Booking:
    booking = await bot.slotbot.store.get_booking(bot.slack.team_id, key)
    assert booking is not None
    return booking


def reports(bot: Harness) -> list[dict[str, Any]]:
    """libical's report on every .ics shared so far, in order; each must be free of errors."""
    found = []
    for upload in bot.slack.uploaded_files():
        assert upload.content is not None and upload.filename.endswith(".ics")
        report = libical_report(upload.content)
        assert report["errors"] == [], report["errors"]
        found.append(report)
    return found


def assert_valid_itip_sequence(found: list[dict[str, Any]]) -> None:
    """One meeting's messages: same UID, SEQUENCE rising by one, nothing after a CANCEL."""
    assert len({r["uid"] for r in found}) == 1
    assert [r["sequence"] for r in found] == list(range(len(found)))
    methods = [r["method"] for r in found]
    assert all(m == "REQUEST" for m in methods[:-1])
    assert methods[-1] in ("REQUEST", "CANCEL")


async def click_and_settle(bot: Harness, message: Offer, prefix: str, **kw: Any) -> None:
    """Click the first ``prefix`` button and wait for its answer (each click here ends by
    replacing its message, or telling the clicker, through the response_url)."""
    [button] = message.buttons(prefix)[:1]
    await click_and_wait(bot, message, button, **kw)


async def click_and_wait(bot: Harness, message: Offer, button: dict[str, Any], **kw: Any) -> None:
    answered = len(bot.slack.calls(RESPONSE))
    assert await bot.click(message, button, **kw) == 200
    await bot.wait_for(RESPONSE, count=answered + 1)
    await bot.settle()


@on_each_database
async def test_reschedule_moves_the_same_event_and_shares_sequence_one(bot: Harness) -> None:
    """Reschedule → pick: the same event moves, a REQUEST .ics with the same UID and SEQUENCE 1
    is shared in the conversation, and the confirmation shows the old time struck through."""
    booked = await book_meeting(bot)
    before = await booking_of(bot, booked.key)

    await click_and_settle(bot, booked.confirmation, "reschedule")
    offer = offer_from_ephemeral(bot)
    assert offer.message.ts == booked.confirmation.message.ts, "the offer replaced it"
    slots = offer.buttons("book_slot")
    assert slots and "Keep the current time" in offer.text()
    assert f"<!date^{int(BOOKED_AT.timestamp())}^" not in offer.text(), "not its own time"

    await click_and_wait(bot, offer, slots[0])

    after = await booking_of(bot, booked.key)
    assert after.sequence == 1 and after.state == BookingState.CONFIRMED
    assert after.slot.start != before.slot.start
    assert after.slot.duration == before.slot.duration
    assert after.uid == before.uid
    event_id = before.schedule.calendar_event_id
    assert after.schedule.calendar_event_id == event_id
    local = await bot.slotbot.store.get_local_event(bot.slack.team_id, ANA.id, event_id)
    assert local is not None and local.status == EventStatus.CONFIRMED
    assert local.event.start == after.slot.start and local.event.sequence == 1

    first, second = reports(bot)
    assert_valid_itip_sequence([first, second])
    assert second["method"] == "REQUEST" and second["uid"] == before.uid
    assert datetime.fromisoformat(second["dtstart"].replace("Z", "+00:00")) == after.slot.start
    [_, upload] = bot.slack.uploaded_files()
    assert upload.channel == bot.channel and "Updated invite" in (upload.initial_comment or "")

    shown = bot.latest_ephemeral()
    assert shown.ts == booked.confirmation.message.ts
    text = str(shown.blocks)
    assert "moved" in text and f"~<!date^{int(BOOKED_AT.timestamp())}^" in text
    assert f"<!date^{int(after.slot.start.timestamp())}^" in text


@on_each_database
async def test_cancel_after_confirming_cancels_the_event_and_shares_a_cancel(
    bot: Harness,
) -> None:
    """Cancel meeting → confirm: the event is cancelled, the booking too (SEQUENCE 1), a
    METHOD:CANCEL .ics with the same UID is shared, and the time shows struck through."""
    booked = await book_meeting(bot)
    before = await booking_of(bot, booked.key)

    await click_and_settle(bot, booked.confirmation, "cancel_booking")
    prompt = offer_from_ephemeral(bot)
    assert prompt.buttons("confirm_cancel") and prompt.buttons("keep_booking")
    assert len(bot.slack.uploaded_files()) == 1, "nothing happens before the confirm"

    await click_and_settle(bot, prompt, "confirm_cancel")
    after = await booking_of(bot, booked.key)
    assert after.state == BookingState.CANCELLED and after.sequence == 1
    local = await bot.slotbot.store.get_local_event(
        bot.slack.team_id, ANA.id, before.schedule.calendar_event_id
    )
    assert local is not None and local.status == EventStatus.CANCELLED

    request, cancel = reports(bot)
    assert_valid_itip_sequence([request, cancel])
    assert cancel["method"] == "CANCEL" and cancel["events"][0]["status"] == "CANCELLED"
    assert cancel["uid"] == before.uid
    shown = bot.latest_ephemeral()
    assert "was cancelled" in str(shown.blocks)
    assert f"~<!date^{int(BOOKED_AT.timestamp())}^" in str(shown.blocks)
    assert "reschedule" not in str(shown.blocks), "a cancelled meeting offers no more moves"


@on_each_database
async def test_move_then_cancel_is_a_valid_itip_series(bot: Harness) -> None:
    """Book, move, cancel: three .ics, one UID, SEQUENCE 0, 1, 2, REQUEST, REQUEST, CANCEL."""
    booked = await book_meeting(bot)
    await click_and_settle(bot, booked.confirmation, "reschedule")
    offer = offer_from_ephemeral(bot)
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    await click_and_settle(bot, offer_from_ephemeral(bot), "cancel_booking")
    await click_and_settle(bot, offer_from_ephemeral(bot), "confirm_cancel")

    found = reports(bot)
    assert [r["method"] for r in found] == ["REQUEST", "REQUEST", "CANCEL"]
    assert_valid_itip_sequence(found)
    assert (await booking_of(bot, booked.key)).sequence == 2


@on_each_database
async def test_double_click_on_confirm_cancel_shares_one_cancel(bot: Harness) -> None:
    """Two clicks on the confirm button at once cancel once: one CANCEL .ics, SEQUENCE 1."""
    booked = await book_meeting(bot)
    await click_and_settle(bot, booked.confirmation, "cancel_booking")
    prompt = offer_from_ephemeral(bot)
    [confirm] = prompt.buttons("confirm_cancel")
    answered = len(bot.slack.calls("response_url"))
    statuses = await asyncio.gather(bot.click(prompt, confirm), bot.click(prompt, confirm))
    assert statuses == [200, 200]
    # Both clicks answer (each replaces the prompt); only then is the outcome final.
    await bot.wait_for("response_url", count=answered + 2)
    await bot.settle()
    found = reports(bot)
    assert [r["method"] for r in found] == ["REQUEST", "CANCEL"]
    assert (await booking_of(bot, booked.key)).sequence == 1


async def test_keep_it_leaves_the_meeting_booked(bot: Harness) -> None:
    """Cancel meeting → Keep it: the confirmation comes back and nothing changes."""
    booked = await book_meeting(bot)
    await click_and_settle(bot, booked.confirmation, "cancel_booking")
    await click_and_settle(bot, offer_from_ephemeral(bot), "keep_booking")
    shown = bot.latest_ephemeral()
    assert "is booked" in str(shown.blocks) and "cancel_booking" in str(shown.blocks)
    booking = await booking_of(bot, booked.key)
    assert booking.state == BookingState.CONFIRMED and booking.sequence == 0
    assert len(bot.slack.uploaded_files()) == 1


async def test_withdrawing_a_reschedule_keeps_the_current_time(bot: Harness) -> None:
    """Reschedule → Keep the current time: the confirmation comes back, the booking unmoved."""
    booked = await book_meeting(bot)
    await click_and_settle(bot, booked.confirmation, "reschedule")
    await click_and_settle(bot, offer_from_ephemeral(bot), "cancel_offer")
    shown = bot.latest_ephemeral()
    assert "is booked" in str(shown.blocks)
    assert f"<!date^{int(BOOKED_AT.timestamp())}^" in str(shown.blocks)
    booking = await booking_of(bot, booked.key)
    assert booking.slot.start == BOOKED_AT and booking.sequence == 0


@on_each_database
@pytest.mark.parametrize("action", ["reschedule", "cancel_booking", "confirm_cancel"])
async def test_only_the_organizer_may_move_or_cancel(bot: Harness, action: str) -> None:
    """Anyone but the organizer (even an attendee) is refused politely and nothing changes."""
    booked = await book_meeting(bot)
    button = {"action_id": action, "value": booked.key}
    for user in (BEN, EVE):
        await click_and_wait(bot, booked.confirmation, button, user=user)
        note = bot.latest_ephemeral(user)
        assert f"Only <@{ANA.id}>" in note.text
    booking = await booking_of(bot, booked.key)
    assert booking.state == BookingState.CONFIRMED and booking.sequence == 0
    assert booking.slot.start == BOOKED_AT
    assert len(bot.slack.uploaded_files()) == 1
    assert bot.latest_ephemeral().ts == booked.confirmation.message.ts
    assert "is booked" in str(bot.latest_ephemeral().blocks)


@on_each_database
async def test_a_move_onto_someone_elses_booking_is_refused(bot: Harness) -> None:
    """If an attendee got another booking over the picked time meanwhile, the move is refused
    with fresh times and the meeting stays where it was."""
    booked = await book_meeting(bot)
    await click_and_settle(bot, booked.confirmation, "reschedule")
    offer = offer_from_ephemeral(bot)
    first = offer.buttons("book_slot")[0]

    # Ben books something else over that time from another conversation.
    before = await booking_of(bot, booked.key)
    stored = await bot.slotbot.store.get_offer(bot.slack.team_id, _offer_id(first), None)
    assert stored is not None
    taken = stored.slots[0]
    other = Booking(
        key="other-meeting",
        team_id=bot.slack.team_id,
        organizer_id=BEN.id,
        participant_ids=(EVE.id,),
        title="other",
        schedule=ScheduleObject.from_slot(taken, "UTC"),
        state=BookingState.CONFIRMED,
    )
    await bot.slotbot.store.claim_booking(other, exclusive=True)

    await click_and_wait(bot, offer, first)
    note = bot.latest_ephemeral()
    assert "just taken" in str(note.blocks)
    after = await booking_of(bot, booked.key)
    assert after.slot == before.slot and after.sequence == 0
    assert len(bot.slack.uploaded_files()) == 1


def _offer_id(button: dict[str, Any]) -> str:
    return str(button["value"]).rsplit(":", 1)[0]


# --- Google Calendar ---------------------------------------------------------------------------


@pytest.fixture(params=["delegation", "shared", "oauth"])
async def google(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[GoogleBot]:
    """Slotbot on the Google emulator in each mode; in OAuth mode Ana has connected."""
    # oauthlib refuses plain http for Google's endpoints; the emulator is http on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    harness = await start_google(tmp_path, request.param)
    if request.param == "oauth":
        status, _ = await connect(harness, ANA)
        assert status == 200
    yield harness
    await stop_google(harness)


def google_calendar(harness: GoogleBot) -> str:
    return SHARED_CALENDAR if harness.mode == "shared" else "ana@example.com"


async def test_google_reschedule_patches_the_same_event(google: GoogleBot) -> None:
    """Reschedule → pick on Google: events.patch on the same event id (SEQUENCE 1), by the
    organizer's credentials, and a second REQUEST .ics with Google's UID and SEQUENCE 1."""
    booked = await book_meeting(google.bot)
    before = await booking_of(google.bot, booked.key)
    [event] = google.events(google_calendar(google))

    await click_and_settle(google.bot, booked.confirmation, "reschedule")
    offer = offer_from_ephemeral(google.bot)
    await click_and_wait(google.bot, offer, offer.buttons("book_slot")[0])

    after = await booking_of(google.bot, booked.key)
    [moved] = google.events(google_calendar(google))
    assert moved["id"] == event["id"] == after.schedule.calendar_event_id
    assert moved["sequence"] == 1 and after.sequence == 1
    assert datetime.fromisoformat(moved["start"]["dateTime"]) == after.slot.start
    assert after.slot.start != before.slot.start
    [patch] = google.google.calls_to("calendar.events.patch")
    if google.mode != "shared":
        assert patch.principal == "ana@example.com"

    found = reports(google.bot)
    assert_valid_itip_sequence(found)
    assert found[1]["method"] == "REQUEST" and found[1]["uid"] == event["iCalUID"]


async def test_google_cancel_deletes_the_event(google: GoogleBot) -> None:
    """Cancel → confirm on Google: events.delete by the organizer's credentials, the event is
    gone, and a CANCEL .ics with Google's UID and SEQUENCE 1 follows the REQUEST."""
    booked = await book_meeting(google.bot)
    [event] = google.events(google_calendar(google))
    await click_and_settle(google.bot, booked.confirmation, "cancel_booking")
    await click_and_settle(google.bot, offer_from_ephemeral(google.bot), "confirm_cancel")

    assert google.events(google_calendar(google)) == []
    [gone] = google.google.events(google_calendar(google), include_cancelled=True)
    assert gone["id"] == event["id"] and gone["status"] == "cancelled"
    [delete] = google.google.calls_to("calendar.events.delete")
    if google.mode != "shared":
        assert delete.principal == "ana@example.com"
    found = reports(google.bot)
    assert [r["method"] for r in found] == ["REQUEST", "CANCEL"]
    assert_valid_itip_sequence(found)
    assert found[1]["uid"] == event["iCalUID"]
    after = await booking_of(google.bot, booked.key)
    assert after.state == BookingState.CANCELLED and after.sequence == 1


# --- the store's atomic move and cancel ----------------------------------------------------------

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=BERLIN)


def _booking(key: str, organizer: str, others: tuple[str, ...], start: datetime) -> Booking:
    return Booking(
        key=key,
        team_id="T1",
        organizer_id=organizer,
        participant_ids=others,
        title=key,
        schedule=ScheduleObject.from_slot(_slot(start), "Europe/Berlin"),
        state=BookingState.CONFIRMED,
    )


def _slot(start: datetime) -> TimeSlot:
    return TimeSlot(start, start + timedelta(minutes=30))


async def test_move_booking_checks_overlap_excluding_itself(store: Store) -> None:
    """A move may overlap its own old time but not another booking of anyone on it."""
    await store.claim_booking(_booking("a", ANA.id, (BEN.id,), T0))
    await store.claim_booking(_booking("b", BEN.id, (), T0 + timedelta(hours=2)))
    overlap_self = ScheduleObject.from_slot(_slot(T0 + timedelta(minutes=15)), "Europe/Berlin")
    moved = await store.move_booking("T1", "a", schedule=overlap_self, expect_sequence=0)
    assert moved is not None and moved.sequence == 1
    assert moved.slot.start == T0 + timedelta(minutes=15)
    onto_b = ScheduleObject.from_slot(_slot(T0 + timedelta(hours=2)), "Europe/Berlin")
    with pytest.raises(BookingConflict):
        await store.move_booking("T1", "a", schedule=onto_b, expect_sequence=1)
    kept = await store.get_booking("T1", "a")
    assert kept is not None and kept.sequence == 1 and kept.slot == moved.slot


async def test_move_and_cancel_are_compare_and_set_on_the_sequence(store: Store) -> None:
    """Of racing moves one wins; a stale sequence neither moves nor cancels; a cancelled
    booking cannot be moved or cancelled again."""
    await store.claim_booking(_booking("a", ANA.id, (BEN.id,), T0))
    targets = [
        ScheduleObject.from_slot(_slot(T0 + timedelta(hours=h)), "Europe/Berlin") for h in (1, 3)
    ]
    results = await asyncio.gather(
        *(store.move_booking("T1", "a", schedule=t, expect_sequence=0) for t in targets)
    )
    assert sum(r is not None for r in results) == 1
    assert await store.cancel_booking("T1", "a", expect_sequence=0) is None
    cancelled = await store.cancel_booking("T1", "a", expect_sequence=1)
    assert cancelled is not None and cancelled.state == BookingState.CANCELLED
    assert cancelled.sequence == 2
    assert await store.cancel_booking("T1", "a", expect_sequence=2) is None
    assert await store.move_booking("T1", "a", schedule=targets[0], expect_sequence=2) is None
