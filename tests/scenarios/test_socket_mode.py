"""End to end over Socket Mode, as ``slotbot socket`` runs: Slotbot's Bolt app behind slack_sdk's
aiohttp Socket Mode client, connected to the emulator's WebSocket; envelopes in, acks and Web API
calls out, SQLite underneath."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.__main__ import _socket, socket_handler
from bot.app import Slotbot, open_slotbot
from bot.config import Settings
from bot.models import BookingState, Participant
from bot.scheduling.booking import booking_key_for
from playground import slack_requests
from playground.slack_api import RESPONSE_URL, Message, SlackEmulator
from tests.scenarios.harness import ANA, BEN, CARA, EVE, Clock

BERLIN = ZoneInfo("Europe/Berlin")
UPLOAD_DONE = "files.completeUploadExternal"
# Tomorrow afternoon in Berlin (12–17) ∩ Ben's New York day (15–23 Berlin) → from 15:00 Berlin.
FIRST_SLOT = datetime(2026, 12, 1, 15, 0, tzinfo=BERLIN)


def settings_for(slack: SlackEmulator, tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "SLACK_APP_TOKEN": slack.app_token,
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": slack.url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'slotbot.db'}",
            "SLOTBOT_DATA_DIR": str(tmp_path),
        },
        dotenv=None,
    )


@dataclass
class SocketBot:
    slack: SlackEmulator
    slotbot: Slotbot
    handler: AsyncSocketModeHandler
    channel: str

    async def settle(self, quiet: float = 0.15, within: float = 5.0) -> None:
        """Wait until Slack has heard nothing new for ``quiet`` seconds (listeners finished)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        seen = -1
        while loop.time() < deadline:
            count = len(self.slack.calls()) + len(self.slack.acks())
            if count == seen:
                return
            seen = count
            await asyncio.sleep(quiet)

    async def command(self, text: str, *, channel: str | None = None) -> str:
        """Push ``/schedule text`` from Ana; the envelope id."""
        channel = channel or self.channel
        fields = slack_requests.slash_command(
            text,
            user_id=ANA.id,
            channel_id=channel,
            response_url=self.slack.mint_response_url(channel=channel, user=ANA.id),
            channel_name="directmessage" if channel.startswith("D") else "general",
        )
        return await self.slack.socket_push("slash_commands", fields)

    async def click(self, offer: Message, button: dict[str, Any]) -> str:
        """Push Ana's click on ``button`` of ``offer`` (ephemeral or not); the envelope id."""
        ephemeral = offer.ephemeral_to is not None
        payload = slack_requests.block_actions(
            [slack_requests.button_action(button["action_id"], button["value"])],
            user_id=ANA.id,
            channel_id=offer.channel,
            response_url=self.slack.mint_response_url(
                channel=offer.channel, user=ANA.id, message_ts=offer.ts
            ),
            message=None if ephemeral else message_json(offer),
            message_ts=offer.ts,
        )
        return await self.slack.socket_push("interactive", payload)


def message_json(message: Message) -> dict[str, Any]:
    """A message as a ``block_actions`` payload carries it."""
    return {
        "type": "message",
        "ts": message.ts,
        "text": message.text,
        "blocks": message.blocks,
        "user": message.user,
        "bot_id": message.bot_id,
    }


def book_buttons(message: Message) -> list[dict[str, Any]]:
    return [
        block["accessory"]
        for block in message.blocks
        if str((block.get("accessory") or {}).get("action_id", "")).startswith("book_slot")
    ]


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[SocketBot]:
    slack = SlackEmulator(users=(ANA, BEN, CARA, EVE))
    await slack.start()
    slotbot = await open_slotbot(settings_for(slack, tmp_path), clock=Clock())
    handler = socket_handler(slotbot)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    await slack.wait_for_socket()
    bot = SocketBot(slack, slotbot, handler, slack.add_channel("general").id)
    yield bot
    await bot.settle()
    await handler.close_async()  # type: ignore[no-untyped-call]
    await slotbot.close()
    await slack.close()


async def test_socket_handler_opens_its_connection_with_the_app_token(bot: SocketBot) -> None:
    """apps.connections.open reaches SLACK_API_URL with the xapp- token, and one socket opens."""
    [opened] = bot.slack.calls("apps.connections.open")
    assert opened.ok
    [connection] = bot.slack.socket_connections
    assert connection.open


async def test_slash_command_over_the_socket_offers_then_a_click_books(bot: SocketBot) -> None:
    """/schedule envelope → prompt ack → ephemeral offer; a Book click → .ics and confirmation."""
    command = await bot.command(f"sync with <@{BEN.id}> tomorrow afternoon")
    ack = await bot.slack.wait_for_ack(command)
    assert ack.error is None and ack.payload is None
    await bot.slack.wait_for(RESPONSE_URL)
    await bot.settle()
    # Ack first: Slack heard the ack before the offer's response_url post.
    assert ack.at <= bot.slack.calls(RESPONSE_URL)[0].at
    [offer] = bot.slack.ephemeral_messages(user=ANA.id)
    assert offer.channel == bot.channel
    slots = book_buttons(offer)
    assert slots and f"<!date^{int(FIRST_SLOT.timestamp())}^" in str(offer.blocks)

    click = await bot.click(offer, slots[0])
    assert (await bot.slack.wait_for_ack(click)).error is None
    await bot.slack.wait_for(UPLOAD_DONE)
    await bot.settle()

    [upload] = bot.slack.uploaded_files()
    assert upload.channel == bot.channel and upload.filename.endswith(".ics")
    event = Calendar.from_ical(upload.content or b"").walk("VEVENT")[0]
    assert event.decoded("DTSTART") == FIRST_SLOT
    [confirmation] = bot.slack.ephemeral_messages(user=ANA.id)
    assert confirmation.ts == offer.ts, "the offer itself was replaced"
    assert "is booked" in str(confirmation.blocks)
    key = booking_key_for(bot.slack.team_id, slots[0]["value"].rsplit(":", 1)[0])
    booking = await bot.slotbot.store.get_booking(bot.slack.team_id, key)
    assert booking is not None and booking.state == BookingState.CONFIRMED
    assert str(event["UID"]) == booking.uid


async def test_a_retried_click_envelope_books_nothing_more(bot: SocketBot) -> None:
    """The same click redelivered with retry_attempt 1 is acked; still one event, one .ics."""
    await bot.slack.wait_for_ack(await bot.command(f"sync with <@{BEN.id}> tomorrow afternoon"))
    await bot.slack.wait_for(RESPONSE_URL)
    await bot.settle()
    [offer] = bot.slack.ephemeral_messages(user=ANA.id)
    click = await bot.click(offer, book_buttons(offer)[0])
    await bot.slack.wait_for(UPLOAD_DONE)
    await bot.settle()
    calls_before = len(bot.slack.calls())

    retry = await bot.slack.redeliver(click, reason="timeout")
    assert bot.slack.envelopes()[-1].retry_attempt == 1
    assert (await bot.slack.wait_for_ack(retry)).error is None
    await bot.settle()

    assert len(bot.slack.uploaded_files()) == 1
    assert len(bot.slack.calls(UPLOAD_DONE)) == 1
    [confirmation] = bot.slack.ephemeral_messages(user=ANA.id)
    assert "is booked" in str(confirmation.blocks)
    assert len(bot.slack.calls()) == calls_before, "the retry sent nothing to Slack"
    busy = await bot.slotbot.scheduler.calendar.free_busy(
        bot.slack.team_id,
        [Participant(ANA.id, "UTC")],
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2026, 12, 2, tzinfo=UTC),
    )
    assert len(busy.busy[ANA.id]) == 1


async def test_a_direct_message_event_gets_the_offer_in_the_dm(bot: SocketBot) -> None:
    """A message.im events_api envelope → the offer as a normal DM; its click updates it there."""
    im = bot.slack.open_im(ANA.id).id
    said = bot.slack.post_as_user(im, ANA.id, f"1:1 with <@{BEN.id}> tomorrow at 4pm")
    event = slack_requests.im_message_event(said.text, user=ANA.id, channel=im, ts=said.ts)
    envelope = await bot.slack.socket_push("events_api", slack_requests.event_callback(event))
    assert (await bot.slack.wait_for_ack(envelope)).error is None
    await bot.slack.wait_for("chat.postMessage")
    await bot.settle()
    [offer] = [m for m in bot.slack.messages_in(im) if m.user == bot.slack.bot_user_id]
    four_pm = datetime(2026, 12, 1, 16, 0, tzinfo=BERLIN)
    assert f"<!date^{int(four_pm.timestamp())}^" in str(offer.blocks)

    await bot.slack.wait_for_ack(await bot.click(offer, book_buttons(offer)[0]))
    await bot.slack.wait_for(UPLOAD_DONE)
    await bot.settle()
    [upload] = bot.slack.uploaded_files()
    assert upload.channel == im
    updated = bot.slack.message(im, offer.ts)
    assert updated.edited and "is booked" in str(updated.blocks)


async def test_a_retried_dm_event_does_not_offer_twice(bot: SocketBot) -> None:
    """Slack redelivers an event it thinks was not acked; Slotbot still answers it only once."""
    im = bot.slack.open_im(ANA.id).id
    said = bot.slack.post_as_user(im, ANA.id, f"1:1 with <@{BEN.id}> tomorrow at 4pm")
    event = slack_requests.event_callback(
        slack_requests.im_message_event(said.text, user=ANA.id, channel=im, ts=said.ts)
    )
    first = await bot.slack.socket_push("events_api", event)
    await bot.slack.wait_for("chat.postMessage")
    await bot.settle()
    await bot.slack.wait_for_ack(await bot.slack.redeliver(first, reason="timeout"))
    await bot.settle()
    offers = [m for m in bot.slack.messages_in(im) if m.user == bot.slack.bot_user_id]
    assert len(offers) == 1


async def test_a_refresh_disconnect_moves_slotbot_to_a_new_connection(bot: SocketBot) -> None:
    """After Slack's refresh_requested, Slotbot reconnects and answers on the new socket."""
    await bot.slack.socket_disconnect("refresh_requested")
    fresh = await bot.slack.wait_for_socket(count=2)
    ack = await bot.slack.wait_for_ack(await bot.command("help"))
    assert ack.connection == fresh.id
    await bot.slack.wait_for(RESPONSE_URL)
    [help_message] = bot.slack.ephemeral_messages(user=ANA.id)
    assert "/schedule" in str(help_message.blocks)


async def test_slotbot_socket_serves_until_stopped_then_closes_the_connection(
    tmp_path: Path,
) -> None:
    """`slotbot socket`'s own coroutine connects, answers, and on stop closes its socket."""
    async with SlackEmulator(users=(ANA, BEN)) as slack:
        running = asyncio.create_task(_socket(settings_for(slack, tmp_path)))
        await slack.wait_for_socket()
        channel = slack.add_channel("general").id
        fields = slack_requests.slash_command(
            "help",
            user_id=ANA.id,
            channel_id=channel,
            response_url=slack.mint_response_url(channel=channel, user=ANA.id),
        )
        await slack.wait_for_ack(await slack.socket_push("slash_commands", fields))
        await slack.wait_for(RESPONSE_URL)
        assert "/schedule" in str(slack.ephemeral_messages(user=ANA.id)[0].blocks)

        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await slack.wait_for_socket_state(lambda: not slack.socket_connections[0].open)
        assert len(slack.calls("apps.connections.open")) == 1, "no reconnect after the stop"
