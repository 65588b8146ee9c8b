"""The Google emulator answers Google's own client libraries the way Google does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_auth_httplib2
import httplib2
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError

from bot.calendars.google import SCOPES, calendar_discovery_document
from tests.emulators.google import JWT_BEARER, GoogleEmulator, ServiceAccount

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
FREEBUSY_ONLY = ("https://www.googleapis.com/auth/calendar.freebusy",)


@pytest.fixture
async def google() -> AsyncIterator[GoogleEmulator]:
    async with GoogleEmulator() as emulator:
        emulator.add_calendar("ana@example.com")
        emulator.add_calendar("bo@example.com", readers=["ana@example.com"])
        yield emulator


@pytest.fixture
def account(google: GoogleEmulator) -> ServiceAccount:
    return google.add_service_account()


def key_credentials(
    google: GoogleEmulator, account: ServiceAccount, tmp_path: Path, scopes: Any = SCOPES
) -> Any:
    path = google.write_key_file(account, tmp_path / "key.json")
    return service_account.Credentials.from_service_account_file(str(path), scopes=list(scopes))


async def run(
    credentials: Any, call: Callable[[Any], Any], url: str, client_timeout: float = 2.0
) -> Any:
    """Execute one googleapiclient call in a thread (the emulator shares this event loop)."""

    def blocking() -> Any:
        http = httplib2.Http(timeout=client_timeout, proxy_info=None)
        try:
            authorized = google_auth_httplib2.AuthorizedHttp(credentials, http=http)
            service = build_from_document(calendar_discovery_document(url), http=authorized)
            return call(service).execute()
        finally:
            http.close()

    return await asyncio.to_thread(blocking)


def event_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "slotbot0001",
        "summary": "Design review",
        "start": {"dateTime": "2026-12-01T15:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-12-01T16:00:00+01:00", "timeZone": "Europe/Berlin"},
    }
    body.update(changes)
    return body


def reason(error: HttpError) -> str:
    return str(json.loads(error.content)["error"]["errors"][0]["reason"])


# --- the token endpoint ----------------------------------------------------------------------


async def test_jwt_bearer_grant_records_subject_and_scopes(
    google: GoogleEmulator, account: ServiceAccount, tmp_path: Path
) -> None:
    """google-auth's signed assertion is verified; the delegated subject and scopes are kept."""
    google.allow_delegation(account, SCOPES)
    credentials = key_credentials(google, account, tmp_path).with_subject("ana@example.com")
    answer = await run(credentials, lambda s: s.events().list(calendarId="primary"), google.url)
    assert answer["items"] == []
    (grant,) = google.grants
    assert (grant.grant_type, grant.subject, grant.service_account) == (
        JWT_BEARER,
        "ana@example.com",
        account.email,
    )
    assert grant.scopes == frozenset(SCOPES)
    assert google.calls_to("calendar.events.list")[0].principal == "ana@example.com"


async def test_assertion_signed_with_another_key_is_refused(
    google: GoogleEmulator, account: ServiceAccount, tmp_path: Path
) -> None:
    """A key file whose private key Google does not know cannot get a token."""
    credentials = key_credentials(google, account, tmp_path)
    account.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(RefreshError, match="Invalid JWT Signature"):
        await run(credentials, lambda s: s.events().list(calendarId="primary"), google.url)
    assert google.grants == []


async def test_delegation_needs_the_admin_grant_for_every_scope(
    google: GoogleEmulator, account: ServiceAccount, tmp_path: Path
) -> None:
    """Impersonating without domain-wide delegation for the scopes is unauthorized_client."""
    google.allow_delegation(account, FREEBUSY_ONLY)
    credentials = key_credentials(google, account, tmp_path).with_subject("ana@example.com")
    with pytest.raises(RefreshError, match="unauthorized_client"):
        await run(credentials, lambda s: s.events().list(calendarId="primary"), google.url)


async def test_oauth_consent_code_refresh_and_revoke(
    google: GoogleEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """google-auth-oauthlib's flow gets a code (PKCE checked), tokens refresh until revoked."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # loopback http, not https
    client = google.add_oauth_client(["http://127.0.0.1:9/google/oauth/callback"])
    path = google.write_client_file(client, tmp_path / "client.json")
    flow = Flow.from_client_secrets_file(
        str(path), scopes=list(SCOPES), redirect_uri=client.redirect_uris[0]
    )
    url, state = flow.authorization_url(access_type="offline", login_hint="ana@example.com")
    http = httplib2.Http(proxy_info=None)
    http.follow_redirects = False
    response, _ = await asyncio.to_thread(http.request, url)
    http.close()
    assert response.status == 302
    redirect = parse_qs(urlsplit(response["location"]).query)
    assert redirect["state"] == [state]
    await asyncio.to_thread(flow.fetch_token, code=redirect["code"][0])
    token = flow.credentials
    assert token.refresh_token
    credentials = Credentials(
        None,
        refresh_token=token.refresh_token,
        token_uri=google.token_uri,
        client_id=client.client_id,
        client_secret=client.client_secret,
        scopes=list(SCOPES),
    )
    answer = await run(credentials, lambda s: s.events().list(calendarId="primary"), google.url)
    assert answer["summary"] == "ana@example.com"
    assert [g.grant_type for g in google.grants] == ["authorization_code", "refresh_token"]
    revoke = httplib2.Http(proxy_info=None)
    response, _ = await asyncio.to_thread(
        revoke.request,
        google.revoke_uri,
        "POST",
        f"token={token.refresh_token}",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    revoke.close()
    assert response.status == 200
    credentials.token = None
    with pytest.raises(RefreshError, match="invalid_grant"):
        await run(credentials, lambda s: s.events().list(calendarId="primary"), google.url)


async def test_wrong_pkce_verifier_is_refused(google: GoogleEmulator) -> None:
    """A code issued with a challenge cannot be redeemed without the matching verifier."""
    client = google.add_oauth_client()
    url = (
        f"{google.auth_uri}?client_id={client.client_id}&redirect_uri={client.redirect_uris[0]}"
        "&response_type=code&scope=openid&code_challenge=abc&code_challenge_method=plain"
        "&login_hint=ana@example.com"
    )
    http = httplib2.Http(proxy_info=None)
    http.follow_redirects = False
    response, _ = await asyncio.to_thread(http.request, url)
    code = parse_qs(urlsplit(response["location"]).query)["code"][0]
    form = (
        f"grant_type=authorization_code&code={code}&client_id={client.client_id}"
        f"&client_secret={client.client_secret}&redirect_uri={client.redirect_uris[0]}"
        "&code_verifier=wrong"
    )
    response, content = await asyncio.to_thread(
        http.request,
        google.token_uri,
        "POST",
        form,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    http.close()
    assert response.status == 400
    assert json.loads(content)["error"] == "invalid_grant"


# --- Calendar v3 -----------------------------------------------------------------------------


@pytest.fixture
def ana(google: GoogleEmulator, account: ServiceAccount, tmp_path: Path) -> Any:
    google.allow_delegation(account, SCOPES)
    return key_credentials(google, account, tmp_path).with_subject("ana@example.com")


async def test_insert_get_patch_delete_round_trip(google: GoogleEmulator, ana: Any) -> None:
    """An inserted event reads back with Google's fields; patch merges; delete cancels."""
    created = await run(
        ana, lambda s: s.events().insert(calendarId="primary", body=event_body()), google.url
    )
    assert created["iCalUID"] == "slotbot0001@google.com"
    assert created["status"] == "confirmed"
    patched = await run(
        ana,
        lambda s: s.events().patch(
            calendarId="ana@example.com",
            eventId="slotbot0001",
            body={"summary": "Moved", "sequence": 1},
        ),
        google.url,
    )
    assert (patched["summary"], patched["sequence"]) == ("Moved", 1)
    assert patched["start"] == created["start"]
    await run(
        ana, lambda s: s.events().delete(calendarId="primary", eventId="slotbot0001"), google.url
    )
    gone = await run(
        ana, lambda s: s.events().get(calendarId="primary", eventId="slotbot0001"), google.url
    )
    assert gone["status"] == "cancelled"
    with pytest.raises(HttpError) as caught:
        await run(
            ana,
            lambda s: s.events().delete(calendarId="primary", eventId="slotbot0001"),
            google.url,
        )
    assert caught.value.resp.status == 410


@pytest.mark.parametrize(
    ("changes", "status", "why"),
    [
        ({"id": "SlotBot0001"}, 400, "invalid"),  # upper case is not base32hex
        ({"id": "slotw"}, 400, "invalid"),  # w is outside a-v
        ({"id": "abcd"}, 400, "invalid"),  # shorter than 5
        ({"end": None}, 400, "required"),
        (
            {"start": {"dateTime": "2026-12-01T15:00:00", "timeZone": "Europe/Berlin"}},
            400,
            "invalid",
        ),
        (
            {"start": {"dateTime": "2026-12-01T15:00:00Z", "timeZone": "Mars/Olympus"}},
            400,
            "timeZoneInvalid",
        ),
        ({"end": {"dateTime": "2026-12-01T14:00:00+01:00"}}, 400, "timeRangeEmpty"),
        ({"summry": "typo"}, 400, "invalid"),
        ({"attendees": [{"displayName": "No address"}]}, 400, "required"),
    ],
)
async def test_insert_is_validated_like_google(
    google: GoogleEmulator, ana: Any, changes: dict[str, Any], status: int, why: str
) -> None:
    """Bodies are checked against the discovery document and Google's event rules."""
    body = {k: v for k, v in event_body(**changes).items() if v is not None}
    with pytest.raises(HttpError) as caught:
        await run(ana, lambda s: s.events().insert(calendarId="primary", body=body), google.url)
    assert caught.value.resp.status == status
    assert reason(caught.value) == why
    assert google.events("ana@example.com") == []


async def test_duplicate_id_is_409(google: GoogleEmulator, ana: Any) -> None:
    """Inserting the same client-supplied id twice answers 409 duplicate, keeping one event."""
    insert = lambda s: s.events().insert(calendarId="primary", body=event_body())  # noqa: E731
    await run(ana, insert, google.url)
    with pytest.raises(HttpError) as caught:
        await run(ana, insert, google.url)
    assert (caught.value.resp.status, reason(caught.value)) == (409, "duplicate")
    assert len(google.events("ana@example.com")) == 1


async def test_tokens_and_scopes_and_calendar_access_are_enforced(
    google: GoogleEmulator, account: ServiceAccount, tmp_path: Path
) -> None:
    """Free/busy-only tokens cannot write, strangers' calendars are 404, SAs cannot invite."""
    google.allow_delegation(account, FREEBUSY_ONLY)
    reader = key_credentials(google, account, tmp_path, FREEBUSY_ONLY).with_subject(
        "ana@example.com"
    )
    with pytest.raises(HttpError) as caught:
        await run(
            reader, lambda s: s.events().insert(calendarId="primary", body=event_body()), google.url
        )
    assert caught.value.resp.status == 403
    robot = key_credentials(google, account, tmp_path)
    with pytest.raises(HttpError) as caught:
        await run(robot, lambda s: s.events().list(calendarId="ana@example.com"), google.url)
    assert caught.value.resp.status == 404
    google.add_calendar("shared@group.calendar.google.com", writers=[account.email])
    invite = event_body(attendees=[{"email": "bo@example.com"}])
    with pytest.raises(HttpError) as caught:
        await run(
            robot,
            lambda s: s.events().insert(calendarId="shared@group.calendar.google.com", body=invite),
            google.url,
        )
    assert reason(caught.value) == "forbiddenForServiceAccounts"


async def test_unknown_or_expired_token_is_401(google: GoogleEmulator, ana: Any) -> None:
    """A token the emulator no longer honours is refused; google-auth then refreshes once."""
    await run(ana, lambda s: s.events().list(calendarId="primary"), google.url)
    google.expire_access_tokens()
    await run(ana, lambda s: s.events().list(calendarId="primary"), google.url)
    statuses = [c.status for c in google.calls_to("calendar.events.list")]
    assert statuses == [200, 401, 200]
    assert len(google.grants) == 2


async def test_free_busy_answers_per_calendar_and_enforces_limits(
    google: GoogleEmulator, ana: Any
) -> None:
    """Readable calendars give clipped busy periods, others an error; long ranges are 400."""
    google.add_busy("bo@example.com", T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    body = {
        "timeMin": "2026-12-01T09:00:00Z",
        "timeMax": "2026-12-02T09:00:00Z",
        "items": [{"id": "bo@example.com"}, {"id": "nobody@example.com"}],
    }
    answer = await run(ana, lambda s: s.freebusy().query(body=body), google.url)
    assert answer["calendars"]["bo@example.com"]["busy"] == [
        {"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z"}
    ]
    assert answer["calendars"]["nobody@example.com"]["errors"][0]["reason"] == "notFound"
    many = {**body, "items": [{"id": f"p{n}@example.com"} for n in range(51)]}
    answer = await run(ana, lambda s: s.freebusy().query(body=many), google.url)
    assert (
        answer["calendars"]["p50@example.com"]["errors"][0]["reason"] == "tooManyCalendarsRequested"
    )
    long = {**body, "timeMax": "2027-03-01T09:00:00Z"}
    with pytest.raises(HttpError) as caught:
        await run(ana, lambda s: s.freebusy().query(body=long), google.url)
    assert reason(caught.value) == "timeRangeTooLong"


async def test_fault_knobs_fail_then_recover_and_hang_past_timeouts(
    google: GoogleEmulator, ana: Any
) -> None:
    """fail_next answers N faults with Google's reason; hang_next outlasts a client timeout."""
    google.fail_next(1, 403, reason="userRateLimitExceeded")
    with pytest.raises(HttpError) as caught:
        await run(ana, lambda s: s.events().list(calendarId="primary"), google.url)
    assert (caught.value.resp.status, reason(caught.value)) == (403, "userRateLimitExceeded")
    await run(ana, lambda s: s.events().list(calendarId="primary"), google.url)
    google.hang_next(1, seconds=5.0)
    with pytest.raises(TimeoutError):
        await run(
            ana,
            lambda s: s.events().insert(calendarId="primary", body=event_body()),
            google.url,
            client_timeout=0.5,
        )
    assert len(google.events("ana@example.com")) == 1  # the work was done; the answer was lost
