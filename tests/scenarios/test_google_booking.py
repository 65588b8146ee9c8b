"""Booking through Slack onto Google Calendar: signed requests into ``slotbot serve``'s app, the
real google-api-python-client out to the Google emulator, in the delegation and shared-calendar
modes; injected Google faults end in exactly one event and a message a person can act on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.calendars.google import SCOPES
from bot.models import Booking, BookingState
from bot.scheduling.booking import booking_key_for
from tests.ical_check import libical_report
from tests.scenarios.google_harness import (
    SHARED_CALENDAR,
    UPLOAD_DONE,
    GoogleBot,
    start_google,
    stop_google,
)
from tests.scenarios.harness import ANA, BEN, Offer, offer_from_ephemeral

BERLIN = ZoneInfo("Europe/Berlin")
# Tomorrow afternoon for Ana in Berlin, with Ben in New York: the day starts at 15:00 Berlin.
FIFTEEN = datetime(2026, 12, 1, 15, 0, tzinfo=BERLIN)
SIXTEEN = datetime(2026, 12, 1, 16, 0, tzinfo=BERLIN)
REQUEST = f"design review with <@{BEN.id}> 45m tomorrow afternoon"
INSERT = "calendar.events.insert"


@pytest.fixture
async def delegation(tmp_path: Path) -> AsyncIterator[GoogleBot]:
    harness = await start_google(tmp_path, "delegation", GOOGLE_MEET="1")
    yield harness
    await stop_google(harness)


@pytest.fixture
async def shared(tmp_path: Path) -> AsyncIterator[GoogleBot]:
    harness = await start_google(tmp_path, "shared")
    yield harness
    await stop_google(harness)


async def ask(harness: GoogleBot, text: str = REQUEST) -> Offer:
    status, _ = await harness.bot.command(text)
    assert status == 200
    await harness.bot.settle()
    return offer_from_ephemeral(harness.bot)


async def book_first(harness: GoogleBot, offer: Offer) -> None:
    assert await harness.bot.click(offer, offer.buttons("book_slot")[0]) == 200
    await harness.bot.settle()


async def booking_of(harness: GoogleBot, offer: Offer) -> Booking:
    offer_id = offer.buttons("book_slot")[0]["value"].rsplit(":", 1)[0]
    key = booking_key_for(harness.bot.slack.team_id, offer_id)
    booking = await harness.bot.slotbot.store.get_booking(harness.bot.slack.team_id, key)
    assert booking is not None
    return booking


def starts_at(offer: Offer, moment: datetime) -> bool:
    return f"<!date^{int(moment.timestamp())}^" in offer.text()


# --- domain-wide delegation ------------------------------------------------------------------


async def test_delegation_books_on_the_organizers_calendar_with_everyone_invited(
    delegation: GoogleBot,
) -> None:
    """Google busy time is avoided; the click puts the event, Meet link and attendees on Ana's
    calendar in her zone, and the uploaded .ics carries the same UID and times."""
    delegation.google.add_busy("ben@example.com", FIFTEEN, SIXTEEN, "Ben's standup")
    offer = await ask(delegation)
    assert not starts_at(offer, FIFTEEN) and starts_at(offer, SIXTEEN)

    await book_first(delegation, offer)
    await delegation.bot.wait_for(UPLOAD_DONE)
    await delegation.bot.settle()  # the confirmation follows the upload

    [event] = delegation.events("ana@example.com")
    assert event["summary"] == "design review"
    assert event["start"] == {"dateTime": "2026-12-01T16:00:00+01:00", "timeZone": "Europe/Berlin"}
    assert event["end"] == {"dateTime": "2026-12-01T16:45:00+01:00", "timeZone": "Europe/Berlin"}
    assert [a["email"] for a in event["attendees"]] == ["ana@example.com", "ben@example.com"]
    assert event["hangoutLink"].startswith("https://meet.google.com/")
    assert f"channel={delegation.bot.channel}" in event["description"]
    [insert] = delegation.google.calls_to(INSERT)
    assert insert.principal == "ana@example.com"
    assert insert.query["sendUpdates"] == "none" and insert.query["conferenceDataVersion"] == "1"
    assert {(g.subject, g.scopes) for g in delegation.google.grants} == {
        ("ana@example.com", frozenset(SCOPES))
    }

    ics = delegation.ics().walk("VEVENT")[0]
    assert str(ics["UID"]) == event["iCalUID"]
    assert ics.decoded("DTSTART") == SIXTEEN
    assert ics.decoded("DTEND") == SIXTEEN + timedelta(minutes=45)
    assert "mailto:ben@example.com" in {str(a).lower() for a in ics.get("ATTENDEE")}
    [upload] = delegation.bot.slack.uploaded_files()
    assert libical_report(upload.content or b"")["errors"] == []

    confirmation = str(delegation.bot.latest_ephemeral(ANA).blocks)
    assert "is booked" in confirmation and event["htmlLink"] in confirmation
    assert "The invite is attached" in confirmation
    booking = await booking_of(delegation, offer)
    assert booking.state == BookingState.CONFIRMED
    assert booking.schedule.calendar_id == "ana@example.com"
    assert booking.schedule.calendar_event_id == event["id"]
    assert booking.uid == event["iCalUID"] and booking.event_link == event["htmlLink"]


async def test_503s_on_insert_are_retried_into_one_event(delegation: GoogleBot) -> None:
    """Two 503s from events.insert are retried after a backoff: one event, one confirmation."""
    offer = await ask(delegation)
    delegation.google.fail_next(2, 503, method=INSERT)
    await book_first(delegation, offer)
    await delegation.bot.wait_for(UPLOAD_DONE)
    await delegation.bot.settle()  # the confirmation follows the upload

    assert [c.status for c in delegation.google.calls_to(INSERT)] == [503, 503, 200]
    assert len(delegation.sleeps.delays) == 2
    [event] = delegation.events("ana@example.com")
    assert event["start"]["dateTime"] == "2026-12-01T15:00:00+01:00"
    assert len(delegation.bot.slack.uploaded_files()) == 1
    assert (await booking_of(delegation, offer)).state == BookingState.CONFIRMED


async def test_a_persistent_500_says_so_and_the_next_click_completes_the_booking(
    delegation: GoogleBot,
) -> None:
    """events.insert failing every attempt: the person is told, nothing is uploaded, the
    booking waits; their next click resumes it, ending in exactly one event."""
    offer = await ask(delegation)
    delegation.google.fail_next(4, 500, method=INSERT)
    await book_first(delegation, offer)

    note = delegation.bot.latest_ephemeral(ANA).text
    assert "Google Calendar is not answering right now" in note
    assert "try again" in note
    assert delegation.events("ana@example.com") == []
    assert delegation.bot.slack.uploaded_files() == []
    assert (await booking_of(delegation, offer)).state == BookingState.PENDING

    await book_first(delegation, offer)
    await delegation.bot.wait_for(UPLOAD_DONE)
    await delegation.bot.settle()  # the confirmation follows the upload
    [event] = delegation.events("ana@example.com")
    assert len(delegation.bot.slack.uploaded_files()) == 1
    assert str(delegation.ics().walk("VEVENT")[0]["UID"]) == event["iCalUID"]
    booking = await booking_of(delegation, offer)
    assert booking.state == BookingState.CONFIRMED and booking.uid == event["iCalUID"]
    [replaced] = [
        m for m in delegation.bot.slack.ephemeral_messages(user=ANA.id) if m.ts == offer.message.ts
    ]
    assert "is booked" in str(replaced.blocks), "the offer itself became the confirmation"

    await book_first(delegation, offer)  # a third click books nothing more
    assert len(delegation.events("ana@example.com")) == 1
    assert len(delegation.bot.slack.uploaded_files()) == 1


async def test_an_insert_that_reached_google_is_not_duplicated_on_retry(
    delegation: GoogleBot,
) -> None:
    """A retried insert that finds our own event id (409) takes that event: still one event."""
    offer = await ask(delegation)
    delegation.google.fail_next(4, 500, method=INSERT)
    await book_first(delegation, offer)
    # Google created it after all (a lost answer): the same id is already on the calendar.
    booking = await booking_of(delegation, offer)
    start = booking.slot.start
    body = {
        "id": booking.schedule.calendar_event_id,
        "summary": "design review",
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": booking.slot.end.isoformat()},
    }
    calendar = delegation.google._calendars["ana@example.com"]
    calendar.events[body["id"]] = delegation.google._new_event("ana@example.com", "ana", body)

    await book_first(delegation, offer)
    await delegation.bot.wait_for(UPLOAD_DONE)
    await delegation.bot.settle()  # the confirmation follows the upload
    assert delegation.google.calls_to(INSERT)[-1].status == 409
    [event] = delegation.events("ana@example.com")
    assert str(delegation.ics().walk("VEVENT")[0]["UID"]) == event["iCalUID"]
    assert (await booking_of(delegation, offer)).state == BookingState.CONFIRMED


async def test_free_busy_failing_every_attempt_is_explained(delegation: GoogleBot) -> None:
    """Google down while reading free/busy: the request gets a clear answer and no offer."""
    delegation.google.fail_next(4, 500)
    status, _ = await delegation.bot.command(REQUEST)
    assert status == 200
    await delegation.bot.settle()
    note = delegation.bot.latest_ephemeral(ANA)
    assert "could not read free/busy" in note.text
    assert "book_slot" not in str(note.blocks)


# --- shared calendar -------------------------------------------------------------------------


async def test_shared_calendar_holds_the_event_and_the_ics_is_the_invite(
    shared: GoogleBot,
) -> None:
    """Without delegation the event is on the shared calendar with no attendees; the .ics
    names them, has the event's UID, and the confirmation says it is the invitation."""
    shared.google.add_busy("ben@example.com", FIFTEEN, SIXTEEN)
    offer = await ask(shared)
    assert starts_at(offer, SIXTEEN) and not starts_at(offer, FIFTEEN)
    await book_first(shared, offer)
    await shared.bot.wait_for(UPLOAD_DONE)
    await shared.bot.settle()  # the confirmation follows the upload

    [event] = shared.events(SHARED_CALENDAR)
    assert shared.events("ana@example.com") == []
    assert event["summary"] == "design review" and "attendees" not in event
    assert event["start"] == {"dateTime": "2026-12-01T16:00:00+01:00", "timeZone": "Europe/Berlin"}
    assert shared.account is not None
    assert shared.google.calls_to(INSERT)[0].principal == shared.account.email

    ics = shared.ics().walk("VEVENT")[0]
    assert str(ics["UID"]) == event["iCalUID"]
    assert ics.decoded("DTSTART") == SIXTEEN
    assert "mailto:ben@example.com" in {str(a).lower() for a in ics.get("ATTENDEE")}
    confirmation = str(shared.bot.latest_ephemeral(ANA).blocks)
    assert "is the invitation" in confirmation
    booking = await booking_of(shared, offer)
    assert booking.schedule.calendar_id == SHARED_CALENDAR
    assert booking.schedule.calendar_event_id == event["id"]


async def test_shared_calendar_losing_write_access_is_explained_then_resumed(
    shared: GoogleBot,
) -> None:
    """A 403 on the shared calendar tells what to share with whom; once fixed, a click books."""
    offer = await ask(shared)
    assert shared.account is not None
    calendar = shared.google._calendars[SHARED_CALENDAR]
    calendar.writers.discard(shared.account.email)
    await book_first(shared, offer)
    note = shared.bot.latest_ephemeral(ANA).text
    assert SHARED_CALENDAR in note and shared.account.email in note
    assert "Make changes to events" in note
    assert (await booking_of(shared, offer)).state == BookingState.PENDING

    calendar.writers.add(shared.account.email)
    await book_first(shared, offer)
    await shared.bot.wait_for(UPLOAD_DONE)
    await shared.bot.settle()  # the confirmation follows the upload
    assert len(shared.events(SHARED_CALENDAR)) == 1
    assert (await booking_of(shared, offer)).state == BookingState.CONFIRMED


async def test_unshared_calendars_are_named_with_what_to_do(tmp_path: Path) -> None:
    """A calendar the service account cannot read: the offer names the person and says how to
    share it; their busy time is unknown, so times follow their working hours."""
    harness = await start_google(tmp_path, "shared", unshared=(BEN,))
    try:
        harness.google.add_busy("ben@example.com", FIFTEEN, SIXTEEN)
        offer = await ask(harness)
        assert harness.account is not None
        assert "could not read the calendar of" in offer.text()
        assert harness.account.email in offer.text() and "free/busy" in offer.text()
        assert starts_at(offer, FIFTEEN), "Ben's busy time could not be seen"
    finally:
        await stop_google(harness)


async def test_connect_is_not_needed_with_a_service_account(delegation: GoogleBot) -> None:
    """`/schedule connect` with a workspace-wide setup says there is nothing to connect."""
    status, _ = await delegation.bot.command("connect")
    assert status == 200
    await delegation.bot.settle()
    assert "nothing for you to connect" in delegation.bot.latest_ephemeral(ANA).text
