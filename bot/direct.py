"""SQLAlchemy Core statements run on the pooled asyncpg connection itself (PostgreSQL only).

SQLAlchemy still builds every statement and compiles it, once per statement shape (its cache
key, as its own compiled cache does), and its pool still hands out the connections (sizes,
recycling, the ping of idle connections). What this module skips is SQLAlchemy's execution
layer: the ``Connection`` object, the execution context and the ``Result``. Measured on the
project's machine, one prebuilt statement through ``AsyncConnection.execute`` cost about
500 µs of client CPU, and the same statement sent here about 100 µs, checkout included; a
booking runs about fifteen of them (``bench/README.md``).

What a statement may use here: named parameters (bound values and ``bindparam``),
``IN`` over a list (sent as ``= ANY($n)``, one server-side statement for every length),
``RETURNING``, and ``executemany`` (a list of parameter sets; an ``INSERT`` with
``RETURNING`` goes as one multi-row ``INSERT``). Anything else, such as DDL, stays on
SQLAlchemy (``Store._write_schema``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

Parameters = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class Result(Protocol):
    """What the store reads from a statement: SQLAlchemy's ``CursorResult`` or ``Rows``."""

    def all(self) -> Sequence[Any]: ...
    def first(self) -> Any: ...
    def one(self) -> Any: ...
    def scalar(self) -> Any: ...
    def scalar_one(self) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    @property
    def rowcount(self) -> int: ...


class Connection(Protocol):
    """A connection the store runs statements on: SQLAlchemy's, or ``DirectConnection``."""

    async def execute(self, statement: sa.Executable, parameters: Parameters = None) -> Result: ...


class Rows:
    """A statement's rows, each a named tuple (``row.column`` and ``row[0]``), and how many
    rows it changed (``rowcount``: for ``INSERT``, ``UPDATE``, ``DELETE``; -1 otherwise)."""

    def __init__(self, rows: list[Any], rowcount: int = -1) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise sa.exc.NoResultFound if not self._rows else sa.exc.MultipleResultsFound
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


# Compiled with named placeholders, which this module numbers itself: ``%(name)s`` cannot be
# mistaken for anything else in the SQL (a literal ``%`` is written ``%%``).
_DIALECT = PGDialect_asyncpg(paramstyle="pyformat")  # type: ignore[no-untyped-call]
_PLACEHOLDER = re.compile(r"%%|%\(([^)]+)\)s")
_EXPANDING_IN = re.compile(r"(NOT )?IN \(__\[POSTCOMPILE_([^\]]+)\]\)")


@dataclass
class _Plan:
    """One compiled statement shape: its SQL for asyncpg and how to fill it in."""

    source: Any  # the statement compiled
    compiled: SQLCompiler
    sql: str
    names: tuple[str, ...]  # the parameter behind each $n
    binds: Mapping[str, Callable[[Any], Any]]
    expanding: frozenset[str]
    results: tuple[Callable[[Any], Any] | None, ...]
    counts: bool  # an INSERT, UPDATE or DELETE without RETURNING: its row count is the answer
    returning: bool  # one with RETURNING: its rows are the rows it changed
    row: Any = field(default=None)  # the named tuple for its rows, made at the first row
    own: dict[str, Any] = field(default_factory=dict)  # values the statement itself carries

    def __post_init__(self) -> None:
        self.own = {
            name: bind.effective_value
            for name, bind in self.compiled.binds.items()
            if not bind.required
        }

    def arguments(
        self, statement: Any, parameters: Mapping[str, Any] | None, extracted: Any
    ) -> list[Any]:
        """The values for $1, $2, …: from ``parameters``, else from the statement itself."""
        values: Mapping[str, Any]
        if statement is self.source:  # a statement built once (most are): its own values
            given, own = parameters or {}, self.own
            try:
                values = {n: given[n] if n in given else own[n] for n in self.names}
            except KeyError as missing:
                raise sa.exc.InvalidRequestError(f"no value for parameter {missing}") from None
        else:  # one of the same shape, built again with values of its own
            values = self.compiled.construct_params(parameters, extracted_parameters=extracted)
        out = []
        for name in self.names:
            value = values[name]
            process = self.binds.get(name)
            if process is not None and name in self.expanding:
                value = [process(v) for v in value]
            elif process is not None:
                value = process(value)
            elif name in self.expanding:
                value = list(value)
            out.append(value)
        return out

    def rows(self, records: Sequence[Any], rowcount: int = -1) -> Rows:
        if not records:
            return Rows([], rowcount)
        if self.row is None:
            self.row = collections.namedtuple("Row", list(records[0].keys()), rename=True)  # type: ignore[misc]
        make, processors = self.row._make, self.results
        if not any(processors):
            return Rows([make(r) for r in records], rowcount)
        return Rows(
            [
                make(v if p is None else p(v) for p, v in zip(processors, r, strict=True))
                for r in records
            ],
            rowcount,
        )


def _plan(source: Any, compiled: SQLCompiler) -> _Plan:
    sql = compiled.string
    expanding = []

    def any_of(match: re.Match[str]) -> str:
        expanding.append(match.group(2))
        operator = "<> ALL" if match.group(1) else "= ANY"
        return f"{operator}(%({match.group(2)})s)"

    sql = _EXPANDING_IN.sub(any_of, sql)
    if "__[POSTCOMPILE_" in sql:
        raise NotImplementedError("a post-compile parameter other than IN (…)")
    if compiled.escaped_bind_names:
        raise NotImplementedError("parameter names that need escaping")
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "%"
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    sql = _PLACEHOLDER.sub(number, sql)
    changes = bool(compiled.isinsert or compiled.isupdate or compiled.isdelete)
    results = tuple(
        column.type._cached_result_processor(_DIALECT, None) for column in compiled._result_columns
    )
    return _Plan(
        source=source,
        compiled=compiled,
        sql=sql,
        names=tuple(names),
        binds=cast(Mapping[str, Callable[[Any], Any]], dict(compiled._bind_processors)),
        expanding=frozenset(expanding),
        results=results,
        counts=changes and not compiled._result_columns,
        returning=changes and bool(compiled._result_columns),
    )


class _Plans:
    """Compiled statements by SQLAlchemy cache key and parameter names, as SQLAlchemy's own
    compiled cache keys them (an ``INSERT``'s columns are the parameters given); the most
    recently used kept."""

    def __init__(self, size: int = 500) -> None:
        self._size = size
        self._plans: collections.OrderedDict[Any, _Plan] = collections.OrderedDict()
        # The plans of statements built once, by the statement object itself: hashing a
        # SQLAlchemy cache key (a deep tuple) on every execution cost more than the rest.
        self._built_once: dict[tuple[int, tuple[str, ...]], tuple[Any, _Plan, Any]] = {}

    def get(self, executable: sa.Executable, names: Sequence[str]) -> tuple[_Plan, Any]:
        """The plan for a statement given parameters ``names``, and the values the statement
        carries itself (for ``construct_params``)."""
        statement: Any = executable  # a ClauseElement: it compiles and has a cache key
        columns = sorted(names)
        mine = (id(statement), tuple(columns))
        known = self._built_once.get(mine)
        if known is not None and known[0] is statement:
            return known[1], known[2]
        plan, extracted = self._get(statement, columns)
        if plan.source is statement:
            if len(self._built_once) >= self._size:
                self._built_once.clear()
            self._built_once[mine] = (statement, plan, extracted)
        return plan, extracted

    def _get(self, statement: Any, columns: list[str]) -> tuple[_Plan, Any]:
        """By SQLAlchemy's cache key: statements of one shape share a plan."""

        def make(key: Any = None) -> _Plan:
            compiled = statement.compile(dialect=_DIALECT, column_keys=columns, cache_key=key)
            return _plan(statement, compiled)

        key = statement._generate_cache_key()
        if key is None:  # not cacheable: compiled afresh each time
            return make(), None
        return self._remember((key.key, tuple(columns)), lambda: make(key)), key.bindparams

    def many(
        self, executable: sa.Executable, parameters: list[Mapping[str, Any]]
    ) -> tuple[_Plan, dict[str, Any]]:
        """An ``INSERT … RETURNING`` of many rows as one statement (SQLAlchemy does not cache
        a multi-row ``VALUES``: compiled here once per statement, columns and row count), and
        its parameters, named ``<column>__<row>``."""
        statement: Any = executable
        columns = list(parameters[0])
        values = {f"{c}__{n}": p[c] for n, p in enumerate(parameters) for c in columns}

        def make() -> _Plan:
            table = statement.table
            rows = [
                {c: sa.bindparam(f"{c}__{n}", type_=table.c[c].type) for c in columns}
                for n in range(len(parameters))
            ]
            source = statement.values(rows)
            return _plan(source, source.compile(dialect=_DIALECT))

        key = statement._generate_cache_key()
        if key is None or any(p.value is not None for p in key.bindparams):
            return make(), values  # values of its own: compiled afresh
        return self._remember(("many", key.key, tuple(columns), len(parameters)), make), values

    def _remember(self, key: Any, make: Callable[[], _Plan]) -> _Plan:
        found = self._plans.get(key)
        if found is None:
            found = self._plans[key] = make()
            if len(self._plans) > self._size:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return found


_PLANS = _Plans()


def sql_for(statement: sa.Executable, parameters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The SQL and arguments this module sends for ``statement`` (for ``EXPLAIN``)."""
    plan, extracted = _PLANS.get(statement, list(parameters))
    return plan.sql, plan.arguments(statement, parameters, extracted)


class DirectConnection:
    """One pooled asyncpg connection, running statements as ``Connection.execute`` would.

    In a transaction the BEGIN is sent with the first statement rather than on its own: with
    ``lock``, in the same round trip; before any other, just ahead of it."""

    def __init__(self, driver: Any, *, transaction: bool = False) -> None:
        self._driver = driver
        self._transaction = transaction
        self._begin_owed = transaction

    @property
    def begun(self) -> bool:
        """Whether a transaction was begun here (and so is owed a COMMIT or ROLLBACK)."""
        return self._transaction and not self._begin_owed

    def _begin_first(self) -> list[str]:
        """``["BEGIN"]`` if the transaction's BEGIN is still owed (it goes with what is sent
        next), else nothing."""
        if not self._begin_owed:
            return []
        self._begin_owed = False
        return ["BEGIN"]

    async def lock(self, keys: Sequence[int]) -> None:
        """Wait for and take the transaction-scoped advisory locks ``keys``, one after another
        in the order given, in one round trip (the transaction's BEGIN included if owed)."""
        if not self._transaction:
            raise RuntimeError("a transaction-scoped lock needs connect(transaction=True)")
        # Simple-query protocol, several statements in one message; the keys are integers,
        # written as literals (``int`` refuses anything else).
        locks = [f"SELECT pg_advisory_xact_lock({int(key)})" for key in keys]
        statements = [*self._begin_first(), *locks]
        if statements:
            await self._driver.execute("; ".join(statements))

    async def _begin(self) -> None:
        if self._begin_first():
            await self._driver.execute("BEGIN")

    async def execute(self, statement: sa.Executable, parameters: Parameters = None) -> Rows:
        await self._begin()
        if parameters is not None and not isinstance(parameters, Mapping):
            return await self._execute_many(statement, list(parameters))
        plan, extracted = _PLANS.get(statement, list(parameters or ()))
        arguments = plan.arguments(statement, parameters, extracted)
        if plan.counts:
            status = await self._driver.execute(plan.sql, *arguments)  # e.g. "UPDATE 3"
            return Rows([], int(status.rsplit(" ", 1)[-1]))
        records = await self._driver.fetch(plan.sql, *arguments)
        return plan.rows(records, len(records) if plan.returning else -1)

    async def _execute_many(
        self, statement: sa.Executable, parameters: list[Mapping[str, Any]]
    ) -> Rows:
        if not parameters:
            return Rows([])
        if isinstance(statement, sa.Insert) and statement._returning:
            plan, values = _PLANS.many(statement, parameters)
            arguments = plan.arguments(plan.source, values, None)
            records = await self._driver.fetch(plan.sql, *arguments)
            return plan.rows(records, len(records))
        plan, extracted = _PLANS.get(statement, list(parameters[0]))
        if plan.returning:
            raise NotImplementedError("RETURNING over many parameter sets: only for an INSERT")
        await self._driver.executemany(
            plan.sql, [plan.arguments(statement, p, extracted) for p in parameters]
        )
        return Rows([])


#: A pooled connection unused for longer than this is pinged before it is handed out (the
#: pool's checkout does it: ``bot.store``), and is never reused here without the pool.
IDLE_PING_SECONDS = 5.0
#: How long a connection stays with this module, between statements, before it goes back to
#: SQLAlchemy's pool (which pings it on checkout after an idle spell, and recycles it).
HOT_SECONDS = 1.0
#: How many connections this module keeps between statements; the pool holds 5, and 10 more.
HOT_MAX = 4


@dataclass
class _Hot:
    """A connection kept checked out between statements, and since when."""

    pooled: Any  # SQLAlchemy's pooled connection (a ``_ConnectionFairy``)
    since: float  # when it left the pool (monotonic seconds)
    idle_since: float


class _HotConnections:
    """Connections kept out of SQLAlchemy's pool for a moment after a statement, so that the
    next statement takes one without the pool: a checkout and a return cost about 30 µs of
    client CPU (a greenlet each way, the pool's queue and events), and a booking runs about
    a dozen statements. One out of the pool for ``HOT_SECONDS`` goes back to it at the next
    ``connect``, with the time it went idle, so the pool's ping of a connection idle for long
    and its recycling still hold; ``Engine.dispose`` closes them with the pool's own. A
    connection is kept only as it would be returned: not closed, not inside a transaction."""

    def __init__(self) -> None:
        self._by_engine: weakref.WeakKeyDictionary[sa.Engine, list[_Hot]] = (
            weakref.WeakKeyDictionary()
        )

    def of(self, engine: sa.Engine) -> list[_Hot]:
        hot = self._by_engine.get(engine)
        if hot is None:
            hot = self._by_engine[engine] = []
            sa.event.listen(engine, "engine_disposed", self._close_all)
        return hot

    def take(self, engine: sa.Engine) -> tuple[_Hot | None, list[_Hot]]:
        """The connection kept last (LIFO) that is still fresh, if any; and every kept one
        that is not (out of the pool for ``HOT_SECONDS``, idle for ``IDLE_PING_SECONDS``, or
        closed), removed, for the caller to give back."""
        hot = self._by_engine.get(engine)
        if not hot:
            return None, []
        now = time.monotonic()
        if _fresh(hot[-1], now):
            return hot.pop(), []
        gone = [k for k in hot if not _fresh(k, now)]
        hot[:] = [k for k in hot if k not in gone]
        return (hot.pop() if hot else None), gone

    def count(self, engine: sa.Engine) -> int:
        return len(self._by_engine.get(engine) or ())

    def keep(self, engine: sa.Engine, pooled: Any, since: float) -> bool:
        hot = self.of(engine)
        now = time.monotonic()
        if len(hot) >= HOT_MAX or now - since >= HOT_SECONDS:
            return False
        hot.append(_Hot(pooled, since, now))
        return True

    def _close_all(self, engine: sa.Engine) -> None:
        # Runs inside ``Engine.dispose`` (in its greenlet): the pool's own connections are
        # closed by then, these are closed likewise rather than returned to a pool replaced.
        hot = self._by_engine.get(engine) or []
        closing, hot[:] = list(hot), []
        for kept in closing:
            kept.pooled.invalidate()
            kept.pooled.close()


_HOT = _HotConnections()


def _fresh(kept: _Hot, now: float) -> bool:
    return (
        now - kept.since < HOT_SECONDS
        and now - kept.idle_since < IDLE_PING_SECONDS
        and not kept.pooled.driver_connection.is_closed()
    )


def kept_connections(engine: AsyncEngine) -> int:
    """How many of ``engine``'s connections this module keeps out of the pool right now."""
    return _HOT.count(engine.sync_engine)


async def _give_back(kept: _Hot) -> None:
    pooled = kept.pooled
    info = pooled.info  # the pool's record of it, which outlives this checkout
    if pooled.driver_connection.is_closed():
        await greenlet_spawn(pooled.invalidate)
    await greenlet_spawn(pooled.close)
    # Idle since its last statement, not since now: the pool pings it on checkout if long.
    if info.get("idle_since") is not None:
        info["idle_since"] = kept.idle_since


@contextlib.asynccontextmanager
async def connect(engine: AsyncEngine, *, transaction: bool) -> AsyncIterator[DirectConnection]:
    """A connection from ``engine``'s pool: in autocommit, or (``transaction``) in one
    transaction, committed at the end of the block and rolled back if it raises."""
    import asyncpg  # here: PostgreSQL's driver is an optional install (the postgres extra)

    sync_engine = engine.sync_engine
    taken, stale = _HOT.take(sync_engine)
    for kept in stale:
        await _give_back(kept)
    if taken is None:
        pooled, since = await greenlet_spawn(sync_engine.raw_connection), time.monotonic()
    else:
        pooled, since = taken.pooled, taken.since
    driver = pooled.driver_connection
    assert driver is not None, "a pooled connection always has its driver connection"
    broken = False
    conn = DirectConnection(driver, transaction=transaction)
    try:
        yield conn
        if conn.begun:
            await driver.execute("COMMIT")
    except (asyncio.CancelledError, asyncpg.InterfaceError, OSError):
        broken = True  # cut off mid-statement, or the connection failed
        raise
    except BaseException:
        if driver.is_in_transaction():
            try:
                await driver.execute("ROLLBACK")
            except BaseException:
                broken = True
                raise
        raise
    finally:
        # The pool knows nothing of a transaction begun here: it must never get back a
        # connection still inside one, or one cut off mid-statement.
        if broken or driver.is_closed() or driver.is_in_transaction():
            await greenlet_spawn(pooled.invalidate)
            await greenlet_spawn(pooled.close)
        elif not _HOT.keep(sync_engine, pooled, since):
            await greenlet_spawn(pooled.close)
