"""The ``Messenger`` over Slack: DMs posted now or scheduled with ``chat.scheduleMessage``, and
``follow_up``, which the click, the settings form and the reconcile call once a booking or a
person's settings changed, to bring reminders and notices in step.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import datetime

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.models import Booking
from bot.scheduling.reminders import MessageRefused, Note, Reminders
from handlers import blocks
from handlers.directory import PeopleCache, SlackDirectory

__all__ = ["SlackMessenger", "follow_up"]

logger = logging.getLogger("slotbot.reminders")

#: Slack's answers that mean the person cannot get the message, whatever we try.
_UNDELIVERABLE = {
    "channel_not_found",
    "user_not_found",
    "user_disabled",
    "cannot_dm_bot",
    "is_archived",
    "not_in_channel",
    "restricted_action",
    "messages_tab_disabled",
}


class SlackMessenger:
    """Direct messages from the bot through one workspace's Web API client."""

    def __init__(self, client: AsyncWebClient, dms: MutableMapping[str, str] | None = None) -> None:
        self._client = client
        # A person's DM with the bot never changes: opened once per process and person.
        self._dms: MutableMapping[str, str] = {} if dms is None else dms

    def text(self, note: Note) -> str:
        return blocks.note_text(note)

    async def direct_channel(self, user_id: str) -> str:
        known = self._dms.get(user_id)
        if known is not None:
            return known
        try:
            opened = await self._client.conversations_open(users=user_id)
        except SlackApiError as exc:
            raise _refusal(exc) from None
        channel = self._dms[user_id] = str((opened.get("channel") or {})["id"])
        return channel

    async def post(self, channel: str, text: str) -> None:
        try:
            await self._client.chat_postMessage(channel=channel, text=text)
        except SlackApiError as exc:
            raise _refusal(exc) from None

    async def schedule(self, channel: str, text: str, post_at: datetime) -> str:
        try:
            answer = await self._client.chat_scheduleMessage(
                channel=channel, text=text, post_at=int(post_at.timestamp())
            )
        except SlackApiError as exc:
            raise _refusal(exc) from None
        return str(answer["scheduled_message_id"])

    async def unschedule(self, channel: str, message_id: str) -> None:
        try:
            await self._client.chat_deleteScheduledMessage(
                channel=channel, scheduled_message_id=message_id
            )
        except SlackApiError as exc:
            # Already posted, or deleted: either way it is not waiting any more.
            if exc.response.get("error") != "invalid_scheduled_message_id":
                raise

    async def scheduled_at(self, channel: str, post_at: datetime) -> list[tuple[str, str]]:
        second = int(post_at.timestamp())
        found: list[tuple[str, str]] = []
        cursor: str | None = None
        for _ in range(20):  # pages of 100: the bot's messages waiting in one DM at one second
            answer = await self._client.chat_scheduledMessages_list(
                # Slack wants oldest before latest, so a second either side, then the exact one.
                channel=channel,
                oldest=str(second - 1),
                latest=str(second + 1),
                limit=100,
                cursor=cursor,
            )
            for message in answer.get("scheduled_messages") or []:
                if int(message.get("post_at") or 0) == second:
                    found.append((str(message["id"]), str(message.get("text") or "")))
            cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return found


def _refusal(exc: SlackApiError) -> Exception:
    error = exc.response.get("error")
    if error == "time_too_far":
        return MessageRefused("too_far")
    if error == "time_in_past":
        return MessageRefused("in_past")
    if error in _UNDELIVERABLE:
        return MessageRefused("undeliverable")
    return exc  # anything else (rate limits, Slack down) is worth another try later


async def follow_up(
    reminders: Reminders,
    client: AsyncWebClient,
    people: PeopleCache,
    team_id: str,
    key: str,
    booking: Booking | None = None,
) -> None:
    """Bring one booking's reminders and notices in step, after the click's own answer went
    out; failures are logged and left for the reconcile, never shown to the clicker."""
    messenger = SlackMessenger(client, people.direct_channels(team_id))
    await reminders.sync(messenger, SlackDirectory(client, people), team_id, key, booking)
