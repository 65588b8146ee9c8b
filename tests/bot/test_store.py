"""The store on SQLite and PostgreSQL: URLs, migrations, offers, bookings, settings, dedupe."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot import direct
from bot.models import Booking, BookingState, ScheduleObject, TimeSlot, WorkingHours
from bot.store import (
    _MIGRATIONS,
    LATEST_VERSION,
    BookingConflict,
    Offer,
    SchemaTooNewError,
    Store,
    UserSettings,
    database_url_from,
)
from tests import storage_fixtures
from tests.bot.schema_rollback import UNDO

# Until tests/conftest.py imports them, the storage fixtures are borrowed here.

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def slot_at(hour: int, minutes: int = 30, day: int = 1) -> TimeSlot:
    start = datetime(2026, 12, day, hour, tzinfo=UTC)
    return TimeSlot(start, start + timedelta(minutes=minutes))


def make_booking(
    key: str = "booking-1",
    team_id: str = "T1",
    *,
    offer_id: str | None = None,
    slot: TimeSlot | None = None,
    organizer: str = "U1",
    participants: tuple[str, ...] = ("U2", "U3"),
) -> Booking:
    return Booking(
        key=key,
        team_id=team_id,
        organizer_id=organizer,
        participant_ids=participants,
        title="Design sync",
        schedule=ScheduleObject.from_slot(slot or slot_at(15), "Europe/Paris"),
        uid=f"{key}@slotbot",
        offer_id=offer_id,
        channel_id="C1",
    )


async def make_offer(store: Store, team_id: str = "T1", **changes: object) -> Offer:
    arguments: dict[str, object] = {
        "team_id": team_id,
        "requester_id": "U1",
        "participant_ids": ("U1", "U2"),
        "duration_minutes": 30,
        "time_zone": "America/New_York",
        "window": TimeSlot(NOW, NOW + timedelta(days=7)),
        "slots": (slot_at(14), slot_at(15)),
        "now": NOW,
        "title": "Design sync",
        "channel_id": "C1",
        "thread_ts": "1700000000.000100",
    }
    arguments.update(changes)
    return await store.create_offer(**arguments)  # type: ignore[arg-type]


# --- URLs -------------------------------------------------------------------------------------


def test_default_url_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    """No DATABASE_URL means slotbot.db in the data directory, which gets created."""
    data_dir = tmp_path / "data" / "slotbot"
    assert database_url_from(None, data_dir) == f"sqlite+aiosqlite:///{data_dir / 'slotbot.db'}"
    assert database_url_from("  ", data_dir).startswith("sqlite+aiosqlite:///")
    assert data_dir.is_dir()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
        (
            "postgres://bot:pw@db.example:5433/slotbot",
            "postgresql+asyncpg://bot:pw@db.example:5433/slotbot",
        ),
        ("postgresql://user@host/db", "postgresql+asyncpg://user@host/db"),
        ("POSTGRESQL://user@host/db", "postgresql+asyncpg://user@host/db"),
        ("postgresql+asyncpg://user@host/db", "postgresql+asyncpg://user@host/db"),
        ("sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
    ],
)
def test_plain_urls_get_the_async_drivers(given: str, expected: str, tmp_path: Path) -> None:
    """The URLs people write map to the async drivers; explicit drivers pass through."""
    assert database_url_from(given, tmp_path) == expected


def test_sqlite_url_creates_the_parent_directory(tmp_path: Path) -> None:
    """A sqlite:/// file URL gets the async driver and its directory is created."""
    target = tmp_path / "deep" / "er" / "bot.db"
    assert database_url_from(f"sqlite:///{target}", tmp_path) == f"sqlite+aiosqlite:///{target}"
    assert target.parent.is_dir()


def test_a_url_without_a_scheme_is_refused(tmp_path: Path) -> None:
    """Text that is not a URL raises instead of silently becoming a file name."""
    with pytest.raises(ValueError, match="not a database URL"):
        database_url_from("localhost/slotbot", tmp_path)


# --- migrations ---------------------------------------------------------------------------------


async def schema_rows(url: str) -> list[int]:
    opened = await Store.open(url)
    try:
        async with opened.engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT version FROM schema_version ORDER BY 1"))
            return [row[0] for row in rows]
    finally:
        await opened.close()


async def test_open_migrates_to_the_latest_version(store: Store) -> None:
    """A fresh database ends at the latest schema version."""
    assert await store.schema_version() == LATEST_VERSION


async def test_opening_twice_applies_each_migration_once(database_url: str) -> None:
    """Reopening an up-to-date database runs no step again; each version is recorded once."""
    first = await schema_rows(database_url)
    second = await schema_rows(database_url)
    # Numbered without gaps: a database is only ever migrated forward from its highest step.
    assert first == second == list(range(1, LATEST_VERSION + 1))


async def test_concurrent_opens_migrate_once(database_url: str) -> None:
    """Two stores starting at once on an empty database both work and migrate it once."""
    stores = await asyncio.gather(Store.open(database_url), Store.open(database_url))
    try:
        assert [await s.schema_version() for s in stores] == [LATEST_VERSION] * 2
        assert await stores[0].remember_event("T1", "Ev1", NOW) is True
        assert await stores[1].remember_event("T1", "Ev1", NOW) is False
    finally:
        for opened in stores:
            await opened.close()
    assert await schema_rows(database_url) == [version for version, _, _ in _MIGRATIONS]


async def test_a_newer_schema_is_refused(store: Store, database_url: str) -> None:
    """A database migrated by a newer Slotbot makes open fail instead of corrupting it."""
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO schema_version (version, description, applied_at)"
                " VALUES (999, 'from the future', :at)"
            ),
            {"at": "2030-01-01T00:00:00.000000Z" if store.dialect == "sqlite" else NOW},
        )
    with pytest.raises(SchemaTooNewError, match="999"):
        await Store.open(database_url)


# --- offers -------------------------------------------------------------------------------------


async def test_offer_round_trips(store: Store) -> None:
    """An offer reads back equal to what was stored, with aware UTC times."""
    offer = await make_offer(store, recurrence=("RRULE:FREQ=WEEKLY",), extra={"note": "hi"})
    loaded = await store.get_offer("T1", offer.id, NOW + timedelta(hours=1))
    assert loaded == offer
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.expires_at == NOW + timedelta(hours=24)
    assert all(s.start.tzinfo is not None for s in loaded.slots)


async def test_offer_ids_are_random_and_url_safe(store: Store) -> None:
    """Offer ids carry at least 128 random bits in url-safe characters, never repeating."""
    ids = {(await make_offer(store)).id for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22,64}", i) and len(i) * 6 >= 128 for i in ids)


async def test_offers_expire(store: Store) -> None:
    """An offer is readable before its expiry and gone from the expiry instant on."""
    offer = await make_offer(store, ttl=timedelta(minutes=10))
    assert await store.get_offer("T1", offer.id, NOW + timedelta(minutes=9)) is not None
    assert await store.get_offer("T1", offer.id, NOW + timedelta(minutes=10)) is None
    assert await store.delete_expired_offers(NOW + timedelta(minutes=10)) == 1
    assert await store.get_offer("T1", offer.id, NOW) is None


async def test_offers_are_team_scoped(store: Store) -> None:
    """Another team cannot read, page or close an offer, even knowing its id."""
    offer = await make_offer(store)
    assert await store.get_offer("T2", offer.id, NOW) is None
    assert await store.update_offer_page("T2", offer.id, page=1, slots=(), now=NOW) is None
    assert await store.close_offer("T2", offer.id, NOW) is False
    assert await store.get_offer("T1", offer.id, NOW) == offer


async def test_a_click_reads_its_offer_booking_and_settings_together(store: Store) -> None:
    """Offer, booking and the clicker's settings come back as each alone would (expired
    offers too, the default settings for someone who never saved any), each None when
    missing, and never another team's."""

    async def start(team: str, offer_id: str, key: str, user: str = "U1") -> tuple[Any, ...]:
        read = await store.click_start(team, offer_id, key, user)
        return read.offer, read.booking, read.settings

    defaults = UserSettings()
    offer = await make_offer(store, ttl=timedelta(minutes=10))
    assert await start("T1", offer.id, "booking-1") == (offer, None, defaults)
    booking, _ = await store.claim_booking(make_booking(offer_id=offer.id))
    stored = await store.get_booking("T1", booking.key)
    assert stored is not None
    mine = replace(defaults, buffer_before_minutes=15)
    await store.save_settings("T1", "U1", mine)
    await store.save_settings("T2", "U1", replace(defaults, buffer_after_minutes=5))
    assert await start("T1", offer.id, booking.key) == (offer, stored, mine)
    assert await start("T1", offer.id, booking.key, "U2") == (offer, stored, defaults)
    assert await store.delete_expired_offers(NOW + timedelta(minutes=10)) == 1
    assert await start("T1", offer.id, booking.key) == (None, stored, mine)
    other = await make_offer(store, team_id="T2")
    assert (await start("T2", offer.id, booking.key))[:2] == (None, None)
    assert (await start("T1", other.id, "nothing"))[:2] == (None, None)
    assert (await start("T2", other.id, booking.key))[:2] == (other, None)


async def test_offer_pages_and_closes(store: Store) -> None:
    """Paging records page and slots; closing happens once and stops paging."""
    offer = await make_offer(store)
    paged = await store.update_offer_page("T1", offer.id, page=1, slots=(slot_at(16),), now=NOW)
    assert paged is not None and (paged.page, paged.slots) == (1, (slot_at(16),))
    assert await store.get_offer("T1", offer.id, NOW) == paged
    assert await store.close_offer("T1", offer.id, NOW) is True
    assert await store.close_offer("T1", offer.id, NOW) is False
    closed = await store.get_offer("T1", offer.id, NOW)
    assert closed is not None and not closed.is_open and closed.closed_at == NOW
    assert await store.update_offer_page("T1", offer.id, page=2, slots=(), now=NOW) is None


# --- bookings -----------------------------------------------------------------------------------


async def test_claim_inserts_then_returns_the_existing(store: Store) -> None:
    """The first claim creates the booking; a second with other data gets the first back."""
    booking = make_booking()
    assert await store.claim_booking(booking) == (booking, True)
    other = replace(booking, title="Something else", schedule=booking.schedule)
    assert await store.claim_booking(other) == (booking, False)
    assert await store.get_booking("T1", booking.key) == booking


@pytest.mark.parametrize("closing_offer", [True, False], ids=["closing-offer", "alone"])
async def test_created_with_a_lease_is_delivered_by_its_creator_alone(
    store: Store, closing_offer: bool
) -> None:
    """Marking a booking created can take the delivery lease in the same step: the creator
    gets the delivery (where to reply), and no other deliverer gets it until it lapses."""
    offer = await make_offer(store)
    booking = make_booking(offer_id=offer.id)
    await store.claim_booking(booking, reply_to={"response_url": "https://hooks.example/r"})
    created = await store.mark_booking_created(
        "T1",
        booking.key,
        uid=booking.uid,
        schedule=booking.schedule,
        event_link=None,
        now=NOW,
        close_offer=offer.id if closing_offer else None,
        lease_until=NOW + timedelta(minutes=1),
    )
    assert created is not None and created.booking.state == BookingState.CREATED
    assert created.delivery.reply_to == {"response_url": "https://hooks.example/r"}
    assert created.delivery.delivering_until == NOW + timedelta(minutes=1)
    assert (created.delivery.invite_file_id, created.delivery.invite_channel_id) == (None, None)
    later = NOW + timedelta(seconds=30)
    held = await store.lease_delivery("T1", booking.key, later, later + timedelta(minutes=1))
    assert held is None
    lapsed = NOW + timedelta(minutes=2)
    taken = await store.lease_delivery("T1", booking.key, lapsed, lapsed + timedelta(minutes=1))
    assert taken is not None and taken.delivering_until == lapsed + timedelta(minutes=1)
    closed = await store.get_offer("T1", offer.id, None)
    assert closed is not None and closed.is_open is not closing_offer


async def test_twenty_concurrent_claims_create_one_booking(store: Store) -> None:
    """Of 20 simultaneous claims of one key exactly one wins and all see the same booking."""
    claims = [replace(make_booking(), title=f"try {i}") for i in range(20)]
    results = await asyncio.gather(*(store.claim_booking(b) for b in claims))
    assert sum(created for _, created in results) == 1
    winners = {booking for booking, _ in results}
    assert len(winners) == 1
    assert await store.get_booking("T1", "booking-1") in winners


async def test_one_offer_makes_one_booking(store: Store) -> None:
    """Concurrent claims for one offer under different keys end in a single booking."""
    claims = [make_booking(f"key-{i}", offer_id="offer-1") for i in range(10)]
    results = await asyncio.gather(*(store.claim_booking(b) for b in claims))
    assert sum(created for _, created in results) == 1
    assert len({booking.key for booking, _ in results}) == 1
    stored = [await store.get_booking("T1", f"key-{i}") for i in range(10)]
    assert sum(b is not None for b in stored) == 1


async def test_update_booking_is_a_compare_and_set(store: Store) -> None:
    """With expect_state, only one of two racing transitions succeeds."""
    await store.claim_booking(make_booking())
    results = await asyncio.gather(
        *(
            store.update_booking(
                "T1",
                "booking-1",
                expect_state=BookingState.PENDING,
                state=BookingState.CREATED,
                sequence=n,
            )
            for n in (1, 2)
        )
    )
    assert sum(r is not None for r in results) == 1
    assert await store.update_booking("T1", "nope", state=BookingState.CREATED) is None


async def test_update_booking_changes_only_what_is_given(store: Store) -> None:
    """Given fields change (None clears a ref); others, and other teams, stay as they were."""
    booking = make_booking()
    await store.claim_booking(booking)
    moved = ScheduleObject.from_slot(slot_at(17), "Europe/Paris").with_event("ev1", "U1")
    updated = await store.update_booking(
        "T1",
        booking.key,
        state=BookingState.CONFIRMED,
        schedule=moved,
        message_ts="1.2",
        event_link="https://calendar/ev1",
        channel_id=None,
    )
    assert updated == replace(
        booking,
        state=BookingState.CONFIRMED,
        schedule=moved,
        message_ts="1.2",
        event_link="https://calendar/ev1",
        channel_id=None,
    )
    assert await store.get_booking("T1", booking.key) == updated
    assert await store.update_booking("T2", booking.key, state=BookingState.CANCELLED) is None


async def test_bookings_for_user_finds_organized_and_attended(store: Store) -> None:
    """Organizer and participants see upcoming bookings, soonest first; others see none."""
    later = make_booking("later", slot=slot_at(16))
    sooner = make_booking("sooner", slot=slot_at(10), organizer="U2", participants=("U1",))
    past = make_booking("past", slot=slot_at(7))
    for b in (later, sooner, past):
        await store.claim_booking(b)
    after = datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert [b.key for b in await store.bookings_for_user("T1", "U1", after)] == ["sooner", "later"]
    assert [b.key for b in await store.bookings_for_user("T1", "U3", after)] == ["later"]
    assert await store.bookings_for_user("T1", "U9", after) == []
    between = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert [b.key for b in await store.bookings_for_user("T1", "U1", between)] == ["later"]
    await store.update_booking("T1", "later", state=BookingState.CANCELLED)
    assert await store.bookings_for_user("T1", "U3", after) == []
    cancelled = await store.bookings_for_user("T1", "U3", after, include_cancelled=True)
    assert [b.key for b in cancelled] == ["later"]


async def test_pending_bookings_lists_unfinished_ones(database_url: str) -> None:
    """The reconcile query returns pending and created bookings last touched before a time."""
    moments = [NOW]
    opened = await Store.open(database_url, clock=lambda: moments[-1])
    try:
        for key, team_id, minutes in (("a", "T1", 1), ("b", "T2", 2), ("c", "T1", 0)):
            moments.append(NOW + timedelta(minutes=minutes))
            await opened.claim_booking(make_booking(key, team_id=team_id))
        await opened.update_booking("T1", "c", state=BookingState.CONFIRMED)
        found = await opened.pending_bookings(NOW + timedelta(minutes=5))
        assert [(b.team_id, b.key) for b in found] == [("T1", "a"), ("T2", "b")]
        assert await opened.pending_bookings(NOW + timedelta(minutes=1)) == []
    finally:
        await opened.close()


async def test_teams_never_see_each_others_bookings(store: Store) -> None:
    """The same key in two teams is two bookings; neither team reads the other's."""
    mine = make_booking()
    theirs = replace(make_booking(team_id="T2"), title="Theirs")
    assert (await store.claim_booking(mine))[1] is True
    assert (await store.claim_booking(theirs))[1] is True
    assert await store.get_booking("T1", mine.key) == mine
    assert await store.get_booking("T2", mine.key) == theirs
    after = datetime(2026, 11, 30, tzinfo=UTC)
    assert [b.title for b in await store.bookings_for_user("T2", "U1", after)] == ["Theirs"]


async def test_bookings_come_back_with_aware_times(store: Store) -> None:
    """A stored booking's schedule keeps its zone and yields aware instants."""
    booking = make_booking(slot=slot_at(23))
    await store.claim_booking(booking)
    loaded = await store.get_booking("T1", booking.key)
    assert loaded is not None
    assert loaded.schedule.start_time.time_zone == "Europe/Paris"
    assert loaded.slot == slot_at(23)
    assert loaded.slot.start.utcoffset() is not None


# --- settings -----------------------------------------------------------------------------------


async def test_settings_default_then_round_trip(store: Store) -> None:
    """Unsaved settings are the defaults; saved ones read back equal, and saving overwrites."""
    assert await store.get_settings("T1", "U1") == UserSettings()
    custom = UserSettings(
        working_hours=WorkingHours.uniform(time(8, 30), time(0), (0, 2, 4)),
        time_zone="Asia/Kolkata",
        buffer_before_minutes=5,
        buffer_after_minutes=10,
        minimum_notice_minutes=120,
        default_duration_minutes=45,
        horizon_days=30,
        reminder_lead_minutes=None,
    )
    await store.save_settings("T1", "U1", custom)
    assert await store.get_settings("T1", "U1") == custom
    await store.save_settings("T1", "U1", replace(custom, horizon_days=7))
    assert (await store.get_settings("T1", "U1")).horizon_days == 7
    assert await store.get_settings("T2", "U1") == UserSettings()


def test_settings_from_older_json_take_defaults() -> None:
    """Keys missing from saved JSON fall back to defaults; unknown keys are ignored."""
    loaded = UserSettings.from_json({"time_zone": "Europe/Berlin", "future_field": 1})
    assert loaded == UserSettings(time_zone="Europe/Berlin")


# --- event dedupe -------------------------------------------------------------------------------


async def test_remember_event_is_true_once(store: Store) -> None:
    """An event id is new once per team; redeliveries and concurrent duplicates are not."""
    results = await asyncio.gather(*(store.remember_event("T1", "Ev1", NOW) for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]
    assert await store.remember_event("T2", "Ev1", NOW) is True
    assert await store.forget_events_before(NOW + timedelta(seconds=1)) == 2
    assert await store.remember_event("T1", "Ev1", NOW) is True


@pytest.mark.postgres
async def test_a_connection_killed_while_idle_is_replaced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PostgreSQL restarted (here: every session of the database terminated) while a pooled
    connection sat idle: the next use gets a live connection, not an error."""
    admin = await storage_fixtures._admin_connection()
    name = f"slotbot_test_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(storage_fixtures.POSTGRES_URL).set(database=name)
        store = await Store.open(database_url_from(url.render_as_string(False), tmp_path))
        try:
            await store.claim_booking(make_booking())
            terminated = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            assert terminated >= 1, "the pool held a connection"
            monkeypatch.setattr(direct, "IDLE_PING_SECONDS", 0.0)
            found = await store.get_booking("T1", "booking-1")
            assert found is not None and found.key == "booking-1"
        finally:
            await store.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_overlapping_exclusive_claims_sharing_people_book_once(store: Store) -> None:
    """Ten claims at once over overlapping times, sharing people in different orders: one
    books, the rest conflict, and none deadlocks (locks are taken in one global order)."""
    people = ["U1", "U2", "U3", "U4"]

    async def claim(n: int) -> bool:
        organizer, *others = people[n % 4 :] + people[: n % 4]
        booking = make_booking(
            f"contested-{n}",
            slot=TimeSlot(slot_at(15).start + timedelta(minutes=n), slot_at(16).start),
            organizer=organizer,
            participants=tuple(reversed(others)) if n % 2 else tuple(others),
        )
        try:
            _, created = await store.claim_booking(booking, exclusive=True)
        except BookingConflict:
            return False
        return created

    won = await asyncio.wait_for(asyncio.gather(*(claim(n) for n in range(10))), timeout=30)
    assert sum(won) == 1


def test_every_step_after_5_says_how_it_is_undone() -> None:
    """Migration tests take a database back step by step; a new step must say how."""
    assert sorted(UNDO) == [version for version, _, _ in _MIGRATIONS if version > 5]
