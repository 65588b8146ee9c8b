"""Webhooks end to end: a booking made through Slack reaches a loopback receiver as one signed
POST carrying the schedule object, through outages and restarts, and never twice."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.models import BookingState
from tests.scenarios.harness import BEN, Harness, offer_from_ephemeral, start_harness, stop_harness

HOOK_SECRET = "scenario-webhook-secret"
UPLOAD_DONE = "files.completeUploadExternal"


@dataclass
class Receiver:
    """A webhook endpoint: answers ``statuses`` in turn (then 200); checks each signature."""

    statuses: list[int] = field(default_factory=list)
    posts: list[tuple[dict[str, Any], bool, int]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers["X-Slotbot-Request-Timestamp"]
        expected = (
            "v1="
            + hmac.new(
                HOOK_SECRET.encode(), b"v1:" + stamp.encode() + b":" + body, hashlib.sha256
            ).hexdigest()
        )
        valid = hmac.compare_digest(request.headers["X-Slotbot-Signature"], expected)
        status = self.statuses.pop(0) if self.statuses else 200
        self.posts.append((json.loads(body), valid, status))
        self.arrived.set()
        return web.Response(status=status)

    async def wait_posts(self, count: int, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while len(self.posts) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def delivered(self) -> list[dict[str, Any]]:
        return [payload for payload, _, status in self.posts if status == 200]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/slotbot", target.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield target, str(server.make_url("/slotbot"))
    await server.close()


async def start(tmp_path: Path, url: str) -> Harness:
    return await start_harness(
        tmp_path, SLOTBOT_WEBHOOK_URLS=url, SLOTBOT_WEBHOOK_SECRET=HOOK_SECRET
    )


async def book(bot: Harness) -> None:
    status, _ = await bot.command(f"design review with <@{BEN.id}> 45m tomorrow afternoon")
    assert status == 200
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    assert await bot.click(offer, offer.buttons("book_slot")[0]) == 200
    await bot.wait_for(UPLOAD_DONE)
    await bot.settle()


async def retry_now(bot: Harness, later: timedelta) -> None:
    """Move the bot's clock past the backoff and wake its sender."""
    bot.clock.now += later
    assert bot.slotbot.scheduler.webhooks is not None
    bot.slotbot.scheduler.webhooks.wake()


async def test_a_booking_posts_one_signed_webhook_with_the_schedule_object(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    """Booking through Slack sends one signed booking.created carrying the stored schedule."""
    target, url = receiver
    bot = await start(tmp_path, url)
    try:
        await book(bot)
        await target.wait_posts(1)
        [stored] = await bot.slotbot.store.bookings_for_user(
            bot.slack.team_id, BEN.id, bot.clock.now
        )
        assert stored.state == BookingState.CONFIRMED
        [(payload, valid, _)] = target.posts
        assert valid
        assert payload["type"] == "booking.created"
        assert payload["schedule"] == stored.schedule.to_json()
        assert payload["participants"] == [stored.organizer_id, BEN.id]
        assert payload["title"] == "design review"
        assert payload["booking_key"] == stored.key
        await bot.settle()
        await retry_now(bot, timedelta(days=2))
        await asyncio.sleep(0.3)
        assert len(target.posts) == 1, "a delivered webhook is never sent again"
    finally:
        await stop_harness(bot)


async def test_a_receiver_that_is_down_gets_the_webhook_once_it_is_back(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    """503s are retried with backoff until one is accepted; then nothing more is sent."""
    target, url = receiver
    target.statuses = [503, 503]
    bot = await start(tmp_path, url)
    try:
        await book(bot)
        await target.wait_posts(1)
        for attempt in (2, 3):
            await asyncio.sleep(0.1)
            await retry_now(bot, timedelta(minutes=5))
            await target.wait_posts(attempt)
        assert [status for _, _, status in target.posts] == [503, 503, 200]
        assert all(valid for _, valid, _ in target.posts)
        assert len({payload["id"] for payload, _, _ in target.posts}) == 1
        await retry_now(bot, timedelta(hours=2))
        await asyncio.sleep(0.3)
        assert len(target.posts) == 3
        [entry] = await bot.slotbot.store.webhook_entries()
        assert entry.delivered_at is not None and entry.attempts == 3
    finally:
        await stop_harness(bot)


async def test_a_pending_webhook_survives_a_restart(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    """A webhook not yet accepted when Slotbot stops is delivered by the next Slotbot."""
    target, url = receiver
    target.statuses = [503]
    bot = await start(tmp_path, url)
    try:
        await book(bot)
        await target.wait_posts(1)
        await bot.settle()
    finally:
        await stop_harness(bot)
    assert target.delivered() == []

    again = await start(tmp_path, url)
    try:
        await retry_now(again, timedelta(minutes=5))
        await target.wait_posts(2)
        [payload] = target.delivered()
        assert payload["id"] == target.posts[0][0]["id"]
        await retry_now(again, timedelta(hours=2))
        await asyncio.sleep(0.3)
        assert len(target.posts) == 2
    finally:
        await stop_harness(again)


async def test_a_move_and_a_cancel_each_post_their_webhook(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    """Book, reschedule, cancel through Slack: booking.created, .moved (with the old schedule)
    and .cancelled arrive signed, in order, with the sequence rising."""
    from tests.scenarios.test_lifecycle import book_meeting, click_and_settle, click_and_wait

    target, url = receiver
    bot = await start(tmp_path, url)
    try:
        booked = await book_meeting(bot)
        await click_and_settle(bot, booked.confirmation, "reschedule")
        offer = offer_from_ephemeral(bot)
        await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
        await click_and_settle(bot, offer_from_ephemeral(bot), "cancel_booking")
        await click_and_settle(bot, offer_from_ephemeral(bot), "confirm_cancel")
        await target.wait_posts(3)
        kinds = [(p["type"], p["sequence"]) for p, valid, _ in target.posts if valid]
        assert kinds == [("booking.created", 0), ("booking.moved", 1), ("booking.cancelled", 2)]
        created, moved, _ = (p for p, _, _ in target.posts)
        assert moved["previous_schedule"] == created["schedule"]
        assert moved["schedule"] != created["schedule"]
    finally:
        await stop_harness(bot)
