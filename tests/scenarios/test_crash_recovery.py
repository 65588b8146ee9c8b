"""kill -9 between booking steps: a real ``slotbot serve`` is killed while a Slack call is held,
restarted on the same SQLite file, and the booking still ends in one .ics upload, one
confirmation and a confirmed booking, whether the reconcile or a retried click finishes it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from playground import slack_requests
from playground.slack_api import Message, SlackEmulator
from tests.scenarios.harness import ANA, BEN, SECRET
from tests.scenarios.processes import ServeProcess

UPLOAD_URL = "files.getUploadURLExternal"
UPLOAD_DONE = "files.completeUploadExternal"


@dataclass
class Crash:
    slack: SlackEmulator
    tmp_path: Path
    session: aiohttp.ClientSession
    process: ServeProcess | None = None

    @property
    def database(self) -> Path:
        return self.tmp_path / "slotbot.db"

    async def start(self, **env: str) -> ServeProcess:
        process = ServeProcess(
            {
                "SLACK_BOT_TOKEN": self.slack.token,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": self.slack.url,
                "DATABASE_URL": f"sqlite:///{self.database}",
                "SLOTBOT_DATA_DIR": str(self.tmp_path),
                "SLOTBOT_DELIVERY_LEASE_SECONDS": "2",
                "SLOTBOT_RECONCILE_SECONDS": "1",
                **env,
            },
            self.tmp_path / "serve.log",
        )
        await process.start()
        self.process = process
        return process

    async def post(self, request: slack_requests.SignedRequest) -> int:
        assert self.process is not None
        async with self.session.post(
            self.process.url, data=request.body, headers=request.headers
        ) as response:
            await response.read()
            return response.status

    async def offer(self) -> tuple[str, Message]:
        """Ask for a meeting in the bot's DM; the offer message."""
        im = self.slack.open_im(ANA.id).id
        said = self.slack.post_as_user(im, ANA.id, f"sync with <@{BEN.id}> next week")
        event = slack_requests.im_message_event(said.text, user=ANA.id, channel=im, ts=said.ts)
        payload = slack_requests.event_callback(event)
        assert await self.post(slack_requests.signed_event(payload, secret=SECRET)) == 200
        await self.slack.wait_for("chat.postMessage", within=15)
        [offer] = [m for m in self.slack.messages_in(im) if "book_slot" in str(m.blocks)]
        return im, offer

    async def click(self, im: str, offer: Message) -> int:
        button = next(b for b in _buttons(offer.blocks) if b["action_id"].startswith("book_slot"))
        action = slack_requests.button_action(button["action_id"], button["value"])
        payload = slack_requests.block_actions(
            [action],
            user_id=ANA.id,
            channel_id=im,
            response_url=self.slack.mint_response_url(channel=im, user=ANA.id, message_ts=offer.ts),
            message={
                "type": "message",
                "ts": offer.ts,
                "text": offer.text,
                "blocks": offer.blocks,
                "user": offer.user,
                "bot_id": offer.bot_id,
            },
            message_ts=offer.ts,
        )
        return await self.post(slack_requests.signed_interaction(payload, secret=SECRET))

    def bookings(self) -> list[tuple[str, str | None]]:
        with sqlite3.connect(self.database) as db:
            return list(db.execute("SELECT state, invite_file_id FROM bookings"))

    def local_events(self) -> int:
        with sqlite3.connect(self.database) as db:
            return int(db.execute("SELECT count(*) FROM local_events").fetchone()[0])


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for block in blocks:
        for element in [block.get("accessory"), *(block.get("elements") or [])]:
            if isinstance(element, dict) and element.get("type") == "button":
                found.append(element)
    return found


@pytest.fixture
async def crash(tmp_path: Path) -> AsyncIterator[Crash]:
    async with SlackEmulator(users=(ANA, BEN)) as slack, aiohttp.ClientSession() as session:
        state = Crash(slack, tmp_path, session)
        yield state
        if state.process is not None:
            await state.process.kill()


async def assert_delivered_once(crash: Crash, im: str, offer: Message) -> None:
    """One event, one completed .ics upload, the offer replaced once, booking confirmed."""
    for _ in range(200):  # up to 20 s for the restarted process's reconcile
        if [state for state, _ in crash.bookings()] == ["confirmed"]:
            break
        await asyncio.sleep(0.1)
    assert [state for state, _ in crash.bookings()] == ["confirmed"]
    assert crash.local_events() == 1
    [upload] = crash.slack.uploaded_files()
    assert upload.channel == im and upload.content and b"BEGIN:VCALENDAR" in upload.content
    confirmed = crash.slack.message(im, offer.ts)
    assert confirmed.edited and "is booked" in str(confirmed.blocks)
    shared = [m for m in crash.slack.messages_in(im) if m.files]
    assert len(shared) == 1
    posted = [m for m in crash.slack.messages_in(im) if m.user == crash.slack.bot_user_id]
    assert len(posted) == 2  # the offer (now the confirmation) and the .ics, nothing more


@pytest.mark.parametrize(
    ("method", "apply_first"),
    [
        (UPLOAD_URL, False),  # booking created, the upload never started
        (UPLOAD_DONE, False),  # file id recorded, bytes posted, never shared
        (UPLOAD_DONE, True),  # shared, but the answer never came back
        ("chat.update", False),  # .ics shared, confirmation not shown
    ],
    ids=["before-upload", "before-complete", "after-complete", "before-confirmation"],
)
async def test_a_kill_mid_delivery_is_finished_by_the_reconcile(
    crash: Crash, method: str, apply_first: bool
) -> None:
    """kill -9 at each delivery step, restart: the reconcile delivers the booking exactly once."""
    await crash.start()
    im, offer = await crash.offer()
    held = crash.slack.hold(method, apply_first=apply_first)
    assert await crash.click(im, offer) == 200
    await held.arrived.wait()
    assert crash.process is not None
    await crash.process.kill()
    held.release()
    await crash.start()
    await assert_delivered_once(crash, im, offer)


async def test_a_retried_click_after_a_kill_delivers_once(crash: Crash) -> None:
    """With no reconcile running, the requester's second click finishes the crashed delivery."""
    await crash.start(SLOTBOT_RECONCILE_SECONDS="0")
    im, offer = await crash.offer()
    held = crash.slack.hold(UPLOAD_DONE, apply_first=True)
    assert await crash.click(im, offer) == 200
    await held.arrived.wait()
    assert crash.process is not None
    await crash.process.kill()
    held.release()
    await crash.start(SLOTBOT_RECONCILE_SECONDS="0")
    assert [state for state, _ in crash.bookings()] == ["created"]
    await asyncio.sleep(2.5)  # the dead process's delivery lease (2 s) lapses
    assert await crash.click(im, offer) == 200
    await assert_delivered_once(crash, im, offer)
