"""Pending changes (a move or cancel on its way to delivery), on SQLite and PostgreSQL: recorded
in the change's own transaction, applied once with its webhooks and offer, leased to one worker,
finished by sequence, found again when abandoned, and dropped when taken back."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from bot.models import BookingState, ScheduleObject
from bot.store import Store
from bot.webhooks import Webhooks
from tests.bot.test_store import NOW, make_booking, make_offer, slot_at

LEASE = timedelta(minutes=2)
CHANGE = {"kind": "moved", "previous": None, "offer_id": None, "reply_to": {"user_id": "U1"}}


async def confirmed(store: Store) -> None:
    await store.claim_booking(make_booking())
    await store.update_booking("T1", "booking-1", state=BookingState.CONFIRMED)


async def moved(store: Store, expect_sequence: int = 0, hour: int = 16) -> None:
    result = await store.move_booking(
        "T1",
        "booking-1",
        schedule=ScheduleObject.from_slot(slot_at(hour), "Europe/Paris"),
        expect_sequence=expect_sequence,
        change=CHANGE,
        lease_until=NOW + LEASE,
    )
    assert result is not None


async def test_a_move_records_its_change_in_the_same_step(store: Store) -> None:
    """The booking moves and its change (applying, leased to the mover) appears together; a
    losing move records nothing."""
    await confirmed(store)
    await moved(store)
    change = await store.get_change("T1", "booking-1")
    assert change is not None
    assert (change.sequence, change.stage, change.lease_until) == (1, "applying", NOW + LEASE)
    assert change.payload == CHANGE
    lost = await store.move_booking(
        "T1",
        "booking-1",
        schedule=ScheduleObject.from_slot(slot_at(17), "Europe/Paris"),
        expect_sequence=0,
        change={"kind": "moved", "other": True},
    )
    assert lost is None
    again = await store.get_change("T1", "booking-1")
    assert again is not None and again.payload == CHANGE


async def test_applied_once_with_its_webhooks_and_offer(store: Store) -> None:
    """Applying queues the webhooks and closes the offer in one step, once."""
    offer = await make_offer(store)
    await confirmed(store)
    await moved(store)
    booking = await store.get_booking("T1", "booking-1")
    assert booking is not None
    hooks = Webhooks(["https://a.example/h"]).messages(booking, "booking.moved", link=None, now=NOW)
    first = await store.change_applied(
        "T1", "booking-1", 1, webhooks=hooks, close_offer=offer.id, now=NOW
    )
    second = await store.change_applied(
        "T1", "booking-1", 1, webhooks=hooks, close_offer=offer.id, now=NOW
    )
    assert (first, second) == (True, False)
    [entry] = await store.webhook_entries("T1")
    assert json.loads(entry.message.body)["type"] == "booking.moved"
    closed = await store.get_offer("T1", offer.id, None)
    assert closed is not None and not closed.is_open
    change = await store.get_change("T1", "booking-1")
    assert change is not None and change.stage == "applied"


async def test_one_of_many_workers_leases_a_change(store: Store) -> None:
    """Of concurrent leases on an abandoned change, one wins; a live lease keeps others out."""
    await confirmed(store)
    await moved(store)
    assert await store.lease_change("T1", "booking-1", NOW, NOW + LEASE) is None, "mover holds it"
    later = NOW + LEASE
    won = await asyncio.gather(
        *(store.lease_change("T1", "booking-1", later, later + LEASE) for _ in range(6))
    )
    assert sum(change is not None for change in won) == 1


async def test_abandoned_changes_are_found_and_finished_by_sequence(store: Store) -> None:
    """A change whose lease lapsed is listed; finishing an older sequence keeps the newer
    change; finishing its own removes it; a file recorded on the way comes back with it."""
    await confirmed(store)
    await moved(store)
    assert await store.unfinished_changes(NOW, LEASE) == []
    await store.record_change_file("T1", "booking-1", 1, file_id="F1", channel_id="D1")
    [abandoned] = await store.unfinished_changes(NOW + LEASE, LEASE)
    assert (abandoned.booking_key, abandoned.file_id, abandoned.channel_id) == (
        "booking-1",
        "F1",
        "D1",
    )
    await moved(store, expect_sequence=1, hour=17)  # a newer move replaces it
    assert await store.finish_change("T1", "booking-1", 1) is False
    assert await store.finish_change("T1", "booking-1", 2) is True
    assert await store.get_change("T1", "booking-1") is None


async def test_a_cancel_taken_back_drops_its_change(store: Store) -> None:
    """A cancel the calendar refused is taken back: the booking is live again at its old
    sequence and no change is left to deliver."""
    await confirmed(store)
    cancelled = await store.cancel_booking(
        "T1", "booking-1", expect_sequence=0, change={"kind": "cancelled"}, lease_until=NOW
    )
    assert cancelled is not None and cancelled.state == BookingState.CANCELLED
    back = await store.update_booking(
        "T1", "booking-1", state=BookingState.CONFIRMED, sequence=0, drop_change=1
    )
    assert back is not None and (back.state, back.sequence) == (BookingState.CONFIRMED, 0)
    assert await store.get_change("T1", "booking-1") is None


async def test_teams_never_see_each_others_changes(store: Store) -> None:
    await confirmed(store)
    await moved(store)
    assert await store.get_change("T2", "booking-1") is None
    assert await store.lease_change("T2", "booking-1", NOW + LEASE, NOW + 2 * LEASE) is None
