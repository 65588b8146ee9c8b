"""Google Calendar as a ``CalendarProvider``: free/busy, and events Slotbot creates and changes.

google-api-python-client is synchronous, so every call runs in a worker thread with its own
``httplib2.Http``, closed afterwards. The API description is the static discovery document
bundled with the client library: nothing is fetched from Google to learn the API.

Three ways to connect (``GoogleSettings``):

1. **Domain-wide delegation** (key file + ``delegation=True``): the service account acts as the
   organizer; free/busy of everyone by email; the event on the organizer's primary calendar
   with every participant as an attendee.
2. **Shared calendar** (key file + ``calendar_id``): events on that one calendar, free/busy of
   the calendars the service account can read. A service account without delegation cannot
   invite people, so events carry no attendees (``invites_attendees`` is false): the ``.ics``
   posted in Slack is the invitation.
3. **Per-user OAuth** (``user_credentials`` callable): each person's own token reads their own
   calendar; the organizer's token writes the event. People without a token are unavailable.

Scopes: ``calendar.events`` (insert, patch, delete on calendars the principal may write) and
``calendar.freebusy`` (free/busy only, never event details). They are the narrowest pair that
covers what Slotbot does; a Workspace admin grants exactly these two for delegation.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal

import google_auth_httplib2
import googleapiclient
import httplib2
from google.auth import exceptions as auth_exceptions
from google.oauth2 import service_account
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError

from bot.calendars import Attendee, CalendarEvent, CreatedEvent, FreeBusy
from bot.errors import CalendarError
from bot.models import Participant, TimeSlot, format_datetime, require_aware, zone_of
from bot.recurrence import occurrence_id
from bot.store import merge_slots

__all__ = [
    "DEFAULT_API_URL",
    "FREEBUSY_MAX_CALENDARS",
    "FREEBUSY_MAX_RANGE",
    "SCOPES",
    "GoogleCalendar",
    "GoogleSettings",
    "UserCredentials",
    "calendar_discovery_document",
]

DEFAULT_API_URL = "https://www.googleapis.com/"
SCOPES = (
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.freebusy",
)
# freeBusy.query answers for at most 50 calendars (``calendarExpansionMax``) and refuses long
# ranges (``timeRangeTooLong``, about two months); we stay inside both and split the rest.
FREEBUSY_MAX_CALENDARS = 50
FREEBUSY_MAX_RANGE = timedelta(days=60)

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_DOCUMENT_PATH = (
    Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"
)

UserCredentials = Callable[[str, str], Any]
"""``(team_id, user_id) -> google.oauth2.credentials.Credentials | None`` for per-user OAuth;
it may also return an awaitable of that (a lookup in the database)."""


def calendar_discovery_document(api_url: str = DEFAULT_API_URL) -> dict[str, Any]:
    """The bundled Calendar v3 discovery document, pointed at ``api_url`` (the APIs' root)."""
    document: dict[str, Any] = json.loads(_DOCUMENT_PATH.read_text(encoding="utf-8"))
    root = api_url if api_url.endswith("/") else api_url + "/"
    document["rootUrl"] = root
    document["mtlsRootUrl"] = root
    document["baseUrl"] = root + document["servicePath"]
    return document


@dataclass(frozen=True, slots=True)
class GoogleSettings:
    """How Slotbot reaches Google Calendar; the mode follows from which fields are set.

    ``send_updates`` is ``"none"`` by default: Slotbot posts its own ``.ics`` (same UID as the
    Google event) in Slack, and Google's invitation email on top would invite everyone twice.
    Set ``"all"`` when people should get Google's emails instead of relying on Slack.
    """

    api_url: str = DEFAULT_API_URL
    service_account_file: Path | None = None
    delegation: bool = False
    calendar_id: str | None = None
    send_updates: Literal["none", "all", "externalOnly"] = "none"
    conference: bool = False
    reminder_minutes: int = 10
    timeout: float = 20.0
    attempts: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    retry_budget: float = 20.0

    def __post_init__(self) -> None:
        if self.delegation and self.service_account_file is None:
            raise ValueError("domain-wide delegation needs a service account key file")
        if self.service_account_file is not None and not (self.delegation or self.calendar_id):
            raise ValueError("with a service account, set delegation or a shared calendar id")
        if self.attempts < 1 or self.timeout <= 0:
            raise ValueError("attempts must be at least 1 and the timeout positive")

    @property
    def mode(self) -> Literal["delegation", "shared", "oauth"]:
        if self.service_account_file is not None:
            return "delegation" if self.delegation else "shared"
        return "oauth"


@dataclass(frozen=True, slots=True)
class _Principal:
    """Whose credentials a call uses: a delegated subject, the service account, or a user."""

    kind: Literal["delegation", "shared", "oauth"]
    subject: str | None = None  # the impersonated email in delegation mode
    user_id: str | None = None  # the Slack user in OAuth mode


class _Retryable(Exception):
    """A failure worth another attempt, with the delay the server asked for, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Plan:
    """A prepared API call: which method, and how to explain its refusals."""

    build: Callable[[Any], Any]
    calendar: str
    what: str
    tolerate: frozenset[int] = field(default_factory=frozenset)


class GoogleCalendar:
    """A ``CalendarProvider`` over Google Calendar v3 (see the module docstring for the modes)."""

    name = "google"

    def __init__(
        self,
        settings: GoogleSettings,
        *,
        user_credentials: UserCredentials | None = None,
        calendar_owner: Callable[[str, str], str | None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """``calendar_owner(team_id, calendar_id) -> user_id`` finds whose token deletes an
        event in OAuth mode, where ``delete_event`` only knows the calendar."""
        if settings.mode == "oauth" and user_credentials is None:
            raise ValueError("per-user OAuth needs a user_credentials callable")
        self.settings = settings
        self._user_credentials = user_credentials
        self._calendar_owner = calendar_owner
        self._sleep = sleep
        self._jitter = jitter
        self._document = calendar_discovery_document(settings.api_url)
        self._service_accounts: dict[str | None, Any] = {}
        self._lock = threading.Lock()
        self._key_info: dict[str, Any] = {}
        if settings.service_account_file is not None:
            self._key_info = json.loads(settings.service_account_file.read_text(encoding="utf-8"))
        # One Resource builds requests for every thread; it never sends anything itself, and
        # each request is executed on the per-call Http passed to ``execute``.
        self._service = build_from_document(self._document, http=httplib2.Http(proxy_info=None))
        self.http_opened = 0
        self.http_closed = 0

    # --- what callers may ask --------------------------------------------------------------

    @property
    def invites_attendees(self) -> bool:
        """False in shared-calendar mode: the event has no attendees and the .ics is the invite."""
        return self.settings.mode != "shared"

    @property
    def service_account_email(self) -> str | None:
        email = self._key_info.get("client_email")
        return str(email) if email else None

    # --- CalendarProvider ------------------------------------------------------------------

    async def free_busy(
        self, team_id: str, people: Sequence[Participant], start: datetime, end: datetime
    ) -> FreeBusy:
        """Busy intervals of each person in ``[start, end)``; unreadable calendars say why."""
        require_aware(start, "start")
        require_aware(end, "end")
        busy: dict[str, list[TimeSlot]] = {person.user_id: [] for person in people}
        unavailable: dict[str, str] = {}
        if end <= start or not people:
            return FreeBusy({key: () for key in busy}, {})
        if self.settings.mode == "oauth":
            await asyncio.gather(
                *(
                    self._own_free_busy(team_id, person, start, end, busy, unavailable)
                    for person in people
                )
            )
        else:
            await self._shared_free_busy(people, start, end, busy, unavailable)
        return FreeBusy(
            {user: tuple(merge_slots(slots)) for user, slots in busy.items()}, unavailable
        )

    async def create_event(self, team_id: str, event: CalendarEvent) -> CreatedEvent:
        """Insert the event under our own id; if that id exists already, return the existing one."""
        principal, calendar, reported = self._target(team_id, event.calendar_id, event.organizer)
        body = self._event_body(event)
        body["id"] = event.event_id
        query: dict[str, Any] = {"sendUpdates": self.settings.send_updates}
        if self.settings.conference:
            body["conferenceData"] = {
                "createRequest": {
                    "requestId": event.event_id,
                    "conferenceSolutionKey": {"type": "hangoutsMeet"},
                }
            }
            query["conferenceDataVersion"] = 1
        insert = _Plan(
            lambda s: s.events().insert(calendarId=calendar, body=body, **query),
            calendar,
            "create the event",
            tolerate=frozenset({409}),
        )
        answer = await self._call(principal, insert, team_id)
        if answer is None:  # 409: an earlier attempt created it; ours is the only such id
            answer = await self._call(principal, self._get_plan(calendar, event.event_id), team_id)
            if answer.get("status") == "cancelled":
                raise CalendarError(
                    "This meeting was already booked and then cancelled in Google Calendar, "
                    "so it cannot be booked again under the same booking."
                )
        return _created(answer, reported)

    async def update_event(self, team_id: str, event: CalendarEvent) -> CreatedEvent:
        """Patch the event's times, text and attendees, raising its sequence number; with
        ``original_start`` the one instance (``<eventId>_<original start in UTC>``)."""
        principal, calendar, reported = self._target(team_id, event.calendar_id, event.organizer)
        body = self._event_body(event)
        body["sequence"] = event.sequence
        event_id = _instance_id(event.event_id, event.original_start)
        if event.original_start is not None:
            body.pop("recurrence", None)  # an instance has none; the series keeps its rule
        plan = _Plan(
            lambda s: s.events().patch(
                calendarId=calendar,
                eventId=event_id,
                body=body,
                sendUpdates=self.settings.send_updates,
            ),
            calendar,
            "change the event",
        )
        answer = await self._call(principal, plan, team_id)
        return _created({**answer, "id": answer.get("recurringEventId") or answer["id"]}, reported)

    async def delete_event(
        self,
        team_id: str,
        calendar_id: str,
        event_id: str,
        *,
        organizer: Attendee | None = None,
        original_start: datetime | None = None,
    ) -> None:
        """Delete the event (or, with ``original_start``, that one instance); one that is
        unknown (404) or already deleted (410) is fine.

        In OAuth mode the organizer's token deletes it: ``organizer`` when given, else the
        ``calendar_owner`` hook's answer for the calendar id.
        """
        owner = organizer
        if owner is None and self.settings.mode == "oauth" and self._calendar_owner is not None:
            user_id = self._calendar_owner(team_id, calendar_id)
            owner = Attendee(email=calendar_id, user_id=user_id) if user_id else None
        principal, calendar, _ = self._target(team_id, calendar_id, owner)
        target = _instance_id(event_id, original_start)
        plan = _Plan(
            lambda s: s.events().delete(
                calendarId=calendar, eventId=target, sendUpdates=self.settings.send_updates
            ),
            calendar,
            "cancel the event",
            tolerate=frozenset({404, 410}),
        )
        await self._call(principal, plan, team_id)

    # --- free/busy -------------------------------------------------------------------------

    async def _shared_free_busy(
        self,
        people: Sequence[Participant],
        start: datetime,
        end: datetime,
        busy: dict[str, list[TimeSlot]],
        unavailable: dict[str, str],
    ) -> None:
        by_email: dict[str, list[Participant]] = {}
        for person in people:
            if person.email:
                by_email.setdefault(person.email.lower(), []).append(person)
            else:
                unavailable[person.user_id] = (
                    f"{person.name} has no email address in Slack, so their Google Calendar "
                    "cannot be found."
                )
        if not by_email:
            return
        if self.settings.mode == "delegation":
            # Any subject in the domain may ask; the organizer (first person) is the natural one.
            subject = next(p.email for p in people if p.email)
            principal = _Principal("delegation", subject=subject)
        else:
            principal = _Principal("shared")
        emails = list(by_email)
        queries = [
            (emails[i : i + FREEBUSY_MAX_CALENDARS], piece)
            for i in range(0, len(emails), FREEBUSY_MAX_CALENDARS)
            for piece in _pieces(start, end)
        ]
        answers = await asyncio.gather(
            *(self._query_free_busy(principal, ids, piece) for ids, piece in queries)
        )
        answered: set[str] = set()
        for answer in answers:
            for calendar_id, entry in answer.items():
                answered.add(calendar_id.lower())
                for person in by_email.get(calendar_id.lower(), ()):
                    if entry.get("errors"):
                        unavailable[person.user_id] = self._unreadable(person, entry["errors"])
                    else:
                        busy[person.user_id].extend(_slots(entry.get("busy", ())))
        for email in by_email.keys() - answered:
            for person in by_email[email]:
                unavailable[person.user_id] = f"Google did not answer for {person.name}'s calendar."

    async def _own_free_busy(
        self,
        team_id: str,
        person: Participant,
        start: datetime,
        end: datetime,
        busy: dict[str, list[TimeSlot]],
        unavailable: dict[str, str],
    ) -> None:
        # Each token sees its owner's calendars, so each connected person is one query.
        principal = _Principal("oauth", user_id=person.user_id)
        if await self._oauth_credentials(team_id, person.user_id) is None:
            unavailable[person.user_id] = (
                f"{person.name} has not connected Google Calendar (/schedule connect)."
            )
            return
        try:
            for piece in _pieces(start, end):
                answer = await self._query_free_busy(principal, ["primary"], piece, team_id)
                entry: Mapping[str, Any] = answer.get("primary") or next(iter(answer.values()), {})
                if entry.get("errors"):
                    unavailable[person.user_id] = self._unreadable(person, entry["errors"])
                    return
                busy[person.user_id].extend(_slots(entry.get("busy", ())))
        except CalendarError as error:
            unavailable[person.user_id] = error.user_message

    async def _query_free_busy(
        self, principal: _Principal, ids: list[str], piece: TimeSlot, team_id: str = ""
    ) -> dict[str, Any]:
        body = {
            "timeMin": format_datetime(piece.start),
            "timeMax": format_datetime(piece.end),
            "items": [{"id": calendar_id} for calendar_id in ids],
            "calendarExpansionMax": FREEBUSY_MAX_CALENDARS,
        }
        plan = _Plan(lambda s: s.freebusy().query(body=body), ", ".join(ids), "read free/busy")
        answer = await self._call(principal, plan, team_id)
        calendars: dict[str, Any] = answer.get("calendars", {})
        return calendars

    def _unreadable(self, person: Participant, errors: Iterable[Mapping[str, Any]]) -> str:
        reasons = {str(error.get("reason", "")) for error in errors}
        if "notFound" in reasons:
            if self.settings.mode == "oauth":
                return f"Google could not find {person.name}'s calendar."
            who = self.service_account_email or "Slotbot's service account"
            if self.settings.mode == "delegation":
                return (
                    f"Slotbot cannot see {person.name}'s calendar: they may be outside the "
                    "Google Workspace, or not share free/busy within it."
                )
            return (
                f"Slotbot cannot see {person.name}'s calendar; they can share it with {who} "
                "(“See only free/busy”)."
            )
        return f"Google could not read {person.name}'s calendar just now ({', '.join(reasons)})."

    # --- events ----------------------------------------------------------------------------

    def _event_body(self, event: CalendarEvent) -> dict[str, Any]:
        zone = zone_of(event.time_zone)
        body: dict[str, Any] = {
            "summary": event.summary,
            "description": event.description,
            "start": {"dateTime": _local(event.start, zone), "timeZone": event.time_zone},
            "end": {"dateTime": _local(event.end, zone), "timeZone": event.time_zone},
            "reminders": {
                "useDefault": False,
                "overrides": [{"method": "popup", "minutes": self.settings.reminder_minutes}],
            },
        }
        if event.recurrence:
            body["recurrence"] = list(event.recurrence)
        if self.invites_attendees:
            body["attendees"] = _attendees(event)
        return body

    def _get_plan(self, calendar: str, event_id: str) -> _Plan:
        return _Plan(
            lambda s: s.events().get(calendarId=calendar, eventId=event_id),
            calendar,
            "read the event",
        )

    def _target(
        self, team_id: str, calendar_id: str, organizer: Attendee | None
    ) -> tuple[_Principal, str, str]:
        """Whose credentials, which calendar to call, and the calendar id to report back."""
        mode = self.settings.mode
        if mode == "shared":
            assert self.settings.calendar_id is not None
            return _Principal("shared"), self.settings.calendar_id, self.settings.calendar_id
        email = organizer.email if organizer is not None and organizer.email else None
        if email is None and "@" in calendar_id:
            email = calendar_id  # a stored id from an earlier create: the primary's address
        if mode == "delegation":
            if email is None:
                raise CalendarError(
                    "The organizer has no email address in Slack, so Slotbot cannot put the "
                    "meeting on their Google Calendar."
                )
            return _Principal("delegation", subject=email), email, email
        user_id = organizer.user_id if organizer is not None else None
        if user_id is None:
            raise CalendarError(
                "Slotbot cannot tell whose Google account holds this event, so it cannot change it."
            )
        return _Principal("oauth", user_id=user_id), "primary", email or "primary"

    # --- the wire --------------------------------------------------------------------------

    async def _call(self, principal: _Principal, plan: _Plan, team_id: str = "") -> Any:
        """Run ``plan`` with retries; ``None`` when the status is one ``plan`` tolerates."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                credentials = await self._credentials(principal, team_id)
                return await asyncio.to_thread(self._execute, principal, plan, credentials)
            except _Retryable as failure:
                if attempt >= self.settings.attempts:
                    raise self._gave_up(plan, failure) from failure
                limit = min(
                    self.settings.backoff_cap, self.settings.backoff_base * 2 ** (attempt - 1)
                )
                delay = self._jitter() * limit  # full jitter: clients that failed together spread
                if failure.retry_after is not None:
                    delay = max(delay, min(failure.retry_after, self.settings.backoff_cap))
                if time.monotonic() - started + delay > self.settings.retry_budget:
                    raise self._gave_up(plan, failure) from failure
                await self._sleep(delay)

    def _execute(self, principal: _Principal, plan: _Plan, credentials: Any) -> Any:
        """One attempt, in a worker thread, on a fresh Http that is closed before returning."""
        http = httplib2.Http(timeout=self.settings.timeout, proxy_info=None)
        with self._lock:
            self.http_opened += 1
        try:
            # AuthorizedHttp refreshes the token once on a 401 and repeats the request.
            authorized = google_auth_httplib2.AuthorizedHttp(
                credentials, http=http, max_refresh_attempts=1
            )
            return plan.build(self._service).execute(http=authorized, num_retries=0)
        except HttpError as error:
            status = int(error.resp.status)
            if status in plan.tolerate:
                return None
            reason = _reason(error)
            if status in _RETRY_STATUSES or (status == 403 and reason in _RATE_LIMIT_REASONS):
                raise _Retryable(f"HTTP {status} {reason}", _retry_after(error)) from error
            raise self._refused(principal, plan, status, reason) from error
        except auth_exceptions.RefreshError as error:
            raise self._unauthorised(principal, error) from error
        except (TimeoutError, ConnectionError, auth_exceptions.TransportError) as e:
            raise _Retryable(f"{type(e).__name__}: {e}") from e
        except httplib2.HttpLib2Error as error:
            raise _Retryable(f"{type(error).__name__}: {error}") from error
        finally:
            http.close()
            with self._lock:
                self.http_closed += 1

    async def _credentials(self, principal: _Principal, team_id: str) -> Any:
        if principal.kind == "oauth":
            assert principal.user_id is not None
            credentials = await self._oauth_credentials(team_id, principal.user_id)
            if credentials is None:
                raise CalendarError(
                    "Your Google Calendar is not connected; use /schedule connect first."
                )
            return credentials
        # Cached per subject so an access token serves many calls until it expires.
        with self._lock:
            cached = self._service_accounts.get(principal.subject)
            if cached is None:
                # google-auth leaves this factory unannotated.
                cached = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    self._key_info, scopes=list(SCOPES)
                )
                if principal.subject is not None:
                    cached = cached.with_subject(principal.subject)
                self._service_accounts[principal.subject] = cached
            return cached

    async def _oauth_credentials(self, team_id: str, user_id: str) -> Any:
        assert self._user_credentials is not None
        found = self._user_credentials(team_id, user_id)
        return await found if inspect.isawaitable(found) else found

    # --- explaining failures ---------------------------------------------------------------

    def _gave_up(self, plan: _Plan, failure: _Retryable) -> CalendarError:
        return CalendarError(
            f"Google Calendar is not answering right now, so Slotbot could not {plan.what}. "
            "Please try again in a few minutes.",
            hint=str(failure),
        )

    def _refused(
        self, principal: _Principal, plan: _Plan, status: int, reason: str
    ) -> CalendarError:
        who = self.service_account_email or "Slotbot's service account"
        calendar = plan.calendar
        if status in (403, 404):
            if principal.kind == "shared":
                message = (
                    f"Slotbot's Google account cannot use calendar {calendar}, so it could not "
                    f"{plan.what}. Share the calendar with {who} with “Make changes to events”."
                )
            elif principal.kind == "delegation":
                message = (
                    f"Slotbot could not {plan.what} on {principal.subject}'s calendar. A Google "
                    f"Workspace admin must grant {who} domain-wide delegation for the Calendar "
                    "scopes, and the organizer must be a user of that Workspace."
                )
            else:
                message = (
                    f"Your Google account did not let Slotbot {plan.what}. Reconnect with "
                    "/schedule connect and allow calendar access."
                )
            if status == 404 and principal.kind != "shared" and "event" in plan.what:
                message = "That event is no longer in Google Calendar, so it cannot be changed."
        elif status == 410:
            message = "That event was deleted from Google Calendar, so it cannot be changed."
        elif status == 401:
            message = (
                "Google did not accept Slotbot's credentials. Check the service account key, "
                "or reconnect with /schedule connect."
            )
        else:
            message = f"Google Calendar refused to {plan.what} (HTTP {status}, {reason})."
        return CalendarError(message, hint=f"HTTP {status} {reason}")

    def _unauthorised(
        self, principal: _Principal, error: auth_exceptions.RefreshError
    ) -> CalendarError:
        detail = str(error)
        if principal.kind == "oauth":
            message = (
                "Your Google connection has expired or was revoked; use /schedule connect to "
                "connect again."
            )
        elif principal.kind == "delegation":
            message = (
                f"Google refused to let Slotbot act as {principal.subject}. A Workspace admin "
                f"must grant {self.service_account_email} domain-wide delegation for "
                f"{', '.join(SCOPES)}."
            )
        else:
            message = (
                f"Google refused Slotbot's service account key ({self.service_account_email}); "
                "check that the key file is current and not deleted."
            )
        return CalendarError(message, hint=detail)


# --- pure helpers ---------------------------------------------------------------------------


def _pieces(start: datetime, end: datetime) -> list[TimeSlot]:
    """``[start, end)`` cut into ranges freeBusy accepts."""
    pieces = []
    cursor = start
    while cursor < end:
        stop = min(end, cursor + FREEBUSY_MAX_RANGE)
        pieces.append(TimeSlot(cursor, stop))
        cursor = stop
    return pieces


def _local(value: datetime, zone: tzinfo) -> str:
    """RFC 3339 with the offset the event's zone has at that instant, as people read it."""
    return format_datetime(value.astimezone(zone))


def _slots(entries: Iterable[Mapping[str, str]]) -> list[TimeSlot]:
    slots = []
    for entry in entries:
        start = datetime.fromisoformat(entry["start"])
        end = datetime.fromisoformat(entry["end"])
        if end > start:
            slots.append(TimeSlot(start, end))
    return slots


def _attendees(event: CalendarEvent) -> list[dict[str, Any]]:
    people: list[dict[str, Any]] = []
    seen: set[str] = set()
    everyone = ([event.organizer] if event.organizer else []) + list(event.attendees)
    for person in everyone:
        if not person.email or person.email.lower() in seen:
            continue  # without an address Google cannot place them; the .ics still names them
        seen.add(person.email.lower())
        entry: dict[str, Any] = {"email": person.email}
        if person.name:
            entry["displayName"] = person.name
        if person is event.organizer:
            entry["responseStatus"] = "accepted"
        people.append(entry)
    return people


def _instance_id(event_id: str, original_start: datetime | None) -> str:
    """The id of one instance of a recurring event: ``<eventId>_<YYYYMMDDTHHMMSSZ>``, the
    instance's original start in UTC (how Google names instances; ``events.instances`` lists
    them under these ids)."""
    if original_start is None:
        return event_id
    return f"{event_id}_{occurrence_id(original_start)}"


def _created(answer: Mapping[str, Any], calendar_id: str) -> CreatedEvent:
    event_id = str(answer["id"])
    return CreatedEvent(
        event_id=event_id,
        calendar_id=calendar_id,
        ical_uid=str(answer.get("iCalUID") or f"{event_id}@google.com"),
        html_link=answer.get("htmlLink"),
    )


def _reason(error: HttpError) -> str:
    try:
        payload = json.loads(error.content.decode("utf-8"))
        details = payload["error"].get("errors") or [{}]
        return str(details[0].get("reason") or payload["error"].get("status") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def _retry_after(error: HttpError) -> float | None:
    value = error.resp.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
