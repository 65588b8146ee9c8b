"""Where Slotbot speaks: offers to the requester and replacements of the messages they sit in.

The one place that knows Slack's delivery rules: ephemeral offers are replaced through the
click's ``response_url`` (their click payload has no ``message``), normal ones with
``chat.update``. Invites and confirmations of bookings go through ``handlers.delivery``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["Place", "conversation_link", "post_to", "replace_message"]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a request came from and so where its answers go."""

    channel_id: str
    user_id: str
    thread_ts: str | None = None
    private: bool = True  # answer ephemerally, only the requester sees it


async def post_to(
    client: AsyncWebClient,
    place: Place,
    *,
    text: str,
    blocks: Sequence[Block] | None = None,
    respond: AsyncRespond | None = None,
) -> str | None:
    """Post a message for the requester at ``place``; the ts of a normal message, else None."""
    if place.private:
        if respond is not None:
            await respond(text=text, blocks=blocks, response_type="ephemeral")
            return None
        await client.chat_postEphemeral(
            channel=place.channel_id,
            user=place.user_id,
            text=text,
            blocks=blocks,
            thread_ts=place.thread_ts,
        )
        return None
    response = await client.chat_postMessage(
        channel=place.channel_id, text=text, blocks=blocks, thread_ts=place.thread_ts
    )
    ts = response.get("ts")
    return ts if isinstance(ts, str) else None


async def replace_message(
    client: AsyncWebClient,
    respond: AsyncRespond,
    *,
    ephemeral: bool,
    channel_id: str | None,
    message_ts: str | None,
    text: str,
    blocks: Sequence[Block],
) -> None:
    """Replace the message a button sat in: ephemeral through response_url, else chat.update."""
    if ephemeral or not (channel_id and message_ts):
        await respond(text=text, blocks=blocks, replace_original=True)
        return
    await client.chat_update(channel=channel_id, ts=message_ts, text=text, blocks=blocks)


async def conversation_link(
    client: AsyncWebClient, team_id: str, channel_id: str | None, message_ts: str | None
) -> str | None:
    """A link back to where a meeting was asked for: the message's permalink when it has one
    (a thread, a DM), else Slack's deep link to the channel; None without a channel."""
    if not channel_id:
        return None
    if message_ts:
        try:
            found = await client.chat_getPermalink(channel=channel_id, message_ts=message_ts)
            link = found.get("permalink")
            if isinstance(link, str) and link:
                return link
        except SlackApiError:
            pass  # an ephemeral or deleted message has no permalink: the channel will do
    return "https://slack.com/app_redirect?" + urlencode({"team": team_id, "channel": channel_id})
