"""End to end through Slack's wire: reminders before a meeting (chat.scheduleMessage, each
person's own lead), notices to the others of a booking, a move or a cancel, held back to their
next working window outside their working hours, and all of it moved or taken back with the
meeting; a series reminded of one meeting at a time, and told which of its meetings changed.
Slack's emulator and Slotbot read one clock, so every post_at is exact.

The scenarios that book run on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.models import BookingState, WorkingHours
from bot.store import UserSettings
from handlers import ids
from handlers.reconcile import reconcile_once
from playground.slack_api import ScheduledMessage, SlackUser
from tests.handlers.test_settings_blocks import submitted_values
from tests.scenarios.harness import (
    ANA,
    BEN,
    EVE,
    NOW,
    Harness,
    Offer,
    offer_from_ephemeral,
    on_each_database,
    start_harness,
    stop_harness,
)
from tests.scenarios.test_home_settings import open_settings, submit
from tests.scenarios.test_lifecycle import (
    BOOKED_AT,
    Booked,
    booking_of,
    click_and_settle,
    click_and_wait,
)
from tests.scenarios.test_recurring import TUESDAYS, click
from tests.test_manifest import load_manifest

NEW_YORK = ZoneInfo("America/New_York")
SCHEDULE = "chat.scheduleMessage"
UNSCHEDULE = "chat.deleteScheduledMessage"
POST = "chat.postMessage"
#: Monday 30 November, 03:00 in New York: Ben's notices wait for his 09:00.
BEN_WORKDAY_STARTS = datetime(2026, 11, 30, 9, 0, tzinfo=NEW_YORK)

#: The offer and the Book button each booking was made with, by booking key.
CLICKED: dict[str, tuple[Offer, dict[str, Any]]] = {}


@pytest.fixture
async def bot(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """The bot with Ben's reminder 25 minutes ahead and Eve's off, Eve at work 07:00–15:00
    UTC (so 08:00 is within her hours); on SQLite, or on each database when marked."""
    database_url = None
    if "database_url" in request.fixturenames:
        database_url = request.getfixturevalue("database_url")
    harness = await start_harness(tmp_path, database_url=database_url)
    # Slack checks post_at against its own clock: the same one as Slotbot's here.
    harness.slack.clock = lambda: harness.clock().timestamp()
    store, team = harness.slotbot.store, harness.slack.team_id
    await store.save_settings(team, BEN.id, UserSettings(reminder_lead_minutes=25))
    eve_hours = WorkingHours.uniform(time(7), time(15))
    await store.save_settings(
        team, EVE.id, UserSettings(working_hours=eve_hours, reminder_lead_minutes=None)
    )
    yield harness
    await stop_harness(harness)


def dm(bot: Harness, user: SlackUser) -> str:
    channel = bot.slack.im_channel(user.id)
    assert channel is not None, f"no DM with {user.name}"
    return channel


def waiting(bot: Harness, user: SlackUser) -> list[ScheduledMessage]:
    """The messages waiting for their time in the bot's DM with ``user``."""
    channel = bot.slack.im_channel(user.id)
    return [s for s in bot.slack.scheduled_messages() if s.channel == channel]


def at(moment: datetime) -> int:
    return int(moment.timestamp())


async def book(bot: Harness) -> Booked:
    """Ana books 45 minutes with Ben and Eve tomorrow afternoon (15:00 Berlin), and the
    follow-up is done: two reminders and Ben's notice scheduled, Eve's notice posted.
    ``clicked`` is the offer as it was and the Book button she clicked."""
    scheduled, posted = len(bot.slack.calls(SCHEDULE)), len(bot.slack.calls(POST))
    status, _ = await bot.command(
        f"design review with <@{BEN.id}> <@{EVE.id}> 45m tomorrow afternoon"
    )
    assert status == 200
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    button = offer.buttons("book_slot")[0]
    await click_and_wait(bot, offer, button)
    await bot.wait_for(SCHEDULE, count=scheduled + 3)
    await bot.wait_for(POST, count=posted + 1)
    await bot.settle()
    [booking] = await bot.slotbot.store.bookings_for_user(bot.slack.team_id, ANA.id, BOOKED_AT)
    assert booking.slot.start == BOOKED_AT
    CLICKED[booking.key] = (offer, button)
    return Booked(booking.key, offer_from_ephemeral(bot))


@on_each_database
async def test_booking_schedules_each_persons_reminder_and_quiet_notices(bot: Harness) -> None:
    """Booked: Ana's reminder 10 minutes ahead and Ben's 25 (their own leads), none for Eve
    (reminders off); Ben, at 03:00 in New York, gets his notice scheduled for 09:00 there,
    Eve, within her hours, gets it now; Ana, who booked it, gets no notice."""
    await book(bot)
    start = BOOKED_AT

    [ana_reminder] = waiting(bot, ANA)
    assert ana_reminder.post_at == at(start - timedelta(minutes=10))
    assert ana_reminder.text.startswith(":alarm_clock: Starting in 10 minutes: *design review*")
    assert f"<!date^{at(start)}^" in ana_reminder.text

    ben = {s.post_at: s.text for s in waiting(bot, BEN)}
    assert set(ben) == {at(start - timedelta(minutes=25)), at(BEN_WORKDAY_STARTS)}
    assert ben[at(start - timedelta(minutes=25))].startswith(":alarm_clock: Starting in 25 minutes")
    notice = ben[at(BEN_WORKDAY_STARTS)]
    assert f"<@{ANA.id}> booked *design review* with you for <!date^{at(start)}^" in notice

    assert waiting(bot, EVE) == [], "Eve turned reminders off and her notice went at once"
    [eve_notice] = bot.slack.messages_in(dm(bot, EVE))
    assert f"<@{ANA.id}> booked *design review* with you" in eve_notice.text
    assert not any("booked" in m.text for m in bot.slack.messages_in(dm(bot, ANA)))

    # Ten minutes before, Slack posts the reminders that are due: Ana's arrives in her DM.
    bot.clock.now = start - timedelta(minutes=10)
    bot.slack.deliver_due()
    assert bot.slack.messages_in(dm(bot, ANA))[-1].text == ana_reminder.text
    assert [m.text for m in bot.slack.messages_in(dm(bot, BEN))] == [
        notice,
        ben[at(start - timedelta(minutes=25))],
    ]


@on_each_database
async def test_a_retried_click_and_the_reconcile_schedule_nothing_more(bot: Harness) -> None:
    """A second click on the booked offer and a reconcile pass: not one more reminder or
    notice scheduled, posted or deleted."""
    booked = await book(bot)
    before = [len(bot.slack.calls(m)) for m in (SCHEDULE, POST, UNSCHEDULE)]
    offer, button = CLICKED[booked.key]
    assert await bot.click(offer, button) == 200
    await bot.settle()
    slotbot = bot.slotbot
    assert slotbot.reminders is not None
    await reconcile_once(slotbot.bolt.client, slotbot.scheduler, slotbot.reminders)
    await bot.settle()

    assert [len(bot.slack.calls(m)) for m in (SCHEDULE, POST, UNSCHEDULE)] == before
    assert len(bot.slack.scheduled_messages()) == 3
    rows = await slotbot.store.booking_messages_of(bot.slack.team_id, booked.key)
    states = {(r.user_id, r.kind): r.state for r in rows}
    assert states == {
        (ANA.id, "reminder"): "scheduled",
        (BEN.id, "reminder"): "scheduled",
        (BEN.id, "notice"): "scheduled",
        (EVE.id, "reminder"): "none",
        (EVE.id, "notice"): "posted",
    }


@on_each_database
async def test_reschedule_replaces_reminders_and_the_notice_still_waiting(bot: Harness) -> None:
    """Moved: the old reminders are deleted and new ones scheduled for the new time; Ben's
    notice, still waiting, is replaced by one that books the new time (he never saw the old);
    Eve, who saw the booking, is told now that it moved."""
    booked = await book(bot)
    old = {s.id for s in bot.slack.scheduled_messages()}
    scheduled, posted = len(bot.slack.calls(SCHEDULE)), len(bot.slack.calls(POST))

    await click_and_settle(bot, booked.confirmation, ids.RESCHEDULE)
    offer = offer_from_ephemeral(bot)
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    await bot.wait_for(SCHEDULE, count=scheduled + 3)
    await bot.wait_for(POST, count=posted + 1)
    await bot.settle()

    moved = await booking_of(bot, booked.key)
    start = moved.slot.start
    assert start != BOOKED_AT and moved.sequence == 1
    deleted = {c.params["scheduled_message_id"] for c in bot.slack.calls(UNSCHEDULE) if c.ok}
    assert deleted == old
    [ana_reminder] = waiting(bot, ANA)
    assert ana_reminder.post_at == at(start - timedelta(minutes=10))
    ben = {s.post_at: s.text for s in waiting(bot, BEN)}
    assert set(ben) == {at(start - timedelta(minutes=25)), at(BEN_WORKDAY_STARTS)}
    notice = ben[at(BEN_WORKDAY_STARTS)]
    assert f"booked *design review* with you for <!date^{at(start)}^" in notice
    eve_moved = bot.slack.messages_in(dm(bot, EVE))[-1].text
    assert f"<@{ANA.id}> moved *design review* from ~<!date^{at(BOOKED_AT)}^" in eve_moved
    assert f"to <!date^{at(start)}^" in eve_moved


@on_each_database
async def test_cancel_deletes_reminders_and_the_unsent_notice(bot: Harness) -> None:
    """Cancelled: every reminder is deleted; Ben's booking notice, still waiting, is deleted
    and he hears nothing (no stale news); Eve, who was told, is told of the cancel now."""
    booked = await book(bot)
    posted = len(bot.slack.calls(POST))

    await click_and_settle(bot, booked.confirmation, ids.CANCEL_BOOKING)
    prompt = offer_from_ephemeral(bot)
    await click_and_settle(bot, prompt, ids.CONFIRM_CANCEL)
    await bot.wait_for(POST, count=posted + 1)
    await bot.settle()

    assert (await booking_of(bot, booked.key)).state == BookingState.CANCELLED
    assert bot.slack.scheduled_messages() == []
    assert len([c for c in bot.slack.calls(UNSCHEDULE) if c.ok]) == 3
    assert bot.slack.messages_in(dm(bot, BEN)) == []
    cancelled = bot.slack.messages_in(dm(bot, EVE))[-1].text
    assert f"<@{ANA.id}> cancelled *design review* with you" in cancelled


async def test_a_new_lead_in_app_home_moves_the_scheduled_reminder(bot: Harness) -> None:
    """Ana sets her reminder to 30 minutes in App Home: her scheduled reminder is replaced by
    one 30 minutes before; clearing the field (no reminders) deletes it."""
    await book(bot)
    [first] = waiting(bot, ANA)

    for lead, expected in (("30", at(BOOKED_AT - timedelta(minutes=30))), ("", None)):
        deleted = len(bot.slack.calls(UNSCHEDULE))
        modal = await open_settings(bot)
        status, _ = await submit(bot, modal, submitted_values(modal, reminder_lead=lead))
        assert status == 200
        await bot.wait_for(UNSCHEDULE, count=deleted + 1)
        await bot.settle()
        found = waiting(bot, ANA)
        if expected is None:
            assert found == []
        else:
            [reminder] = found
            assert reminder.id != first.id and reminder.post_at == expected
            assert reminder.text.startswith(":alarm_clock: Starting in 30 minutes")


@on_each_database
async def test_a_reminder_too_far_ahead_waits_for_the_reconcile(bot: Harness) -> None:
    """A meeting 136 days ahead: Slack takes messages up to 120 days ahead, so the reminders
    wait in the store; once the time is within reach the reconcile schedules them, once."""
    store, team = bot.slotbot.store, bot.slack.team_id
    await store.save_settings(team, ANA.id, UserSettings(horizon_days=200))
    await bot.command(f"planning with <@{BEN.id}> 30m april 15 afternoon")
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    await bot.wait_for(SCHEDULE)  # Ben's notice, for his 09:00
    await bot.settle()
    [booking] = await store.bookings_for_user(team, ANA.id, bot.clock.now)
    start = booking.slot.start
    assert start - bot.clock.now > timedelta(days=120)
    assert waiting(bot, ANA) == [] and len(waiting(bot, BEN)) == 1
    assert len(bot.slack.calls(SCHEDULE)) == 1

    slotbot = bot.slotbot
    assert slotbot.reminders is not None
    bot.clock.now = datetime(2027, 1, 4, 12, tzinfo=UTC)  # 101 days before
    for _ in range(2):  # a second pass finds nothing more to do
        await reconcile_once(slotbot.bolt.client, slotbot.scheduler, slotbot.reminders)
    [ana_reminder] = waiting(bot, ANA)
    assert ana_reminder.post_at == at(start - timedelta(minutes=10))
    assert at(start - timedelta(minutes=25)) in {s.post_at for s in waiting(bot, BEN)}
    assert len(bot.slack.calls(SCHEDULE)) == 3


@on_each_database
async def test_slack_failing_leaves_the_booking_and_the_reconcile_catches_up(
    bot: Harness,
) -> None:
    """chat.scheduleMessage answers 500 three times: the booking is confirmed all the same,
    and the reconcile schedules each reminder and notice exactly once."""
    bot.slack.fail_next(SCHEDULE, 3, status=500)
    posted = len(bot.slack.calls(POST))
    status, _ = await bot.command(
        f"design review with <@{BEN.id}> <@{EVE.id}> 45m tomorrow afternoon"
    )
    assert status == 200
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    await bot.wait_for(SCHEDULE, count=3)
    await bot.wait_for(POST, count=posted + 1)
    await bot.settle()
    assert bot.slack.scheduled_messages() == []
    assert "is booked" in str(bot.latest_ephemeral().blocks)

    slotbot = bot.slotbot
    assert slotbot.reminders is not None
    for _ in range(2):
        await reconcile_once(slotbot.bolt.client, slotbot.scheduler, slotbot.reminders)
    assert len(waiting(bot, ANA)) == 1 and len(waiting(bot, BEN)) == 2
    assert len([c for c in bot.slack.calls(SCHEDULE) if c.ok]) == 3
    assert len(bot.slack.calls(POST)) == posted + 1, "Eve's notice went once, at the click"


# --- a series: one reminder per person, for its next meeting ----------------------------------


async def book_series(bot: Harness) -> Booked:
    """Ana books a weekly sync with Ben on Tuesdays at 16:00 Berlin (15:00 UTC, 10:00 in New
    York) from 1 December, and the follow-up is done: Ana's and Ben's reminders for the first
    meeting, and Ben's notice for his 09:00, scheduled."""
    scheduled = len(bot.slack.calls(SCHEDULE))
    status, _ = await bot.command(f"weekly sync with <@{BEN.id}> on tuesdays at 4pm")
    assert status == 200
    await bot.settle()
    offer = offer_from_ephemeral(bot)
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    await bot.wait_for(SCHEDULE, count=scheduled + 3)
    await bot.settle()
    [booking] = await bot.slotbot.store.bookings_for_user(bot.slack.team_id, ANA.id, NOW)
    assert booking.recurring and booking.slot.start == TUESDAYS[0]
    return Booked(booking.key, offer_from_ephemeral(bot))


async def reconcile(bot: Harness) -> None:
    slotbot = bot.slotbot
    assert slotbot.reminders is not None
    await reconcile_once(slotbot.bolt.client, slotbot.scheduler, slotbot.reminders)
    await bot.settle()


async def after_the_first_meeting(bot: Harness) -> None:
    """An hour after the first meeting began (11:00 in New York: Ben is at work), with what
    Slack had to post by then posted and a reconcile pass done."""
    bot.clock.now = TUESDAYS[0] + timedelta(hours=1)
    bot.slack.deliver_due()
    await reconcile(bot)


def reminded_of(bot: Harness, user: SlackUser) -> list[int]:
    """The start (as its date token's instant) of the meeting each waiting reminder names."""
    return [
        int(s.text.split("<!date^", 1)[1].split("^", 1)[0])
        for s in waiting(bot, user)
        if s.text.startswith(":alarm_clock:")
    ]


@on_each_database
async def test_a_series_reminds_before_every_meeting_one_at_a_time(bot: Harness) -> None:
    """Booked: one reminder each, for the first meeting, and Ben's notice says it repeats.
    Once the first reminders went out, a reconcile pass schedules the second meeting's (one
    each, with its time); a second pass schedules nothing more."""
    await book_series(bot)
    [ana] = waiting(bot, ANA)
    assert ana.post_at == at(TUESDAYS[0] - timedelta(minutes=10))
    assert reminded_of(bot, ANA) == [at(TUESDAYS[0])]
    ben = {s.post_at: s.text for s in waiting(bot, BEN)}
    assert set(ben) == {at(TUESDAYS[0] - timedelta(minutes=25)), at(BEN_WORKDAY_STARTS)}
    assert (
        f"<@{ANA.id}> booked *sync* with you, every Tuesday from <!date^{at(TUESDAYS[0])}^"
        in ben[at(BEN_WORKDAY_STARTS)]
    )

    bot.clock.now = TUESDAYS[0] - timedelta(minutes=10)
    bot.slack.deliver_due()
    assert waiting(bot, ANA) == [] and waiting(bot, BEN) == []
    scheduled = len(bot.slack.calls(SCHEDULE))
    await reconcile(bot)
    [ana] = waiting(bot, ANA)
    assert ana.post_at == at(TUESDAYS[1] - timedelta(minutes=10))
    assert ana.text.startswith(":alarm_clock: Starting in 10 minutes: *sync*")
    assert reminded_of(bot, ANA) == [at(TUESDAYS[1])]
    [ben_next] = waiting(bot, BEN)
    assert ben_next.post_at == at(TUESDAYS[1] - timedelta(minutes=25))
    assert reminded_of(bot, BEN) == [at(TUESDAYS[1])]
    assert len(bot.slack.calls(SCHEDULE)) == scheduled + 2

    await reconcile(bot)
    assert len(bot.slack.calls(SCHEDULE)) == scheduled + 2, "nothing more to schedule"
    assert bot.slack.calls(UNSCHEDULE) == []


@on_each_database
async def test_cancelling_the_next_meeting_moves_its_reminder_to_the_one_after(
    bot: Harness,
) -> None:
    """After the first meeting the reminders are for the second; Ana cancels the second only:
    its reminders are deleted, the third's scheduled (one each), and Ben, at work, is told now
    which meeting went. Cancelling a meeting after the third leaves its reminders alone."""
    booked = await book_series(bot)
    await after_the_first_meeting(bot)
    second = {s.id for s in bot.slack.scheduled_messages()}
    assert reminded_of(bot, ANA) == [at(TUESDAYS[1])] == reminded_of(bot, BEN)
    posted = len(bot.slack.calls(POST))

    await click(bot, booked.confirmation, ids.CANCEL_BOOKING)
    await click(bot, offer_from_ephemeral(bot), f"{ids.CANCEL_OCCURRENCE}_0")
    await click(bot, offer_from_ephemeral(bot), ids.CONFIRM_CANCEL)
    await bot.wait_for(POST, count=posted + 1)
    await bot.settle()

    deleted = {c.params["scheduled_message_id"] for c in bot.slack.calls(UNSCHEDULE) if c.ok}
    assert deleted == second
    assert reminded_of(bot, ANA) == [at(TUESDAYS[2])] == reminded_of(bot, BEN)
    assert len(bot.slack.scheduled_messages()) == 2
    told = bot.slack.messages_in(dm(bot, BEN))[-1].text
    assert told.startswith(
        f":x: <@{ANA.id}> cancelled the Tue 8 Dec meeting of *sync*, ~<!date^{at(TUESDAYS[1])}^"
    )
    assert "the rest of the series stays" in told
    await reconcile(bot)
    assert len(bot.slack.scheduled_messages()) == 2, "the reconcile finds nothing behind"

    # A later meeting cancelled (the 22nd): the reminders for the 15th stay as they are.
    kept = {s.id for s in bot.slack.scheduled_messages()}
    deletes, posted = len(bot.slack.calls(UNSCHEDULE)), len(bot.slack.calls(POST))
    await click(bot, booked.confirmation, ids.CANCEL_BOOKING)
    await click(bot, offer_from_ephemeral(bot), f"{ids.CANCEL_OCCURRENCE}_1")
    await click(bot, offer_from_ephemeral(bot), ids.CONFIRM_CANCEL)
    await bot.wait_for(POST, count=posted + 1)
    await bot.settle()
    assert {s.id for s in bot.slack.scheduled_messages()} == kept
    assert len(bot.slack.calls(UNSCHEDULE)) == deletes
    assert "cancelled the Tue 22 Dec meeting" in bot.slack.messages_in(dm(bot, BEN))[-1].text


@on_each_database
async def test_moving_one_meeting_tells_the_others_which_one_and_moves_reminders(
    bot: Harness,
) -> None:
    """Ana moves the second meeting: Ben is told "moved the Tue 8 Dec meeting of *sync*
    from ~its time~ to the new one", and the reminders follow the next meeting."""
    booked = await book_series(bot)
    await after_the_first_meeting(bot)
    posted = len(bot.slack.calls(POST))

    await click(bot, booked.confirmation, ids.RESCHEDULE)
    await click(bot, offer_from_ephemeral(bot), f"{ids.RESCHEDULE_OCCURRENCE}_0")
    offer = offer_from_ephemeral(bot)
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    await bot.wait_for(POST, count=posted + 1)
    await bot.settle()

    [change] = (await booking_of(bot, booked.key)).exceptions
    assert change.original_start == TUESDAYS[1] and change.slot is not None
    moved_to = change.slot.start
    told = bot.slack.messages_in(dm(bot, BEN))[-1].text
    assert told.startswith(
        f":arrows_counterclockwise: <@{ANA.id}> moved the Tue 8 Dec meeting of *sync* "
        f"from ~<!date^{at(TUESDAYS[1])}^"
    )
    assert f"to <!date^{at(moved_to)}^" in told
    following = at(min(moved_to, TUESDAYS[2]))
    assert reminded_of(bot, ANA) == [following] == reminded_of(bot, BEN)


async def test_changes_while_a_notice_waits_come_in_one_notice(bot: Harness) -> None:
    """Ben is off for the night when Ana cancels the second meeting and then the third: one
    notice waits for his morning and names both."""
    booked = await book_series(bot)
    bot.clock.now = TUESDAYS[0] + timedelta(hours=8)  # 18:00 in New York
    bot.slack.deliver_due()
    await reconcile(bot)
    for index in (0, 0):  # the next upcoming each time: the 8th, then the 15th
        await click(bot, booked.confirmation, ids.CANCEL_BOOKING)
        await click(bot, offer_from_ephemeral(bot), f"{ids.CANCEL_OCCURRENCE}_{index}")
        await click(bot, offer_from_ephemeral(bot), ids.CONFIRM_CANCEL)
        await bot.settle()

    morning = datetime(2026, 12, 2, 9, 0, tzinfo=NEW_YORK)
    [notice] = [s for s in waiting(bot, BEN) if s.post_at == at(morning)]
    lines = notice.text.split("\n")
    assert [line.split(",")[0] for line in lines] == [
        f":x: <@{ANA.id}> cancelled the Tue 8 Dec meeting of *sync*",
        f":x: <@{ANA.id}> cancelled the Tue 15 Dec meeting of *sync*",
    ]
    assert reminded_of(bot, BEN) == [at(TUESDAYS[3])]


#: The bot scope each Web API method needs (None: no scope), per Slack's method reference.
METHOD_SCOPES: dict[str, str | None] = {
    "auth.test": None,
    "users.info": "users:read",
    "users.list": "users:read",
    "conversations.open": "im:write",
    "chat.postMessage": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.update": "chat:write",
    "chat.getPermalink": None,
    "chat.scheduleMessage": "chat:write",
    "chat.deleteScheduledMessage": "chat:write",
    "chat.scheduledMessages.list": None,
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "files.info": "files:read",
    "upload_url": None,
    "response_url": None,
}


async def test_every_method_a_meetings_life_calls_has_its_scope_in_the_manifest(
    bot: Harness,
) -> None:
    """Book, move, cancel with reminders and notices (and a reconcile pass): each Web API
    method called needs a scope manifest.yml asks for; scheduling needs no new one."""
    booked = await book(bot)
    await click_and_settle(bot, booked.confirmation, ids.RESCHEDULE)
    offer = offer_from_ephemeral(bot)
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    await click_and_settle(bot, offer_from_ephemeral(bot), ids.CANCEL_BOOKING)
    await click_and_settle(bot, offer_from_ephemeral(bot), ids.CONFIRM_CANCEL)
    await bot.settle()
    slotbot = bot.slotbot
    assert slotbot.reminders is not None
    await reconcile_once(slotbot.bolt.client, slotbot.scheduler, slotbot.reminders)

    called = {c.method for c in bot.slack.calls()}
    assert {SCHEDULE, UNSCHEDULE, POST} <= called
    assert called <= set(METHOD_SCOPES), called - set(METHOD_SCOPES)
    declared = set(load_manifest()["oauth_config"]["scopes"]["bot"])
    needed = {METHOD_SCOPES[m] for m in called} - {None}
    assert needed <= declared, needed - declared
