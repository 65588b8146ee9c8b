"""End to end through Slack's wire: a weekly meeting is booked as a series, then one of its
meetings is moved or cancelled, or the whole series is; calendars (local and Google), busy
time, the upcoming list and every .ics (checked by libical) follow.

Ana (Berlin) asks for a weekly sync with Ben (New York) on Tuesdays at 4pm: 16:00 Berlin,
10:00 New York, from Tuesday 1 December 2026."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.calendars import CalendarEvent, CalendarProvider
from bot.models import BookingState, Participant
from bot.scheduling.booking import booking_key_for
from handlers import ids
from tests.scenarios.google_harness import SHARED_CALENDAR, GoogleBot, start_google, stop_google
from tests.scenarios.harness import (
    ANA,
    BEN,
    NOW,
    Harness,
    Offer,
    offer_from_ephemeral,
    offer_in,
    on_each_database,
)
from tests.scenarios.test_home_settings import button, click_in_view, open_home
from tests.scenarios.test_lifecycle import booking_of, click_and_wait, reports

BERLIN = ZoneInfo("Europe/Berlin")
UPLOAD_DONE = "files.completeUploadExternal"
REQUEST = f"weekly sync with <@{BEN.id}> on tuesdays at 4pm"
RULE = "RRULE:FREQ=WEEKLY;BYDAY=TU"
#: The series' first four meetings, 16:00 Berlin (15:00 UTC) each Tuesday.
TUESDAYS = [datetime(2026, 12, day, 15, 0, tzinfo=UTC) for day in (1, 8, 15, 22)]
HALF_HOUR = timedelta(minutes=30)
BEN_PERSON = Participant(BEN.id, BEN.tz, email=BEN.email)
ANA_PERSON = Participant(ANA.id, ANA.tz, email=ANA.email)


@dataclass
class Series:
    key: str
    offer: Offer
    confirmation: Offer


async def book_series(bot: Harness) -> Series:
    """Ana asks for the weekly sync and books the first time offered."""
    status, _ = await bot.command(REQUEST)
    assert status == 200
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    button = offer.buttons("book_slot")[0]
    await click_and_wait(bot, offer, button)
    await bot.wait_for(UPLOAD_DONE)
    key = booking_key_for(bot.slack.team_id, button["value"].rsplit(":", 1)[0])
    return Series(key, offer, offer_from_ephemeral(bot))


async def click(bot: Harness, message: Offer, action_id: str) -> None:
    """Click the button ``action_id`` exactly and wait for the answer."""
    [button] = [b for b in message.buttons() if b["action_id"] == action_id]
    await click_and_wait(bot, message, button)


async def busy_starts(
    calendar: CalendarProvider, team_id: str, person: Participant
) -> list[datetime]:
    """When ``person`` is busy from now over the series' first five weeks (starts of busy
    runs)."""
    busy = await calendar.free_busy(
        team_id, [person], NOW, TUESDAYS[-1] + timedelta(days=7, hours=1)
    )
    return [slot.start.astimezone(UTC) for slot in busy.busy[person.user_id]]


def stamp(report_value: str | None) -> datetime | None:
    return datetime.fromisoformat(report_value.replace("Z", "+00:00")) if report_value else None


async def move_one(bot: Harness, series: Series, index: int) -> Offer:
    """Reschedule → the ``index``-th upcoming meeting → the offer of new times for it."""
    await click(bot, series.confirmation, "reschedule")
    choice = offer_from_ephemeral(bot)
    assert "Move the whole series" in choice.text()
    await click(bot, choice, f"reschedule_occurrence_{index}")
    return offer_from_ephemeral(bot)


async def cancel_one(bot: Harness, series: Series, index: int) -> None:
    """Cancel meeting → the ``index``-th upcoming meeting → confirm."""
    await click(bot, series.confirmation, "cancel_booking")
    choice = offer_from_ephemeral(bot)
    await click(bot, choice, f"cancel_booking_occurrence_{index}")
    prompt = offer_from_ephemeral(bot)
    assert "Cancel only the meeting" in prompt.text()
    await click(bot, prompt, "confirm_cancel")


# --- the local calendar ----------------------------------------------------------------------


@on_each_database
async def test_a_weekly_request_books_a_series_with_a_valid_rrule(bot: Harness) -> None:
    """`weekly … on tuesdays at 4pm`: the offer says it repeats, the booking's schedule object
    carries the RRULE, the .ics has it (libical), and Ben is busy every Tuesday, not once."""
    series = await book_series(bot)
    assert "every Tuesday from" in series.offer.text()
    booking = await booking_of(bot, series.key)
    assert booking.schedule.recurrence == [RULE]
    assert booking.schedule.to_json()["recurrence"] == [RULE]
    assert booking.slot.start == TUESDAYS[0] and booking.state == BookingState.CONFIRMED

    [report] = reports(bot)
    [event] = report["events"]
    assert report["method"] == "REQUEST" and event["rrule"] == "FREQ=WEEKLY;BYDAY=TU"
    assert stamp(event["dtstart"]) == TUESDAYS[0] and event["recurrence_id"] is None
    assert "Repeats every Tuesday" in str(series.confirmation.blocks)

    calendar = bot.slotbot.scheduler.calendar
    assert await busy_starts(calendar, bot.slack.team_id, BEN_PERSON) == [
        *TUESDAYS,
        TUESDAYS[-1] + timedelta(days=7),
    ]


async def test_a_time_taken_on_a_later_tuesday_is_not_offered(bot: Harness) -> None:
    """Ben is busy at 16:00 Berlin on the third Tuesday only: 16:00 is not offered (the
    nearest free times are), though it is free on the first."""
    store = bot.slotbot.store
    await store.insert_local_event(
        bot.slack.team_id,
        CalendarEvent(
            event_id="dentist0001",
            calendar_id=BEN.id,
            summary="Dentist",
            start=TUESDAYS[2],
            end=TUESDAYS[2] + HALF_HOUR,
        ),
        "dentist0001@test",
    )
    status, _ = await bot.command(REQUEST)
    assert status == 200
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    offer_id = offer.buttons("book_slot")[0]["value"].rsplit(":", 1)[0]
    stored = await store.get_offer(bot.slack.team_id, offer_id, None)
    assert stored is not None
    starts = [slot.start for slot in stored.slots]
    assert TUESDAYS[0] not in starts and TUESDAYS[0] + HALF_HOUR in starts
    assert "every Tuesday from" in offer.text()


@on_each_database
async def test_moving_one_meeting_sends_its_recurrence_id_and_moves_only_it(bot: Harness) -> None:
    """Reschedule → the second Tuesday → a new time: only that meeting moves (local override,
    busy time), the .ics is the series plus that meeting with RECURRENCE-ID and SEQUENCE 1,
    and the confirmation strikes the old time through."""
    series = await book_series(bot)
    offer = await move_one(bot, series, 1)
    assert "Moving only the meeting" in offer.text()
    assert "every Tuesday" not in offer.text(), "one meeting does not repeat"
    button = offer.buttons("book_slot")[0]
    await click_and_wait(bot, offer, button)

    booking = await booking_of(bot, series.key)
    assert booking.sequence == 1 and booking.slot.start == TUESDAYS[0]
    [change] = booking.exceptions
    assert change.original_start == TUESDAYS[1] and change.slot is not None
    moved_to = change.slot.start
    assert moved_to != TUESDAYS[1]

    first, second = reports(bot)
    assert second["method"] == "REQUEST"
    [whole, one] = second["events"]
    assert whole["uid"] == one["uid"] == first["uid"]
    assert whole["rrule"] == "FREQ=WEEKLY;BYDAY=TU" and whole["sequence"] == 1
    assert stamp(one["recurrence_id"]) == TUESDAYS[1] and one["sequence"] == 1
    assert stamp(one["dtstart"]) == moved_to

    calendar = bot.slotbot.scheduler.calendar
    busy = await busy_starts(calendar, bot.slack.team_id, BEN_PERSON)
    assert TUESDAYS[1] not in busy and moved_to in busy
    assert {TUESDAYS[0], TUESDAYS[2], TUESDAYS[3]} <= set(busy)

    shown = str(bot.latest_ephemeral().blocks)
    assert "One meeting of" in shown and f"~<!date^{int(TUESDAYS[1].timestamp())}^" in shown
    upload = bot.slack.uploaded_files()[-1]
    assert upload.channel == bot.channel and "Updated invite" in (upload.initial_comment or "")


@on_each_database
async def test_cancelling_one_meeting_sends_a_cancel_of_that_meeting_only(bot: Harness) -> None:
    """Cancel meeting → the third Tuesday → confirm: a CANCEL .ics with that RECURRENCE-ID and
    SEQUENCE 1, Ben is free that Tuesday only, and the upcoming list skips it."""
    series = await book_series(bot)
    bot.clock.now = TUESDAYS[1] + timedelta(hours=1)  # the first two meetings are over
    await cancel_one(bot, series, 0)  # the next upcoming: the third Tuesday

    booking = await booking_of(bot, series.key)
    assert booking.state == BookingState.CONFIRMED and booking.sequence == 1
    [change] = booking.exceptions
    assert change.original_start == TUESDAYS[2] and change.cancelled

    _, cancel = reports(bot)
    [event] = cancel["events"]
    assert cancel["method"] == "CANCEL" and event["sequence"] == 1
    assert stamp(event["recurrence_id"]) == TUESDAYS[2] and event["rrule"] is None
    assert "Cancellation" in (bot.slack.uploaded_files()[-1].initial_comment or "")

    calendar = bot.slotbot.scheduler.calendar
    busy = await busy_starts(calendar, bot.slack.team_id, BEN_PERSON)
    assert TUESDAYS[2] not in busy and TUESDAYS[3] in busy
    [listed] = await bot.slotbot.scheduler.upcoming(bot.slack.team_id, BEN.id)
    assert listed.key == series.key and listed.slot.start == TUESDAYS[3]


async def test_cancelling_the_whole_series_cancels_every_meeting(bot: Harness) -> None:
    """Cancel meeting → the whole series → confirm: a CANCEL without RECURRENCE-ID, with the
    RRULE and SEQUENCE 1; no Tuesday is busy any more and nothing is listed."""
    series = await book_series(bot)
    await click(bot, series.confirmation, "cancel_booking")
    choice = offer_from_ephemeral(bot)
    await click(bot, choice, "cancel_booking_series")
    prompt = offer_from_ephemeral(bot)
    assert "Cancel every meeting" in prompt.text()
    await click(bot, prompt, "confirm_cancel")

    booking = await booking_of(bot, series.key)
    assert booking.state == BookingState.CANCELLED and booking.sequence == 1
    _, cancel = reports(bot)
    [event] = cancel["events"]
    assert cancel["method"] == "CANCEL" and event["recurrence_id"] is None
    assert event["rrule"] == "FREQ=WEEKLY;BYDAY=TU" and event["sequence"] == 1
    calendar = bot.slotbot.scheduler.calendar
    assert await busy_starts(calendar, bot.slack.team_id, BEN_PERSON) == []
    assert await bot.slotbot.scheduler.upcoming(bot.slack.team_id, BEN.id) == []


async def test_move_then_cancel_of_meetings_is_one_rising_itip_sequence(bot: Harness) -> None:
    """Move the second meeting, then cancel the third: same UID throughout, SEQUENCE 0, 1, 2,
    and the last REQUEST-state of the series (series + moved meeting) stays valid."""
    series = await book_series(bot)
    offer = await move_one(bot, series, 1)
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    await cancel_one(bot, series, 2)
    found = reports(bot)
    assert [r["method"] for r in found] == ["REQUEST", "REQUEST", "CANCEL"]
    assert len({e["uid"] for r in found for e in r["events"]}) == 1
    assert [max(e["sequence"] for e in r["events"]) for r in found] == [0, 1, 2]
    booking = await booking_of(bot, series.key)
    assert booking.sequence == 2 and len(booking.exceptions) == 2


@pytest.mark.parametrize("action", ["reschedule_occurrence_0", "cancel_booking_occurrence_0"])
async def test_only_the_organizer_may_change_one_meeting(bot: Harness, action: str) -> None:
    """Ben clicking Ana's choice buttons changes nothing and is told who can."""
    series = await book_series(bot)
    opener = "reschedule" if action.startswith("reschedule") else "cancel_booking"
    await click(bot, series.confirmation, opener)
    choice = offer_from_ephemeral(bot)
    [button] = [b for b in choice.buttons() if b["action_id"] == action]
    assert await bot.click(choice, button, user=BEN) == 200
    await bot.settle()
    booking = await booking_of(bot, series.key)
    assert booking.sequence == 0 and booking.exceptions == ()
    assert "who booked this meeting" in bot.latest_ephemeral(BEN).text


# --- the upcoming list and the Home tab --------------------------------------------------------


def token_of(moment: datetime) -> str:
    return f"<!date^{int(moment.timestamp())}^"


async def test_the_list_shows_a_series_as_its_next_meeting_and_asks_which_to_move(
    bot: Harness,
) -> None:
    """After the first meeting, `/schedule list` shows the series once, at its second meeting,
    "(repeats every Tuesday)"; Reschedule there asks which meeting, as the confirmation does,
    and "this one" offers times for that meeting only."""
    series = await book_series(bot)
    bot.clock.now = TUESDAYS[0] + timedelta(hours=1)
    status, _ = await bot.command("list")
    assert status == 200
    await bot.settle()
    listing = offer_from_ephemeral(bot)
    assert "*sync* (repeats every Tuesday)" in listing.text()
    assert token_of(TUESDAYS[1]) in listing.text() and token_of(TUESDAYS[0]) not in listing.text()
    [reschedule] = listing.buttons(ids.RESCHEDULE)
    assert reschedule["value"] == series.key

    await click(bot, listing, ids.RESCHEDULE)
    choice = offer_from_ephemeral(bot)
    assert choice.message.ts == listing.message.ts, "the choice took the list's place"
    assert "Move the whole series" in choice.text()
    assert token_of(TUESDAYS[1]) in choice.text()
    await click(bot, choice, f"{ids.RESCHEDULE_OCCURRENCE}_0")
    assert "Moving only the meeting" in offer_from_ephemeral(bot).text()

    await click(bot, listing, ids.CANCEL_BOOKING)
    assert "Cancel the whole series" in offer_from_ephemeral(bot).text()


async def test_the_home_tab_asks_in_the_dm_which_meeting_to_move_or_cancel(
    bot: Harness,
) -> None:
    """Home → Reschedule on a series: the "which meeting?" choice arrives in the DM, and
    "this one" there turns it into an offer for that meeting; Home → Cancel meeting: the
    same choice, and "this one" asks to cancel only that meeting."""
    series = await book_series(bot)
    home = await open_home(bot)
    shown = json.dumps(home["blocks"])
    assert "*sync* (repeats every Tuesday)" in shown and token_of(TUESDAYS[0]) in shown

    await click_in_view(bot, home, button(home["blocks"], ids.HOME_RESCHEDULE))
    await bot.wait_for("chat.postMessage")
    await bot.settle()
    im = bot.slack.im_channel(ANA.id)
    assert im is not None
    choice = offer_in(bot, im)
    assert "Move the whole series" in choice.text()
    [first] = choice.buttons(f"{ids.RESCHEDULE_OCCURRENCE}_0")
    assert first["value"] == ids.occurrence_value(series.key, TUESDAYS[0])
    assert await bot.click(choice, first) == 200
    await bot.wait_for("chat.update")
    await bot.settle()
    offer = bot.slack.message(im, choice.message.ts)
    assert "Moving only the meeting" in json.dumps(offer.blocks), "the offer took its place"

    posted = len(bot.slack.calls("chat.postMessage"))
    await click_in_view(bot, home, button(home["blocks"], ids.HOME_CANCEL_BOOKING))
    await bot.wait_for("chat.postMessage", count=posted + 1)
    await bot.settle()
    choice = offer_in(bot, im)
    assert "Cancel the whole series" in choice.text()
    [second] = choice.buttons(f"{ids.CANCEL_OCCURRENCE}_1")
    updated = len(bot.slack.calls("chat.update"))
    assert await bot.click(choice, second) == 200
    await bot.wait_for("chat.update", count=updated + 1)
    await bot.settle()
    prompt = json.dumps(bot.slack.message(im, choice.message.ts).blocks)
    assert "Cancel only the meeting" in prompt and token_of(TUESDAYS[1]) in prompt
    booking = await booking_of(bot, series.key)
    assert booking.sequence == 0 and booking.exceptions == (), "nothing changed yet"


# --- Google Calendar ---------------------------------------------------------------------------


@pytest.fixture(params=["delegation", "shared"])
async def google(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GoogleBot]:
    harness = await start_google(tmp_path, request.param)
    yield harness
    await stop_google(harness)


def google_calendar(harness: GoogleBot) -> str:
    return SHARED_CALENDAR if harness.mode == "shared" else "ana@example.com"


async def test_google_series_instance_move_and_cancel(google: GoogleBot) -> None:
    """On Google: the series is one event with `recurrence`; moving one meeting patches the
    instance `<id>_20261208T150000Z` (an exception with originalStartTime), cancelling one
    deletes instance `<id>_20261215T150000Z`; free/busy follows; every .ics validates."""
    bot = google.bot
    series = await book_series(bot)
    [event] = google.events(google_calendar(google))
    assert event["recurrence"] == [RULE]

    offer = await move_one(bot, series, 1)
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    [patch] = google.google.calls_to("calendar.events.patch")
    assert patch.path.endswith(f"/events/{event['id']}_20261208T150000Z")
    booking = await booking_of(bot, series.key)
    [change] = booking.exceptions
    assert change.slot is not None
    exception = next(e for e in google.events(google_calendar(google)) if e["id"] != event["id"])
    assert exception["recurringEventId"] == event["id"]
    assert exception["originalStartTime"]["dateTime"] == "2026-12-08T15:00:00Z"
    assert datetime.fromisoformat(exception["start"]["dateTime"]) == change.slot.start
    assert exception["iCalUID"] == event["iCalUID"] == booking.uid

    await cancel_one(bot, series, 2)
    [delete] = google.google.calls_to("calendar.events.delete")
    assert delete.path.endswith(f"/events/{event['id']}_20261215T150000Z")
    assert google.events(google_calendar(google))[0]["status"] == "confirmed", "series stays"

    found = reports(bot)
    assert [r["method"] for r in found] == ["REQUEST", "REQUEST", "CANCEL"]
    assert len({e["uid"] for r in found for e in r["events"]} | {event["iCalUID"]}) == 1
    if google.mode == "delegation":
        calendar = bot.slotbot.scheduler.calendar
        busy = await busy_starts(calendar, bot.slack.team_id, ANA_PERSON)
        assert TUESDAYS[0] in busy and TUESDAYS[3] in busy
        assert TUESDAYS[1] not in busy and TUESDAYS[2] not in busy
        assert change.slot.start in busy


async def test_google_whole_series_cancel_deletes_the_series(google: GoogleBot) -> None:
    """Cancel meeting → the whole series on Google: events.delete of the series' own id."""
    bot = google.bot
    series = await book_series(bot)
    [event] = google.events(google_calendar(google))
    await click(bot, series.confirmation, "cancel_booking")
    await click(bot, offer_from_ephemeral(bot), "cancel_booking_series")
    await click(bot, offer_from_ephemeral(bot), "confirm_cancel")
    [delete] = google.google.calls_to("calendar.events.delete")
    assert delete.path.endswith(f"/events/{event['id']}")
    assert google.events(google_calendar(google)) == []
    _, cancel = reports(bot)
    assert cancel["method"] == "CANCEL" and cancel["events"][0]["recurrence_id"] is None


async def test_a_typed_command_sees_a_series_at_its_next_meeting(bot: Harness) -> None:
    """After the first meeting, "cancel my meeting on friday" (nothing then) lists the series
    at its second meeting, as the other lists do, not at its first (past) one."""
    await book_series(bot)
    bot.clock.now = TUESDAYS[0] + timedelta(hours=1)
    status, _ = await bot.command("cancel my meeting on friday")
    assert status == 200
    await bot.settle()
    answer = offer_from_ephemeral(bot).text()
    assert token_of(TUESDAYS[1]) in answer and token_of(TUESDAYS[0]) not in answer
