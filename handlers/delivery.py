"""Delivering a booking exactly once: the .ics into the conversation, then the offer replaced by
the confirmation. The click and the reconcile both deliver through ``deliver``; a move or a
cancel, likewise, through ``deliver_change``.

A lease in the store lets one of any number of concurrent deliverers (double click, retry,
reconcile, another instance) do it. The upload is files_upload_v2's three calls made one by
one, so that the file id is recorded before the file can be shared: a deliverer after a crash
asks ``files.info`` whether that file already reached the conversation and never shares twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.models import Booking, BookingState
from bot.scheduling.booking import Change, Confirmation, Scheduler
from handlers import blocks
from handlers.blocks import escape

__all__ = ["ReplyTo", "deliver", "deliver_change"]

logger = logging.getLogger("slotbot.delivery")

#: Errors that mean "the bot cannot post here", so the requester's DM is used instead.
_CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}


class UploadError(Exception):
    """Slack's upload URL refused the invite's bytes."""


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where a click wants its confirmation: the offer message and the click's response_url."""

    user_id: str
    channel_id: str | None
    thread_ts: str | None
    message_ts: str | None
    ephemeral: bool
    response_url: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "channel_id": self.channel_id,
            "thread_ts": self.thread_ts,
            "message_ts": self.message_ts,
            "ephemeral": self.ephemeral,
            "response_url": self.response_url,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], default_user: str) -> ReplyTo:
        def text(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) and value else None

        return cls(
            user_id=text("user_id") or default_user,
            channel_id=text("channel_id"),
            thread_ts=text("thread_ts"),
            message_ts=text("message_ts"),
            ephemeral=bool(data.get("ephemeral", True)),
            response_url=text("response_url"),
        )


async def deliver(
    client: AsyncWebClient, scheduler: Scheduler, confirmation: Confirmation
) -> Booking | None:
    """Share the invite and show the confirmation unless done or in another deliverer's hands;
    the booking as delivered when this call delivered it, else None."""
    booking = confirmation.booking
    if booking.state != BookingState.CREATED:
        return None
    delivery = confirmation.delivery or await scheduler.lease_delivery(booking.team_id, booking.key)
    if delivery is None:
        return None
    reply = ReplyTo.from_json(delivery.reply_to, booking.organizer_id)
    offer = confirmation.offer
    title = escape(booking.title or "Meeting")

    async def record(file_id: str, channel: str) -> None:
        await scheduler.record_invite(
            booking.team_id, booking.key, file_id=file_id, channel_id=channel
        )

    try:
        channel = await _share_once(
            client,
            _Invite(
                confirmation.filename,
                confirmation.invite,
                f"Invite for {title}: open it to add the meeting to your calendar.",
            ),
            recorded=(delivery.invite_file_id, delivery.invite_channel_id),
            place=(offer.channel_id, offer.thread_ts),
            fallback_user=booking.organizer_id,
            record=record,
        )
        await _show(
            client,
            reply,
            blocks.confirmation_text(confirmation),
            blocks.confirmation_blocks(confirmation),
        )
    except BaseException:
        # Let the next click or the reconcile try again at once rather than after the lease.
        await scheduler.release_delivery(booking.team_id, booking.key)
        raise
    return await scheduler.mark_delivered(
        booking.team_id,
        booking.key,
        channel_id=channel,
        message_ts=None if reply.ephemeral else reply.message_ts,
    )


async def deliver_change(client: AsyncWebClient, scheduler: Scheduler, change: Change) -> bool:
    """Share a move's or cancel's .ics once, show the booking as it now stands where the
    change was asked for and in its confirmation message, and mark the change delivered.
    Only for a change this caller holds (``change.pending``: the click that made it, or
    whoever resumed it); True when delivered."""
    pending = change.pending
    if pending is None:
        return False
    booking = change.booking
    title = escape(booking.title or "Meeting")
    comment = (
        f"Cancellation for {title}: open it to remove the meeting from your calendar."
        if change.cancelled or change.occurrence_cancelled
        else f"Updated invite for {title}: open it to move the meeting in your calendar."
    )

    async def record(file_id: str, channel: str) -> None:
        await scheduler.record_change_file(pending, file_id, channel)

    try:
        await _share_once(
            client,
            _Invite(change.filename, change.invite, comment),
            recorded=(pending.file_id, pending.channel_id),
            place=(booking.channel_id, booking.thread_ts),
            fallback_user=booking.organizer_id,
            record=record,
        )
        text, content = blocks.change_text(change), blocks.change_blocks(change)
        asked = pending.payload.get("reply_to")
        reply = ReplyTo.from_json(asked, booking.organizer_id) if asked else None
        if reply is not None:
            await _show(client, reply, text, content)
        here = (reply.channel_id, reply.message_ts) if reply is not None else None
        own = (booking.channel_id, booking.message_ts)
        if booking.channel_id and booking.message_ts and here != own:
            # The booking's own confirmation follows too (a typed move, the list, Home).
            await _update_in_place(client, booking.channel_id, booking.message_ts, text, content)
    except BaseException:
        await scheduler.release_change(pending)
        raise
    await scheduler.change_delivered(pending)
    return True


# --- sharing a file once ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Invite:
    filename: str
    content: bytes
    comment: str


async def _share_once(
    client: AsyncWebClient,
    invite: _Invite,
    *,
    recorded: tuple[str | None, str | None],
    place: tuple[str | None, str | None],
    fallback_user: str,
    record: Callable[[str, str], Awaitable[None]],
) -> str:
    """Upload ``invite`` into ``place`` (a channel and thread), else ``fallback_user``'s DM,
    exactly once: the file id is ``record``ed before the file can be shared, and an upload
    ``recorded`` by an earlier attempt is checked (and finished) before a new one is made.
    The channel it went to."""
    file_id, channel = recorded
    channel_id, thread_ts = place
    if file_id and channel:
        # An earlier deliverer got this far, then died or failed: did its share happen?
        if await _shared_in(client, file_id, channel):
            return channel
        try:
            await _complete(
                client, invite, file_id, channel, thread_ts if channel == channel_id else None
            )
            return channel
        except SlackApiError:
            pass  # its bytes never arrived (or the upload lapsed): upload afresh
    if channel_id:
        try:
            await _upload(client, invite, channel_id, thread_ts, record)
            return channel_id
        except SlackApiError as exc:
            if exc.response.get("error") not in _CANNOT_POST:
                raise
    opened = await client.conversations_open(users=fallback_user)
    dm = str((opened.get("channel") or {})["id"])
    await _upload(client, invite, dm, None, record)
    return dm


async def _upload(
    client: AsyncWebClient,
    invite: _Invite,
    channel: str,
    thread_ts: str | None,
    record: Callable[[str, str], Awaitable[None]],
) -> None:
    issued = await client.files_getUploadURLExternal(
        filename=invite.filename, length=len(invite.content)
    )
    file_id, url = str(issued["file_id"]), str(issued["upload_url"])
    # Recorded before the file can be shared, so that a crash from here on is recoverable.
    await record(file_id, channel)
    async with _http(client) as session, session.post(url, data=invite.content) as response:
        if response.status != 200:
            raise UploadError(f"the upload URL answered HTTP {response.status}")
    await _complete(client, invite, file_id, channel, thread_ts)


@contextlib.asynccontextmanager
async def _http(client: AsyncWebClient) -> AsyncIterator[aiohttp.ClientSession]:
    """The client's own HTTP session (the app's, kept open), else one for this upload."""
    if client.session is not None and not client.session.closed:
        yield client.session
        return
    async with aiohttp.ClientSession() as session:
        yield session


async def _complete(
    client: AsyncWebClient, invite: _Invite, file_id: str, channel: str, thread_ts: str | None
) -> None:
    await client.files_completeUploadExternal(
        files=[{"id": file_id, "title": invite.filename}],
        channel_id=channel,
        thread_ts=thread_ts,
        initial_comment=invite.comment,
    )


async def _shared_in(client: AsyncWebClient, file_id: str, channel: str) -> bool:
    """Whether the file was shared into ``channel`` (its completion went through)."""
    try:
        found = await client.files_info(file=file_id)
    except SlackApiError as exc:
        if exc.response.get("error") == "file_not_found":
            return False  # never completed: Slack does not list it yet
        raise
    shares = (found.get("file") or {}).get("shares") or {}
    return any(channel in (places or {}) for places in shares.values())


# --- the confirmation -----------------------------------------------------------------------


async def _show(
    client: AsyncWebClient, reply: ReplyTo, text: str, content: Sequence[Block]
) -> None:
    """Replace the clicked message (an offer) with ``content`` (doing it twice shows it
    once); if it cannot be reached any more, tell the person in a new message."""
    if not reply.ephemeral and reply.channel_id and reply.message_ts:
        if await _update_in_place(client, reply.channel_id, reply.message_ts, text, content):
            return
    elif reply.response_url:
        sent = await AsyncWebhookClient(reply.response_url, session=client.session).send(
            text=text, blocks=content, replace_original=True
        )
        if sent.status_code == 200:
            return
        # A response_url lives 30 minutes and takes five answers; after a crash it may not.
        logger.info("the offer's response_url is spent (HTTP %d)", sent.status_code)
    if reply.channel_id:
        try:
            await client.chat_postEphemeral(
                channel=reply.channel_id,
                user=reply.user_id,
                text=text,
                blocks=content,
                thread_ts=reply.thread_ts,
            )
            return
        except SlackApiError as exc:
            if exc.response.get("error") not in {*_CANNOT_POST, "user_not_in_channel"}:
                raise
    opened = await client.conversations_open(users=reply.user_id)
    dm = str((opened.get("channel") or {})["id"])
    await client.chat_postMessage(channel=dm, text=text, blocks=content)


async def _update_in_place(
    client: AsyncWebClient, channel: str, ts: str, text: str, content: Sequence[Block]
) -> bool:
    """Edit a message of the bot's; False when it is gone or cannot be edited any more."""
    try:
        await client.chat_update(channel=channel, ts=ts, text=text, blocks=content)
    except SlackApiError as exc:
        if exc.response.get("error") not in ("message_not_found", "cant_update_message"):
            raise
        return False
    return True
