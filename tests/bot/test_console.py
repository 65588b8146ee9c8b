"""The local console: the whole flow without Slack, on SQLite, with demo colleagues."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from icalendar import Calendar

from bot.config import Settings
from bot.console import run_console

# Wednesday 25 November 2026, 08:00 UTC.
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


async def converse(tmp_path: Path, lines: list[str]) -> str:
    settings = Settings.from_env(
        {"SLOTBOT_DATA_DIR": str(tmp_path), "SLOTBOT_DEFAULT_TZ": "Europe/London"}, dotenv=None
    )
    out = io.StringIO()
    code = await run_console(settings, io.StringIO("\n".join(lines) + "\n"), out, clock=lambda: NOW)
    assert code == 0
    return out.getvalue()


async def test_request_pick_and_get_an_invite_file(tmp_path: Path) -> None:
    """A request lists numbered slots around Ana's meeting; picking one writes a valid .ics."""
    text = await converse(tmp_path, ["design review with @ana 45m tomorrow afternoon", "1"])
    assert "design review · 45 min · with Ana" in text
    # Ana (Berlin) has her team meeting 10:00–11:00 Berlin = 09:00–10:00 London: never offered.
    assert "1. Thu 26 Nov 12:00–12:45  Ana 13:00" in text
    [invite] = (tmp_path / "invites").glob("*.ics")
    event = Calendar.from_ical(invite.read_bytes()).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == "design review"
    assert event.decoded("DTSTART") == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def test_a_booked_time_is_not_offered_again(tmp_path: Path) -> None:
    """After booking, the same request offers other times: the local calendar holds the event."""
    first = await converse(tmp_path, ["design review with @ana 45m tomorrow afternoon", "1"])
    again = await converse(tmp_path, ["design review with @ana 45m tomorrow afternoon"])
    assert "Thu 26 Nov 12:00–12:45" in first
    assert "Thu 26 Nov 12:00–12:45" not in again


async def test_bad_input_and_no_overlap_are_explained(tmp_path: Path) -> None:
    """Past dates, unknown people and non-overlapping hours get a sentence, not a crash."""
    text = await converse(
        tmp_path, ["sync yesterday", "lunch with @zed tomorrow", "sync with @chen tomorrow", "9"]
    )
    assert "already in the past" in text
    assert "couldn't find @zed" in text
    assert "No time fits" in text and "Tokyo" in text
    assert not (tmp_path / "invites").exists()
