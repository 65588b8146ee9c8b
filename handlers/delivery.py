"""Delivering a booking exactly once: the .ics into the conversation, then the offer replaced by
the confirmation. The click and the reconcile both deliver through ``deliver``.

A lease in the store lets one of any number of concurrent deliverers (double click, retry,
reconcile, another instance) do it. The upload is files_upload_v2's three calls made one by
one, so that the file id is recorded before the file can be shared: a deliverer after a crash
asks ``files.info`` whether that file already reached the conversation and never shares twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.models import BookingState
from bot.scheduling.booking import Change, Confirmation, Scheduler
from bot.store import Delivery
from handlers import blocks
from handlers.blocks import escape

__all__ = ["ReplyTo", "deliver", "share_change"]

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


async def deliver(client: AsyncWebClient, scheduler: Scheduler, confirmation: Confirmation) -> bool:
    """Share the invite and show the confirmation unless done or in another deliverer's hands;
    True when this call delivered it."""
    booking = confirmation.booking
    if booking.state != BookingState.CREATED:
        return False
    delivery = await scheduler.lease_delivery(booking.team_id, booking.key)
    if delivery is None:
        return False
    reply = ReplyTo.from_json(delivery.reply_to, booking.organizer_id)
    try:
        channel = await _share_invite(client, scheduler, confirmation, delivery)
        await _show_confirmation(client, reply, confirmation)
    except BaseException:
        # Let the next click or the reconcile try again at once rather than after the lease.
        await scheduler.release_delivery(booking.team_id, booking.key)
        raise
    await scheduler.mark_delivered(
        booking.team_id,
        booking.key,
        channel_id=channel,
        message_ts=None if reply.ephemeral else reply.message_ts,
    )
    return True


async def share_change(client: AsyncWebClient, change: Change) -> str:
    """Upload a moved or cancelled booking's .ics into its conversation (its thread, where it
    has one), else the organizer's DM; the channel it went to. Only the call that made the
    change (``change.fresh``) shares it, so it is shared once."""
    booking = change.booking
    title = escape(booking.title or "Meeting")
    comment = (
        f"Cancellation for {title}: open it to remove the meeting from your calendar."
        if change.cancelled or change.occurrence_cancelled
        else f"Updated invite for {title}: open it to move the meeting in your calendar."
    )
    if booking.channel_id:
        try:
            await _upload_bytes(
                client,
                change.filename,
                change.invite,
                booking.channel_id,
                booking.thread_ts,
                comment,
            )
            return booking.channel_id
        except SlackApiError as exc:
            if exc.response.get("error") not in _CANNOT_POST:
                raise
    opened = await client.conversations_open(users=booking.organizer_id)
    dm = str((opened.get("channel") or {})["id"])
    await _upload_bytes(client, change.filename, change.invite, dm, None, comment)
    return dm


async def _upload_bytes(
    client: AsyncWebClient,
    filename: str,
    content: bytes,
    channel: str,
    thread_ts: str | None,
    comment: str,
) -> None:
    issued = await client.files_getUploadURLExternal(filename=filename, length=len(content))
    file_id, url = str(issued["file_id"]), str(issued["upload_url"])
    async with aiohttp.ClientSession() as session, session.post(url, data=content) as response:
        if response.status != 200:
            raise UploadError(f"the upload URL answered HTTP {response.status}")
    await client.files_completeUploadExternal(
        files=[{"id": file_id, "title": filename}],
        channel_id=channel,
        thread_ts=thread_ts,
        initial_comment=comment,
    )


# --- the invite -----------------------------------------------------------------------------


async def _share_invite(
    client: AsyncWebClient, scheduler: Scheduler, confirmation: Confirmation, delivery: Delivery
) -> str:
    """Upload the .ics into the offer's conversation (else the requester's DM), once."""
    offer = confirmation.offer
    file_id, channel = delivery.invite_file_id, delivery.invite_channel_id
    if file_id and channel:
        # An earlier deliverer got this far, then died or failed: did its share happen?
        if await _shared_in(client, file_id, channel):
            return channel
        thread_ts = offer.thread_ts if channel == offer.channel_id else None
        try:
            await _complete(client, confirmation, file_id, channel, thread_ts)
            return channel
        except SlackApiError:
            pass  # its bytes never arrived (or the upload lapsed): upload afresh
    if offer.channel_id:
        try:
            await _upload(client, scheduler, confirmation, offer.channel_id, offer.thread_ts)
            return offer.channel_id
        except SlackApiError as exc:
            if exc.response.get("error") not in _CANNOT_POST:
                raise
    opened = await client.conversations_open(users=confirmation.booking.organizer_id)
    dm = str((opened.get("channel") or {})["id"])
    await _upload(client, scheduler, confirmation, dm, None)
    return dm


async def _upload(
    client: AsyncWebClient,
    scheduler: Scheduler,
    confirmation: Confirmation,
    channel: str,
    thread_ts: str | None,
) -> None:
    booking = confirmation.booking
    issued = await client.files_getUploadURLExternal(
        filename=confirmation.filename, length=len(confirmation.invite)
    )
    file_id, url = str(issued["file_id"]), str(issued["upload_url"])
    # Recorded before the file can be shared, so that a crash from here on is recoverable.
    await scheduler.record_invite(booking.team_id, booking.key, file_id=file_id, channel_id=channel)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=confirmation.invite) as response,
    ):
        if response.status != 200:
            raise UploadError(f"the upload URL answered HTTP {response.status}")
    await _complete(client, confirmation, file_id, channel, thread_ts)


async def _complete(
    client: AsyncWebClient,
    confirmation: Confirmation,
    file_id: str,
    channel: str,
    thread_ts: str | None,
) -> None:
    title = escape(confirmation.booking.title or "Meeting")
    await client.files_completeUploadExternal(
        files=[{"id": file_id, "title": confirmation.filename}],
        channel_id=channel,
        thread_ts=thread_ts,
        initial_comment=f"Invite for {title}: open it to add the meeting to your calendar.",
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


async def _show_confirmation(
    client: AsyncWebClient, reply: ReplyTo, confirmation: Confirmation
) -> None:
    """Replace the offer with the confirmation (doing it twice shows it once); if the offer
    cannot be reached any more, tell the requester in a new message."""
    text = blocks.confirmation_text(confirmation)
    content = blocks.confirmation_blocks(confirmation)
    if not reply.ephemeral and reply.channel_id and reply.message_ts:
        try:
            await client.chat_update(
                channel=reply.channel_id, ts=reply.message_ts, text=text, blocks=content
            )
            return
        except SlackApiError as exc:
            if exc.response.get("error") not in ("message_not_found", "cant_update_message"):
                raise
    elif reply.response_url:
        sent = await AsyncWebhookClient(reply.response_url).send(
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
