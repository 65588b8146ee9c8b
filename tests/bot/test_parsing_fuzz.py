"""Property test: whatever the text, the parser returns a sane request or a RequestError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import RequestError
from bot.models import MeetingRequest
from bot.scheduling.parsing import parse_request

ZONES = ["America/Los_Angeles", "Europe/Berlin", "Asia/Kolkata", "Australia/Sydney", "UTC"]
WORDS = [
    "tomorrow", "next", "tuesday", "at", "3pm", "9:30", "between", "and", "from", "to", "-",
    "morning", "tonight", "in", "2", "hours", "days", "week", "weekend", "month", "Dec", "3",
    "31", "feb", "12/3", "3.12.", "2026-12-03", "PT", "CET", "GMT", "by", "EOD", "after",
    "before", "30", "min", "1h30", "<@U024BE7LH>", "@ana", "about", "\"x\"", "yesterday",
    "first", "of", "the", "4th", "midnight", "noon", "~11", "0930", "17h", ",", ".", "?",
]  # fmt: skip

texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(WORDS), max_size=25).map(" ".join),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=5000, max_size=10_000),
)
instants = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, now=instants, tz=st.sampled_from(ZONES), offset=st.integers(-12, 14))
def test_any_input_gives_a_request_or_a_request_error(
    text: str, now: datetime, tz: str, offset: int
) -> None:
    """Any text, reference time and zone yields an aware, non-empty window or RequestError."""
    now = now.astimezone(timezone(timedelta(hours=offset)))
    try:
        got = parse_request(text, now, tz)
    except RequestError as error:
        assert error.user_message
        return
    assert got.window_start.utcoffset() is not None
    assert got.window_end > got.window_start
    if got.exact_start is not None:
        assert got.exact_start.utcoffset() is not None
        assert got.exact_start >= now
    assert got.time_zone == tz


def test_ten_kilobytes_of_text_returns() -> None:
    """A 10 kB message is refused as too long instead of being scanned."""
    now = datetime(2026, 11, 26, 18, 15, tzinfo=UTC)
    text = ("tomorrow at 3pm with <@U024BE7LH> " * 300)[:10_240]
    try:
        parse_request(text, now, "UTC")
    except RequestError as error:
        assert "too long" in error.user_message
    else:
        raise AssertionError("10 kB of text should be refused as too long")


# Long inputs that were the parser's slowest (filler words peeled one per pass while the end was
# rescanned: 0.3-1.3 s each; past-tense checks rescanning a sentence per match). Speed is
# measured in bench/parse_bench.py; here they must keep parsing to the same kind of result.
SLOW_BEFORE = [
    ("a " * 2000, MeetingRequest),
    ("in " * 1333, MeetingRequest),
    ("the " * 1000, MeetingRequest),
    ("_a_ " * 1000, MeetingRequest),
    ("a\n" * 2000, MeetingRequest),
    ("a, " * 1333, MeetingRequest),
    ("2 days ago " * 363, RequestError),
]


@pytest.mark.parametrize(("text", "kind"), SLOW_BEFORE, ids=lambda value: repr(value)[:12])
def test_slow_inputs_of_the_past_keep_their_result(text: str, kind: type) -> None:
    """Long repetitive filler or past phrases parse to the same kind of result as before."""
    now = datetime(2026, 11, 26, 18, 15, tzinfo=UTC)
    try:
        got: object = parse_request(text, now, "UTC")
    except RequestError as error:
        got = error
    assert isinstance(got, kind)
    if isinstance(got, MeetingRequest):
        assert got.title is None
        assert got.window_end == datetime(2026, 12, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["sync ſunday at 3pm", "review on \u212aonday", "lunch on frıday", "İn 2 hours"]
)
def test_unicode_lookalikes_read_as_their_ascii_letters(text: str) -> None:
    """Letters that match ASCII case-insensitively (ſ, Kelvin K, ı, İ) never crash the parser."""
    now = datetime(2026, 11, 26, 10, tzinfo=UTC)
    request = parse_request(text, now, "UTC")
    assert request.window_end > request.window_start
