"""Reminders over Slack's wire (the emulator, the real slack_sdk client, a real store on SQLite
and PostgreSQL): a worker stopped between Slack's answer and the store leaves no duplicate, and
the texts people get are escaped and say what happened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.models import Booking, BookingState, ScheduleObject, TimeSlot
from bot.scheduling.reminders import Note, NoteKind, Reminders
from bot.store import Store
from handlers.blocks import note_text
from handlers.directory import PeopleCache, SlackDirectory
from handlers.messenger import SlackMessenger
from playground.slack_api import SlackEmulator, SlackUser

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
START = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
PEOPLE = [
    SlackUser(id="U0ANA0001", name="ana", tz="Europe/Berlin"),
    SlackUser(id="U0BEN0002", name="ben", tz="America/New_York"),
]


def booking(title: str = "design review", link: str | None = None) -> Booking:
    return Booking(
        key="k1",
        team_id="T000TEAM1",
        organizer_id="U0ANA0001",
        participant_ids=("U0BEN0002",),
        title=title,
        schedule=ScheduleObject.from_slot(
            TimeSlot(START, START + timedelta(minutes=45)), "Europe/Berlin"
        ),
        uid="k1@slotbot",
        offer_id="o1",
        event_link=link,
    )


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(users=PEOPLE, clock=NOW.timestamp) as emulator:
        yield emulator


async def delivered(store: Store) -> Booking:
    made = booking()
    await store.claim_booking(made)
    await store.mark_booking_created(
        made.team_id, made.key, uid=made.uid, schedule=made.schedule, event_link=None
    )
    done = await store.finish_delivery(made.team_id, made.key, channel_id="C1", message_ts="1.2")
    assert done is not None and done.state == BookingState.CONFIRMED
    return done


def syncing(
    store: Store, slack: SlackEmulator, now: datetime
) -> Callable[[Booking], Awaitable[None]]:
    """A worker bringing a booking's reminders and notices in step over the emulator at
    ``now``: each call is one pass."""
    client = AsyncWebClient(token=slack.token, base_url=slack.url)
    messenger, directory = SlackMessenger(client), SlackDirectory(client, PeopleCache())
    reminders = Reminders(store, clock=lambda: now)
    return lambda made: reminders.sync(messenger, directory, made.team_id, made.key)


async def die_while_slack_schedules(slack: SlackEmulator, sync: Awaitable[None]) -> None:
    """Run the pass until Slack has scheduled its first message, then stop the worker dead,
    Slack's answer still on the way."""
    held = slack.hold("chat.scheduleMessage", apply_first=True)
    worker = asyncio.ensure_future(sync)
    await asyncio.wait_for(held.arrived.wait(), 10)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    held.release()


async def test_a_worker_stopped_after_slack_scheduled_leaves_no_duplicate(
    store: Store, slack: SlackEmulator
) -> None:
    """Slack schedules Ana's reminder, then the worker dies before recording the id; the next
    pass lists what waits at that time, finds it by its text and keeps it: one reminder."""
    sync = syncing(store, slack, NOW)
    made = await delivered(store)
    await die_while_slack_schedules(slack, sync(made))
    [left] = slack.scheduled_messages()
    # Every row of the booking recorded what was under way before the first call went out.
    rows_then = await store.booking_messages_of(made.team_id, made.key)
    assert {(r.user_id, r.kind) for r in rows_then} == {
        ("U0ANA0001", "reminder"),
        ("U0BEN0002", "reminder"),
        ("U0BEN0002", "notice"),
    }
    assert all(r.state == "pending" and r.message_id is None for r in rows_then)
    assert all(r.lease_until is None for r in rows_then), "the leases were given back"

    await sync(made)

    ana_dm = slack.im_channel("U0ANA0001")
    reminders_for_ana = [s for s in slack.scheduled_messages() if s.channel == ana_dm]
    assert [s.id for s in reminders_for_ana] == [left.id]
    assert left.post_at == int((START - timedelta(minutes=10)).timestamp())
    assert slack.calls("chat.scheduledMessages.list"), "it looked before scheduling again"
    rows = {(r.user_id, r.kind): r for r in await store.booking_messages_of(made.team_id, made.key)}
    assert rows[("U0ANA0001", "reminder")].message_id == left.id
    assert rows[("U0ANA0001", "reminder")].state == "scheduled"
    assert len(slack.calls("chat.scheduleMessage")) == 3  # Ana's once, Ben's reminder, notice


async def test_a_notice_not_yet_posted_when_the_worker_died_is_posted_by_the_next_pass(
    store: Store, slack: SlackEmulator
) -> None:
    """Ben is at work, so his notice goes out at once (a post, never repeated once begun). The
    worker dies while Slack schedules Ana's reminder, before it reached Ben's notice: the
    next pass posts the notice once and keeps the reminder Slack already holds."""
    at_work = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 10:00 in New York, Ben's Monday
    sync = syncing(store, slack, at_work)
    made = await delivered(store)
    await die_while_slack_schedules(slack, sync(made))
    assert slack.calls("chat.postMessage") == []
    rows = {(r.user_id, r.kind): r for r in await store.booking_messages_of(made.team_id, "k1")}
    assert rows[("U0BEN0002", "notice")].state == "new", "nothing recorded as being posted"

    await sync(made)

    [posted] = slack.calls("chat.postMessage")
    assert posted.params["channel"] == slack.im_channel("U0BEN0002")
    assert len(slack.scheduled_messages()) == 2, "one reminder each, the first one kept"
    rows = {(r.user_id, r.kind): r for r in await store.booking_messages_of(made.team_id, "k1")}
    assert rows[("U0BEN0002", "notice")].state == "posted"
    assert {rows[(u, "reminder")].state for u in ("U0ANA0001", "U0BEN0002")} == {"scheduled"}


def test_texts_escape_the_title_and_link_the_event() -> None:
    """A title cannot ping or link; the event link is there when the calendar gave one."""
    made = booking("<!channel> & <http://evil|x>", link="https://calendar.example/e/1")
    text = note_text(Note(NoteKind.REMINDER, made, lead_minutes=60))
    assert text.startswith(":alarm_clock: Starting in 1 hour: *&lt;!channel&gt; &amp; &lt;http")
    assert "<!channel>" not in text and "<https://calendar.example/e/1|Open the event>" in text
    assert f"<!date^{int(START.timestamp())}^" in text


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        (Note(NoteKind.REMINDER, booking(), lead_minutes=10), "Starting in 10 minutes: *"),
        (Note(NoteKind.REMINDER, booking(), lead_minutes=0), "Starting now: *design review*"),
        (Note(NoteKind.REMINDER, booking(), lead_minutes=90), "Starting in 90 minutes"),
        (Note(NoteKind.BOOKED, booking()), "<@U0ANA0001> booked *design review* with you for"),
        (Note(NoteKind.CANCELLED, booking()), "<@U0ANA0001> cancelled *design review* with you"),
        (
            Note(NoteKind.MOVED, booking(), previous_start=START - timedelta(days=1)),
            f"moved *design review* from ~<!date^{int((START - timedelta(days=1)).timestamp())}^",
        ),
    ],
)
def test_each_note_says_what_happened(note: Note, expected: str) -> None:
    """Reminders count down in the person's own lead; notices name the organizer."""
    assert expected in note_text(note)
    assert note_text(note) == note_text(note), "the same note, the same text"
