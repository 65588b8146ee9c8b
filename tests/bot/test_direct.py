"""``bot.direct``: the store's statements on the asyncpg connection itself give what
SQLAlchemy gives, and a connection cut off mid-transaction never goes back to the pool open.

PostgreSQL only (on SQLite the store runs everything through SQLAlchemy).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import sqlalchemy as sa

from bot import direct
from bot.store import Store, bookings, user_settings

pytestmark = [
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
    pytest.mark.postgres,
]

T = datetime(2026, 12, 1, 9, tzinfo=UTC)


@pytest_asyncio.fixture
async def pg(store: Store) -> AsyncIterator[Store]:
    """A store with a few people's settings in two teams."""
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.insert(user_settings),
            [
                {"team_id": team, "user_id": f"U{n}", "settings": {"n": n}, "updated_at": T}
                for team in ("T1", "T2")
                for n in range(5)
            ],
        )
    yield store


async def both(store: Store, statement: Any, parameters: Any = None) -> tuple[Any, Any]:
    """The rows (as tuples) from SQLAlchemy and from ``bot.direct``, for the same statement."""
    async with store.engine.connect() as conn:
        expected = [tuple(r) for r in (await conn.execute(statement, parameters)).all()]
        await conn.rollback()
    async with direct.connect(store.engine, transaction=False) as conn:
        got = [tuple(r) for r in (await conn.execute(statement, parameters)).all()]
    return expected, got


async def test_the_same_statement_shape_with_other_values_reads_its_own_values(pg: Store) -> None:
    """Statements built per call share one compiled plan; each must still bind its own
    literal values, not those of the statement that was compiled first."""
    for team, user in [("T1", "U1"), ("T2", "U3"), ("T1", "U4")]:
        statement = sa.select(user_settings.c.team_id, user_settings.c.user_id).where(
            user_settings.c.team_id == team, user_settings.c.user_id == user
        )
        expected, got = await both(pg, statement)
        assert got == expected == [(team, user)]


async def test_in_lists_of_any_length_and_not_in(pg: Store) -> None:
    users = sa.bindparam("users", expanding=True)
    chosen = sa.select(user_settings.c.user_id).where(user_settings.c.team_id == "T1")
    for wanted in [[], ["U2"], ["U0", "U4", "U9"]]:
        expected, got = await both(
            pg,
            chosen.where(user_settings.c.user_id.in_(users)).order_by("user_id"),
            {"users": wanted},
        )
        assert got == expected == [(u,) for u in sorted(wanted) if u != "U9"]
        expected, got = await both(
            pg,
            chosen.where(user_settings.c.user_id.not_in(users)).order_by("user_id"),
            {"users": wanted},
        )
        assert got == expected
        assert len(got) == 5 - len([u for u in wanted if u != "U9"])


async def test_values_come_back_as_sqlalchemy_gives_them(pg: Store) -> None:
    """JSON as Python values, instants as aware UTC datetimes, a named column by name."""
    statement = sa.select(user_settings).where(user_settings.c.user_id == "U2").order_by("team_id")
    expected, got = await both(pg, statement)
    assert got == expected
    async with direct.connect(pg.engine, transaction=False) as conn:
        row = (await conn.execute(statement)).first()
    assert row.settings == {"n": 2}
    assert row.updated_at == T and row.updated_at.utcoffset() == timedelta(0)


async def test_row_counts_and_many_rows_at_once(pg: Store) -> None:
    async with direct.connect(pg.engine, transaction=False) as conn:
        changed = await conn.execute(
            sa.update(user_settings)
            .where(user_settings.c.team_id == "T1", user_settings.c.user_id.in_(["U1", "U2"]))
            .values(updated_at=T + timedelta(hours=1))
        )
        assert changed.rowcount == 2
        rows = [
            {"team_id": "T3", "user_id": f"U{n}", "settings": {"n": n}, "updated_at": T}
            for n in (3, 1, 2)
        ]
        inserted = await conn.execute(
            sa.insert(user_settings).returning(user_settings.c.user_id, user_settings.c.settings),
            rows,
        )
    # One statement for them all, each row back in the order given.
    assert [tuple(r) for r in inserted.all()] == [
        ("U3", {"n": 3}),
        ("U1", {"n": 1}),
        ("U2", {"n": 2}),
    ]
    assert inserted.rowcount == 3


async def test_a_transaction_cut_off_mid_statement_commits_nothing_and_the_pool_recovers(
    pg: Store,
) -> None:
    """A click's write cancelled while a statement runs (its request timed out, the process is
    stopping): nothing of the transaction is kept, and the connection is not handed to the
    next caller still inside it."""
    pool = pg.engine.sync_engine.pool
    started = asyncio.Event()

    async def cut_off() -> None:
        async with direct.connect(pg.engine, transaction=True) as conn:
            await conn.execute(sa.delete(user_settings).where(user_settings.c.team_id == "T1"))
            started.set()
            await conn.execute(sa.select(sa.func.pg_sleep(30)))

    task = asyncio.create_task(cut_off())
    await started.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Out of the pool now: only the connections bot.direct keeps between statements.
    assert pool.checkedout() == direct.kept_connections(pg.engine)  # type: ignore[attr-defined]

    # Had a connection gone back to the pool inside that transaction, it would still hold
    # T1's rows (deleted, uncommitted): these writes would wait on its locks, or vanish
    # with it. Five at once, so that every pooled connection is used.
    async def touch(n: int) -> int:
        async with direct.connect(pg.engine, transaction=False) as conn:
            changed = await conn.execute(
                sa.update(user_settings)
                .where(user_settings.c.team_id == "T1", user_settings.c.user_id == f"U{n}")
                .values(settings={"touched": n})
            )
            return int(changed.rowcount)

    assert await asyncio.wait_for(asyncio.gather(*(touch(n) for n in range(5))), 10) == [1] * 5
    async with pg.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(user_settings.c.settings).where(user_settings.c.team_id == "T1")
            )
        ).all()
    assert sorted(r.settings["touched"] for r in rows) == [0, 1, 2, 3, 4]


async def test_a_connection_the_server_dropped_mid_transaction_is_not_handed_out_again(
    pg: Store,
) -> None:
    """The database ends a connection in the middle of a booking's transaction (a restart, a
    proxy, an administrator): that booking fails, but the next ones get working connections."""
    with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError)):
        async with direct.connect(pg.engine, transaction=True) as conn:
            pid = (await conn.execute(sa.select(sa.func.pg_backend_pid()))).scalar_one()
            async with pg.engine.connect() as admin:
                await admin.execute(sa.select(sa.func.pg_terminate_backend(pid)))
            await conn.execute(sa.delete(user_settings).where(user_settings.c.team_id == "T1"))

    async def count() -> int:
        async with direct.connect(pg.engine, transaction=False) as conn:
            return int(
                (
                    await conn.execute(
                        sa.select(sa.func.count()).where(user_settings.c.team_id == "T1")
                    )
                ).scalar_one()
            )

    # As many at once as the pool holds, so that a dead connection in it would be handed out.
    assert await asyncio.gather(*(count() for _ in range(5))) == [5] * 5


async def test_a_failed_statement_rolls_the_transaction_back(pg: Store) -> None:
    with pytest.raises(Exception, match="division by zero"):
        async with direct.connect(pg.engine, transaction=True) as conn:
            await conn.execute(sa.delete(bookings))
            await conn.execute(sa.delete(user_settings).where(user_settings.c.team_id == "T2"))
            await conn.execute(sa.text("SELECT 1 / 0"))
    expected, got = await both(pg, sa.select(sa.func.count()).select_from(user_settings))
    assert got == expected == [(10,)]


async def backend_pid(store: Store) -> int:
    async with direct.connect(store.engine, transaction=False) as conn:
        return int((await conn.execute(sa.select(sa.func.pg_backend_pid()))).scalar_one())


async def test_statements_share_a_kept_connection_and_dispose_ends_it(pg: Store) -> None:
    """One statement after another runs on the connection kept from the one before (no trip
    through the pool); disposing the engine, as a stopping instance does, ends that session on
    the server too, rather than leaving it open until the process exits."""
    first = await backend_pid(pg)
    assert direct.kept_connections(pg.engine) == 1
    assert await backend_pid(pg) == first
    assert direct.kept_connections(pg.engine) == 1

    await pg.engine.dispose()
    assert direct.kept_connections(pg.engine) == 0
    admin = await asyncpg.connect(
        pg.engine.url.set(drivername="postgresql").render_as_string(False)
    )
    try:
        for _ in range(100):  # the backend exits a moment after its client said goodbye
            alive = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", first
            )
            if not alive:
                break
            await asyncio.sleep(0.05)
        assert alive == 0
    finally:
        await admin.close()


async def test_a_kept_connection_goes_back_to_the_pool_after_a_moment(
    pg: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection is kept out of the pool only for ``HOT_SECONDS``: after that the next
    statement hands it back (the pool's idle ping and recycling apply to it again) and takes
    one from the pool, so kept connections never pile up."""
    pool = pg.engine.sync_engine.pool
    monkeypatch.setattr(direct, "HOT_SECONDS", 0.2)
    await asyncio.gather(*(backend_pid(pg) for _ in range(8)))
    assert direct.kept_connections(pg.engine) == direct.HOT_MAX
    await asyncio.sleep(0.3)
    await backend_pid(pg)
    assert direct.kept_connections(pg.engine) == 1
    assert pool.checkedout() == 1  # type: ignore[attr-defined]


async def test_a_disposed_engine_keeps_connections_again_when_used(pg: Store) -> None:
    """An engine disposed and used again (the pool is replaced, not closed for good) keeps its
    connections as before, and disposing it again ends them again."""
    await backend_pid(pg)
    await pg.engine.dispose()
    pid = await backend_pid(pg)
    assert direct.kept_connections(pg.engine) == 1
    await pg.engine.dispose()
    assert direct.kept_connections(pg.engine) == 0
    assert await backend_pid(pg) != pid


async def test_locks_go_with_the_begin_and_hold_until_the_commit(pg: Store) -> None:
    """``lock`` takes its advisory locks in the transaction it begins in the same round trip:
    another session cannot take them until that transaction commits (taken outside one, a
    transaction-scoped lock would end with its own statement)."""
    keys = [11, 42]
    async with pg.engine.connect() as other:

        async def free(key: int) -> bool:
            taken = await other.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key)))
            await other.rollback()  # and let it go again
            return bool(taken.scalar_one())

        async with direct.connect(pg.engine, transaction=True) as conn:
            await conn.lock(keys)
            assert [await free(k) for k in keys] == [False, False]
            await conn.execute(sa.delete(user_settings).where(user_settings.c.user_id == "U1"))
        assert [await free(k) for k in keys] == [True, True]
    expected, got = await both(pg, sa.select(sa.func.count()).select_from(user_settings))
    assert got == expected == [(8,)]


async def test_a_lock_outside_a_transaction_is_refused(pg: Store) -> None:
    async with direct.connect(pg.engine, transaction=False) as conn:
        with pytest.raises(RuntimeError, match="transaction"):
            await conn.lock([1])


async def test_a_transaction_that_runs_nothing_sends_nothing(pg: Store) -> None:
    """A write block that decides there is nothing to write costs no round trip: its BEGIN
    was owed to a first statement that never came, and the connection is left idle."""
    async with direct.connect(pg.engine, transaction=True) as conn:
        pid = (await conn.execute(sa.select(sa.func.pg_backend_pid()))).scalar_one()
    async with direct.connect(pg.engine, transaction=True):
        pass
    async with pg.engine.connect() as admin:
        state = (
            await admin.execute(
                sa.text("SELECT state, query FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            )
        ).one()
    assert state.state == "idle" and state.query == "COMMIT"
