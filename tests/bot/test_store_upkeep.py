"""Database upkeep: where autovacuum does not run, Slotbot analyzes and vacuums its own tables.

PostgreSQL's activity counters (``pg_stat_user_tables``) lag: a backend that has just reported
holds its next counts for up to ~10 s while it is busy. The tests close the store's pooled
connections (a backend reports everything as it exits) and wait for the counts to arrive.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import monotonic
from typing import Any

import pytest
import sqlalchemy as sa

from bot import direct
from bot import store as store_module
from bot.calendars import Attendee, CalendarEvent
from bot.models import TimeSlot
from bot.store import Store
from bot.upkeep import StoreUpkeep
from tests.bot.test_store import make_booking
from tests.scenarios.harness import start_harness, stop_harness

on_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

START = datetime(2026, 12, 1, 8, tzinfo=UTC)
PEOPLE = [f"U{n:03d}" for n in range(150)]
SLOTS = 10  # bookings share ten half-hour slots, as a busy team's do


async def execute(store: Store, statement: str) -> list[Any]:
    async with store.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        result = await conn.execute(sa.text(statement))
        return list(result.all()) if result.returns_rows else []


async def stats(store: Store, table: str) -> Any:
    rows = await execute(
        store,
        "SELECT n_live_tup, n_dead_tup, n_mod_since_analyze, last_analyze, last_vacuum"
        f" FROM pg_stat_user_tables WHERE relname = '{table}'",
    )
    return rows[0]


async def counted(store: Store, table: str, ready: Callable[[Any], bool]) -> Any:
    """The table's counters once ``ready`` says the writes so far are in them."""
    await store.engine.dispose()  # the pooled backends exit, reporting what they did
    deadline = monotonic() + 15
    while not ready(row := await stats(store, table)):
        assert monotonic() < deadline, f"{table}'s counters never caught up: {row}"
        await asyncio.sleep(0.05)
    return row


async def leave_to_us(store: Store, *tables: str) -> None:
    """Turn autovacuum off for ``tables``, so the tests hold whatever the server's setting."""
    for table in tables:
        await execute(store, f"ALTER TABLE {table} SET (autovacuum_enabled = false)")


async def book(store: Store, count: int) -> None:
    """``count`` bookings of one team, each of three people, in ``SLOTS`` busy slots."""

    async def one(n: int) -> None:
        start = START + timedelta(minutes=30 * (n % SLOTS))
        people = [PEOPLE[(3 * n + k) % len(PEOPLE)] for k in range(3)]
        booking = make_booking(
            f"booking-{n}",
            slot=TimeSlot(start, start + timedelta(minutes=30)),
            organizer=people[0],
            participants=tuple(people[1:]),
        )
        await store.claim_booking(booking)

    for first in range(0, count, 10):
        await asyncio.gather(*(one(n) for n in range(first, min(count, first + 10))))


def scanned(plan: dict[str, Any]) -> Counter[str]:
    """Rows each table's scans read in an ``EXPLAIN (ANALYZE)`` plan, filtered ones too."""
    found: Counter[str] = Counter()
    if "Relation Name" in plan:
        per_loop = (
            plan["Actual Rows"]
            + plan.get("Rows Removed by Filter", 0)
            + plan.get("Rows Removed by Index Recheck", 0)
        )
        found[plan["Relation Name"]] += per_loop * plan["Actual Loops"]
    for child in plan.get("Plans", ()):
        found += scanned(child)
    return found


async def reads(store: Store, statement: Any, parameters: dict[str, Any]) -> Counter[str]:
    """Run one of the store's statements as the store sends it (``bot.direct``), under
    ``EXPLAIN (ANALYZE)``: the rows it read, per table."""
    sql, arguments = direct.sql_for(statement, parameters)
    async with store.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        plan = await driver.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *arguments)
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return scanned(plan[0]["Plan"])


async def overlap_check_reads(store: Store, people: list[str]) -> Counter[str]:
    """The overlap check a claim of ``people``'s first slot makes: the rows it read."""
    parameters = {
        "b_team": "T1",
        "b_members": people,
        "b_key": "new-booking",
        "b_low": START,
        "b_high": START + timedelta(minutes=30),
    }
    return await reads(store, store_module._OVERLAPPING["postgresql"], parameters)


def _literal(value: Any) -> str:
    """A value of this module's statements as an SQL literal (no quotes in any of them)."""
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + "]::varchar[]"
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, int):
        return str(value)
    assert "'" not in str(value)
    return f"'{value}'"


async def generic_reads(store: Store, statement: Any, parameters: dict[str, Any]) -> Counter[str]:
    """Like ``reads``, for the statement as asyncpg keeps the store's, a prepared statement,
    on the generic plan PostgreSQL may settle on for it after five runs: one made without the
    values (so a narrow time range and a wide one look alike), on the statistics of the day."""
    sql, arguments = direct.sql_for(statement, parameters)
    values = ", ".join(_literal(a) for a in arguments)
    async with store.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute(f"PREPARE checked AS {sql}")
        try:
            await driver.execute("SET plan_cache_mode = force_generic_plan")
            plan = await driver.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE checked({values})"
            )
        finally:
            await driver.execute("DEALLOCATE checked; RESET plan_cache_mode")
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return scanned(plan[0]["Plan"])


# --- what a round does ---------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_a_busy_table_is_analyzed_once(store: Store) -> None:
    """A few hundred new bookings: the round analyzes bookings (the statistics are there now),
    and the next round finds nothing more to do for it."""
    await leave_to_us(store, "bookings", "booking_members")
    await book(store, 300)
    before = await counted(store, "bookings", lambda row: row.n_mod_since_analyze >= 300)
    assert before.last_analyze is None

    done = await store.analyze_and_vacuum()

    assert "analyze bookings" in done and "analyze booking_members" in done
    assert not any("vacuum" in action for action in done), "only inserts: nothing to reclaim"
    after = await stats(store, "bookings")
    assert after.last_analyze is not None and after.n_mod_since_analyze == 0
    again = await store.analyze_and_vacuum()
    assert not any(action.endswith((" bookings", " booking_members")) for action in again)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_after_upkeep_the_overlap_check_reads_only_the_two_peoples_rows(
    store: Store,
) -> None:
    """The check behind every click, for two people among 300 bookings of their team (30 of
    them in the slot): with statistics it reads each of the team's bookings at most once and
    only the two people's memberships, instead of every membership of the team again for
    each booking in the slot (27,000 rows on PostgreSQL 15 without statistics)."""
    await leave_to_us(store, "bookings", "booking_members")
    await book(store, 300)
    await counted(store, "booking_members", lambda row: row.n_mod_since_analyze >= 900)
    two = PEOPLE[:2]
    memberships = 12  # every person is in 300 * 3 / 150 = 6 bookings
    before = await overlap_check_reads(store, two)

    assert "analyze booking_members" in await store.analyze_and_vacuum()

    after = await overlap_check_reads(store, two)
    context = f"rows read before upkeep: {dict(before)}, after: {dict(after)}"
    # With so few rows a sequential scan of bookings can be the cheapest plan: at most once.
    assert after["bookings"] <= 300, context
    assert after["booking_members"] <= memberships, context


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_busy_time_reads_the_attendance_rows_once_even_without_statistics(
    store: Store,
) -> None:
    """The busy-time read behind every offer and click, for two people among 200 events of
    their team that others attend, on statistics taken when the tables were nearly empty (a
    new install, a fast-growing team): each attendance row is read at most once, not once per
    live event of the team (200 × 202 rows with a plain join on PostgreSQL 15)."""
    await leave_to_us(store, "local_events", "local_event_attendees")
    others = [
        CalendarEvent(
            event_id=f"event{n:05d}",
            calendar_id=PEOPLE[2 + n % 100],
            summary="Busy",
            start=START,
            end=START + timedelta(minutes=30),
            attendees=(Attendee(user_id=PEOPLE[2 + (n + 1) % 100]),),
        )
        for n in range(200)
    ]
    mine = CalendarEvent(
        event_id="event99999",
        calendar_id=PEOPLE[50],
        summary="Ours",
        start=START,
        end=START + timedelta(minutes=30),
        attendees=(Attendee(user_id=PEOPLE[0]), Attendee(user_id=PEOPLE[1])),
    )
    # Statistics taken while the tables were nearly empty, as on a new install.
    await store.insert_local_event("T1", mine, f"{mine.event_id}@test")
    await execute(store, "ANALYZE local_events, local_event_attendees")
    for event in others:
        await store.insert_local_event("T1", event, f"{event.event_id}@test")
    two = PEOPLE[:2]
    busy = await store.busy_intervals("T1", two, START, START + timedelta(days=1))
    assert busy == {p: [TimeSlot(START, START + timedelta(minutes=30))] for p in two}

    found = await reads(
        store,
        store_module._BUSY_LOCAL["postgresql"],
        {
            "b_team": "T1",
            "b_start": START,
            "b_end": START + timedelta(days=1),
            "b_calendars": two,
            "b_attendees": two,
        },
    )
    context = f"rows read: {dict(found)}"
    attendance = len(others) + 2  # the attendee of each, and our two
    assert found["local_event_attendees"] <= attendance, context
    # The events the two own: at most one scan of the table; the two they attend: a lookup.
    assert found["local_events"] <= 2 * (len(others) + 1), context


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_dead_rows_past_the_threshold_are_vacuumed(store: Store) -> None:
    """Bookings updated over and over leave dead rows; past 50 + 20 % of the live ones the
    round vacuums the table, and the dead rows are gone."""
    await leave_to_us(store, "bookings")
    await book(store, 100)
    for _ in range(4):  # an indexed column: no HOT update, each one leaves a dead row behind
        await execute(store, "UPDATE bookings SET updated_at = updated_at + interval '1 second'")
    threshold = store_module.VACUUM_THRESHOLD + store_module.VACUUM_SCALE_FACTOR * 100
    before = await counted(store, "bookings", lambda row: row.n_dead_tup > threshold)
    assert before.last_vacuum is None

    assert "vacuum bookings" in await store.analyze_and_vacuum()

    after = await stats(store, "bookings")
    assert after.last_vacuum is not None and after.last_analyze is not None
    assert after.n_dead_tup < before.n_dead_tup and after.n_dead_tup <= threshold
    assert not any(a.endswith(" bookings") for a in await store.analyze_and_vacuum())


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_tables_autovacuum_tends_are_left_to_it(store: Store) -> None:
    """With autovacuum on server-wide, only the tables that opt out are Slotbot's to tend."""
    if await store.autovacuum_is_off():
        pytest.skip("autovacuum is off on this server: every table is Slotbot's to tend")
    await leave_to_us(store, "bookings")
    await book(store, 100)
    await counted(store, "booking_members", lambda row: row.n_mod_since_analyze >= 300)
    done = await store.analyze_and_vacuum()
    assert "analyze bookings" in done and "analyze booking_members" not in done


# --- several instances -----------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_two_instances_at_once_do_the_work_once(store: Store, database_url: str) -> None:
    """Two instances' rounds at the same moment: no error, and each table is analyzed once."""
    await leave_to_us(store, "bookings", "booking_members")
    await book(store, 100)
    await counted(store, "booking_members", lambda row: row.n_mod_since_analyze >= 300)
    other = await Store.open(database_url)
    try:
        first, second = await asyncio.gather(store.analyze_and_vacuum(), other.analyze_and_vacuum())
    finally:
        await other.close()
    actions = Counter(first + second)
    assert actions["analyze bookings"] == actions["analyze booking_members"] == 1, actions
    assert set(actions.values()) == {1}, actions


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_a_round_is_skipped_while_another_instance_holds_the_lock(store: Store) -> None:
    """While another session holds the upkeep lock, a round does nothing; then it does."""
    await leave_to_us(store, "bookings")
    await book(store, 100)
    await counted(store, "bookings", lambda row: row.n_mod_since_analyze >= 100)
    key = store_module._UPKEEP_LOCK_KEY
    async with store.engine.connect() as holder:
        assert (await holder.execute(sa.select(sa.func.pg_try_advisory_lock(key)))).scalar()
        assert await store.analyze_and_vacuum() == []
        await holder.execute(sa.select(sa.func.pg_advisory_unlock(key)))
        await holder.commit()
    assert "analyze bookings" in await store.analyze_and_vacuum()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_a_failed_round_releases_the_lock(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round that fails midway still lets the next one (of any instance) take the lock."""
    monkeypatch.setattr(store_module, "_TABLE_CHURN", sa.text("SELECT 1 / 0"))
    with pytest.raises(sa.exc.DBAPIError, match="division by zero"):
        await store.analyze_and_vacuum()
    key = store_module._UPKEEP_LOCK_KEY
    async with store.engine.connect() as other:
        assert (await other.execute(sa.select(sa.func.pg_try_advisory_lock(key)))).scalar()
        await other.execute(sa.select(sa.func.pg_advisory_unlock(key)))
        await other.commit()
    monkeypatch.undo()
    assert await store.analyze_and_vacuum() == []  # a fresh database: nothing to do


@on_sqlite
async def test_on_sqlite_upkeep_does_nothing(store: Store) -> None:
    """SQLite has no autovacuum to stand in for: no round, no loop."""
    await book(store, 20)
    assert await store.analyze_and_vacuum() == []
    assert await store.autovacuum_is_off() is False
    upkeep = StoreUpkeep(store, 0.01)
    upkeep.start()
    assert upkeep._task is None
    await upkeep.stop()


# --- the loop ------------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_the_loop_tends_the_tables_and_stops_promptly(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Started with a short interval, the loop analyzes the busy table by itself, says once at
    start that it stands in for autovacuum (when the server's is off), and stops at once."""
    await leave_to_us(store, "bookings")
    await book(store, 100)
    await counted(store, "bookings", lambda row: row.n_mod_since_analyze >= 100)
    caplog.set_level(logging.DEBUG, logger="slotbot.upkeep")
    upkeep = StoreUpkeep(store, 0.05)
    upkeep.start()
    try:
        deadline = monotonic() + 10
        while (await stats(store, "bookings")).last_analyze is None:
            assert monotonic() < deadline, "the loop never analyzed bookings"
            await asyncio.sleep(0.05)
    finally:
        loop = upkeep._task
        await upkeep.stop()
    # It ended by itself after its round, not by the cancel that ends a round running too long.
    assert loop is not None and loop.done() and not loop.cancelled()
    assert "analyze bookings" in caplog.text
    notices = [r for r in caplog.records if "autovacuum is off" in r.getMessage()]
    if await store.autovacuum_is_off():
        assert len(notices) == 1 and notices[0].levelno == logging.INFO
        assert "every 0.05 s" in notices[0].getMessage()
    else:
        assert notices == []


class FlakyStore:
    """A PostgreSQL store whose first round fails with text that must not reach the logs."""

    dialect = "postgresql"

    def __init__(self) -> None:
        self.rounds = 0

    async def autovacuum_is_off(self) -> bool:
        return False

    async def analyze_and_vacuum(self, also: object = ()) -> list[str]:
        self.rounds += 1
        if self.rounds == 1:
            raise RuntimeError("bookings of Ana Smith")
        return []


async def test_a_failing_round_is_logged_by_type_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A round that raises logs a warning naming the exception type only; the next runs."""
    flaky = FlakyStore()
    upkeep = StoreUpkeep(flaky, 0.01)  # type: ignore[arg-type]
    upkeep.start()
    try:
        deadline = monotonic() + 5
        while flaky.rounds < 3:
            assert monotonic() < deadline
            await asyncio.sleep(0.01)
    finally:
        await upkeep.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["database upkeep round failed: RuntimeError"]
    assert "Ana Smith" not in caplog.text


async def test_slotbot_runs_upkeep_beside_its_other_loops(
    database_url: str, tmp_path: Path
) -> None:
    """A serving Slotbot (here with the reconcile off) runs the upkeep loop on PostgreSQL, none
    on SQLite, and stops it when it closes."""
    harness = await start_harness(tmp_path, database_url=database_url)
    try:
        upkeep = harness.slotbot.upkeep
        assert upkeep is not None and upkeep.every == 3
        assert (upkeep._task is not None) == (harness.slotbot.store.dialect == "postgresql")
    finally:
        await stop_harness(harness)
    assert upkeep._task is None


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_the_overlap_check_as_prepared_reads_only_the_peoples_rows_on_stale_statistics(
    store: Store,
) -> None:
    """The check behind every click as the store really sends it, a prepared statement run
    again and again, on statistics taken when the tables were nearly empty (a new install, a
    fast-growing team, the moments before the next upkeep round), in a team where everyone
    booked the same popular hour: it reads the two people's memberships and bookings, not the
    team's. With a plain join PostgreSQL 15 settled on a generic plan that read every
    membership of the team once per booking in that hour (15–24 ms a check in the bench)."""
    await leave_to_us(store, "bookings", "booking_members")

    async def pairs(first: int, count: int) -> None:
        for n in range(first, first + count):
            await store.claim_booking(
                make_booking(
                    f"pair-{n}",
                    slot=TimeSlot(START, START + timedelta(minutes=30)),
                    organizer=f"UA{n:04d}",
                    participants=(f"UB{n:04d}",),
                )
            )

    await pairs(0, 10)
    await execute(store, "ANALYZE bookings, booking_members")
    await pairs(10, 300)
    pair = ["UA9999", "UB9999"]  # a new pair, booking that hour too
    hour = {"b_low": START, "b_high": START + timedelta(minutes=30)}
    checks = {
        "overlap check": (
            store_module._OVERLAPPING["postgresql"],
            {"b_team": "T1", "b_members": pair, "b_key": "new-booking", **hour},
        ),
        "their bookings (offers and the re-check)": (
            store_module._BOOKED["postgresql"],
            {"b_team": "T1", "b_users": pair, "b_start": START, "b_end": hour["b_high"]},
        ),
    }
    for name, (statement, parameters) in checks.items():
        found = await generic_reads(store, statement, parameters)
        context = f"{name}, rows read: {dict(found)}"
        assert found["booking_members"] <= 620, context  # the team's, at most once
        assert found["bookings"] <= 2, context  # the two people's
