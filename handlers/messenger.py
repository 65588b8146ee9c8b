"""The ``Messenger`` over Slack: DMs posted now or scheduled with ``chat.scheduleMessage``;
``follow_up``, with which the reconcile brings a booking's reminders and notices in step; and
``FollowUps``, which does the same after clicks, in batches behind the clicks' own answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import MutableMapping
from datetime import datetime

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.models import Booking
from bot.scheduling.reminders import MessageRefused, Note, Reminders
from handlers import blocks
from handlers.directory import PeopleCache, SlackDirectory
from handlers.errors import WorkQueue, work_queue

__all__ = ["FollowUps", "SlackMessenger", "follow_up"]

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
) -> None:
    """Bring one booking's reminders and notices in step; failures are logged and left for the
    next round."""
    messenger = SlackMessenger(client, people.direct_channels(team_id))
    await reminders.sync(messenger, SlackDirectory(client, people), team_id, key)


class FollowUps:
    """The reminders and notices that clicks leave owing, brought in step in batches.

    A click hands its booking over (``add``) once its confirmation is out, and is done. One
    task per event loop then takes its turn in the work queue like any listener's work (every
    waiting ack first, then a slot, in arrival order) and brings every booking handed over so
    far in step at once: one read of everyone's settings and one statement per step for all
    their rows (``Reminders.sync_bookings``), however many clicks came in together. The queue
    counts the batch as work in hand until it is done, so stopping waits for it. Nothing is
    lost if the process dies first: the reconcile finds bookings whose messages are behind.
    """

    def __init__(self, reminders: Reminders, people: PeopleCache) -> None:
        self._reminders = reminders
        self._people = people
        self._waiting: list[tuple[AsyncWebClient, str, str, Booking | None]] = []
        self._runner: asyncio.Task[None] | None = None

    def add(
        self, client: AsyncWebClient, team_id: str, key: str, booking: Booking | None = None
    ) -> None:
        """Owe the booking's follow-up (``booking`` as just stored; read again if None)."""
        self._waiting.append((client, team_id, key, booking))
        if self._runner is None or self._runner.done():
            queue = work_queue()
            in_hand = contextlib.ExitStack()
            in_hand.enter_context(queue.listening())  # from now: stopping waits for it
            self._runner = asyncio.create_task(self._run(queue, in_hand), name="slotbot-follow-ups")

    async def _run(self, queue: WorkQueue, in_hand: contextlib.ExitStack) -> None:
        with in_hand:
            while self._waiting:
                await queue.take_turn()
                try:
                    batch, self._waiting = self._waiting, []
                    await self._follow(batch)
                finally:
                    queue.end_turn()

    async def _follow(self, batch: list[tuple[AsyncWebClient, str, str, Booking | None]]) -> None:
        teams: dict[tuple[int, str], tuple[AsyncWebClient, list[Booking]]] = {}
        for client, team_id, key, booking in batch:
            try:
                found = booking or await self._reminders.store.get_booking(team_id, key)
            except Exception as exc:  # noqa: BLE001 - left for the reconcile
                logger.warning("could not read a booking to follow up: %s", type(exc).__name__)
                continue
            if found is not None:
                teams.setdefault((id(client), team_id), (client, []))[1].append(found)
        for (_, team_id), (client, bookings) in teams.items():
            messenger = SlackMessenger(client, self._people.direct_channels(team_id))
            directory = SlackDirectory(client, self._people)
            try:
                await self._reminders.sync_bookings(messenger, directory, bookings)
            except Exception as exc:  # noqa: BLE001 - left for the reconcile
                logger.warning("could not follow bookings up yet: %s", type(exc).__name__)
