"""The reconcile: finish bookings a crash left half-done, at start-up and then periodically.

A booking still pending (the calendar event may not exist) or created (not yet delivered) that
nobody holds a lease on is resumed (creating its event is idempotent by id) and delivered
through the same ``deliver`` a click uses, so it still ends in one event, one .ics, one
confirmation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from slack_sdk.web.async_client import AsyncWebClient

from bot.scheduling.booking import Scheduler
from handlers.delivery import deliver

__all__ = ["Reconciler", "reconcile_once"]

logger = logging.getLogger("slotbot.reconcile")


async def reconcile_once(client: AsyncWebClient, scheduler: Scheduler) -> int:
    """Finish every half-done booking nobody is working on; the number delivered now."""
    delivered = 0
    for booking in await scheduler.unfinished():
        try:
            confirmation = await scheduler.resume(booking.team_id, booking.key)
            if confirmation is not None and await deliver(client, scheduler, confirmation):
                delivered += 1
        except Exception as exc:  # noqa: BLE001 - one stuck booking must not stop the rest
            # Left for the next round; the type only: messages may carry people's text.
            logger.warning("could not finish a booking yet: %s", type(exc).__name__)
    return delivered


class Reconciler:
    """Runs ``reconcile_once`` now and then every ``every`` seconds, until stopped."""

    def __init__(self, client: AsyncWebClient, scheduler: Scheduler, every: float) -> None:
        self.client = client
        self.scheduler = scheduler
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="slotbot-reconcile")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                count = await reconcile_once(self.client, self.scheduler)
                if count:
                    logger.info("finished %d half-done booking(s)", count)
            except Exception as exc:  # noqa: BLE001 - the loop outlives a database hiccup
                logger.warning("reconcile round failed: %s", type(exc).__name__)
            await asyncio.sleep(self.every)
