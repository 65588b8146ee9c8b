"""Block Kit for the Google parts: connect link, unreadable calendars' reasons, shared mode."""

from __future__ import annotations

import json

from handlers import blocks


def as_text(content: list[object]) -> str:
    return json.dumps([b.to_dict() for b in content])  # type: ignore[attr-defined]


def test_the_connect_link_is_a_link_with_its_limits_explained() -> None:
    """The link is escaped into mrkdwn and the answer says it is single-use and short-lived."""
    text = as_text(blocks.connect_blocks("https://s.example/google/oauth/start?state=a&b", 10))
    assert "<https://s.example/google/oauth/start?state=a&amp;b|Connect your Google Calendar>" in (
        text
    )
    assert "works once, for 10 minutes" in text and "/schedule disconnect" in text


def test_disconnect_answers_say_what_happened() -> None:
    """Not connected, revoked, or forgotten without Google's answer: three distinct replies."""
    assert "nothing to disconnect" in blocks.disconnected_text(False, False)
    assert "Google has withdrawn" in blocks.disconnected_text(True, True)
    assert "myaccount.google.com/permissions" in blocks.disconnected_text(True, False)
    assert "nothing for you to connect" in blocks.nothing_to_connect_text("google")
    assert "its own calendar" in blocks.nothing_to_connect_text("local")
