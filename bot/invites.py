"""iCalendar invites (RFC 5545 / iTIP RFC 5546): the .ics file Slotbot uploads for a booking.

REQUEST for a new or moved meeting, CANCEL for a cancelled one, PUBLISH for a read-only feed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import islice
from typing import Literal
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from icalendar import (
    Calendar,
    Event,
    Timezone,
    TimezoneDaylight,
    TimezoneStandard,
    vCalAddress,
    vRecur,
    vText,
)

from bot.models import require_aware, zone_of

__all__ = [
    "PRODID",
    "InviteDetails",
    "InviteParty",
    "Method",
    "build_feed",
    "build_invite",
    "invite_filename",
]

PRODID = "-//Slotbot//Slotbot 0.1//EN"
Method = Literal["REQUEST", "CANCEL", "PUBLISH"]

# An open-ended RRULE has no last year; its VTIMEZONE covers this many years after the start.
# Clients that know the IANA TZID (Google, Outlook, Apple) use their own rules beyond it anyway.
RECURRENCE_HORIZON_YEARS = 10
_MAX_YEARS = 50

# Conservative address check: anything else could smuggle ';', ':' or a line break into a URI
# value, which the library writes verbatim (a CAL-ADDRESS is not TEXT and is not escaped).
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
# Controls other than TAB and line breaks are not allowed in TEXT at all (RFC 5545 3.3.11).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SLUG_DROP = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class InviteParty:
    """A person on an invite; without an email they are named in the description only."""

    name: str
    email: str | None


@dataclass(frozen=True, slots=True)
class InviteDetails:
    """Everything one VEVENT says; ``uid`` stays the same across the meeting's lifecycle."""

    uid: str
    title: str | None  # None -> "Meeting"
    start: datetime  # aware
    end: datetime  # aware
    time_zone: str  # organizer's IANA zone, used for TZID
    organizer: InviteParty
    attendees: tuple[InviteParty, ...]
    description: str = ""
    location: str = ""
    url: str | None = None
    sequence: int = 0
    rrule: str | None = None  # "RRULE:FREQ=..." or "FREQ=..."
    #: Occurrences the series skips (cancelled on their own): EXDATE.
    exdates: tuple[datetime, ...] = ()
    #: Set for one occurrence of a series (same UID): its original start, RECURRENCE-ID.
    recurrence_id: datetime | None = None

    def __post_init__(self) -> None:
        require_aware(self.start, "start")
        require_aware(self.end, "end")
        if self.end <= self.start:
            raise ValueError("an invite must end after it starts")
        if self.sequence < 0:
            raise ValueError("SEQUENCE cannot be negative")
        if not self.uid.strip():
            raise ValueError("an invite needs a UID")
        zone_of(self.time_zone)  # raises for an unknown zone name
        if self.recurrence_id is not None:
            require_aware(self.recurrence_id, "recurrence_id")
            if self.rrule:
                raise ValueError("one occurrence (RECURRENCE-ID) carries no RRULE")
        for moment in self.exdates:
            require_aware(moment, "exdate")


class _Text(vText):
    """TEXT escaped per RFC 5545 3.3.11 only.

    icalendar 7's escaping first turns a literal ``\\N`` into a line break, so ``C:\\Notes``
    would come back as ``C:`` + newline + ``otes``; this keeps the backslash.
    """

    __slots__ = ()

    def to_ical(self) -> bytes:
        text = (
            str(self)
            .replace("\\", "\\\\")
            .replace(";", "\\;")
            .replace(",", "\\,")
            .replace("\r\n", "\\n")
            .replace("\n", "\\n")
            .replace("\r", "\\n")
        )
        return text.encode("utf-8")


def build_invite(
    details: InviteDetails,
    *,
    method: Method = "REQUEST",
    stamp: datetime,
    occurrences: Sequence[InviteDetails] = (),
) -> bytes:
    """The .ics bytes for one booking: REQUEST (new or moved), CANCEL, or PUBLISH.

    ``stamp`` becomes DTSTAMP. Every iTIP method needs the organizer's email; without a
    usable one this raises ``ValueError``, as it does for a malformed RRULE or URL.
    ``occurrences`` follow ``details`` (a series) as VEVENTs of their own: the occurrences
    moved on their own, each with the series' UID and its RECURRENCE-ID (RFC 5545 3.8.4.4).
    A CANCEL of one occurrence is ``details`` with ``recurrence_id`` (RFC 5546 3.2.5).
    """
    if method not in ("REQUEST", "CANCEL", "PUBLISH"):
        raise ValueError(f"unsupported iTIP method {method!r}")
    for occurrence in occurrences:
        if occurrence.recurrence_id is None or occurrence.uid != details.uid:
            raise ValueError("an occurrence needs the series' UID and a RECURRENCE-ID")
    calendar = _new_calendar(method)
    for part in (details, *occurrences):
        calendar.add_component(_event(part, method, stamp))
    return _with_timezones(calendar, [details, *occurrences])


def build_feed(
    events: Sequence[InviteDetails],
    *,
    stamp: datetime,
    name: str | None = None,
) -> bytes:
    """A PUBLISH calendar of many bookings (a user's feed), one VTIMEZONE per zone used."""
    calendar = _new_calendar("PUBLISH")
    if name:
        calendar.add("X-WR-CALNAME", _Text(_clean_text(name)))
    for details in events:
        calendar.add_component(_event(details, "PUBLISH", stamp))
    return _with_timezones(calendar, events)


def invite_filename(title: str | None, start: datetime) -> str:
    """A safe ASCII file name such as ``design-review-2026-12-01.ics`` (date as of ``start``)."""
    require_aware(start, "start")
    ascii_title = (
        unicodedata.normalize("NFKD", title or "").encode("ascii", "ignore").decode().lower()
    )
    slug = _SLUG_DROP.sub("-", ascii_title).strip("-")[:60].rstrip("-") or "meeting"
    return f"{slug}-{start.date().isoformat()}.ics"


# --- components -------------------------------------------------------------------------------


def _new_calendar(method: Method) -> Calendar:
    calendar = Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("CALSCALE", "GREGORIAN")
    calendar.add("METHOD", method)
    return calendar


def _event(details: InviteDetails, method: Method, stamp: datetime) -> Event:
    stamp = require_aware(stamp, "stamp")
    event = Event()
    event.add("UID", _Text(_clean_text(details.uid)))
    event.add("DTSTAMP", stamp.astimezone(UTC).replace(microsecond=0))
    event.add("DTSTART", _event_time(details.start, details.time_zone))
    event.add("DTEND", _event_time(details.end, details.time_zone))
    if details.recurrence_id is not None:
        event.add("RECURRENCE-ID", _event_time(details.recurrence_id, details.time_zone))
    if details.rrule:
        event.add("RRULE", _recurrence(details.rrule, details.time_zone))
        for moment in details.exdates:
            event.add("EXDATE", _event_time(moment, details.time_zone))
    title = _clean_text(details.title or "").strip() or "Meeting"
    event.add("SUMMARY", _Text(title), {"LANGUAGE": "en-us"})

    organizer_email = _usable_email(details.organizer.email)
    invited = _unique_with_email(details.attendees, organizer_email)
    if method == "PUBLISH":
        # RFC 5546 3.2.1: a published event carries no ATTENDEE; name everyone instead.
        listed = {id(party) for party, _ in invited}
        unlisted = [
            p.name for p in details.attendees if id(p) in listed or not _usable_email(p.email)
        ]
    else:
        unlisted = [p.name for p in details.attendees if _usable_email(p.email) is None]
    if organizer_email is None:
        # iTIP (RFC 5546 3.2) requires an ORGANIZER for PUBLISH, REQUEST and CANCEL alike.
        raise ValueError(f"METHOD:{method} needs the organizer's email address")
    # Empty TEXT is legal but libical drops it with an error, so leave absent ones out.
    description = _description(details.description, unlisted)
    if description:
        event.add("DESCRIPTION", _Text(description))
    location = _clean_text(details.location).strip()
    if location:
        event.add("LOCATION", _Text(location))
    event.add("CLASS", "PUBLIC")
    event.add("ORGANIZER", _address(details.organizer.name, organizer_email))
    if method != "PUBLISH":
        # The organizer attends as CHAIR, as RFC 5546's examples do; this also gives a
        # REQUEST its required ATTENDEE when nobody else has an email address.
        chair = _address(details.organizer.name, organizer_email)
        chair.params.update({"ROLE": "CHAIR", "PARTSTAT": "ACCEPTED", "RSVP": "FALSE"})
        event.add("ATTENDEE", chair)
        for party, email in invited:
            attendee = _address(party.name, email)
            attendee.params.update(
                {"ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE"}
            )
            event.add("ATTENDEE", attendee)
    event.add("SEQUENCE", details.sequence)
    event.add("STATUS", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    if details.url:
        event.add("URL", _checked_url(details.url))
    return event


def _event_time(value: datetime, time_zone: str) -> datetime:
    # Seconds only: iCalendar DATE-TIME has no fractions.
    tz = zone_of(time_zone)
    # Through UTC: astimezone() to the datetime's own zone would keep a wall time that does
    # not exist (spring gap) as it is.
    utc = value.astimezone(UTC).replace(microsecond=0)
    local = utc.astimezone(tz)
    ambiguous = local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset()
    if not isinstance(tz, ZoneInfo) or ambiguous:
        # UTC zone, or a wall time the autumn change repeats: RFC 5545 reads it as the first
        # pass, libical as the second, so only UTC with Z means the same to every client.
        return utc
    return local  # written with TZID=<key>, matched by our VTIMEZONE


def _usable_email(email: str | None) -> str | None:
    if email is None:
        return None
    email = email.strip()
    return email if _EMAIL.fullmatch(email) else None


def _unique_with_email(
    parties: tuple[InviteParty, ...], organizer_email: str | None
) -> list[tuple[InviteParty, str]]:
    seen = {organizer_email.lower()} if organizer_email else set()
    result = []
    for party in parties:
        email = _usable_email(party.email)
        if email is not None and email.lower() not in seen:
            seen.add(email.lower())
            result.append((party, email))
    return result


def _address(name: str, email: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    display = _single_line(name)
    if display:
        address.params["CN"] = display
    return address


def _clean_text(text: str) -> str:
    return _CONTROL.sub("", text)


def _single_line(text: str) -> str:
    return " ".join(_clean_text(text).split())


def _description(text: str, unlisted: Sequence[str]) -> str:
    body = _clean_text(text).strip()
    names = [n for n in (_single_line(name) for name in unlisted) if n]
    if names:
        also = "Also invited: " + ", ".join(names)
        body = f"{body}\n\n{also}" if body else also
    return body


def _checked_url(url: str) -> str:
    url = url.strip()
    # A URI value is written verbatim, so whitespace or controls would break the line.
    if not re.fullmatch(r"https?://[^\s\x00-\x1f\x7f]+", url):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


# --- recurrence -------------------------------------------------------------------------------


def _rule_text(rule: str) -> str:
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :]
    if not text or any(c in text for c in "\r\n:"):
        raise ValueError(f"not a single RRULE: {rule!r}")
    return text


def _recurrence(rule: str, time_zone: str) -> vRecur:
    recur: vRecur = vRecur.from_ical(_rule_text(rule))
    if "FREQ" not in recur:
        raise ValueError(f"an RRULE needs FREQ: {rule!r}")
    if "UNTIL" in recur and "COUNT" in recur:
        raise ValueError(f"an RRULE has UNTIL or COUNT, not both: {rule!r}")
    until = recur.get("UNTIL")
    if until:
        # RFC 5545: with a zoned DTSTART, UNTIL must be a UTC DATE-TIME.
        recur["UNTIL"] = [_until_utc(value, time_zone) for value in until]
    return recur


def _until_utc(value: date | datetime, time_zone: str) -> datetime:
    tz = zone_of(time_zone)
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(23, 59, 59), tzinfo=tz)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _last_year(details: InviteDetails) -> int:
    """The last local year an occurrence of the event touches (the VTIMEZONE must cover it)."""
    tz = zone_of(details.time_zone)
    duration = details.end - details.start
    end_year = details.end.astimezone(tz).year
    if not details.rrule:
        return end_year
    recur = _recurrence(details.rrule, details.time_zone)
    start = _event_time(details.start, details.time_zone)
    cap = start.year + _MAX_YEARS
    last: datetime | None = None
    if "UNTIL" in recur:
        last = max(recur["UNTIL"])
    elif "COUNT" in recur:
        for occurrence in islice(rrulestr(_rule_text(details.rrule), dtstart=start), 100_000):
            last = occurrence
            if occurrence.year > cap:
                break
    if last is None:
        return min(start.year + RECURRENCE_HORIZON_YEARS, cap)
    return min(max(end_year, (last + duration).astimezone(tz).year), cap)


# --- time zones -------------------------------------------------------------------------------


def _with_timezones(calendar: Calendar, events: Sequence[InviteDetails]) -> bytes:
    """``calendar`` as bytes, with a VTIMEZONE for each zone ``events`` use before its first
    VEVENT (RFC 5545 3.6.5). A zone's VTIMEZONE for given years is the same in every invite:
    it is serialized once (a third of an invite's serializing time otherwise)."""
    body = bytes(calendar.to_ical())
    zones = b"".join(_vtimezone_ical(*zone) for zone in _timezones(events))
    if not zones:
        return body
    at = body.index(b"BEGIN:VEVENT\r\n")
    return body[:at] + zones + body[at:]


def _timezones(events: Sequence[InviteDetails]) -> list[tuple[str, int, int]]:
    """The zones ``events`` use, each with the first and last year it must cover."""
    years: dict[str, tuple[int, int]] = {}
    for details in events:
        tz = zone_of(details.time_zone)
        if not isinstance(tz, ZoneInfo):
            continue
        first = details.start.astimezone(tz).year
        last = _last_year(details)
        known = years.get(tz.key)
        years[tz.key] = (
            (first, last) if known is None else (min(known[0], first), max(known[1], last))
        )
    return [(key, first, last) for key, (first, last) in sorted(years.items())]


@lru_cache(maxsize=256)
def _vtimezone_ical(key: str, first_year: int, last_year: int) -> bytes:
    return bytes(_vtimezone(key, first_year, last_year).to_ical())


def _vtimezone(key: str, first_year: int, last_year: int) -> Timezone:
    """A VTIMEZONE for ``key`` valid from 1 January ``first_year`` through ``last_year``.

    Built from the zone's UTC transitions rather than ``Timezone.from_tzid``: icalendar 7.3
    dates a spring-forward onset at the new wall time (03:00 for Berlin), an hour late;
    RFC 5545 3.6.5 wants the onset in the old offset (02:00).
    """
    tz = Timezone()
    tz.add("TZID", key)
    tz.add("COMMENT", f"Valid from {first_year}-01-01 to {last_year + 1}-01-01.")
    groups: dict[tuple[timedelta, timedelta, str, bool], list[datetime]] = {}
    for onset, offset_from, offset_to, name, is_dst in _observances(key, first_year, last_year):
        groups.setdefault((offset_from, offset_to, name, is_dst), []).append(onset)
    for (offset_from, offset_to, name, is_dst), onsets in groups.items():
        part = TimezoneDaylight() if is_dst else TimezoneStandard()
        part.add("DTSTART", onsets[0])
        if onsets[1:]:
            part.add("RDATE", onsets[1:])
        part.add("TZNAME", name)
        part.add("TZOFFSETFROM", offset_from)
        part.add("TZOFFSETTO", offset_to)
        tz.add_component(part)
    return tz


_Observance = tuple[datetime, timedelta, timedelta, str, bool]


@lru_cache(maxsize=256)
def _observances(key: str, first_year: int, last_year: int) -> tuple[_Observance, ...]:
    """(local onset, offset from, offset to, name, is DST) for the years, oldest first."""
    zone = ZoneInfo(key)
    begin = datetime(first_year, 1, 1, tzinfo=zone)
    finish = datetime(last_year + 1, 1, 1, tzinfo=zone).astimezone(UTC)

    def state(instant: datetime) -> tuple[timedelta, str, bool]:
        local = instant.astimezone(zone)
        return (local.utcoffset() or timedelta(0), local.tzname() or "", bool(local.dst()))

    offset, name, is_dst = state(begin)
    result: list[_Observance] = [(begin.replace(tzinfo=None), offset, offset, name, is_dst)]
    cursor = begin.astimezone(UTC)
    step = timedelta(days=1)
    while cursor < finish:
        following = cursor + step
        if state(following) != (offset, name, is_dst):
            # Bisect to the minute: every zone changes on a whole minute.
            low, high = cursor, following
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                middle = middle.replace(second=0, microsecond=0)
                if middle <= low:
                    middle = low + timedelta(minutes=1)
                if state(middle) == (offset, name, is_dst):
                    low = middle
                else:
                    high = middle
            new_offset, new_name, new_dst = state(high)
            # RFC 5545 3.6.5: the onset is local time in the offset in effect before it.
            onset = (high + offset).replace(tzinfo=None)
            result.append((onset, offset, new_offset, new_name, new_dst))
            offset, name, is_dst = new_offset, new_name, new_dst
        cursor = following
    return tuple(result)
