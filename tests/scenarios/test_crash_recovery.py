"""kill -9 between booking steps: a real ``slotbot serve`` is killed while a Slack call is held,
restarted on the same SQLite file, and the booking still ends in one .ics upload, one
confirmation and a confirmed booking, whether the reconcile or a retried click finishes it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from icalendar import Calendar

from bot.calendars import event_id_for
from bot.calendars.google import SCOPES
from playground import slack_requests
from playground.slack_api import Message, SlackEmulator
from tests.emulators.google import GoogleEmulator
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

    async def click(self, im: str, offer: Message, prefix: str = "book_slot") -> int:
        """Click the first button of ``offer`` whose action_id starts with ``prefix``."""
        button = next(b for b in _buttons(offer.blocks) if b["action_id"].startswith(prefix))
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


async def assert_delivered_once(
    crash: Crash, im: str, offer: Message, *, local_events: int = 1
) -> None:
    """One event, one completed .ics upload, the offer replaced once, booking confirmed."""
    for _ in range(200):  # up to 20 s for the restarted process's reconcile
        if [state for state, _ in crash.bookings()] == ["confirmed"]:
            break
        await asyncio.sleep(0.1)
    assert [state for state, _ in crash.bookings()] == ["confirmed"]
    assert crash.local_events() == local_events
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


# --- before delivery: Google mode, the kill lands while events.insert is in flight -----------

INSERT = "calendar.events.insert"


@pytest.fixture
async def google(crash: Crash) -> AsyncIterator[tuple[GoogleEmulator, dict[str, str]]]:
    """A Google Workspace where Ana and Ben see each other, and the env for delegation mode."""
    async with GoogleEmulator() as emulator:
        people = [str(ANA.email), str(BEN.email)]
        for email in people:
            emulator.add_calendar(email, readers=people)
        account = emulator.add_service_account()
        emulator.allow_delegation(account, SCOPES)
        key = emulator.write_key_file(account, crash.tmp_path / "service-account.json")
        yield (
            emulator,
            {
                "GOOGLE_API_URL": emulator.url,
                "GOOGLE_SERVICE_ACCOUNT_FILE": str(key),
                "GOOGLE_DELEGATION": "1",
            },
        )
        # The process must die before its Google does: a live one would retry into a closed port.
        if crash.process is not None:
            await crash.process.kill()


def booking_row(crash: Crash) -> tuple[str, str, str]:
    """The one booking's key, state and stored iCalendar UID."""
    with sqlite3.connect(crash.database) as db:
        [row] = list(db.execute("SELECT key, state, uid FROM bookings"))
    return str(row[0]), str(row[1]), str(row[2])


@pytest.mark.parametrize(
    "apply_first",
    [False, True],
    ids=["decided-to-book", "event-created-not-stored"],
)
async def test_a_kill_before_delivery_is_finished_by_the_reconcile(
    crash: Crash, google: tuple[GoogleEmulator, dict[str, str]], apply_first: bool
) -> None:
    """kill -9 with events.insert in flight (before Google applies it, or after, its answer
    lost), restart: one Google event under our id, and the booking delivered exactly once."""
    emulator, env = google
    calendar = str(ANA.email)
    await crash.start(**env)
    im, offer = await crash.offer()
    held = emulator.hold(INSERT, apply_first=apply_first)
    assert await crash.click(im, offer) == 200
    await held.arrived.wait()
    assert crash.process is not None
    await crash.process.kill()
    key, state, uid = booking_row(crash)
    assert (state, uid) == ("pending", "")  # claimed, the event not recorded as created
    held.release()
    [first] = emulator.calls_to(INSERT)
    for _ in range(100):  # the released handler finds its caller gone (or answers nobody)
        if first.status:
            break
        await asyncio.sleep(0.01)
    assert held.dropped is not apply_first
    assert len(emulator.events(calendar)) == (1 if apply_first else 0)

    await crash.start(**env)
    await assert_delivered_once(crash, im, offer, local_events=0)
    [event] = emulator.events(calendar)
    assert event["id"] == event_id_for(key)
    inserts = [call.status for call in emulator.calls_to(INSERT)]
    # After the event was created, the retried insert under the same id is refused as a
    # duplicate and the existing event is read instead of a second one being made.
    assert inserts == ([200, 409] if apply_first else [503, 200])
    assert bool(emulator.calls_to("calendar.events.get")) is apply_first
    _, _, stored_uid = booking_row(crash)
    assert stored_uid == event["iCalUID"]
    [upload] = crash.slack.uploaded_files()
    assert upload.content is not None
    [vevent] = Calendar.from_ical(upload.content).walk("VEVENT")
    assert str(vevent["UID"]) == event["iCalUID"]


# --- after delivery: a move or a cancel is killed on its way ---------------------------------


def changes_pending(crash: Crash) -> int:
    with sqlite3.connect(crash.database) as db:
        return int(db.execute("SELECT count(*) FROM booking_changes").fetchone()[0])


def booking_now(crash: Crash) -> tuple[str, int, str]:
    """The one booking's state, sequence and start."""
    with sqlite3.connect(crash.database) as db:
        [row] = list(db.execute("SELECT state, sequence, start_at FROM bookings"))
    return str(row[0]), int(row[1]), str(row[2])


async def booked_in_dm(crash: Crash) -> tuple[str, Message]:
    """A meeting booked from the bot's DM and delivered; the DM and its confirmation."""
    im, offer = await crash.offer()
    assert await crash.click(im, offer) == 200
    for _ in range(100):
        if [state for state, _ in crash.bookings()] == ["confirmed"]:
            break
        await asyncio.sleep(0.05)
    confirmation = crash.slack.message(im, offer.ts)
    assert "is booked" in str(confirmation.blocks)
    return im, confirmation


async def reschedule_offer(crash: Crash, im: str, confirmation: Message) -> Message:
    """Press Reschedule; the offer of new times that replaces the confirmation."""
    assert await crash.click(im, confirmation, "reschedule") == 200
    for _ in range(100):
        shown = crash.slack.message(im, confirmation.ts)
        if "book_slot" in str(shown.blocks):
            return shown
        await asyncio.sleep(0.05)
    raise AssertionError("no reschedule offer came")


async def settled_change(crash: Crash) -> None:
    for _ in range(200):  # up to 20 s for the restarted process's reconcile
        if changes_pending(crash) == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the change was never delivered")


def invites(crash: Crash) -> list[tuple[str, int]]:
    """METHOD and SEQUENCE of every .ics shared, in order."""
    found = []
    for upload in crash.slack.uploaded_files():
        assert upload.content is not None
        calendar = Calendar.from_ical(upload.content)
        [event] = calendar.walk("VEVENT")
        found.append((str(calendar["METHOD"]), int(event["SEQUENCE"])))
    return found


@pytest.mark.parametrize(
    ("method", "apply_first"),
    [
        (UPLOAD_URL, False),  # moved in the calendar, the .ics upload never started
        (UPLOAD_DONE, False),  # file id recorded, bytes posted, never shared
        (UPLOAD_DONE, True),  # shared, but the answer never came back
        ("chat.update", False),  # .ics shared, the offer not yet replaced by the change
    ],
    ids=["before-upload", "before-complete", "after-complete", "before-showing"],
)
async def test_a_kill_mid_move_is_finished_by_the_reconcile(
    crash: Crash, method: str, apply_first: bool
) -> None:
    """kill -9 while a move's .ics or its new look is on its way, restart: the reconcile
    shares exactly one updated .ics (SEQUENCE 1) and shows the move where it was asked for."""
    await crash.start()
    im, confirmation = await booked_in_dm(crash)
    _, _, booked_start = booking_now(crash)
    offer = await reschedule_offer(crash, im, confirmation)
    held = crash.slack.hold(method, apply_first=apply_first)
    assert await crash.click(im, offer) == 200
    await held.arrived.wait()
    assert crash.process is not None
    await crash.process.kill()
    held.release()
    assert changes_pending(crash) == 1

    await crash.start()
    await settled_change(crash)
    state, sequence, start = booking_now(crash)
    assert (state, sequence) == ("confirmed", 1) and start != booked_start
    assert invites(crash) == [("REQUEST", 0), ("REQUEST", 1)]
    assert len([m for m in crash.slack.messages_in(im) if m.files]) == 2
    shown = crash.slack.message(im, confirmation.ts)
    assert "moved" in str(shown.blocks) and "book_slot" not in str(shown.blocks)
    with sqlite3.connect(crash.database) as db:
        [(event_start, event_sequence)] = list(
            db.execute("SELECT start_at, sequence FROM local_events")
        )
    assert (event_start, event_sequence) == (start, 1), "the calendar moved with the booking"


async def test_a_kill_mid_cancel_after_the_share_sends_no_second_cancel(crash: Crash) -> None:
    """kill -9 after a cancel's .ics was shared but before its answer came back: after the
    restart, files.info shows it shared, so no second CANCEL goes out; the cancel shows."""
    await crash.start()
    im, confirmation = await booked_in_dm(crash)
    assert await crash.click(im, confirmation, "cancel_booking") == 200
    for _ in range(100):
        prompt = crash.slack.message(im, confirmation.ts)
        if "confirm_cancel" in str(prompt.blocks):
            break
        await asyncio.sleep(0.05)
    held = crash.slack.hold(UPLOAD_DONE, apply_first=True)
    assert await crash.click(im, prompt, "confirm_cancel") == 200
    await held.arrived.wait()
    assert crash.process is not None
    await crash.process.kill()
    held.release()

    await crash.start()
    await settled_change(crash)
    assert booking_now(crash)[:2] == ("cancelled", 1)
    assert invites(crash) == [("REQUEST", 0), ("CANCEL", 1)]
    assert bool(crash.slack.calls("files.info")), "the restarted process asked Slack first"
    assert "cancelled" in str(crash.slack.message(im, confirmation.ts).blocks)


async def test_a_retried_click_finishes_a_move_killed_on_its_way(crash: Crash) -> None:
    """With no reconcile running, clicking the same new time again after a kill finishes the
    move: one updated .ics, the move shown."""
    await crash.start(SLOTBOT_RECONCILE_SECONDS="0")
    im, confirmation = await booked_in_dm(crash)
    offer = await reschedule_offer(crash, im, confirmation)
    held = crash.slack.hold(UPLOAD_URL, apply_first=False)
    assert await crash.click(im, offer) == 200
    await held.arrived.wait()
    assert crash.process is not None
    await crash.process.kill()
    held.release()
    await crash.start(SLOTBOT_RECONCILE_SECONDS="0")
    assert changes_pending(crash) == 1
    await asyncio.sleep(2.5)  # the dead process's lease (2 s) lapses
    assert await crash.click(im, offer) == 200
    await settled_change(crash)
    assert invites(crash) == [("REQUEST", 0), ("REQUEST", 1)]
    assert "moved" in str(crash.slack.message(im, confirmation.ts).blocks)


PATCH = "calendar.events.patch"


@pytest.mark.parametrize("apply_first", [False, True], ids=["before-google", "google-answer-lost"])
async def test_a_kill_while_google_moves_the_event_is_finished_by_the_reconcile(
    crash: Crash, google: tuple[GoogleEmulator, dict[str, str]], apply_first: bool
) -> None:
    """kill -9 with the move's events.patch in flight: the restarted process patches again
    (same id), so Google, the booking and the one updated .ics all agree."""
    emulator, env = google
    await crash.start(**env)
    im, confirmation = await booked_in_dm(crash)
    offer = await reschedule_offer(crash, im, confirmation)
    held = emulator.hold(PATCH, apply_first=apply_first)
    assert await crash.click(im, offer) == 200
    await held.arrived.wait()
    assert crash.process is not None
    await crash.process.kill()
    held.release()
    _, sequence, start = booking_now(crash)
    assert sequence == 1, "decided in the store before the calendar was asked"

    await crash.start(**env)
    await settled_change(crash)
    [event] = emulator.events(str(ANA.email))
    assert datetime.fromisoformat(event["start"]["dateTime"]) == datetime.fromisoformat(start)
    assert invites(crash) == [("REQUEST", 0), ("REQUEST", 1)]
    assert "moved" in str(crash.slack.message(im, confirmation.ts).blocks)
