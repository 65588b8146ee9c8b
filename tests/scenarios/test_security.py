"""Security end to end: user text stays data (mrkdwn and .ics), logs keep no bodies or secrets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from icalendar import Calendar

from bot.logs import configure_logging
from playground import slack_requests
from tests.ical_check import libical_report
from tests.scenarios.harness import (
    ANA,
    BEN,
    SECRET,
    Harness,
    offer_from_ephemeral,
    start_harness,
    stop_harness,
)


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await start_harness(tmp_path)
    yield harness
    await stop_harness(harness)


async def book_first_slot(bot: Harness, text: str) -> None:
    await bot.command(text)
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    assert offer.buttons("book_slot"), offer.text()
    await bot.click(offer, offer.buttons("book_slot")[0])
    await bot.wait_for("files.completeUploadExternal")
    await bot.settle()


async def test_a_title_cannot_ping_or_break_messages(bot: Harness) -> None:
    """<!channel>, <!here>, <@U…> and & < > in a title are shown, never acted on, anywhere."""
    # What Slack sends when someone types "<!channel> & <b>plan</b>" inside quotes.
    typed = "&lt;!channel&gt; &lt;!here&gt; &amp; &lt;b&gt;plan&lt;/b&gt;"
    await book_first_slot(bot, f'"{typed}" with <@{BEN.id}> tomorrow <!here> afternoon')
    outgoing = [c for c in bot.slack.calls() if c.method != "users.info"]
    rendered = " ".join(str(c.params) for c in outgoing)
    assert "&lt;!channel&gt;" in rendered and "&lt;b&gt;plan" in rendered
    for raw in ("<!channel>", "<!here>", "<b>"):
        assert raw not in rendered, f"{raw} reached Slack unescaped"


async def test_crlf_in_a_title_cannot_inject_ics_properties(bot: Harness) -> None:
    """A title carrying CR/LF and property text stays one SUMMARY; the invite stays valid."""
    injected = "review\r\nATTENDEE:mailto:evil@example.com\r\nMETHOD:CANCEL"
    await book_first_slot(bot, f'"{injected}" with <@{BEN.id}> tomorrow afternoon')
    [upload] = [f for f in bot.slack.uploaded_files() if f.completed]
    assert upload.content is not None
    calendar = Calendar.from_ical(upload.content)
    assert str(calendar["METHOD"]) == "REQUEST"
    [event] = calendar.walk("VEVENT")
    attendees = [str(a).lower() for a in event.get("ATTENDEE")]
    assert "mailto:evil@example.com" not in attendees
    assert libical_report(upload.content)["errors"] == []


async def test_logs_keep_no_message_bodies_or_secrets(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, a booking and a forged request log neither what people typed nor tokens."""
    caplog.set_level(logging.DEBUG)
    configure_logging("DEBUG")
    marker = "zebra-confidential-agenda"
    await book_first_slot(bot, f"{marker} with <@{BEN.id}> tomorrow afternoon")
    forged = slack_requests.signed_slash_command(
        slack_requests.slash_command(
            f"{marker} again", user_id=ANA.id, channel_id=bot.channel, response_url="http://x/"
        ),
        secret="not-the-secret",
    )
    assert (await bot.post(forged)).status == 401
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records, "debug logging was on"
    for secret in (marker, bot.slack.token, SECRET):
        assert secret not in text


async def test_an_oversized_request_gets_a_clear_answer(bot: Harness) -> None:
    """More than 4,000 characters: told the limit, nothing offered, nothing booked."""
    await bot.command("sync with <@U0BEN0002> tomorrow " + "blah " * 1000)
    await bot.settle()
    note = bot.latest_ephemeral()
    assert "too long" in note.text.lower() and "limit is 4" in note.text
    assert not bot.slack.uploaded_files()
