"""Invites: .ics files for REQUEST / CANCEL / PUBLISH, checked by icalendar and by libical."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest

from bot.invites import InviteDetails, InviteParty, build_feed, build_invite, invite_filename
from tests.ical_check import libical_report

DATA = Path(__file__).parent.parent / "data" / "invites"
STAMP = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOSTILE = (
    'Plan, v2; C:\\Notes\\N "q"\r\nATTENDEE:mailto:evil@x.com\nORGANIZER:mailto:evil@x.com'
    "\rEND:VEVENT"
)


def design_review(**changes: object) -> InviteDetails:
    """The named sample booking used across the tests."""
    details = InviteDetails(
        uid="b3f1c2d4e5@slotbot",
        title="Design review",
        start=datetime(2026, 12, 1, 15, 0, tzinfo=BERLIN),
        end=datetime(2026, 12, 1, 16, 0, tzinfo=BERLIN),
        time_zone="Europe/Berlin",
        organizer=InviteParty("Olga Organizer", "olga@example.com"),
        attendees=(
            InviteParty("Ann Attendee", "ann@example.com"),
            InviteParty("Bob (no email)", None),
        ),
        description="Walk through the new onboarding flow.",
        location="Room 4.01",
        url="https://slotbot.example/b/b3f1c2d4e5",
    )
    return replace(details, **changes)  # type: ignore[arg-type]


def parse_event(data: bytes) -> icalendar.Event:
    """The single VEVENT of an .ics file, parsed by icalendar."""
    events = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert len(events) == 1
    return events[0]


def assert_valid(report: dict[str, object]) -> None:
    """libical found no error."""
    assert report["errors"] == [], report["errors"]


def test_request_matches_the_golden_sample() -> None:
    """The sample REQUEST is byte-for-byte the reviewed fixture file (deterministic output)."""
    data = build_invite(design_review(), stamp=STAMP)
    assert data == (DATA / "design-review-request.ics").read_bytes()
    assert build_invite(design_review(), stamp=STAMP) == data


def test_request_is_a_valid_itip_request() -> None:
    """libical accepts the REQUEST under iTIP rules and reads back its UID, SEQUENCE and start."""
    report = libical_report(build_invite(design_review(), stamp=STAMP))
    assert_valid(report)
    assert report["method"] == "REQUEST"
    assert report["uid"] == "b3f1c2d4e5@slotbot"
    assert report["sequence"] == 0
    assert report["summary"] == "Design review"
    assert report["dtstart"] == "20261201T140000Z"


def test_calendar_and_event_carry_the_template_properties() -> None:
    """Calendar header and the seed's CLASS, DESCRIPTION, LOCATION, SUMMARY;LANGUAGE are set."""
    data = build_invite(design_review(), stamp=STAMP)
    calendar = icalendar.Calendar.from_ical(data)
    assert calendar["PRODID"] == "-//Slotbot//Slotbot 0.1//EN"
    assert calendar["VERSION"] == "2.0"
    assert calendar["CALSCALE"] == "GREGORIAN"
    assert calendar["METHOD"] == "REQUEST"
    event = parse_event(data)
    assert event["CLASS"] == "PUBLIC"
    assert event["SUMMARY"].params["LANGUAGE"] == "en-us"
    assert event["LOCATION"] == "Room 4.01"
    assert event["URL"] == "https://slotbot.example/b/b3f1c2d4e5"
    assert event["STATUS"] == "CONFIRMED"
    assert event["DTSTAMP"].dt == STAMP
    assert b"DTSTART;TZID=Europe/Berlin:20261201T150000\r\n" in data
    assert event["ORGANIZER"] == "mailto:olga@example.com"
    assert event["ORGANIZER"].params["CN"] == "Olga Organizer"


def test_attendees_need_action_and_the_organizer_chairs() -> None:
    """Each emailed attendee gets ROLE, PARTSTAT=NEEDS-ACTION, RSVP=TRUE; the organizer is CHAIR."""
    attendees = parse_event(build_invite(design_review(), stamp=STAMP))["ATTENDEE"]
    by_address = {str(a): a.params for a in attendees}
    assert set(by_address) == {"mailto:olga@example.com", "mailto:ann@example.com"}
    ann = by_address["mailto:ann@example.com"]
    assert (ann["CN"], ann["ROLE"], ann["PARTSTAT"], ann["RSVP"]) == (
        "Ann Attendee",
        "REQ-PARTICIPANT",
        "NEEDS-ACTION",
        "TRUE",
    )
    assert by_address["mailto:olga@example.com"]["ROLE"] == "CHAIR"


def test_attendees_without_email_are_named_in_the_description_only() -> None:
    """No ATTENDEE line for people without a usable email; their names go into DESCRIPTION."""
    details = design_review(
        attendees=(
            InviteParty("Bob", None),
            InviteParty("Eve", "eve@x.com\r\nATTENDEE:mailto:mallory@x.com"),
            InviteParty("Ann", "ann@example.com"),
            InviteParty("Ann again", "ANN@example.com"),
        )
    )
    data = build_invite(details, stamp=STAMP)
    event = parse_event(data)
    assert [str(a) for a in event["ATTENDEE"]] == [
        "mailto:olga@example.com",
        "mailto:ann@example.com",
    ]
    assert str(event["DESCRIPTION"]).endswith("Also invited: Bob, Eve")
    assert b"mallory" not in data
    assert_valid(libical_report(data))


def test_only_the_organizer_with_an_email_still_makes_a_valid_request() -> None:
    """With no emailed attendee the REQUEST still satisfies iTIP's one-or-more ATTENDEE rule."""
    data = build_invite(design_review(attendees=(InviteParty("Bob", None),)), stamp=STAMP)
    report = libical_report(data)
    assert_valid(report)
    assert report["events"][0]["attendees"] == ["mailto:olga@example.com"]


def test_organizer_without_email_is_refused() -> None:
    """iTIP needs an ORGANIZER address, so an organizer without one raises ValueError."""
    details = design_review(organizer=InviteParty("Olga", None))
    for method in ("REQUEST", "CANCEL", "PUBLISH"):
        with pytest.raises(ValueError, match="organizer's email"):
            build_invite(details, method=method, stamp=STAMP)  # type: ignore[arg-type]


def test_cancel_pairs_with_the_request() -> None:
    """CANCEL keeps the UID, raises SEQUENCE by one, says STATUS:CANCELLED and passes iTIP."""
    request = libical_report(build_invite(design_review(), stamp=STAMP))
    cancel_data = build_invite(
        design_review(sequence=1), method="CANCEL", stamp=STAMP + timedelta(hours=2)
    )
    cancel = libical_report(cancel_data)
    assert_valid(request)
    assert_valid(cancel)
    assert cancel["method"] == "CANCEL"
    assert cancel["uid"] == request["uid"]
    assert cancel["sequence"] == request["sequence"] + 1
    assert cancel["events"][0]["status"] == "CANCELLED"
    assert parse_event(cancel_data)["DTSTAMP"].dt == STAMP + timedelta(hours=2)


def test_moved_meeting_is_a_request_with_a_higher_sequence() -> None:
    """Moving a meeting re-sends REQUEST with the same UID, the new time and SEQUENCE+1."""
    moved = design_review(
        start=datetime(2026, 12, 2, 10, 0, tzinfo=BERLIN),
        end=datetime(2026, 12, 2, 10, 30, tzinfo=BERLIN),
        sequence=1,
    )
    report = libical_report(build_invite(moved, stamp=STAMP))
    assert_valid(report)
    assert (report["uid"], report["sequence"]) == ("b3f1c2d4e5@slotbot", 1)
    assert report["dtstart"] == "20261202T090000Z"


def test_validator_reports_a_broken_invite() -> None:
    """The libical check fails a REQUEST whose ATTENDEE lines were removed (it can say no)."""
    data = build_invite(design_review(), stamp=STAMP)
    unfolded = data.replace(b"\r\n ", b"")
    broken = b"".join(
        line + b"\r\n" for line in unfolded.split(b"\r\n")[:-1] if not line.startswith(b"ATTENDEE")
    )
    report = libical_report(broken)
    assert any("ATTENDEE" in error for error in report["errors"])


def test_vtimezone_is_bounded_to_the_years_needed() -> None:
    """A one-off December meeting gets Berlin's rules for that year only, with both DST changes."""
    data = build_invite(design_review(), stamp=STAMP)
    (zone,) = icalendar.Calendar.from_ical(data).walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/Berlin"
    onsets = [part["DTSTART"].dt for part in zone.subcomponents]
    for part in zone.subcomponents:
        for rdate in part.get("RDATE", []) if isinstance(part.get("RDATE"), list) else []:
            onsets.extend(p.dt for p in rdate.dts)
    assert {onset.year for onset in onsets} == {2026}
    # RFC 5545 3.6.5: onsets are local times in the offset before the change.
    assert datetime(2026, 3, 29, 2, 0) in onsets
    assert datetime(2026, 10, 25, 3, 0) in onsets


def test_weekly_meeting_across_dst_keeps_its_wall_time() -> None:
    """A New York weekly RRULE over the March change: VTIMEZONE for 2027 only, read right."""
    details = design_review(
        start=datetime(2027, 2, 23, 10, 0, tzinfo=NEW_YORK),
        end=datetime(2027, 2, 23, 11, 0, tzinfo=NEW_YORK),
        time_zone="America/New_York",
        rrule="RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=10",
    )
    data = build_invite(details, stamp=STAMP)
    report = libical_report(data)
    assert_valid(report)
    assert report["dtstart"] == "20270223T150000Z"
    assert b"RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=TU\r\n" in data
    zone_text = data.split(b"BEGIN:VTIMEZONE")[1].split(b"END:VTIMEZONE")[0]
    assert b"TZID:America/New_York" in zone_text
    assert set(re.findall(rb"(?:DTSTART|RDATE):(\d{4})", zone_text)) == {b"2027"}
    assert b"20270314T020000" in zone_text  # spring forward, local standard time
    assert b"TZOFFSETTO:-0400" in zone_text


def test_recurrence_reaching_into_next_year_widens_the_vtimezone() -> None:
    """A COUNT that runs past New Year adds that year's transitions, and no more."""
    details = design_review(rrule="FREQ=WEEKLY;COUNT=20")
    zone_text = build_invite(details, stamp=STAMP).split(b"END:VTIMEZONE")[0]
    assert set(re.findall(rb"(?:DTSTART|RDATE):(\d{4})", zone_text)) == {b"2026", b"2027"}


def test_rrule_with_or_without_prefix_is_the_same() -> None:
    """ "RRULE:FREQ=…" and "FREQ=…" produce identical files."""
    with_prefix = build_invite(design_review(rrule="RRULE:FREQ=DAILY;COUNT=3"), stamp=STAMP)
    without = build_invite(design_review(rrule="FREQ=DAILY;COUNT=3"), stamp=STAMP)
    assert with_prefix == without


def test_rrule_until_date_becomes_utc() -> None:
    """A date-only UNTIL becomes the end of that local day in UTC, as RFC 5545 requires."""
    data = build_invite(design_review(rrule="FREQ=WEEKLY;UNTIL=20261222"), stamp=STAMP)
    assert b"RRULE:FREQ=WEEKLY;UNTIL=20261222T225959Z\r\n" in data
    assert_valid(libical_report(data))


@pytest.mark.parametrize(
    "rule",
    ["", "BYDAY=TU", "FREQ=WEEKLY;COUNT=2;UNTIL=20270101", "FREQ=DAILY\r\nATTENDEE:mailto:x@y.z"],
)
def test_bad_rrules_are_refused(rule: str) -> None:
    """An RRULE without FREQ, with COUNT and UNTIL, or with a line break raises ValueError."""
    with pytest.raises(ValueError):
        build_invite(design_review(rrule=rule or " "), stamp=STAMP)


def test_utc_zone_uses_z_times_without_vtimezone() -> None:
    """For "UTC" the times end in Z and no VTIMEZONE is written."""
    details = design_review(time_zone="UTC")
    data = build_invite(details, stamp=STAMP)
    assert b"BEGIN:VTIMEZONE" not in data
    assert b"DTSTART:20261201T140000Z\r\n" in data
    assert b"DTEND:20261201T150000Z\r\n" in data
    assert_valid(libical_report(data))


@pytest.mark.parametrize("utc_hour", [0, 1])
def test_repeated_hour_is_written_in_utc(utc_hour: int) -> None:
    """Either 02:30 of Berlin's autumn night is written in UTC, which no client can misread."""
    instant = datetime(2026, 10, 25, utc_hour, 30, tzinfo=UTC)  # 02:30 CEST, then 02:30 CET
    later = instant + timedelta(hours=2)
    data = build_invite(design_review(start=instant, end=later), stamp=STAMP)
    assert f"DTSTART:20261025T0{utc_hour}3000Z\r\n".encode() in data
    assert b"DTEND;TZID=Europe/Berlin:" in data  # an hour later is unambiguous again
    assert libical_report(data)["dtstart"] == f"20261025T0{utc_hour}3000Z"


def test_nonexistent_wall_time_is_normalised() -> None:
    """A start given in Berlin's spring gap is written as the real instant's wall time."""
    gap = datetime(2026, 3, 29, 2, 30, tzinfo=BERLIN)  # does not exist; Python reads +01:00
    data = build_invite(design_review(start=gap, end=gap + timedelta(hours=1)), stamp=STAMP)
    assert b"DTSTART;TZID=Europe/Berlin:20260329T033000\r\n" in data
    assert libical_report(data)["dtstart"] == "20260329T013000Z"


def test_libical_reads_every_instant_as_we_meant_it() -> None:
    """Around DST changes in odd zones, libical's reading of DTSTART equals the instant given."""
    zones = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "Europe/Dublin",
        "America/Sao_Paulo",
        "Asia/Kolkata",
    ]
    instants = [
        datetime(2026, month, day, hour, minute, tzinfo=UTC)
        for month, day in ((3, 8), (3, 29), (4, 5), (9, 27), (10, 4), (10, 25), (11, 1))
        for hour, minute in ((0, 30), (1, 0), (1, 59), (2, 0), (6, 15), (13, 45), (15, 0))
    ]
    events = [
        design_review(
            uid=f"{zone}-{index}",
            start=instant,
            end=instant + timedelta(minutes=45),
            time_zone=zone,
        )
        for zone in zones
        for index, instant in enumerate(instants)
    ]
    report = libical_report(build_feed(events, stamp=STAMP), feed=True)
    assert_valid(report)
    read = {event["uid"]: event["dtstart"] for event in report["events"]}
    expected = {e.uid: e.start.strftime("%Y%m%dT%H%M%SZ") for e in events}
    assert read == expected


def test_hostile_text_cannot_add_properties() -> None:
    """Commas, semicolons, backslashes, CR/LF in user text round-trip and inject nothing."""
    details = design_review(
        uid="u;1,\\x\r\nX-EVIL:1",
        title=HOSTILE,
        description=HOSTILE,
        location=HOSTILE,
        organizer=InviteParty(HOSTILE, "olga@example.com"),
        attendees=(InviteParty(HOSTILE, "ann@example.com"), InviteParty(HOSTILE, None)),
    )
    data = build_invite(details, stamp=STAMP)
    plain = build_invite(
        design_review(attendees=(InviteParty("Ann", "ann@example.com"),)), stamp=STAMP
    )
    event = parse_event(data)
    names = [
        line.split(b":")[0].split(b";")[0] for line in data.replace(b"\r\n ", b"").split(b"\r\n")
    ]
    plain_names = [
        line.split(b":")[0].split(b";")[0] for line in plain.replace(b"\r\n ", b"").split(b"\r\n")
    ]
    assert names == plain_names  # same properties, in the same order, none added
    expected_text = HOSTILE.replace("\r\n", "\n").replace("\r", "\n")
    assert str(event["SUMMARY"]) == expected_text
    assert str(event["LOCATION"]) == expected_text
    assert str(event["DESCRIPTION"]).startswith(expected_text)
    assert [str(a) for a in event["ATTENDEE"]] == [
        "mailto:olga@example.com",
        "mailto:ann@example.com",
    ]
    report = libical_report(data)
    assert_valid(report)
    assert report["summary"] == expected_text
    assert report["uid"] == "u;1,\\x\nX-EVIL:1"
    plain_count = libical_report(plain)["events"][0]["property_count"]
    assert report["events"][0]["property_count"] == plain_count


def test_backslash_n_in_text_stays_a_backslash() -> None:
    """ "C:\\Notes" survives (icalendar's own escaping would turn "\\N" into a line break)."""
    data = build_invite(design_review(title="C:\\Notes"), stamp=STAMP)
    assert b"SUMMARY;LANGUAGE=en-us:C:\\\\Notes\r\n" in data
    assert str(parse_event(data)["SUMMARY"]) == "C:\\Notes"
    assert libical_report(data)["summary"] == "C:\\Notes"


def test_control_characters_are_dropped() -> None:
    """Control characters other than line breaks and tab never reach the file."""
    data = build_invite(design_review(title="be\x07ll\x00 \x1b[31mred\tx"), stamp=STAMP)
    assert str(parse_event(data)["SUMMARY"]) == "bell [31mred\tx"
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", data)


def test_long_lines_fold_at_75_octets_with_crlf() -> None:
    """Every physical line is at most 75 octets, ends in CRLF, and multibyte text is unharmed."""
    title = " ".join(["Квартальный обзор 日本語の会議 🎉"] * 8)
    data = build_invite(design_review(title=title, description="x" * 500), stamp=STAMP)
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    assert all(len(line) <= 75 for line in lines)
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    for line in lines:
        line.decode("utf-8")  # a fold never splits a character
    assert str(parse_event(data)["SUMMARY"]) == title
    report = libical_report(data)
    assert_valid(report)
    assert report["summary"] == title


def test_missing_title_reads_meeting_and_empty_fields_are_left_out() -> None:
    """A None title becomes "Meeting"; empty DESCRIPTION/LOCATION/URL are not written."""
    details = design_review(title=None, description="", location="", url=None, attendees=())
    data = build_invite(details, stamp=STAMP)
    event = parse_event(data)
    assert event["SUMMARY"] == "Meeting"
    assert "DESCRIPTION" not in event and "LOCATION" not in event and "URL" not in event
    assert_valid(libical_report(data))


def test_publish_lists_no_attendees() -> None:
    """PUBLISH has no ATTENDEE (RFC 5546 3.2.1), names everyone in DESCRIPTION, and passes iTIP."""
    data = build_invite(design_review(), method="PUBLISH", stamp=STAMP)
    event = parse_event(data)
    assert "ATTENDEE" not in event
    assert str(event["DESCRIPTION"]).endswith("Also invited: Ann Attendee, Bob (no email)")
    report = libical_report(data)
    assert_valid(report)
    assert report["method"] == "PUBLISH"


def test_feed_holds_many_events_and_one_vtimezone_per_zone() -> None:
    """A feed is one PUBLISH calendar with every booking and one VTIMEZONE per zone used."""
    events = [
        design_review(),
        design_review(uid="second@slotbot", time_zone="America/New_York"),
        design_review(uid="third@slotbot", time_zone="UTC"),
    ]
    data = build_feed(events, stamp=STAMP, name="Olga's meetings")
    calendar = icalendar.Calendar.from_ical(data)
    assert calendar["X-WR-CALNAME"] == "Olga's meetings"
    assert sorted(z["TZID"] for z in calendar.walk("VTIMEZONE")) == [
        "America/New_York",
        "Europe/Berlin",
    ]
    report = libical_report(data, feed=True)
    assert_valid(report)
    assert [e["uid"] for e in report["events"]] == [e.uid for e in events]


def test_naive_datetimes_are_refused() -> None:
    """A naive start or stamp raises ValueError rather than guessing a zone."""
    with pytest.raises(ValueError, match="aware"):
        design_review(start=datetime(2026, 12, 1, 15, 0))
    with pytest.raises(ValueError, match="aware"):
        build_invite(design_review(), stamp=datetime(2026, 11, 26, 12, 0))


def test_bad_url_is_refused() -> None:
    """A URL that is not http(s) or holds a line break raises ValueError."""
    for url in ("javascript:alert(1)", "https://x.example/\r\nATTENDEE:mailto:e@x.com"):
        with pytest.raises(ValueError, match="URL"):
            build_invite(design_review(url=url), stamp=STAMP)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Design review", "design-review-2026-12-01.ics"),
        (None, "meeting-2026-12-01.ics"),
        ("../../etc/passwd", "etc-passwd-2026-12-01.ics"),
        ("Café: Q&A / Planung", "cafe-q-a-planung-2026-12-01.ics"),
        ("日本語", "meeting-2026-12-01.ics"),
        ("CON\x00\r\n.ics", "con-ics-2026-12-01.ics"),
        ("a" * 200, "a" * 60 + "-2026-12-01.ics"),
    ],
)
def test_filename_is_safe(title: str | None, expected: str) -> None:
    """File names are lowercase ASCII slugs plus the start date, never a path."""
    name = invite_filename(title, datetime(2026, 12, 1, 15, 0, tzinfo=BERLIN))
    assert name == expected
    assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*-\d{4}-\d{2}-\d{2}\.ics", name)
