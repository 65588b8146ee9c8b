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
from collections.abc import Awaitable, Callable

from slack_sdk.web.async_client import AsyncWebClient

from bot.scheduling.booking import Scheduler
from handlers.delivery import deliver
from handlers.installations import SlackInstalls

__all__ = ["ClientFor", "Reconciler", "installed_clients", "reconcile_once"]

logger = logging.getLogger("slotbot.reconcile")

#: The Web API client that speaks for a workspace, or None when it is not installed (any more).
ClientFor = Callable[[str], Awaitable[AsyncWebClient | None]]


def installed_clients(installs: SlackInstalls, base: AsyncWebClient) -> ClientFor:
    """Each workspace's client from its (sealed) installation, sharing ``base``'s session,
    base URL and retry policy: what a click in that workspace would have been given."""

    async def client_for(team_id: str) -> AsyncWebClient | None:
        bot = await installs.installations.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None or not bot.bot_token:
            return None
        return AsyncWebClient(
            token=bot.bot_token,
            base_url=base.base_url,
            timeout=base.timeout,
            session=base.session,
            retry_handlers=base.retry_handlers,
        )

    return client_for


def one_client(client: AsyncWebClient) -> ClientFor:
    """Single-workspace mode: the one bot token speaks for every booking."""

    async def client_for(team_id: str) -> AsyncWebClient | None:
        return client

    return client_for


async def reconcile_once(clients: AsyncWebClient | ClientFor, scheduler: Scheduler) -> int:
    """Finish every half-done booking nobody is working on; the number delivered now."""
    client_for = one_client(clients) if isinstance(clients, AsyncWebClient) else clients
    delivered = 0
    for booking in await scheduler.unfinished():
        try:
            client = await client_for(booking.team_id)
            if client is None:  # uninstalled: nobody to deliver to, nothing to finish
                continue
            confirmation = await scheduler.resume(booking.team_id, booking.key)
            if confirmation is not None and await deliver(client, scheduler, confirmation):
                delivered += 1
        except Exception as exc:  # noqa: BLE001 - one stuck booking must not stop the rest
            # Left for the next round; the type only: messages may carry people's text.
            logger.warning("could not finish a booking yet: %s", type(exc).__name__)
    return delivered


class Reconciler:
    """Runs ``reconcile_once`` now and then every ``every`` seconds, until stopped."""

    def __init__(
        self, client: AsyncWebClient | ClientFor, scheduler: Scheduler, every: float
    ) -> None:
        self.client = client
        self.scheduler = scheduler
        self.every = every
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="slotbot-reconcile")

    async def stop(self) -> None:
        """Stop after the round in progress: cancelling one mid-query would strand its
        database connection (and perhaps a half-sent upload)."""
        if self._task is not None:
            self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                count = await reconcile_once(self.client, self.scheduler)
                if count:
                    logger.info("finished %d half-done booking(s)", count)
            except Exception as exc:  # noqa: BLE001 - the loop outlives a database hiccup
                logger.warning("reconcile round failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.every)
