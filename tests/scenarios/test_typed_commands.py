"""End to end through Slack's wire: a booked meeting moved or cancelled by typing ("move my 3pm
with Ben to thursday", "cancel my 3pm") in a DM, with ``/schedule`` and with an @mention, and
working hours with a lunch break saved in the settings modal and honoured by the next offer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.models import BookingState
from bot.scheduling.booking import booking_key_for
from bot.store import EventStatus
from handlers import ids
from playground import slack_requests
from playground.slack_api import Message
from tests.handlers.test_settings_blocks import submitted_values
from tests.scenarios.harness import (
    ANA,
    BEN,
    EVE,
    SECRET,
    Harness,
    Offer,
    offer_from_ephemeral,
    on_each_database,
)
from tests.scenarios.test_home_settings import open_settings, slot_starts, submit
from tests.scenarios.test_lifecycle import (
    BOOKED_AT,
    UPLOAD_DONE,
    assert_valid_itip_sequence,
    book_meeting,
    booking_of,
    click_and_wait,
    reports,
)

BERLIN = ZoneInfo("Europe/Berlin")
THURSDAY = datetime(2026, 12, 3, tzinfo=BERLIN)


async def say_in_dm(
    bot: Harness, text: str, *, user: str = ANA.id, thread: str | None = None
) -> Message:
    """``user`` writes ``text`` to Slotbot in their DM (in ``thread`` if given); waits for the
    answer, which is a normal message in the DM."""
    im = bot.slack.open_im(user).id
    said = bot.slack.post_as_user(im, user, text, thread_ts=thread)
    event = slack_requests.im_message_event(text, user=user, channel=im, ts=said.ts)
    if thread is not None:
        event["thread_ts"] = thread
    posted = len(bot.slack.calls("chat.postMessage"))
    response = await bot.post(
        slack_requests.signed_event(slack_requests.event_callback(event), secret=SECRET)
    )
    assert response.status == 200
    await bot.wait_for("chat.postMessage", count=posted + 1)
    await bot.settle()
    return said


def latest_in_dm(bot: Harness, user: str = ANA.id) -> Offer:
    """The bot's latest message in the DM with ``user`` (threads included)."""
    im = bot.slack.open_im(user).id
    mine = [
        m
        for m in bot.slack.calls("chat.postMessage")
        if m.params.get("channel") == im and m.response.get("ok")
    ]
    assert mine, "Slotbot said nothing in the DM"
    message = bot.slack.message(im, mine[-1].response["ts"])
    return Offer(message.blocks, im, message, None)


def current(bot: Harness, message: Offer) -> Offer:
    """``message`` as it reads now (after updates)."""
    now = bot.slack.message(message.channel, message.message.ts)
    return Offer(now.blocks, message.channel, now, None)


async def click_in_dm(bot: Harness, message: Offer, button: dict[str, Any]) -> None:
    """Click ``button`` on a normal DM message and wait for the message to be updated."""
    updated = len(bot.slack.calls("chat.update"))
    assert await bot.click(message, button) == 200
    await bot.wait_for("chat.update", count=updated + 1)
    await bot.settle()


@dataclass
class DmBooking:
    """A meeting Ana booked in a thread of her DM: its key and its confirmation message."""

    key: str
    confirmation: Offer
    thread: str


async def book_in_dm_thread(bot: Harness) -> DmBooking:
    """Ana asks in a DM thread for 45 minutes with Ben tomorrow afternoon and books the first
    slot (15:00 Berlin): the offer there turns into the confirmation."""
    im = bot.slack.open_im(ANA.id).id
    root = bot.slack.post_as_user(im, ANA.id, "planning the launch")
    await say_in_dm(bot, f"design review with <@{BEN.id}> 45m tomorrow afternoon", thread=root.ts)
    offer = latest_in_dm(bot)
    assert offer.message.thread_ts == root.ts
    button = offer.buttons("book_slot")[0]
    assert await bot.click(offer, button) == 200
    await bot.wait_for(UPLOAD_DONE)
    await bot.settle()
    key = booking_key_for(bot.slack.team_id, button["value"].rsplit(":", 1)[0])
    booking = await booking_of(bot, key)
    assert booking.slot.start == BOOKED_AT and booking.message_ts == offer.message.ts
    return DmBooking(key, current(bot, offer), root.ts)


@on_each_database
async def test_a_typed_move_in_a_dm_moves_the_event_and_updates_the_confirmation(
    bot: Harness,
) -> None:
    """ "move my 3pm with Ben to thursday" → an offer on Thursday → pick: the same event moves,
    a REQUEST .ics with the same UID and SEQUENCE 1 lands in the booking's own thread, and the
    confirmation there shows the old time struck through above the new one."""
    booked = await book_in_dm_thread(bot)
    before = await booking_of(bot, booked.key)

    await say_in_dm(bot, "move my 3pm with Ben to thursday")
    offer = latest_in_dm(bot)
    assert offer.message.thread_ts is None, "the answer is where the command was typed"
    assert "Keep the current time" in offer.text()
    starts = slot_starts(offer)
    assert starts and all(s.date() == THURSDAY.date() for s in starts), starts

    await click_in_dm(bot, offer, offer.buttons("book_slot")[0])

    after = await booking_of(bot, booked.key)
    assert after.sequence == 1 and after.state == BookingState.CONFIRMED
    assert after.slot.start == starts[0] and after.slot.duration == before.slot.duration
    assert after.uid == before.uid
    assert after.schedule.calendar_event_id == before.schedule.calendar_event_id
    local = await bot.slotbot.store.get_local_event(
        bot.slack.team_id, ANA.id, before.schedule.calendar_event_id
    )
    assert local is not None and local.event.start == after.slot.start
    assert local.event.sequence == 1

    found = reports(bot)
    assert_valid_itip_sequence(found)
    assert [r["method"] for r in found] == ["REQUEST", "REQUEST"]
    assert found[1]["uid"] == before.uid
    moved_to = datetime.fromisoformat(found[1]["dtstart"].replace("Z", "+00:00"))
    assert moved_to == after.slot.start
    upload = bot.slack.uploaded_files()[-1]
    assert (upload.channel, upload.thread_ts) == (booked.confirmation.channel, booked.thread)

    confirmation = current(bot, booked.confirmation).text()
    assert "moved" in confirmation
    assert f"~<!date^{int(BOOKED_AT.timestamp())}^" in confirmation
    assert f"<!date^{int(after.slot.start.timestamp())}^" in confirmation
    assert "moved" in current(bot, offer).text(), "the offer turned into the change too"


@on_each_database
async def test_a_typed_cancel_in_a_dm_asks_then_cancels(bot: Harness) -> None:
    """ "cancel my 3pm" → the usual confirm step → confirm: the event is cancelled, a CANCEL
    .ics follows in the booking's thread, and the confirmation shows it cancelled."""
    booked = await book_in_dm_thread(bot)
    await say_in_dm(bot, "cancel my 3pm")
    prompt = latest_in_dm(bot)
    assert prompt.buttons(ids.CONFIRM_CANCEL) and prompt.buttons(ids.KEEP_BOOKING)
    assert len(bot.slack.uploaded_files()) == 1, "nothing happens before the confirm"

    await click_in_dm(bot, prompt, prompt.buttons(ids.CONFIRM_CANCEL)[0])
    after = await booking_of(bot, booked.key)
    assert after.state == BookingState.CANCELLED and after.sequence == 1
    local = await bot.slotbot.store.get_local_event(
        bot.slack.team_id, ANA.id, after.schedule.calendar_event_id
    )
    assert local is not None and local.status == EventStatus.CANCELLED
    request, cancel = reports(bot)
    assert_valid_itip_sequence([request, cancel])
    assert cancel["method"] == "CANCEL"
    assert bot.slack.uploaded_files()[-1].thread_ts == booked.thread
    assert "was cancelled" in current(bot, booked.confirmation).text()


async def test_slash_schedule_move_offers_times_in_the_named_window(bot: Harness) -> None:
    """``/schedule reschedule the design review to thursday afternoon``: the offer (only Ana
    sees it) has Thursday-afternoon times; a pick moves the meeting."""
    booked = await book_meeting(bot)
    status, _ = await bot.command("reschedule the design review to thursday afternoon")
    assert status == 200
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    assert offer.message.ts != booked.confirmation.message.ts
    starts = slot_starts(offer)
    assert starts
    for start in starts:
        assert start.date() == THURSDAY.date() and time(12) <= start.time() < time(17), start
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    moved = await booking_of(bot, booked.key)
    assert moved.sequence == 1 and moved.slot.start == starts[0]


async def test_a_mention_can_cancel_a_meeting_by_its_title(bot: Harness) -> None:
    """ "@Slotbot cancel the design review" in a channel: the cancel prompt, only to Ana."""
    booked = await book_meeting(bot)
    said = bot.slack.post_as_user(bot.channel, ANA.id, "cancel the design review")
    mention = slack_requests.app_mention_event(
        f"<@{bot.slack.bot_user_id}> cancel the design review",
        user=ANA.id,
        channel=bot.channel,
        ts=said.ts,
    )
    ephemerals = len(bot.slack.calls("chat.postEphemeral"))
    await bot.post(
        slack_requests.signed_event(slack_requests.event_callback(mention), secret=SECRET)
    )
    await bot.wait_for("chat.postEphemeral", count=ephemerals + 1)
    await bot.settle()
    prompt = offer_from_ephemeral(bot)
    [confirm] = prompt.buttons(ids.CONFIRM_CANCEL)
    assert confirm["value"] == booked.key


async def test_several_matches_are_offered_as_a_choice(bot: Harness) -> None:
    """Two meetings with Ben and "move my meeting with ben": a short list, each with its own
    Reschedule and Cancel meeting; nothing is moved."""
    first = await book_meeting(bot)
    status, _ = await bot.command(f"retro with <@{BEN.id}> 30m thursday")
    assert status == 200
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    await bot.wait_for(UPLOAD_DONE, count=2)

    await say_in_dm(bot, "move my meeting with ben to friday")
    choice = latest_in_dm(bot)
    assert "Which meeting do you want to move?" in choice.text()
    keys = {b["value"] for b in choice.buttons(ids.RESCHEDULE)}
    assert first.key in keys and len(keys) == 2
    assert len(choice.buttons(ids.CANCEL_BOOKING)) == 2
    assert (await booking_of(bot, first.key)).sequence == 0


async def test_nothing_found_lists_the_upcoming_meetings_and_an_example(bot: Harness) -> None:
    """ "cancel my 4pm" when nothing starts at 4pm: says so, lists the meetings Ana has, shows
    a command that works, and cancels nothing."""
    booked = await book_meeting(bot)
    await say_in_dm(bot, "cancel my 4pm")
    answer = latest_in_dm(bot)
    text = answer.text()
    assert "couldn't find" in text and "design review" in text
    assert f"<!date^{int(BOOKED_AT.timestamp())}^" in text
    assert "move my 3pm with @ana to tomorrow" in text
    assert (await booking_of(bot, booked.key)).state == BookingState.CONFIRMED


@on_each_database
async def test_an_attendee_is_refused_politely_and_told_who_can(bot: Harness) -> None:
    """Ben attends Ana's meeting: "cancel my 9am" (his zone) is refused, naming Ana, and
    nothing changes."""
    booked = await book_meeting(bot)  # 15:00 Berlin is 09:00 in New York
    await say_in_dm(bot, "cancel my 9am with ana", user=BEN.id)
    answer = latest_in_dm(bot, BEN.id)
    assert f"Only <@{ANA.id}>, who booked that meeting, can move or cancel it" in (
        answer.message.text
    )
    assert answer.buttons() == []
    booking = await booking_of(bot, booked.key)
    assert booking.state == BookingState.CONFIRMED and booking.sequence == 0
    assert len(bot.slack.uploaded_files()) == 1


async def test_a_new_request_that_mentions_moving_is_still_a_request(bot: Harness) -> None:
    """ "schedule a meeting to move the piano with @eve" gets a new meeting's offer, not a
    move of anything."""
    await book_meeting(bot)
    await say_in_dm(bot, f"schedule a meeting to move the piano with <@{EVE.id}> next week")
    offer = latest_in_dm(bot)
    assert "move the piano" in offer.text() and offer.buttons("book_slot")
    assert "Keep the current time" not in offer.text()


async def test_a_lunch_break_saved_in_the_modal_is_never_offered(bot: Harness) -> None:
    """Ana saves 09:00-12:00, 13:00-17:00 for every weekday: the same request that offered
    times over midday before now offers none touching 12:00-13:00, and times on both sides."""
    # Eve (UTC) works 10-18 Berlin time, so only Ana's own hours shape midday.
    request = f"sync with <@{EVE.id}> 30m tomorrow between 11 and 14"
    await bot.command(request)
    await bot.settle()
    before = slot_starts(offer_from_ephemeral(bot))
    assert any(time(11, 31) <= s.time() < time(13) for s in before), before

    modal = await open_settings(bot)
    changes = {f"hours_{d}": "09:00-12:00, 13:00-17:00" for d in range(5)}
    status, body = await submit(bot, modal, submitted_values(modal, **changes))
    assert status == 200 and body in ("", "{}"), body
    saved = await bot.slotbot.store.get_settings(bot.slack.team_id, ANA.id)
    assert saved.working_hours.days[0] == ((time(9), time(12)), (time(13), time(17)))
    reopened = await open_settings(bot)
    shown = {b.get("block_id"): b["element"].get("initial_value") for b in reopened["blocks"][1:8]}
    assert shown["hours_0"] == "09:00-12:00, 13:00-17:00", "the form shows what was saved"

    await bot.command(request)
    await bot.settle()
    after = slot_starts(offer_from_ephemeral(bot))
    assert any(s.time() < time(12) for s in after) and any(s.time() >= time(13) for s in after)
    for start in after:
        end = start + timedelta(minutes=30)
        assert end.time() <= time(12) or start.time() >= time(13), start
