"""Database upkeep: on PostgreSQL, analyze and vacuum Slotbot's tables now and then wherever
autovacuum does not (see ``Store.analyze_and_vacuum``).

Without planner statistics the per-click overlap check and the busy-time read turn into nested
loops over a team's every booking, and without vacuum dead rows pile up; a server with
``autovacuum = off`` gives neither. Where autovacuum runs, a round finds nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import sqlalchemy as sa

from bot.store import Store
from bot.tasks import finish_round

__all__ = ["StoreUpkeep"]

logger = logging.getLogger("slotbot.upkeep")


class StoreUpkeep:
    """Runs ``store.analyze_and_vacuum`` now and then every ``every`` seconds, until stopped.

    Only on PostgreSQL and with ``every`` above 0: elsewhere ``start`` does nothing. ``also``
    are others' tables on the same database (Slack installs) to look after too.
    """

    def __init__(self, store: Store, every: float, also: Sequence[sa.Table] = ()) -> None:
        self.store = store
        self.every = every
        self.also = tuple(also)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._task is None and self.every > 0 and self.store.dialect == "postgresql":
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="slotbot-db-upkeep")

    async def stop(self) -> None:
        """Stop after the round in progress: cancelling one mid-VACUUM would strand its
        connection (closed then, which releases its lock)."""
        if self._task is not None:
            self._stopping.set()
            await finish_round(self._task)
            self._task = None

    async def _run(self) -> None:
        try:
            if await self.store.autovacuum_is_off():
                logger.info(
                    "autovacuum is off on this PostgreSQL server: Slotbot will analyze and "
                    "vacuum its own tables every %g s (SLOTBOT_DB_UPKEEP_SECONDS)",
                    self.every,
                )
        except Exception as exc:  # noqa: BLE001 - only a notice; the rounds still run
            logger.warning("could not read the autovacuum setting: %s", type(exc).__name__)
        while not self._stopping.is_set():
            try:
                done = await self.store.analyze_and_vacuum(self.also)
                if done:
                    logger.debug("database upkeep: %s", ", ".join(done))
            except Exception as exc:  # noqa: BLE001 - the loop outlives a database hiccup
                logger.warning("database upkeep round failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.every)
