"""GoogleCalendar against the loopback Google emulator, in all three ways of connecting."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from bot.calendars import Attendee, CalendarEvent, event_id_for
from bot.calendars.google import SCOPES, GoogleCalendar, GoogleSettings
from bot.errors import CalendarError
from bot.models import Participant
from tests.emulators.google import GoogleEmulator, OAuthClient, ServiceAccount

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
ANA = Participant("U_ANA", "Europe/Berlin", "ana@example.com", "Ana")
BO = Participant("U_BO", "America/New_York", "bo@example.com", "Bo")
CY = Participant("U_CY", "UTC", "cy@example.com", "Cy")
SHARED = "team-meetings@group.calendar.google.com"


@pytest.fixture
async def google() -> AsyncIterator[GoogleEmulator]:
    async with GoogleEmulator() as emulator:
        for person in (ANA, BO, CY):
            assert person.email
            emulator.add_calendar(person.email)
        # Within the Workspace everyone sees everyone's free/busy.
        for owner in (ANA, BO, CY):
            for reader in (ANA, BO, CY):
                assert owner.email and reader.email
                emulator.share(owner.email, reader.email, "reader")
        yield emulator


@pytest.fixture
def account(google: GoogleEmulator) -> ServiceAccount:
    return google.add_service_account()


@pytest.fixture
def key_file(google: GoogleEmulator, account: ServiceAccount, tmp_path: Path) -> Path:
    return google.write_key_file(account, tmp_path / "service-account.json")


class Sleeps:
    """An injected sleep that records the backoff instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def delegated(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path, **options: Any
) -> GoogleCalendar:
    google.allow_delegation(account, SCOPES)
    sleep = options.pop("sleep", Sleeps())
    settings = GoogleSettings(
        api_url=google.url, service_account_file=key_file, delegation=True, **options
    )
    return GoogleCalendar(settings, sleep=sleep)


def shared(google: GoogleEmulator, key_file: Path, **options: Any) -> GoogleCalendar:
    settings = GoogleSettings(
        api_url=google.url, service_account_file=key_file, calendar_id=SHARED, **options
    )
    return GoogleCalendar(settings, sleep=Sleeps())


def meeting(key: str = "booking-1", **changes: Any) -> CalendarEvent:
    event = CalendarEvent(
        event_id=event_id_for(key),
        calendar_id=ANA.user_id,
        summary="Design review",
        start=T0 + timedelta(hours=5),
        end=T0 + timedelta(hours=6),
        time_zone="Europe/Berlin",
        description="Booked with Slotbot from Slack.",
        attendees=(Attendee.of(BO), Attendee.of(CY)),
        organizer=Attendee.of(ANA),
    )
    return replace(event, **changes)


def oauth_provider(
    google: GoogleEmulator, client: OAuthClient, tokens: dict[str, str]
) -> GoogleCalendar:
    def credentials(team_id: str, user_id: str) -> Credentials | None:
        token = tokens.get(user_id)
        if token is None:
            return None
        return Credentials(
            None,
            refresh_token=token,
            token_uri=google.token_uri,
            client_id=client.client_id,
            client_secret=client.client_secret,
            scopes=list(SCOPES),
        )

    emails = {ANA.email: ANA.user_id, BO.email: BO.user_id}
    return GoogleCalendar(
        GoogleSettings(api_url=google.url),
        user_credentials=credentials,
        calendar_owner=lambda team_id, calendar_id: emails.get(calendar_id),
        sleep=Sleeps(),
    )


# --- domain-wide delegation ------------------------------------------------------------------


async def test_delegated_event_lands_on_organizer_primary_with_everyone_invited(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """With delegation the event is on the organizer's calendar, in their zone, all invited."""
    calendar = delegated(google, account, key_file)
    created = await calendar.create_event("T1", meeting())
    (event,) = google.events("ana@example.com")
    assert created.calendar_id == "ana@example.com"
    assert created.ical_uid == event["iCalUID"] == f"{created.event_id}@google.com"
    assert created.html_link == event["htmlLink"]
    assert event["id"] == event_id_for("booking-1")
    assert event["summary"] == "Design review"
    assert event["start"] == {"dateTime": "2026-12-01T15:00:00+01:00", "timeZone": "Europe/Berlin"}
    assert event["end"] == {"dateTime": "2026-12-01T16:00:00+01:00", "timeZone": "Europe/Berlin"}
    assert [(a["email"], a.get("displayName")) for a in event["attendees"]] == [
        ("ana@example.com", "Ana"),
        ("bo@example.com", "Bo"),
        ("cy@example.com", "Cy"),
    ]
    assert event["reminders"] == {
        "useDefault": False,
        "overrides": [{"method": "popup", "minutes": 10}],
    }
    (insert,) = google.calls_to("calendar.events.insert")
    assert insert.query["sendUpdates"] == "none"
    assert "conferenceDataVersion" not in insert.query
    (grant,) = google.grants
    assert grant.subject == "ana@example.com"
    assert grant.scopes == frozenset(SCOPES)


async def test_delegated_free_busy_reads_everyone_in_one_query(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """Delegated free/busy asks once for all, merges overlaps, and counts attended events."""
    google.add_busy("bo@example.com", T0, T0 + timedelta(hours=1))
    google.add_busy("bo@example.com", T0 + timedelta(minutes=30), T0 + timedelta(hours=2))
    calendar = delegated(google, account, key_file)
    await calendar.create_event("T1", meeting())  # Cy attends it, so Cy is busy then
    nobody = Participant("U_NOMAIL", display_name="Nomail")
    stranger = Participant("U_EXT", email="ext@elsewhere.org", display_name="Ext")
    answer = await calendar.free_busy(
        "T1", [ANA, BO, CY, nobody, stranger], T0 - timedelta(hours=1), T0 + timedelta(days=1)
    )
    assert [(s.start, s.end) for s in answer.busy["U_BO"]] == [
        (T0, T0 + timedelta(hours=2)),
        (T0 + timedelta(hours=5), T0 + timedelta(hours=6)),
    ]
    assert [(s.start, s.end) for s in answer.busy["U_CY"]] == [
        (T0 + timedelta(hours=5), T0 + timedelta(hours=6))
    ]
    assert answer.busy["U_NOMAIL"] == ()
    assert "no email address" in answer.unavailable["U_NOMAIL"]
    assert "cannot see Ext's calendar" in answer.unavailable["U_EXT"]
    assert set(answer.unavailable) == {"U_NOMAIL", "U_EXT"}
    (query,) = google.calls_to("calendar.freebusy.query")
    assert query.principal == "ana@example.com"
    assert len(query.body["items"]) == 4


async def test_free_busy_splits_over_fifty_calendars_and_long_ranges(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """120 people over 100 days become 3 x 2 queries, none over Google's limits, all answered."""
    people = [Participant(f"U{n:03d}", email=f"p{n:03d}@example.com") for n in range(120)]
    for number, person in enumerate(people):
        assert person.email
        google.add_calendar(person.email, readers=["ana@example.com"])
        google.add_busy(
            person.email,
            T0 + timedelta(days=number % 90),
            T0 + timedelta(days=number % 90, hours=1),
        )
    calendar = delegated(google, account, key_file)
    answer = await calendar.free_busy("T1", [ANA, *people], T0, T0 + timedelta(days=100))
    queries = google.calls_to("calendar.freebusy.query")
    assert len(queries) == 6
    assert all(len(q.body["items"]) <= 50 for q in queries)
    spans = {(q.body["timeMin"], q.body["timeMax"]) for q in queries}
    assert len(spans) == 2
    assert answer.unavailable == {}
    for number, person in enumerate(people):
        (slot,) = answer.busy[person.user_id]
        assert slot.start == T0 + timedelta(days=number % 90)


async def test_delegation_not_granted_is_explained(google: GoogleEmulator, key_file: Path) -> None:
    """Without delegation in the Admin console the error says an admin must grant it."""
    settings = GoogleSettings(api_url=google.url, service_account_file=key_file, delegation=True)
    calendar = GoogleCalendar(settings, sleep=Sleeps())
    with pytest.raises(CalendarError) as caught:
        await calendar.create_event("T1", meeting())
    assert "domain-wide delegation" in caught.value.user_message
    assert google.events("ana@example.com") == []


# --- shared calendar -----------------------------------------------------------------------


async def test_shared_calendar_holds_the_event_without_attendees(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """In shared mode the event goes on the shared calendar and the .ics is the invite."""
    google.add_calendar(SHARED, writers=[account.email])
    calendar = shared(google, key_file)
    assert calendar.invites_attendees is False
    created = await calendar.create_event("T1", meeting())
    (event,) = google.events(SHARED)
    assert created.calendar_id == SHARED
    assert "attendees" not in event
    assert event["start"]["dateTime"] == "2026-12-01T15:00:00+01:00"
    assert google.events("ana@example.com") == []
    assert google.grants[0].subject is None


async def test_shared_free_busy_names_who_to_share_with(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """Calendars the service account cannot read are unavailable, saying to share them with it."""
    google.add_calendar(SHARED, writers=[account.email])
    google.share("bo@example.com", account.email, "reader")
    google.add_busy("bo@example.com", T0, T0 + timedelta(hours=1))
    calendar = shared(google, key_file)
    answer = await calendar.free_busy("T1", [ANA, BO], T0, T0 + timedelta(days=1))
    assert [s.start for s in answer.busy["U_BO"]] == [T0]
    assert list(answer.unavailable) == ["U_ANA"]
    assert account.email in answer.unavailable["U_ANA"]


async def test_shared_calendar_not_shared_is_a_clear_error(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """A shared calendar the account cannot write names the calendar and the account."""
    google.add_calendar(SHARED, readers=[account.email])
    calendar = shared(google, key_file)
    with pytest.raises(CalendarError) as caught:
        await calendar.create_event("T1", meeting())
    assert SHARED in caught.value.user_message
    assert account.email in caught.value.user_message
    assert google.calls_to("calendar.events.insert")[0].status == 403


# --- per-user OAuth --------------------------------------------------------------------------


async def test_oauth_event_on_organizer_calendar_and_unconnected_people_unavailable(
    google: GoogleEmulator,
) -> None:
    """Each connected person reads their own calendar; the unconnected are named, not guessed."""
    client = google.add_oauth_client()
    tokens = {
        ANA.user_id: google.issue_refresh_token(client, "ana@example.com", SCOPES),
        BO.user_id: google.issue_refresh_token(client, "bo@example.com", SCOPES),
    }
    google.add_busy("bo@example.com", T0, T0 + timedelta(hours=1))
    calendar = oauth_provider(google, client, tokens)
    answer = await calendar.free_busy("T1", [ANA, BO, CY], T0, T0 + timedelta(days=1))
    assert [s.start for s in answer.busy["U_BO"]] == [T0]
    assert answer.busy["U_ANA"] == ()
    assert list(answer.unavailable) == ["U_CY"]
    assert "/schedule connect" in answer.unavailable["U_CY"]
    created = await calendar.create_event("T1", meeting())
    (event,) = google.events("ana@example.com")
    assert created.calendar_id == "ana@example.com"
    assert event["creator"]["email"] == "ana@example.com"
    assert {a["email"] for a in event["attendees"]} == {
        "ana@example.com",
        "bo@example.com",
        "cy@example.com",
    }
    await calendar.delete_event("T1", created.calendar_id, created.event_id)
    assert google.events("ana@example.com") == []


async def test_oauth_revoked_token_makes_person_unavailable_with_reason(
    google: GoogleEmulator,
) -> None:
    """A revoked refresh token turns into "connect again", for free/busy and for booking."""
    client = google.add_oauth_client()
    tokens = {ANA.user_id: google.issue_refresh_token(client, "ana@example.com", SCOPES)}
    google._refresh_tokens.clear()  # the user revoked access at Google
    calendar = oauth_provider(google, client, tokens)
    answer = await calendar.free_busy("T1", [ANA], T0, T0 + timedelta(days=1))
    assert "connect again" in answer.unavailable["U_ANA"]
    with pytest.raises(CalendarError, match="connect again"):
        await calendar.create_event("T1", meeting())


# --- idempotency, changes, deletion ----------------------------------------------------------


async def test_creating_twice_is_one_event(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """A second insert of our own id gets 409, reads the event back and returns the same one."""
    calendar = delegated(google, account, key_file)
    first = await calendar.create_event("T1", meeting())
    second = await calendar.create_event("T1", meeting())
    assert first == second
    assert len(google.events("ana@example.com")) == 1
    assert [c.status for c in google.calls_to("calendar.events.insert")] == [200, 409]
    assert len(google.calls_to("calendar.events.get")) == 1


async def test_lost_answer_to_an_insert_still_ends_in_one_event(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """Google creates the event but the answer times out: the retry sees 409 and succeeds."""
    calendar = delegated(google, account, key_file, timeout=0.5)
    await calendar.free_busy("T1", [ANA], T0, T0 + timedelta(hours=1))  # token first
    google.hang_next(1, seconds=5.0)
    created = await calendar.create_event("T1", meeting())
    assert [c.status for c in google.calls_to("calendar.events.insert")] == [200, 409]
    (event,) = google.events("ana@example.com")
    assert created.event_id == event["id"]


async def test_update_patches_times_and_sequence_and_delete_is_idempotent(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """Patch moves the event and raises its sequence; deleting twice or unknown is fine."""
    calendar = delegated(google, account, key_file)
    created = await calendar.create_event("T1", meeting())
    moved = meeting(
        calendar_id=created.calendar_id,
        start=T0 + timedelta(days=1),
        end=T0 + timedelta(days=1, minutes=30),
        summary="Design review (moved)",
        attendees=(Attendee.of(BO),),
        sequence=1,
    )
    updated = await calendar.update_event("T1", moved)
    assert updated == created
    (event,) = google.events("ana@example.com")
    assert event["start"]["dateTime"] == "2026-12-02T10:00:00+01:00"
    assert event["end"]["dateTime"] == "2026-12-02T10:30:00+01:00"
    assert event["summary"] == "Design review (moved)"
    assert event["sequence"] == 1
    assert [a["email"] for a in event["attendees"]] == ["ana@example.com", "bo@example.com"]
    await calendar.delete_event("T1", created.calendar_id, created.event_id)
    await calendar.delete_event("T1", created.calendar_id, created.event_id)
    await calendar.delete_event("T1", created.calendar_id, event_id_for("never-made"))
    assert google.events("ana@example.com") == []
    assert [c.status for c in google.calls_to("calendar.events.delete")] == [204, 410, 404]
    with pytest.raises(CalendarError, match="deleted"):
        await calendar.update_event("T1", replace(moved, sequence=2))


async def test_recreating_a_cancelled_booking_is_refused(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """Our id on a deleted event is not silently treated as booked."""
    calendar = delegated(google, account, key_file)
    created = await calendar.create_event("T1", meeting())
    await calendar.delete_event("T1", created.calendar_id, created.event_id)
    with pytest.raises(CalendarError, match="cancelled"):
        await calendar.create_event("T1", meeting())


async def test_meet_link_and_zone_offsets_across_dst(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """With conferences on, a Meet link is requested; times carry the zone's offset that day."""
    calendar = delegated(google, account, key_file, conference=True, send_updates="all")
    summer = datetime(2027, 7, 1, 14, tzinfo=UTC)
    await calendar.create_event(
        "T1",
        meeting(start=summer, end=summer + timedelta(hours=1), time_zone="America/New_York"),
    )
    (event,) = google.events("ana@example.com")
    assert event["start"] == {
        "dateTime": "2027-07-01T10:00:00-04:00",
        "timeZone": "America/New_York",
    }
    assert event["hangoutLink"].startswith("https://meet.google.com/")
    (insert,) = google.calls_to("calendar.events.insert")
    assert insert.query["conferenceDataVersion"] == "1"
    assert insert.query["sendUpdates"] == "all"
    assert insert.body["conferenceData"]["createRequest"]["requestId"] == event["id"]


# --- retries and failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (503, None),
        (500, None),
        (429, None),
        (403, "rateLimitExceeded"),
        (403, "userRateLimitExceeded"),
    ],
)
async def test_transient_failures_are_retried_with_backoff(
    google: GoogleEmulator,
    account: ServiceAccount,
    key_file: Path,
    status: int,
    reason: str | None,
) -> None:
    """Two transient refusals, then success: one event, two growing, jittered backoffs."""
    sleeps = Sleeps()
    calendar = delegated(google, account, key_file, sleep=sleeps)
    calendar._jitter = lambda: 1.0  # always the ceiling, to compare
    google.fail_next(2, status, reason=reason)
    await calendar.create_event("T1", meeting())
    assert [c.status for c in google.calls_to("calendar.events.insert")] == [status, status, 200]
    assert sleeps.delays == [0.5, 1.0]
    assert len(google.events("ana@example.com")) == 1


async def test_forbidden_is_not_retried(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """A 403 that is not a rate limit fails at once with an actionable message."""
    sleeps = Sleeps()
    calendar = delegated(google, account, key_file, sleep=sleeps)
    google.fail_next(1, 403, reason="forbidden")
    with pytest.raises(CalendarError, match="domain-wide delegation"):
        await calendar.create_event("T1", meeting())
    assert sleeps.delays == []


async def test_retry_after_is_honoured(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """A 429 with Retry-After waits at least that long (capped) before trying again."""
    sleeps = Sleeps()
    calendar = delegated(google, account, key_file, sleep=sleeps)
    calendar._jitter = lambda: 0.0
    google.fail_next(1, 429, retry_after=3)
    await calendar.free_busy("T1", [ANA], T0, T0 + timedelta(hours=1))
    assert sleeps.delays == [3.0]


async def test_persistent_fault_gives_up_with_a_clear_message_then_books_once(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """503 on every attempt: a CalendarError and no event; a later retry books exactly one."""
    sleeps = Sleeps()
    calendar = delegated(google, account, key_file, sleep=sleeps)
    google.fail_next(10, 503)
    with pytest.raises(CalendarError) as caught:
        await calendar.create_event("T1", meeting())
    assert "not answering" in caught.value.user_message
    assert "try again" in caught.value.user_message
    assert len(google.calls_to("calendar.events.insert")) == calendar.settings.attempts
    assert len(sleeps.delays) == calendar.settings.attempts - 1
    assert google.events("ana@example.com") == []
    google._faults.clear()  # Google recovers
    await calendar.create_event("T1", meeting())
    await calendar.create_event("T1", meeting())
    assert len(google.events("ana@example.com")) == 1


async def test_retry_budget_bounds_total_waiting(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """Backoff stops once the next wait would exceed the retry budget."""
    sleeps = Sleeps()
    calendar = delegated(google, account, key_file, sleep=sleeps, attempts=10, retry_budget=2.0)
    calendar._jitter = lambda: 1.0
    google.fail_next(20, 500)
    with pytest.raises(CalendarError):
        await calendar.free_busy("T1", [ANA], T0, T0 + timedelta(hours=1))
    assert sleeps.delays == [0.5, 1.0]


async def test_expired_token_is_refreshed_once(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """A 401 on a token Google no longer honours triggers one refresh and the call succeeds."""
    calendar = delegated(google, account, key_file)
    await calendar.free_busy("T1", [ANA], T0, T0 + timedelta(hours=1))
    assert google.expire_access_tokens() == 1
    await calendar.create_event("T1", meeting())
    assert [c.status for c in google.calls_to("calendar.events.insert")] == [401, 200]
    assert len(google.grants) == 2
    assert len(google.events("ana@example.com")) == 1


# --- resources -------------------------------------------------------------------------------


def open_sockets() -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
        except OSError:
            continue  # closed while we looked
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count sockets")
async def test_every_call_closes_its_connection(
    google: GoogleEmulator, account: ServiceAccount, key_file: Path
) -> None:
    """After 30 calls every Http is closed and no socket is left open on either side."""
    calendar = delegated(google, account, key_file)
    await calendar.free_busy("T1", [ANA], T0, T0 + timedelta(hours=1))
    before = open_sockets()
    for number in range(10):
        await calendar.create_event("T1", meeting(f"booking-{number}"))
        await calendar.create_event("T1", meeting(f"booking-{number}"))  # 409 + get
        await calendar.free_busy("T1", [ANA, BO], T0, T0 + timedelta(days=1))
    assert calendar.http_opened == calendar.http_closed == 41
    for _ in range(200):  # the server notices closed connections on its next turns
        if google.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert google.open_connections == 0
    assert open_sockets() <= before
