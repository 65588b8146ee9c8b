"""The store's booking_messages on SQLite and PostgreSQL: leases on each person's reminder and
notice, their saved progress, and which bookings the reconcile must bring in step."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.models import ScheduleObject, TimeSlot
from bot.store import BookingMessage, Store
from tests.bot.schema_rollback import roll_back
from tests.bot.test_store import NOW, make_booking, slot_at

LEASE = timedelta(seconds=60)
HORIZON = timedelta(days=120)


async def confirmed(
    store: Store, key: str = "booking-1", *, recurrence: list[str] | None = None, **changes: object
) -> None:
    """A delivered booking of U1 with U2 and U3 on 1 December (a series with ``recurrence``)."""
    booking = make_booking(key, **changes)  # type: ignore[arg-type]
    if recurrence is not None:
        schedule = ScheduleObject.from_slot(booking.slot, "Europe/Paris", recurrence=recurrence)
        booking = replace(booking, schedule=schedule)
    await store.claim_booking(booking)
    await store.mark_booking_created(
        booking.team_id, key, uid=booking.uid, schedule=booking.schedule, event_link=None
    )
    await store.finish_delivery(booking.team_id, key, channel_id="C1", message_ts="1.2")


async def claim_one(
    store: Store, key: str, user: str, kind: str, now: datetime, until: datetime
) -> BookingMessage | None:
    """One row's claim: the row now leased, or None while another worker holds it."""
    held = await store.claim_booking_messages("T1", [(key, user, kind)], now, until)
    return held[0] if held else None


async def in_step(store: Store, key: str, user: str, kind: str, **changes: object) -> None:
    """Claim the row and save it as brought in step with sequence 0 (scheduled)."""
    held = await claim_one(store, key, user, kind, NOW, NOW + LEASE)
    assert held is not None
    fields: dict[str, object] = {"state": "scheduled", "sequence": 0, **changes}
    await store.save_booking_messages([replace(held, **fields)], release=True)  # type: ignore[arg-type]


async def test_a_claim_holds_the_row_until_released(store: Store) -> None:
    """The first claim gets a new row; a second, while leased, gets None; after the release
    the next claim sees what the first saved, every field as written."""
    await confirmed(store)
    first = await claim_one(store, "booking-1", "U2", "notice", NOW, NOW + LEASE)
    assert first == BookingMessage("T1", "booking-1", "U2", "notice", lease_until=NOW + LEASE)
    assert await claim_one(store, "booking-1", "U2", "notice", NOW, NOW + LEASE) is None
    post_at = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    saved = replace(
        first,
        state="scheduled",
        sequence=2,
        post_at=post_at,
        channel_id="D1",
        message_id="Q1",
        digest="d" * 64,
        note="moved",
        about_start=slot_at(16).start,
        told_note="booked",
        told_start=slot_at(15).start,
        told_sequence=1,
    )
    await store.save_booking_messages([saved], release=True)
    again = await claim_one(store, "booking-1", "U2", "notice", NOW, NOW + LEASE)
    assert again == replace(saved, lease_until=NOW + LEASE)
    assert again.post_at is not None and again.post_at.tzinfo is not None
    # The reminder of the same person is a row of its own.
    assert await claim_one(
        store, "booking-1", "U2", "reminder", NOW, NOW + LEASE
    ) == BookingMessage("T1", "booking-1", "U2", "reminder", lease_until=NOW + LEASE)


async def test_a_lapsed_lease_is_taken_over(store: Store) -> None:
    """A worker that died frees the row when its lease lapses."""
    await confirmed(store)
    assert await claim_one(store, "booking-1", "U1", "reminder", NOW, NOW + LEASE)
    later = NOW + LEASE
    taken = await claim_one(store, "booking-1", "U1", "reminder", later, later + LEASE)
    assert taken is not None and taken.lease_until == later + LEASE


async def test_racing_claims_give_the_row_to_one(store: Store) -> None:
    """Eight concurrent claims of one row: exactly one wins."""
    await confirmed(store)
    claims = await asyncio.gather(
        *(claim_one(store, "booking-1", "U3", "notice", NOW, NOW + LEASE) for _ in range(8))
    )
    assert sum(claim is not None for claim in claims) == 1


async def test_rows_of_several_bookings_are_claimed_saved_and_released_together(
    store: Store,
) -> None:
    """One claim for several people's rows of two bookings takes the free ones and leaves
    the one another worker holds; one save records each row's own progress; one release
    frees exactly the rows named."""
    await confirmed(store)
    other = await claim_one(store, "booking-1", "U2", "notice", NOW, NOW + LEASE)
    assert other is not None
    await confirmed(store, "booking-2")
    wanted = [
        ("booking-1", "U1", "reminder"),
        ("booking-1", "U2", "reminder"),
        ("booking-1", "U2", "notice"),
        ("booking-1", "U3", "notice"),
        ("booking-2", "U2", "notice"),
    ]
    held = await store.claim_booking_messages("T1", wanted, NOW, NOW + LEASE)
    assert [(h.booking_key, h.user_id, h.kind) for h in held] == [
        ("booking-1", "U1", "reminder"),
        ("booking-1", "U2", "reminder"),
        ("booking-1", "U3", "notice"),
        ("booking-2", "U2", "notice"),
    ], "the row held elsewhere is left out; the order is the one asked"
    saved = [
        replace(h, state="scheduled", sequence=n, message_id=f"Q{n}", channel_id=f"D{n}")
        for n, h in enumerate(held)
    ]
    await store.save_booking_messages(saved, release=True)
    rows = {(r.user_id, r.kind): r for r in await store.booking_messages_of("T1", "booking-1")}
    for n, (user, kind) in enumerate([("U1", "reminder"), ("U2", "reminder"), ("U3", "notice")]):
        assert rows[user, kind].message_id == f"Q{n}" and rows[user, kind].sequence == n
        assert rows[user, kind].lease_until is None
    assert rows["U2", "notice"].lease_until == NOW + LEASE, "the other worker's row untouched"
    [other_booking] = await store.booking_messages_of("T1", "booking-2")
    assert other_booking.message_id == "Q3" and other_booking.lease_until is None

    again = await store.claim_booking_messages("T1", wanted, NOW, NOW + LEASE)
    assert len(again) == 4
    await store.release_booking_messages([again[0], again[2]])
    rows = {(r.user_id, r.kind): r for r in await store.booking_messages_of("T1", "booking-1")}
    assert rows["U1", "reminder"].lease_until is None
    assert rows["U3", "notice"].lease_until is None
    assert rows["U2", "reminder"].lease_until == NOW + LEASE, "not named: still held"


async def test_bookings_owing_messages(store: Store) -> None:
    """A delivered future booking is owed messages until every person's reminder and every
    attendee's notice is in step; a row behind (another sequence, unfinished, or waiting
    and now within reach) puts it back; a leased row keeps it off the list."""
    await confirmed(store)
    owing = store.bookings_owing_messages
    assert await owing(NOW, HORIZON) == [("T1", "booking-1")]

    for user in ("U1", "U2", "U3"):
        await in_step(store, "booking-1", user, "reminder")
    for user in ("U2", "U3"):
        assert await owing(NOW, HORIZON) == [("T1", "booking-1")], "a notice is missing"
        await in_step(store, "booking-1", user, "notice")
    assert await owing(NOW, HORIZON) == [], "the organizer gets no notice"

    await in_step(store, "booking-1", "U2", "reminder", sequence=-1)
    assert await owing(NOW, HORIZON) == [("T1", "booking-1")], "made for another sequence"
    await in_step(store, "booking-1", "U2", "reminder", state="pending")
    assert await owing(NOW, HORIZON) == [("T1", "booking-1")], "a worker stopped midway"
    held = await claim_one(store, "booking-1", "U2", "reminder", NOW, NOW + LEASE)
    assert held is not None
    assert await owing(NOW, HORIZON) == [], "leased: someone is on it"
    await store.release_booking_messages([held])

    await in_step(store, "booking-1", "U2", "reminder")
    after_start = slot_at(15).start
    await in_step(store, "booking-1", "U3", "reminder", state="pending")
    assert await owing(after_start, HORIZON) == [], "it started: nothing owed any more"


async def test_a_series_is_owed_its_next_reminder_once_the_last_went(store: Store) -> None:
    """A weekly series whose first meeting is over: while each person's reminder waits for its
    time nothing is owed; once one's time has come (it went out) the series is owed again, for
    the next meeting's; a single meeting in the same state is not (it has started)."""
    await confirmed(store, recurrence=["RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=3"])
    await confirmed(store, "single")
    first = slot_at(15).start  # Tuesday 1 December
    for key in ("booking-1", "single"):
        for user in ("U1", "U2", "U3"):
            await in_step(store, key, user, "reminder", post_at=first - timedelta(minutes=10))
        for user in ("U2", "U3"):
            await in_step(store, key, user, "notice", state="posted")
    owing = store.bookings_owing_messages
    assert await owing(NOW, HORIZON) == [], "every reminder waits for its time"
    after_first = first + timedelta(hours=1)
    assert await owing(after_first, HORIZON) == [("T1", "booking-1")]

    second = first + timedelta(days=7, minutes=-10)
    for user in ("U1", "U2", "U3"):
        await in_step(store, "booking-1", user, "reminder", post_at=second)
    assert await owing(after_first, HORIZON) == [], "the next meeting's reminder waits"
    await in_step(store, "booking-1", "U3", "reminder", state="none", post_at=None)
    assert await owing(after_first, HORIZON) == [], "no reminder wanted: nothing owed"
    after_last = first + timedelta(days=14, hours=1)
    assert await owing(after_last, HORIZON) == [], "the series is over"


async def test_a_reminder_waiting_beyond_reach_is_owed_once_within_it(store: Store) -> None:
    """A reminder 130 days ahead waits; 120 days before it, its booking is owed again."""
    start = NOW + timedelta(days=130, minutes=10)
    await confirmed(store, slot=TimeSlot(start, start + timedelta(minutes=30)))
    for user in ("U1", "U2", "U3"):
        far = start - timedelta(minutes=10)
        await in_step(store, "booking-1", user, "reminder", state="waiting", post_at=far)
    for user in ("U2", "U3"):
        await in_step(store, "booking-1", user, "notice", state="posted")
    assert await store.bookings_owing_messages(NOW, HORIZON) == [], "too far to schedule yet"
    within = far - HORIZON
    assert await store.bookings_owing_messages(within, HORIZON) == [("T1", "booking-1")]


async def test_a_cancelled_booking_owes_until_its_rows_follow(store: Store) -> None:
    """Cancelled (sequence 1): rows made for sequence 0 are behind; once saved for sequence
    1 they are not. A cancelled booking without rows owes nothing."""
    await confirmed(store)
    await confirmed(store, "booking-2", slot=slot_at(17))
    await in_step(store, "booking-1", "U2", "notice")
    for key in ("booking-1", "booking-2"):
        assert await store.cancel_booking("T1", key, expect_sequence=0) is not None
    assert await store.bookings_owing_messages(NOW, HORIZON) == [("T1", "booking-1")]
    await in_step(store, "booking-1", "U2", "notice", sequence=1, state="none")
    assert await store.bookings_owing_messages(NOW, HORIZON) == []


async def test_rows_belong_to_their_team(store: Store) -> None:
    """Another team's booking with the same key is another row."""
    await confirmed(store)
    await confirmed(store, team_id="T2")
    await in_step(store, "booking-1", "U1", "reminder")
    assert [m.kind for m in await store.booking_messages_of("T1", "booking-1")] == ["reminder"]
    assert await store.booking_messages_of("T2", "booking-1") == []
    assert ("T2", "booking-1") in await store.bookings_owing_messages(NOW, HORIZON)


async def test_migrating_records_that_attendees_of_earlier_bookings_know_of_them(
    database_url: str,
) -> None:
    """A database with a delivered booking from before step 6: after it, each attendee's
    notice row says they know of it (no belated notice); reminders are still owed."""
    old = await Store.open(database_url)
    try:
        await confirmed(old)
        # Back to the schema before step 6 (and the steps after it), the booking kept.
        async with old.engine.begin() as conn:
            await roll_back(conn, before=6)
    finally:
        await old.close()
    store = await Store.open(database_url)
    try:
        rows = await store.booking_messages_of("T1", "booking-1")
        assert [(r.user_id, r.kind, r.state, r.note) for r in rows] == [
            ("U2", "notice", "none", "booked"),
            ("U3", "notice", "none", "booked"),
        ]
        assert all(r.about_start == slot_at(15).start and r.sequence == 0 for r in rows)
        assert await store.bookings_owing_messages(NOW, HORIZON) == [("T1", "booking-1")]
    finally:
        await store.close()
