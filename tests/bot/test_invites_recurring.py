"""Invites for recurring meetings: a series with EXDATE and a moved occurrence in one REQUEST,
and the CANCEL of one occurrence by RECURRENCE-ID; each checked by libical."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.invites import InviteDetails, InviteParty, build_invite
from tests.ical_check import libical_report

FIRST = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 16:00 Berlin
WEEK = timedelta(days=7)
SERIES = InviteDetails(
    uid="series-1@slotbot.local",
    title="sync",
    start=FIRST,
    end=FIRST + timedelta(minutes=30),
    time_zone="Europe/Berlin",
    organizer=InviteParty("Ana", "ana@example.com"),
    attendees=(InviteParty("Ben", "ben@example.com"),),
    sequence=2,
    rrule="RRULE:FREQ=WEEKLY;BYDAY=TU",
)
STAMP = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def utc(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def test_series_with_a_moved_and_a_cancelled_occurrence_is_one_valid_request() -> None:
    """The series skips the cancelled meeting (EXDATE) and carries the moved one as its own
    VEVENT: same UID, RECURRENCE-ID of its original start, the new time."""
    moved_from, moved_to = FIRST + WEEK, FIRST + WEEK + timedelta(days=1)
    occurrence = replace(
        SERIES,
        rrule=None,
        start=moved_to,
        end=moved_to + timedelta(minutes=30),
        recurrence_id=moved_from,
    )
    series = replace(SERIES, exdates=(FIRST + 2 * WEEK,))
    report = libical_report(build_invite(series, stamp=STAMP, occurrences=[occurrence]))
    assert report["errors"] == [] and report["method"] == "REQUEST"
    whole, one = report["events"]
    assert whole["rrule"] == "FREQ=WEEKLY;BYDAY=TU" and whole["recurrence_id"] is None
    assert [utc(d) for d in whole["exdates"]] == [FIRST + 2 * WEEK]
    assert one["uid"] == whole["uid"] and one["rrule"] is None
    assert utc(one["recurrence_id"]) == moved_from and utc(one["dtstart"]) == moved_to
    assert one["sequence"] == whole["sequence"] == 2


def test_cancel_of_one_occurrence_names_it_by_recurrence_id() -> None:
    """RFC 5546 3.2.5: METHOD:CANCEL, the series' UID, RECURRENCE-ID, no RRULE."""
    original = FIRST + 2 * WEEK
    one = replace(
        SERIES,
        rrule=None,
        start=original,
        end=original + timedelta(minutes=30),
        recurrence_id=original,
        sequence=3,
    )
    report = libical_report(build_invite(one, method="CANCEL", stamp=STAMP))
    assert report["errors"] == [] and report["method"] == "CANCEL"
    [event] = report["events"]
    assert utc(event["recurrence_id"]) == original and event["rrule"] is None
    assert event["status"] == "CANCELLED" and event["sequence"] == 3


def test_an_occurrence_needs_the_series_uid_and_no_rrule() -> None:
    """Mismatched UIDs or an RRULE on one occurrence are refused before any bytes exist."""
    with pytest.raises(ValueError, match="RECURRENCE-ID"):
        build_invite(SERIES, stamp=STAMP, occurrences=[replace(SERIES, rrule=None)])
    with pytest.raises(ValueError, match="RRULE"):
        replace(SERIES, recurrence_id=FIRST)
