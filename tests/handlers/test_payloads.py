"""Typed readers for Slack payloads, fed the shapes Slack really sends (built by
playground/slack_requests.py), the shapes it sends that we must ignore, and junk."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers import ids
from handlers.payloads import (
    Click,
    CommandRequest,
    MessageRequest,
    PayloadError,
    read_click,
    read_command,
    read_message,
)
from playground import slack_requests as sr

TEAM = sr.DEFAULT_WORKSPACE.team_id
BOT = sr.DEFAULT_WORKSPACE.bot_user_id
ANA = "U0ANA0001"
RESPONSE_URL = "http://127.0.0.1:9/response/abc"


# --- slash commands ---------------------------------------------------------------------------


def test_command_in_a_dm_is_read_with_trimmed_text() -> None:
    """A /schedule in the bot's DM: ids, trimmed text, and in_direct_message set."""
    fields = sr.slash_command(
        "  sync with <@U0BEN0002|ben> tomorrow  ",
        user_id=ANA,
        channel_id="D0ANA0001",
        response_url=RESPONSE_URL,
    )
    assert read_command(fields) == CommandRequest(
        team_id=TEAM,
        user_id=ANA,
        channel_id="D0ANA0001",
        text="sync with <@U0BEN0002|ben> tomorrow",
        in_direct_message=True,
    )


def test_command_in_a_channel_is_not_a_direct_message() -> None:
    """channel_name other than 'directmessage' means a channel; empty text reads as ''."""
    fields = sr.slash_command(
        "", user_id=ANA, channel_id="C0GENERAL", response_url=RESPONSE_URL, channel_name="general"
    )
    request = read_command(fields)
    assert request.in_direct_message is False
    assert request.text == ""


@pytest.mark.parametrize("missing", ["team_id", "user_id", "channel_id"])
def test_command_without_an_id_is_a_payload_error(missing: str) -> None:
    """A command lacking team, user or channel id raises PayloadError naming the field."""
    fields: dict[str, Any] = sr.slash_command(
        "x", user_id=ANA, channel_id="C0GENERAL", response_url=RESPONSE_URL
    )
    fields[missing] = ""
    with pytest.raises(PayloadError, match=missing):
        read_command(fields)
    del fields[missing]
    with pytest.raises(PayloadError, match=missing):
        read_command(fields)


# --- clicks -----------------------------------------------------------------------------------


def click_payload(**kw: Any) -> dict[str, Any]:
    action = sr.button_action("book_slot_0", "off_1:0")
    return sr.block_actions([action], user_id=ANA, response_url=RESPONSE_URL, **kw)


def test_click_in_an_ephemeral_message_has_no_message_but_a_ts() -> None:
    """An ephemeral click (no ``message`` in the payload) is ephemeral, with container ts."""
    body = click_payload(channel_id="C0GENERAL", message_ts="1700000000.000100")
    assert "message" not in body
    assert read_click(body) == Click(
        team_id=TEAM,
        user_id=ANA,
        action_id="book_slot_0",
        value="off_1:0",
        channel_id="C0GENERAL",
        message_ts="1700000000.000100",
        thread_ts=None,
        ephemeral=True,
    )


def test_click_in_a_normal_message_is_not_ephemeral() -> None:
    """A click on a posted message reads its channel and ts and is not ephemeral."""
    message = {"type": "message", "ts": "1700000000.000200", "text": "offer", "user": BOT}
    click = read_click(click_payload(channel_id="D0ANA0001", message=message))
    assert (click.channel_id, click.message_ts, click.ephemeral) == (
        "D0ANA0001",
        "1700000000.000200",
        False,
    )


def test_click_in_a_thread_reads_thread_ts_from_container_or_message() -> None:
    """thread_ts comes from the container, or else from the message."""
    message = {"type": "message", "ts": "17.2", "thread_ts": "17.1", "text": "offer"}
    assert read_click(click_payload(channel_id="C0GENERAL", message=message)).thread_ts == "17.1"
    body = click_payload(channel_id="C0GENERAL", message_ts="17.3")
    body["container"]["thread_ts"] = "17.0"
    assert read_click(body).thread_ts == "17.0"


def test_click_falls_back_to_the_users_team_and_the_channel_object() -> None:
    """Without ``team`` the user's team_id is used; without a container the channel object."""
    body = click_payload(channel_id="C0GENERAL", message_ts="17.3")
    del body["team"], body["container"]
    click = read_click(body)
    assert (click.team_id, click.channel_id, click.message_ts) == (TEAM, "C0GENERAL", None)


def test_click_without_a_value_reads_an_empty_value() -> None:
    """A button without ``value`` gives '' (the handler then refuses it as not ours)."""
    body = click_payload(channel_id="C0GENERAL", message_ts="17.3")
    del body["actions"][0]["value"]
    assert read_click(body).value == ""


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda b: b.pop("actions"), id="no actions"),
        pytest.param(lambda b: b.update(actions=[]), id="empty actions"),
        pytest.param(lambda b: b.update(actions="book_slot_0"), id="actions not a list"),
        pytest.param(lambda b: b.update(actions=["book_slot_0"]), id="action not an object"),
        pytest.param(lambda b: b["actions"][0].pop("action_id"), id="no action_id"),
        pytest.param(lambda b: b.pop("user"), id="no user"),
        pytest.param(lambda b: b["user"].update(id=""), id="empty user id"),
        pytest.param(lambda b: (b.pop("team"), b["user"].pop("team_id")), id="no team"),
    ],
)
def test_click_missing_what_every_click_has_is_a_payload_error(breakage: Any) -> None:
    """Missing actions, action_id, user or team raise PayloadError, never anything else."""
    body = click_payload(channel_id="C0GENERAL", message_ts="17.3")
    breakage(body)
    with pytest.raises(PayloadError):
        read_click(body)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("off_1:0", ("off_1", 0)),
        ("a:b:12", ("a:b", 12)),
        ("off_1:", None),
        (":3", None),
        ("off_1", None),
        ("off_1:-1", None),
        ("off_1:1234", None),
        ("off_1:\u0661", None),
        ("off_1:\u00b2", None),
        ("", None),
    ],
)
def test_slot_values_read_back_only_in_their_own_shape(
    value: str, expected: tuple[str, int] | None
) -> None:
    """A Book value is offer_id:index with 1-3 ASCII digits; anything else reads as None."""
    assert ids.read_slot_value(value) == expected


# --- messages ---------------------------------------------------------------------------------


def test_direct_message_is_read_as_is() -> None:
    """A DM to the bot keeps its text (a leading mention of someone else is not dropped)."""
    event = sr.im_message_event(
        "<@U0BEN0002> and me tomorrow", user=ANA, channel="D0ANA0001", ts="17.5"
    )
    assert read_message(event, TEAM) == MessageRequest(
        TEAM, ANA, "D0ANA0001", "<@U0BEN0002> and me tomorrow", "17.5", None
    )


@pytest.mark.parametrize(
    "text",
    [f"<@{BOT}> sync with <@U0BEN0002> 30m", f"  <@{BOT}|slotbot>: sync with <@U0BEN0002> 30m"],
)
def test_mention_drops_the_leading_bot_mention(text: str) -> None:
    """An @mention's leading ``<@BOT>`` (with label and colon) is stripped; others stay."""
    event = sr.app_mention_event(text, user=ANA, channel="C0GENERAL", ts="17.6", thread_ts="17.0")
    request = read_message(event, TEAM)
    assert request is not None
    assert request.text == "sync with <@U0BEN0002> 30m"
    assert (request.ts, request.thread_ts) == ("17.6", "17.0")


def test_team_comes_from_the_event_or_the_envelope() -> None:
    """The event's own team wins; without it the envelope's team_id; with neither, None."""
    event = sr.im_message_event("hi", user=ANA, channel="D0ANA0001", ts="17.5")
    request = read_message(event, "T0OTHER")
    assert request is not None and request.team_id == TEAM
    del event["team"]
    request = read_message(event, "T0OTHER")
    assert request is not None and request.team_id == "T0OTHER"
    assert read_message(event, None) is None


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"bot_id": "B000B0T01"}, id="bot post"),
        pytest.param({"subtype": "message_changed"}, id="edit"),
        pytest.param({"subtype": "bot_message"}, id="bot_message"),
        pytest.param({"subtype": "channel_join"}, id="join"),
        pytest.param({"user": None}, id="no user"),
        pytest.param({"ts": 17.5}, id="numeric ts"),
        pytest.param({"channel": ["D0ANA0001"]}, id="channel not a string"),
    ],
)
def test_bot_posts_subtypes_and_broken_messages_are_ignored(change: dict[str, Any]) -> None:
    """Bot messages, edits, joins and events without user/channel/ts read as None."""
    event = sr.im_message_event("sync tomorrow", user=ANA, channel="D0ANA0001", ts="17.5")
    event.update(change)
    assert read_message(event, TEAM) is None


# --- junk -------------------------------------------------------------------------------------

# Keys Slack's payloads use, so generated dicts reach past the first check.
KEYS = st.sampled_from(
    [
        "actions",
        "action_id",
        "value",
        "user",
        "id",
        "team",
        "team_id",
        "container",
        "message",
        "channel",
        "channel_id",
        "channel_name",
        "message_ts",
        "thread_ts",
        "is_ephemeral",
        "type",
        "subtype",
        "bot_id",
        "text",
        "ts",
    ]
) | st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.sampled_from(["app_mention", "directmessage", "<@U0BOT1> hi", "off:1"])
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=20,
)
REAL = [
    click_payload(channel_id="C0GENERAL", message_ts="17.3"),
    click_payload(channel_id="C0GENERAL", message={"ts": "17.2", "thread_ts": "17.1"}),
    sr.slash_command("x", user_id=ANA, channel_id="C0GENERAL", response_url=RESPONSE_URL),
    sr.app_mention_event(f"<@{BOT}> hi", user=ANA, channel="C0GENERAL", ts="17.6"),
]
# Real payloads with some fields replaced by junk reach the later checks far more often.
MANGLED = st.tuples(st.sampled_from(REAL), st.dictionaries(KEYS, JSONISH, max_size=3)).map(
    lambda pair: {**pair[0], **pair[1]}
)
PAYLOADS = st.dictionaries(KEYS, JSONISH, max_size=8) | MANGLED


@settings(max_examples=300, deadline=None)
@given(body=PAYLOADS, team=st.none() | st.text(max_size=5))
def test_arbitrary_payloads_raise_only_payload_error(
    body: dict[str, Any], team: str | None
) -> None:
    """Any JSON-ish dict gives values of the right types, None, or PayloadError, never a crash."""
    try:
        click = read_click(body)
    except PayloadError:
        pass
    else:
        assert click.team_id and click.user_id and click.action_id
        assert isinstance(click.value, str) and isinstance(click.ephemeral, bool)
        assert all(isinstance(v, str | None) for v in (click.channel_id, click.message_ts))
    try:
        command = read_command(body)
    except PayloadError:
        pass
    else:
        assert command.team_id and command.user_id and command.channel_id
        assert isinstance(command.text, str) and command.text == command.text.strip()
    message = read_message(body, team)
    if message is not None:
        assert message.team_id and isinstance(message.text, str)
        assert all(isinstance(v, str) for v in (message.user_id, message.channel_id, message.ts))
