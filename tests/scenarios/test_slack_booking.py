"""End to end through Slack's wire: signed requests into ``slotbot serve``'s app, the real
slack_sdk client out to the emulator. Ask, pick, get the meeting and its .ics.

The scenarios that book (or keep offers and bookings) run on SQLite and on PostgreSQL; the rest
run on SQLite only, to keep the suite quick."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from bot.models import BookingState
from bot.scheduling.booking import booking_key_for
from playground import slack_requests
from playground.slack_api import SlackEmulator
from tests.ical_check import libical_report
from tests.scenarios.harness import (
    ANA,
    BEN,
    CARA,
    EVE,
    SECRET,
    Harness,
    Offer,
    offer_from_ephemeral,
    offer_in,
    on_each_database,
)

BERLIN = ZoneInfo("Europe/Berlin")
UPLOAD_DONE = "files.completeUploadExternal"
RESPONSE = "response_url"


async def ask(bot: Harness, text: str, **kw: object) -> None:
    status, _ = await bot.command(text, **kw)  # type: ignore[arg-type]
    assert status == 200
    await bot.settle()


def ics_of(slack: SlackEmulator) -> Calendar:
    [upload] = [f for f in slack.uploaded_files() if f.completed]
    assert upload.content is not None
    return Calendar.from_ical(upload.content)


@on_each_database
async def test_slash_command_offer_click_books_and_uploads_the_ics(bot: Harness) -> None:
    """/schedule in a channel: ephemeral offer with date tokens; a click books and uploads."""
    await ask(bot, f"design review with <@{BEN.id}> 45m tomorrow afternoon")
    offer = offer_from_ephemeral(bot)
    assert offer.channel == bot.channel
    assert "<!date^" in offer.text() and "design review" in offer.text()
    slots = offer.buttons("book_slot")
    assert slots, "the offer has Book buttons"
    # Tomorrow afternoon in Berlin (12–17) ∩ Ben's New York day (15–23 Berlin) → from 15:00 Berlin.
    first_start = datetime(2026, 12, 1, 15, 0, tzinfo=BERLIN)
    assert f"<!date^{int(first_start.timestamp())}^" in offer.text()

    assert await bot.click(offer, slots[0]) == 200
    await bot.wait_for(UPLOAD_DONE)
    await bot.settle()

    [upload] = bot.slack.uploaded_files()
    assert upload.channel == bot.channel and upload.filename.endswith(".ics")
    event = ics_of(bot.slack).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == "design review"
    assert event.decoded("DTSTART") == first_start
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=45)
    attendees = {str(a).lower() for a in event.get("ATTENDEE")}
    assert "mailto:ben@example.com" in attendees
    assert str(event["ORGANIZER"]).lower() == "mailto:ana@example.com"
    assert libical_report(upload.content or b"")["errors"] == []

    confirmation = bot.latest_ephemeral()
    assert "is booked" in str(confirmation.blocks)
    assert confirmation.ts == offer.message.ts, "the offer itself was replaced"

    key = booking_key_for(bot.slack.team_id, slots[0]["value"].rsplit(":", 1)[0])
    booking = await bot.slotbot.store.get_booking(bot.slack.team_id, key)
    assert booking is not None and booking.state == BookingState.CONFIRMED
    assert booking.slot.start == first_start
    assert str(event["UID"]) == booking.uid
    assert booking.schedule.to_json()["start_time"]["time"]["hour"] == 15
    assert booking.schedule.calendar_event_id


@on_each_database
async def test_the_booked_time_is_no_longer_offered(bot: Harness) -> None:
    """After a booking, the next request for the same people does not offer that time again."""
    await ask(bot, f"design review with <@{BEN.id}> 45m tomorrow afternoon")
    offer = offer_from_ephemeral(bot)
    await bot.click(offer, offer.buttons("book_slot")[0])
    await bot.wait_for(UPLOAD_DONE)
    await bot.settle()
    booked = datetime(2026, 12, 1, 15, 0, tzinfo=BERLIN)

    await ask(bot, f"follow-up with <@{BEN.id}> 45m tomorrow afternoon")
    again = offer_from_ephemeral(bot)
    assert again.buttons("book_slot")
    assert f"<!date^{int(booked.timestamp())}^" not in again.text()


@on_each_database
async def test_app_home_lists_upcoming_meetings(bot: Harness) -> None:
    """Opening the Home tab publishes the person's upcoming meetings, the booked one included."""
    await ask(bot, f"quarterly budget with <@{BEN.id}> 45m tomorrow afternoon")
    offer = offer_from_ephemeral(bot)
    await bot.click(offer, offer.buttons("book_slot")[0])
    await bot.wait_for(UPLOAD_DONE)
    await bot.settle()
    for user in (BEN, EVE):
        opened = slack_requests.app_home_opened_event(user=user.id, channel="D0HOME001")
        response = await bot.post(
            slack_requests.signed_event(slack_requests.event_callback(opened), secret=SECRET)
        )
        assert response.status == 200
    await bot.wait_for("views.publish", count=2)
    ben_home, eve_home = (str(bot.slack.home_view(u.id)) for u in (BEN, EVE))
    assert "quarterly budget" in ben_home
    booked = datetime(2026, 12, 1, 15, 0, tzinfo=BERLIN)
    assert f"<!date^{int(booked.timestamp())}^" in ben_home
    assert "quarterly budget" not in eve_home and "Nothing booked" in eve_home


async def test_mentioning_the_bot_after_someone_keeps_them_invited(bot: Harness) -> None:
    """`@ben @Slotbot sync …`: Ben is the attendee and the bot is never invited."""
    text = f"<@{BEN.id}> <@{bot.slack.bot_user_id}> sync tomorrow afternoon"
    posted = bot.slack.post_as_user(bot.channel, ANA.id, text)
    mention = slack_requests.app_mention_event(text, user=ANA.id, channel=bot.channel, ts=posted.ts)
    await bot.post(
        slack_requests.signed_event(slack_requests.event_callback(mention), secret=SECRET)
    )
    await bot.wait_for("chat.postEphemeral")
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    assert offer.buttons("book_slot"), offer.text()
    assert f"<@{BEN.id}>" in offer.text()


@on_each_database
async def test_another_users_click_is_refused_politely(bot: Harness) -> None:
    """Only the requester books from an offer; anyone else gets an ephemeral note, nothing more."""
    await ask(bot, f"sync with <@{BEN.id}> tomorrow afternoon")
    offer = offer_from_ephemeral(bot)
    assert await bot.click(offer, offer.buttons("book_slot")[0], user=EVE) == 200
    await bot.settle()
    assert not bot.slack.uploaded_files()
    note = bot.latest_ephemeral(EVE)
    assert f"Only <@{ANA.id}>" in note.text
    assert bot.latest_ephemeral(ANA).ts == offer.message.ts  # the offer is untouched
    assert "book_slot" in str(bot.latest_ephemeral(ANA).blocks)


@on_each_database
async def test_double_click_books_once(bot: Harness) -> None:
    """Two clicks on one offer (even on different slots, at once) make one event and one .ics."""
    await ask(bot, f"sync with <@{BEN.id}> tomorrow afternoon")
    offer = offer_from_ephemeral(bot)
    buttons = offer.buttons("book_slot")
    statuses = await asyncio.gather(bot.click(offer, buttons[0]), bot.click(offer, buttons[1]))
    assert statuses == [200, 200]
    await bot.wait_for(UPLOAD_DONE)
    await bot.settle()
    assert len([f for f in bot.slack.uploaded_files() if f.completed]) == 1
    events = await bot.slotbot.scheduler.calendar.free_busy(  # type: ignore[attr-defined]
        bot.slack.team_id,
        [await _participant(bot, ANA.id)],
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2026, 12, 2, tzinfo=UTC),
    )
    assert len(events.busy[ANA.id]) == 1


async def _participant(bot: Harness, user_id: str):  # type: ignore[no-untyped-def]
    from bot.models import Participant

    return Participant(user_id, "UTC")


@on_each_database
async def test_direct_message_offers_in_the_dm_and_books_there(bot: Harness) -> None:
    """A DM to the bot gets an offer as a normal message; the click updates it, the .ics lands."""
    im = bot.slack.open_im(ANA.id).id
    event = slack_requests.im_message_event(
        f"1:1 with <@{BEN.id}> tomorrow at 4pm", user=ANA.id, channel=im, ts="1764489600.000100"
    )
    response = await bot.post(
        slack_requests.signed_event(slack_requests.event_callback(event), secret=SECRET)
    )
    assert response.status == 200
    await bot.wait_for("chat.postMessage")
    await bot.settle()
    offer = offer_in(bot, im)
    assert offer.message.ephemeral_to is None
    slots = offer.buttons("book_slot")
    four_pm = datetime(2026, 12, 1, 16, 0, tzinfo=BERLIN)
    assert slots and f"<!date^{int(four_pm.timestamp())}^" in offer.text()

    assert await bot.click(offer, slots[0]) == 200
    await bot.wait_for(UPLOAD_DONE)
    await bot.settle()
    [upload] = bot.slack.uploaded_files()
    assert upload.channel == im
    assert ics_of(bot.slack).walk("VEVENT")[0].decoded("DTSTART") == four_pm
    updated = bot.slack.message(im, offer.message.ts)
    assert updated.edited and "is booked" in str(updated.blocks)


@on_each_database
async def test_mention_in_a_channel_answers_in_the_thread(bot: Harness) -> None:
    """@Slotbot in a channel: the offer is ephemeral in the thread; the .ics goes to that thread."""
    root = bot.slack.post_as_user(bot.channel, ANA.id, "we should talk")
    mention = slack_requests.app_mention_event(
        f"<@{bot.slack.bot_user_id}> sync with <@{BEN.id}> tomorrow afternoon",
        user=ANA.id,
        channel=bot.channel,
        ts="1764489700.000200",
        thread_ts=root.ts,
    )
    response = await bot.post(
        slack_requests.signed_event(slack_requests.event_callback(mention), secret=SECRET)
    )
    assert response.status == 200
    await bot.wait_for("chat.postEphemeral")
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    [post] = bot.slack.calls("chat.postEphemeral")
    assert post.params.get("thread_ts") == root.ts
    assert "sync" in offer.text()

    await bot.click(offer, offer.buttons("book_slot")[0])
    await bot.wait_for(UPLOAD_DONE)
    await bot.settle()
    [upload] = bot.slack.uploaded_files()
    assert upload.channel == bot.channel and upload.thread_ts == root.ts


@on_each_database
async def test_invite_goes_to_the_dm_when_the_bot_is_not_in_the_channel(bot: Harness) -> None:
    """Where the bot cannot post, the .ics arrives in the requester's DM instead."""
    closed = bot.slack.add_channel("private-ish", bot_is_member=False).id
    await ask(bot, f"sync with <@{BEN.id}> tomorrow afternoon", channel=closed)
    offer = offer_from_ephemeral(bot)
    await bot.click(offer, offer.buttons("book_slot")[0])
    await bot.wait_for(UPLOAD_DONE)
    await bot.settle()
    assert bot.slack.calls("conversations.open")
    [upload] = [f for f in bot.slack.uploaded_files() if f.completed]
    assert upload.channel == bot.slack.im_channel(ANA.id)


async def test_nothing_fits_explains_why(bot: Harness) -> None:
    """Berlin and Tokyo working days do not overlap: the offer says so, with no Book buttons."""
    await ask(bot, f"sync with <@{CARA.id}> tomorrow")
    offer = offer_from_ephemeral(bot)
    assert not offer.buttons("book_slot")
    assert "No time fits" in offer.text()
    assert "Tokyo" in offer.text()


@on_each_database
async def test_more_times_pages_and_cancel_withdraws(bot: Harness) -> None:
    """More times shows later slots in place of the first ones; Cancel closes the offer."""
    await ask(bot, f"sync with <@{BEN.id}> next week")
    offer = offer_from_ephemeral(bot)
    first = slot_times(offer)
    [more] = offer.buttons("more_times")
    await bot.click(offer, more)
    await bot.settle()
    paged = offer_from_ephemeral(bot)
    assert paged.message.ts == offer.message.ts
    assert slot_times(paged) and slot_times(paged).isdisjoint(first), "no slot is shown twice"

    [cancel] = paged.buttons("cancel_offer")
    await bot.click(paged, cancel)
    await bot.settle()
    assert "nothing was booked" in str(bot.latest_ephemeral().blocks)
    await bot.click(paged, paged.buttons("book_slot")[0])
    await bot.settle()
    assert not bot.slack.uploaded_files(), "a cancelled offer books nothing"
    assert "was cancelled" in bot.latest_ephemeral().text


def slot_times(offer: Offer) -> set[str]:
    """The time text of each slot row (the section a Book button sits in)."""
    return {
        block["text"]["text"]
        for block in offer.blocks
        if str((block.get("accessory") or {}).get("action_id", "")).startswith("book_slot")
    }


@pytest.mark.parametrize("text", ["", "help"])
async def test_help_explains_with_examples(bot: Harness, text: str) -> None:
    """An empty /schedule or /schedule help explains how to ask, with working examples."""
    await ask(bot, text)
    help_message = bot.latest_ephemeral()
    assert "/schedule" in str(help_message.blocks) and "with @ana" in str(help_message.blocks)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sync yesterday", "past"),
        ("review on 31 feb", "February"),
        ("sync with <@U0NOBODY9> tomorrow", "couldn't find"),
        ("x" * 4001, "too long"),
    ],
)
async def test_bad_requests_get_a_friendly_answer(bot: Harness, text: str, expected: str) -> None:
    """Unparseable, past, impossible, unknown-user and oversized requests: a clear note, 200."""
    await ask(bot, text)
    note = bot.latest_ephemeral()
    assert expected.lower() in note.text.lower()
    assert "Traceback" not in note.text
    assert not bot.slack.uploaded_files()


@on_each_database
async def test_an_expired_offer_says_so(bot: Harness) -> None:
    """A click on an offer past its expiry gets a note to ask again, and books nothing."""
    await ask(bot, f"sync with <@{BEN.id}> next week")
    offer = offer_from_ephemeral(bot)
    bot.clock.now += timedelta(days=2)
    await bot.click(offer, offer.buttons("book_slot")[0])
    await bot.settle()
    assert "expired" in bot.latest_ephemeral().text
    assert not bot.slack.uploaded_files()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": str(int(time.time()) - 600)},
        {"X-Slack-Request-Timestamp": str(int(time.time()) + 600)},
        {"X-Slack-Request-Timestamp": "not-a-number"},
        {"X-Slack-Request-Timestamp": ""},
        {"X-Slack-Signature": ""},
    ],
    ids=["forged", "stale", "future", "non-numeric", "missing-timestamp", "missing-signature"],
)
async def test_bad_signatures_are_401(bot: Harness, headers: dict[str, str]) -> None:
    """Forged, stale, future, malformed or missing signatures → 401, and nothing runs."""
    fields = slack_requests.slash_command(
        "sync tomorrow", user_id=ANA.id, channel_id=bot.channel, response_url="http://127.0.0.1:9/"
    )
    request = slack_requests.signed_slash_command(fields, secret=SECRET)
    merged = {**request.headers, **headers}
    async with bot.session.post(bot.url, data=request.body, headers=merged) as response:
        assert response.status == 401
    await bot.settle()
    assert not [c for c in bot.slack.calls() if c.method != "auth.test"]


async def test_malformed_payload_is_400(bot: Harness) -> None:
    """A correctly signed but unreadable interaction payload is refused with 400, not 500."""
    body = b"payload=%7Bnot-json"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **slack_requests.sign(body, SECRET, int(time.time())),
    }
    async with bot.session.post(bot.url, data=body, headers=headers) as response:
        assert response.status == 400


async def test_healthz_answers_once_ready(bot: Harness) -> None:
    """GET /healthz is 200 once the app is serving."""
    async with bot.session.get(bot.server.make_url("/healthz")) as response:
        assert response.status == 200
        assert (await response.json()) == {"ok": True}


async def test_stopping_lets_an_acknowledged_click_finish(bot: Harness) -> None:
    """The app is stopped while a click's .ics upload is in flight: stopping waits for the
    work Slack was already told about, so the booking still ends confirmed with its .ics."""
    await ask(bot, f"sync with <@{BEN.id}> tomorrow")
    offer = offer_from_ephemeral(bot)
    held = bot.slack.hold(UPLOAD_DONE, apply_first=False)
    assert await bot.click(offer, offer.buttons("book_slot")[0]) == 200
    await held.arrived.wait()
    stopping = asyncio.create_task(bot.slotbot.close())
    await asyncio.sleep(0.2)
    assert not stopping.done(), "stopping waits for the click's work"
    held.release()
    await asyncio.wait_for(stopping, timeout=15)
    [upload] = bot.slack.uploaded_files()
    assert upload.completed
    assert "is booked" in str(bot.latest_ephemeral().blocks)
