"""Requests Slack sends to a Bolt app: signed slash commands, interactions and Events API calls.

Builders return plain payloads in Slack's shapes; ``signed_*`` wrap them into body bytes plus
headers carrying a valid ``X-Slack-Signature``. Free of pytest, like the emulator.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "DEFAULT_WORKSPACE",
    "SignedRequest",
    "Workspace",
    "app_home_opened_event",
    "app_mention_event",
    "block_actions",
    "button_action",
    "event_callback",
    "im_message_event",
    "sign",
    "signed_event",
    "signed_interaction",
    "signed_slash_command",
    "slash_command",
    "url_verification",
]

JSON = dict[str, Any]

# The deprecated verification token still rides in every payload; Bolt ignores it.
_VERIFICATION_TOKEN = "legacy-verification-token"


@dataclass(frozen=True)
class Workspace:
    """Who the requests come from; the defaults match :class:`SlackEmulator`'s."""

    team_id: str = "T000TEAM1"
    team_domain: str = "slotbot-dev"
    api_app_id: str = "A000APP01"
    bot_user_id: str = "U000B0T01"


DEFAULT_WORKSPACE = Workspace()


@dataclass(frozen=True)
class SignedRequest:
    """A body and the headers Slack would send with it."""

    body: bytes
    headers: dict[str, str]


def sign(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """The ``X-Slack-Signature`` (v0, HMAC-SHA256 of ``v0:{ts}:{body}``) and timestamp headers."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(timestamp)}


def _signed(body: bytes, content_type: str, secret: str, timestamp: int | None) -> SignedRequest:
    # Bolt refuses timestamps more than five minutes old, so the default is now.
    stamp = int(time.time()) if timestamp is None else timestamp
    return SignedRequest(body, {"Content-Type": content_type, **sign(body, secret, stamp)})


# --- slash commands -------------------------------------------------------------------------


def slash_command(
    text: str,
    *,
    user_id: str,
    channel_id: str,
    response_url: str,
    trigger_id: str = "1111.2222.slashtrigger",
    command: str = "/schedule",
    user_name: str = "",
    channel_name: str = "directmessage",
    workspace: Workspace = DEFAULT_WORKSPACE,
) -> dict[str, str]:
    """The form fields of a slash command invocation."""
    return {
        "token": _VERIFICATION_TOKEN,
        "team_id": workspace.team_id,
        "team_domain": workspace.team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": workspace.api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def signed_slash_command(
    fields: Mapping[str, str], *, secret: str, timestamp: int | None = None
) -> SignedRequest:
    """A slash command as Slack posts it: form-encoded and signed."""
    return _signed(
        urlencode(fields).encode(), "application/x-www-form-urlencoded", secret, timestamp
    )


# --- interactions ---------------------------------------------------------------------------


def button_action(
    action_id: str,
    value: str,
    *,
    block_id: str = "actions",
    text: str = "Button",
    action_ts: str | None = None,
) -> JSON:
    """One entry of a ``block_actions`` payload's ``actions``: a clicked button."""
    return {
        "type": "button",
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "value": value,
        "action_ts": action_ts or f"{time.time():.6f}",
    }


def block_actions(
    actions: Sequence[JSON],
    *,
    user_id: str,
    channel_id: str | None,
    response_url: str | None,
    message: JSON | None = None,
    message_ts: str | None = None,
    trigger_id: str = "3333.4444.actiontrigger",
    view: JSON | None = None,
    user_name: str = "",
    workspace: Workspace = DEFAULT_WORKSPACE,
) -> JSON:
    """A ``block_actions`` payload for a click in a message, an ephemeral message or a view.

    Pass ``message`` (the message JSON, e.g. from ``chat.postMessage``'s answer) for a normal
    message; only ``message_ts`` for an ephemeral one (Slack then sends no ``message``);
    ``view`` for a click inside a modal or the Home tab.
    """
    payload: JSON = {
        "type": "block_actions",
        "user": {
            "id": user_id,
            "username": user_name or user_id.lower(),
            "name": user_name or user_id.lower(),
            "team_id": workspace.team_id,
        },
        "api_app_id": workspace.api_app_id,
        "token": _VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "team": {"id": workspace.team_id, "domain": workspace.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": {}},
        "actions": list(actions),
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id", "")}
        payload["view"] = view
    else:
        ts = message["ts"] if message is not None else message_ts
        if ts is None or channel_id is None:
            raise ValueError("a message click needs channel_id and message or message_ts")
        payload["container"] = {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel_id,
            "is_ephemeral": message is None,
        }
        if message is not None:
            payload["message"] = message
    if channel_id is not None:
        payload["channel"] = {"id": channel_id, "name": "directmessage"}
    if response_url is not None:
        payload["response_url"] = response_url
    return payload


def signed_interaction(
    payload: Mapping[str, Any], *, secret: str, timestamp: int | None = None
) -> SignedRequest:
    """An interaction as Slack posts it: one form field ``payload`` holding JSON, signed."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return _signed(body, "application/x-www-form-urlencoded", secret, timestamp)


# --- Events API -----------------------------------------------------------------------------


def im_message_event(
    text: str, *, user: str, channel: str, ts: str, workspace: Workspace = DEFAULT_WORKSPACE
) -> JSON:
    """A ``message`` event from a person in the bot's IM (``channel_type: "im"``)."""
    return {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "channel_type": "im",
        "team": workspace.team_id,
    }


def app_mention_event(
    text: str,
    *,
    user: str,
    channel: str,
    ts: str,
    thread_ts: str | None = None,
    workspace: Workspace = DEFAULT_WORKSPACE,
) -> JSON:
    """An ``app_mention`` event; ``text`` should contain ``<@{bot_user_id}>`` as Slack's does."""
    event: JSON = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "team": workspace.team_id,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def app_home_opened_event(
    *, user: str, channel: str, tab: str = "home", event_ts: str | None = None
) -> JSON:
    """An ``app_home_opened`` event for the Home (or Messages) tab."""
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": channel,
        "tab": tab,
        "event_ts": event_ts or f"{time.time():.6f}",
    }


_event_numbers = itertools.count(1)


def event_callback(
    event: JSON,
    *,
    event_id: str | None = None,
    event_time: int | None = None,
    workspace: Workspace = DEFAULT_WORKSPACE,
) -> JSON:
    """The ``event_callback`` envelope around an event; ``event_id`` is unique unless given."""
    return {
        "token": _VERIFICATION_TOKEN,
        "team_id": workspace.team_id,
        "api_app_id": workspace.api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_numbers):010X}",
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": workspace.team_id,
                "user_id": workspace.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def url_verification(challenge: str) -> JSON:
    """The handshake Slack sends when a Request URL is saved."""
    return {"token": _VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}


def signed_event(
    payload: Mapping[str, Any], *, secret: str, timestamp: int | None = None
) -> SignedRequest:
    """An Events API request as Slack posts it: a JSON body, signed."""
    return _signed(json.dumps(payload).encode(), "application/json", secret, timestamp)
