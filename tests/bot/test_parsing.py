"""The request parser against the hand-written corpus and the rules easiest to get wrong."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.errors import RequestError
from bot.models import MeetingRequest
from bot.scheduling.parsing import MAX_LENGTH, parse_request

CORPUS = Path(__file__).parent.parent / "data" / "requests.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]

LA = "America/Los_Angeles"
THURSDAY = datetime.fromisoformat("2026-11-26T10:15:00-08:00")


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def _title_key(title: str | None) -> str | None:
    """Section 8's lenient title comparison: case, escapes, edges and leading articles."""
    if title is None:
        return None
    text = " ".join(title.replace("&amp;", "&").lower().split()).strip(" .,;:!?\"'()")
    return re.sub(r"^(?:(?:a|an|the|quick|short|brief)\s+)+", "", text)


def _parse(text: str, now: datetime = THURSDAY, tz: str = LA) -> MeetingRequest:
    return parse_request(text, now, tz)


@pytest.mark.parametrize(
    "row", ROWS, ids=[f"{i:03d}-{row['text'][:40]}" for i, row in enumerate(ROWS)]
)
def test_corpus_request(row: dict[str, Any]) -> None:
    """Each corpus request parses to its hand-computed fields (instants, sets, lenient title)."""
    assert_row_parses_as_expected(row)


def assert_row_parses_as_expected(row: dict[str, Any]) -> None:
    """A corpus row, field by field as REQUEST-LANGUAGE.md scores it: windows and exact start as
    instants, attendees as a set, the title leniently; or a RequestError where one is expected."""
    now = datetime.fromisoformat(row["now"])
    expected = row["expected"]
    if expected.get("error"):
        with pytest.raises(RequestError):
            parse_request(row["text"], now, row["tz"])
        return
    got = parse_request(row["text"], now, row["tz"])
    exact = got.exact_start.astimezone(UTC) if got.exact_start else None
    assert {
        "window_start": got.window_start.astimezone(UTC),
        "window_end": got.window_end.astimezone(UTC),
        "exact_start": exact,
        "duration_minutes": got.duration_minutes,
        "attendees": set(got.attendees),
        "title": _title_key(got.title),
    } == {
        "window_start": _instant(expected["window_start"]),
        "window_end": _instant(expected["window_end"]),
        "exact_start": _instant(expected["exact_start"]),
        "duration_minutes": expected["duration_minutes"],
        "attendees": set(expected["attendees"]),
        "title": _title_key(expected["title"]),
    }
    if "recurrence" in expected:  # rows about repeating meetings also name their RRULE
        assert list(got.recurrence) == expected["recurrence"]


def test_corpus_is_large_and_varied() -> None:
    """The corpus holds at least 300 requests across at least eight zones, with errors."""
    assert len(ROWS) >= 300
    assert len({row["tz"] for row in ROWS}) >= 8
    assert sum(1 for row in ROWS if row["expected"].get("error")) >= 20


def test_next_weekday_is_in_the_following_iso_week() -> None:
    """On Mon 2 Nov 2026 `next tuesday` is 10 Nov while bare `tuesday` is 3 Nov."""
    monday = datetime.fromisoformat("2026-11-02T09:00:00-05:00")
    assert _parse("next tuesday", monday, "America/New_York").window_start.day == 10
    assert _parse("tuesday", monday, "America/New_York").window_start.day == 3


def test_next_monday_on_a_sunday_is_the_next_day() -> None:
    """On Sun 6 Dec 2026 `next monday` is Mon 7 Dec."""
    sunday = datetime.fromisoformat("2026-12-06T16:00:00+01:00")
    got = _parse("next monday", sunday, "Europe/Berlin")
    assert got.window_start == datetime.fromisoformat("2026-12-07T00:00:00+01:00")


def test_spring_forward_gap_shifts_forward() -> None:
    """02:30 on 2027-03-14 in Chicago does not exist and becomes 03:30 CDT."""
    saturday = datetime.fromisoformat("2027-03-13T10:00:00-06:00")
    got = _parse("tomorrow at 2:30am", saturday, "America/Chicago")
    assert got.exact_start == datetime.fromisoformat("2027-03-14T03:30:00-05:00")


def test_fall_back_overlap_takes_the_first_occurrence() -> None:
    """01:30 on 2026-11-01 in Los Angeles is read as daylight time (-07:00)."""
    saturday = datetime.fromisoformat("2026-10-31T12:00:00-07:00")
    got = _parse("tomorrow at 1:30am", saturday)
    assert got.exact_start == datetime.fromisoformat("2026-11-01T01:30:00-07:00")
    assert got.window_end - got.window_start == (
        datetime.fromisoformat("2026-11-02T00:00:00-08:00")
        - datetime.fromisoformat("2026-11-01T00:00:00-07:00")
    )


def test_in_hours_is_elapsed_time_across_dst() -> None:
    """`in 24 hours` across the fall-back lands one wall-clock hour earlier."""
    saturday = datetime.fromisoformat("2026-10-31T12:00:00-07:00")
    got = _parse("in 24 hours", saturday)
    assert got.exact_start == datetime.fromisoformat("2026-11-01T11:00:00-08:00")


def test_zone_abbreviation_names_a_region() -> None:
    """`PST` in March means Los Angeles daylight time, not a fixed -08:00."""
    friday = datetime.fromisoformat("2027-03-12T15:00:00-05:00")
    got = _parse("monday 10am PST", friday, "America/New_York")
    assert got.exact_start == datetime.fromisoformat("2027-03-15T10:00:00-07:00")


def test_gmt_is_fixed_utc_even_in_british_summer() -> None:
    """`GMT` stays UTC+0 after the clocks change, unlike `UK time`."""
    friday = datetime.fromisoformat("2027-03-26T09:00:00+00:00")
    gmt = _parse("monday 2pm GMT", friday, "Europe/London")
    uk = _parse("monday 2pm UK time", friday, "Europe/London")
    assert gmt.exact_start == datetime.fromisoformat("2027-03-29T14:00:00+00:00")
    assert uk.exact_start == datetime.fromisoformat("2027-03-29T14:00:00+01:00")


@pytest.mark.parametrize(
    ("phrase", "hour", "minute"),
    [("at 3", 15, 0), ("at 4:30", 16, 30), ("at 9", 9, 0), ("at 12", 12, 0), ("at 6", 18, 0)],
)
def test_bare_hours_follow_business_context(phrase: str, hour: int, minute: int) -> None:
    """Bare hours 1–6 are afternoon, 7–11 morning and 12 is noon."""
    got = _parse(f"tomorrow {phrase}")
    assert got.exact_start is not None
    assert (got.exact_start.hour, got.exact_start.minute) == (hour, minute)


def test_tonight_makes_a_bare_hour_evening() -> None:
    """`tonight at 9:30` is 21:30 inside the 17:00–24:00 window."""
    got = _parse("tonight at 9:30")
    assert got.exact_start == datetime.fromisoformat("2026-11-26T21:30:00-08:00")


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("March offsite recap on jan 8", "March offsite recap"),
        ("2028 roadmap review next week", "2028 roadmap review"),
        ("Monday standup format chat friday 2pm", "Monday standup format chat"),
        ("90 day review tomorrow at 10", "90 day review"),
        ("yesterday's incident postmortem tomorrow at 10", "yesterday's incident postmortem"),
    ],
)
def test_date_like_words_in_a_topic_stay_in_the_title(text: str, title: str) -> None:
    """Words that look like dates but name the topic are kept in the title."""
    assert _parse(text).title == title


def test_topic_word_does_not_move_the_date() -> None:
    """`March offsite recap on jan 8` is scheduled on 8 January, not in March."""
    got = _parse("March offsite recap on jan 8")
    assert got.window_start == datetime.fromisoformat("2027-01-08T00:00:00-08:00")


def test_recurrence_is_not_the_title() -> None:
    """`weekly sync every tuesday` keeps `sync` as the title and yields an RRULE."""
    got = _parse("weekly sync every tuesday at 10")
    assert got.title == "sync"
    assert "RRULE:FREQ=WEEKLY;BYDAY=TU" in got.recurrence
    assert got.exact_start == datetime.fromisoformat("2026-12-01T10:00:00-08:00")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("weekly 1:1 with @ana on tuesdays at 10", "RRULE:FREQ=WEEKLY;BYDAY=TU"),
        ("every other friday", "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=FR"),
        ("daily standup for 2 weeks", "RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=10"),
        ("standup every day at 9:30 for 2 weeks", "RRULE:FREQ=DAILY;COUNT=14"),
        (
            "review every monday and wednesday at 9, 6 times",
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6",
        ),
        ("fortnightly retro on fridays", "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=FR"),
    ],
)
def test_a_series_is_one_rrule(text: str, rule: str) -> None:
    """Repeating phrases give exactly one RRULE: frequency, interval, days and length merged."""
    assert _parse(text).recurrence == (rule,)


def test_weekly_at_ten_on_tuesdays_is_at_ten() -> None:
    """`weekly 1:1 with @ana on tuesdays at 10`: the first Tuesday, exactly at 10:00."""
    got = _parse("weekly 1:1 with @ana on tuesdays at 10")
    assert got.exact_start == datetime.fromisoformat("2026-12-01T10:00:00-08:00")
    assert got.title == "1:1" and got.attendees == ("@ana",)


def test_a_length_without_a_rule_is_not_a_series() -> None:
    """`for 2 weeks` alone repeats nothing (no RRULE)."""
    assert _parse("offsite planning for 2 weeks").recurrence == ()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Feb 29", "does not exist"),
        ("Monday March 3", "Wednesday"),
        ("tomorrow at 25:00", "not a time"),
        ("yesterday", "past"),
        ("between 5pm and 1pm", "ends before"),
    ],
)
def test_errors_explain_and_give_an_example(text: str, words: str) -> None:
    """An impossible request raises RequestError naming the problem and showing an example."""
    with pytest.raises(RequestError) as caught:
        _parse(text)
    assert words in caught.value.user_message
    assert "For example" in caught.value.user_message


def test_too_long_text_is_refused_quickly() -> None:
    """Text over the limit is a RequestError that says it is too long."""
    with pytest.raises(RequestError, match="too long"):
        _parse("tomorrow " * (MAX_LENGTH // 4))


def test_unknown_zone_is_a_request_error() -> None:
    """An unknown or malformed IANA zone is a RequestError, not a crash."""
    for zone in ("Mars/Olympus", "", "America", "../etc/passwd"):
        with pytest.raises(RequestError):
            _parse("tomorrow", THURSDAY, zone)


def test_now_in_another_offset_uses_the_requesters_calendar() -> None:
    """`now` given in UTC still resolves `today` on the Los Angeles calendar."""
    utc_now = datetime.fromisoformat("2026-11-27T05:00:00+00:00")  # 21:00 Thursday in LA
    got = _parse("today", utc_now)
    assert got.window_end == datetime.fromisoformat("2026-11-27T00:00:00-08:00")


def test_no_date_phrase_gives_the_default_week() -> None:
    """Text with no date or time searches from now up to midnight seven days ahead."""
    got = _parse("coffee with @ana?")
    assert got.window_start == THURSDAY
    assert got.window_end == datetime.fromisoformat("2026-12-03T00:00:00-08:00")
    assert got.attendees == ("@ana",)


def test_channel_mentions_and_here_are_not_attendees() -> None:
    """`<#C…|x>` and `<!here>` are dropped; user mentions dedupe to one id each."""
    got = _parse("<!here> <#C0123ABC|design> sync <@U024BE7LH> <@U024BE7LH|jo> tomorrow")
    assert got.attendees == ("U024BE7LH",)


def test_one_on_one_is_not_a_time() -> None:
    """`1:1` names a meeting and never becomes 01:01."""
    got = _parse("1:1 with @bo tomorrow")
    assert got.exact_start is None
    assert got.title == "1:1"


def test_output_is_fixed_offset_and_serialisable() -> None:
    """Instants carry fixed UTC offsets, so ambiguous wall times compare as instants."""
    saturday = datetime.fromisoformat("2026-10-31T12:00:00-07:00")
    got = _parse("tomorrow at 1:30am", saturday)
    assert got.to_json()["exact_start"] == "2026-11-01T01:30:00-07:00"
    assert got.exact_start == datetime.fromisoformat("2026-11-01T01:30:00-07:00")
