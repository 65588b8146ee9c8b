"""The vocabulary: the seed's schedule object shape, RFC 3339 formatting, aware-only values."""

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.models import (
    MeetingRequest,
    Participant,
    ScheduleObject,
    SchedulePoint,
    TimeSlot,
    WorkingHours,
    format_datetime,
    wall_to_instant,
)

SEED = Path(__file__).parents[1] / "data" / "seed_schedule_object.json"
CHICAGO = "America/Chicago"


def test_seed_sample_round_trips_byte_for_byte() -> None:
    """The seed guide's sample schedule object survives a JSON round trip unchanged."""
    text = SEED.read_text().strip()
    again = json.dumps(ScheduleObject.loads(text).to_json(), separators=(",", ":"))
    assert again == text


def test_seed_sample_reads_as_the_right_instants() -> None:
    """The sample is 20:00–21:00 UTC on 30 March 2021 with the seed's recurrence kept."""
    obj = ScheduleObject.loads(SEED.read_text())
    assert obj.slot == TimeSlot(
        datetime(2021, 3, 30, 20, tzinfo=UTC), datetime(2021, 3, 30, 21, tzinfo=UTC)
    )
    assert obj.recurrence == 364
    assert obj.calendar_event_id == "" and obj.calendar_id == ""


def test_format_datetime_is_rfc3339_with_offset() -> None:
    """FORMAT_DATETIME gives RFC 3339: Z for UTC, the zone's offset in force otherwise."""
    summer = SchedulePoint(2026, 7, 1, 9, 30, 0, 0, CHICAGO)
    winter = SchedulePoint(2026, 12, 1, 9, 30, 0, 0, CHICAGO)
    utc = SchedulePoint(2021, 3, 30, 20, 0, 0, 0, "UTC")
    assert format_datetime(summer) == "2026-07-01T09:30:00-05:00"
    assert format_datetime(winter) == "2026-12-01T09:30:00-06:00"
    assert format_datetime(utc) == "2021-03-30T20:00:00Z"
    assert format_datetime(SchedulePoint(2026, 1, 2, 3, 4, 5, 678, "Asia/Kolkata")) == (
        "2026-01-02T03:04:05.678+05:30"
    )


def test_schedule_object_from_slot_uses_the_named_zone() -> None:
    """A slot becomes wall-clock fields in the organizer's zone, and back to the same instants."""
    slot = TimeSlot(
        datetime(2026, 12, 1, 15, tzinfo=UTC), datetime(2026, 12, 1, 15, 45, tzinfo=UTC)
    )
    obj = ScheduleObject.from_slot(slot, "Europe/Berlin", calendar_event_id="abc", calendar_id="c")
    data = obj.to_json()
    assert data["start_time"]["time"]["hour"] == 16
    assert data["end_time"]["time"]["minute"] == 45
    assert data["start_time"]["timeZone"] == "Europe/Berlin"
    assert ScheduleObject.from_json(data).slot == slot


def test_naive_datetimes_are_refused() -> None:
    """Every value refuses a naive datetime instead of guessing a zone."""
    naive = datetime(2026, 12, 1, 9)
    with pytest.raises(ValueError, match="aware"):
        TimeSlot(naive, naive + timedelta(hours=1))
    with pytest.raises(ValueError, match="aware"):
        SchedulePoint.from_datetime(naive, "UTC")
    with pytest.raises(ValueError, match="aware"):
        MeetingRequest(naive, naive + timedelta(days=1))


def test_schedule_object_must_end_after_start() -> None:
    """An end before the start, or an unknown zone, is rejected when read."""
    start = SchedulePoint(2026, 12, 1, 10, 0, time_zone="UTC")
    with pytest.raises(ValueError):
        ScheduleObject(start, start)
    bad = ScheduleObject(start, SchedulePoint(2026, 12, 1, 11, 0, time_zone="UTC")).to_json()
    bad["start_time"]["timeZone"] = "Mars/Olympus"
    with pytest.raises(KeyError):
        ScheduleObject.from_json(bad)


def test_wall_time_in_dst_gap_shifts_forward() -> None:
    """02:30 on the spring-forward night in Chicago is 03:30 CDT (RFC 5545)."""
    instant = wall_to_instant(datetime(2027, 3, 14, 2, 30), CHICAGO)
    assert instant.astimezone(ZoneInfo(CHICAGO)).replace(tzinfo=None) == datetime(
        2027, 3, 14, 3, 30
    )
    assert instant.utcoffset() == timedelta(hours=-5)


def test_wall_time_in_dst_overlap_takes_first_occurrence() -> None:
    """01:30 on the fall-back night in Chicago is the first 01:30, daylight time (-05:00)."""
    instant = wall_to_instant(datetime(2027, 11, 7, 1, 30), CHICAGO)
    assert instant.astimezone(UTC) == datetime(2027, 11, 7, 6, 30, tzinfo=UTC)


def test_working_hours_follow_each_persons_zone_across_dst() -> None:
    """09:00–17:00 in New York is 14:00–22:00 UTC before the US change and 13:00–21:00 after."""
    hours = WorkingHours()
    before = hours.intervals_on(datetime(2026, 10, 30).date(), "America/New_York")
    after = hours.intervals_on(datetime(2026, 11, 2).date(), "America/New_York")
    assert before[0].start.astimezone(UTC).hour == 13
    assert after[0].start.astimezone(UTC).hour == 14
    assert hours.intervals_on(datetime(2026, 11, 1).date(), "America/New_York") == []


def test_working_hours_to_midnight_and_validation() -> None:
    """An end of 00:00 means the end of the day; a backwards interval is rejected."""
    late = WorkingHours.uniform(time(18), time(0), weekdays=(5,))
    (interval,) = late.intervals_on(datetime(2026, 11, 28).date(), "UTC")
    assert interval.duration == timedelta(hours=6)
    with pytest.raises(ValueError):
        WorkingHours.uniform(time(17), time(9))


def test_participant_rejects_unknown_zone() -> None:
    """A participant's zone must be a real IANA zone."""
    with pytest.raises(KeyError):
        Participant("U1", "Europe/Atlantis")
