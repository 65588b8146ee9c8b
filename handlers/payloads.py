"""Typed readers for Slack's payloads, at the edge where they arrive.

Handlers read these values instead of walking ``body[...]`` chains; a payload missing what we
need raises ``PayloadError``, which the HTTP layer or the error handler answers politely.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Click",
    "CommandRequest",
    "MessageRequest",
    "PayloadError",
    "read_click",
    "read_command",
    "read_message",
]

#: Slack's longest slash-command text is 4,000 characters; longer requests get a clear answer.
MAX_REQUEST_CHARS = 4000

_MENTION_OF = re.compile(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>[\s:,]*")


class PayloadError(ValueError):
    """A payload lacks a field every real Slack payload of its kind has."""


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"missing {key}")
    return value


def _optional(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """``/schedule <text>`` as the values the handler needs."""

    team_id: str
    user_id: str
    channel_id: str
    text: str
    in_direct_message: bool


def read_command(command: Mapping[str, Any]) -> CommandRequest:
    return CommandRequest(
        team_id=_text(command, "team_id"),
        user_id=_text(command, "user_id"),
        channel_id=_text(command, "channel_id"),
        text=str(command.get("text") or "").strip(),
        in_direct_message=command.get("channel_name") == "directmessage",
    )


@dataclass(frozen=True, slots=True)
class MessageRequest:
    """A DM to the bot or an @mention of it."""

    team_id: str
    user_id: str
    channel_id: str
    text: str
    ts: str
    thread_ts: str | None


def read_message(
    event: Mapping[str, Any], team_id: str | None, bot_user_id: str | None = None
) -> MessageRequest | None:
    """The request in a message event, or None for edits, bot posts and other non-requests.

    Mentions of the bot itself (``bot_user_id``) are dropped wherever they stand: the bot is
    addressed, never invited. Without the id, a mention event loses its first mention.
    """
    if event.get("subtype") or event.get("bot_id"):
        return None
    user, channel, ts = (_optional(event, name) for name in ("user", "channel", "ts"))
    if not (user and channel and ts):
        return None
    team = _optional(event, "team") or team_id
    if not team:
        return None
    text = str(event.get("text") or "")
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>[:,]?", " ", text)
    elif event.get("type") == "app_mention":
        text = _MENTION_OF.sub("", text, count=1)  # drop the "@Slotbot" that addressed us
    return MessageRequest(team, user, channel, text.strip(), ts, _optional(event, "thread_ts"))


@dataclass(frozen=True, slots=True)
class Click:
    """A button press: who, which button, and where the message it sits in lives."""

    team_id: str
    user_id: str
    action_id: str
    value: str
    channel_id: str | None
    message_ts: str | None
    thread_ts: str | None
    ephemeral: bool


def read_click(body: Mapping[str, Any]) -> Click:
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], Mapping):
        raise PayloadError("missing actions")
    action = actions[0]
    user = _mapping(body, "user")
    team = _optional(_mapping(body, "team"), "id") or _optional(user, "team_id")
    if not team:
        raise PayloadError("missing team")
    container = _mapping(body, "container")
    message = _mapping(body, "message")
    channel = _optional(container, "channel_id") or _optional(_mapping(body, "channel"), "id")
    return Click(
        team_id=team,
        user_id=_text(user, "id"),
        action_id=_text(action, "action_id"),
        value=str(action.get("value") or ""),
        channel_id=channel,
        message_ts=_optional(container, "message_ts") or _optional(message, "ts"),
        thread_ts=_optional(container, "thread_ts") or _optional(message, "thread_ts"),
        ephemeral=bool(container.get("is_ephemeral")) or not message,
    )
