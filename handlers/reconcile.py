"""The reconcile: finish bookings, moves and cancels a crash left half-done, at start-up and
then periodically.

A booking still pending (the calendar event may not exist) or created (not yet delivered) that
nobody holds a lease on is resumed (creating its event is idempotent by id) and delivered
through the same ``deliver`` a click uses, so it still ends in one event, one .ics, one
confirmation. A move or cancel left on its way is applied to the calendar again (idempotent)
and delivered through ``deliver_change``. Then bookings whose reminders or notices are behind
(a crash or a Slack failure after the click, a reminder too far ahead for Slack until now) are
brought in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from slack_sdk.web.async_client import AsyncWebClient

from bot.scheduling.booking import Scheduler
from bot.scheduling.reminders import Reminders
from bot.tasks import finish_round
from handlers.delivery import deliver, deliver_change
from handlers.directory import PeopleCache, SlackDirectory
from handlers.installations import SlackInstalls
from handlers.messenger import follow_up

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


async def reconcile_once(
    clients: AsyncWebClient | ClientFor,
    scheduler: Scheduler,
    reminders: Reminders | None = None,
    people: PeopleCache | None = None,
) -> int:
    """Finish every half-done booking, move and cancel nobody is working on, then (with
    ``reminders``) bring behind reminders and notices in step; the number delivered now."""
    client_for = one_client(clients) if isinstance(clients, AsyncWebClient) else clients
    people = people or PeopleCache()
    delivered = await _deliver_unfinished(client_for, scheduler)
    delivered += await _deliver_unfinished_changes(client_for, scheduler, people)
    if reminders is not None:
        await _follow_up_behind(client_for, reminders, people)
    return delivered


async def _follow_up_behind(
    client_for: ClientFor, reminders: Reminders, people: PeopleCache
) -> None:
    for team_id, key in await reminders.unsynced():
        try:
            client = await client_for(team_id)
            if client is not None:
                await follow_up(reminders, client, people, team_id, key)
        except Exception as exc:  # noqa: BLE001 - one booking must not stop the rest
            logger.warning("could not follow a booking up yet: %s", type(exc).__name__)


async def _deliver_unfinished(client_for: ClientFor, scheduler: Scheduler) -> int:
    delivered = 0
    for booking in await scheduler.unfinished():
        try:
            client = await client_for(booking.team_id)
            if client is None:  # uninstalled: nobody to deliver to, nothing to finish
                continue
            confirmation = await scheduler.resume(booking.team_id, booking.key)
            if confirmation is not None and await deliver(client, scheduler, confirmation):
                delivered += 1  # its reminders come in the follow-up pass below
        except Exception as exc:  # noqa: BLE001 - one stuck booking must not stop the rest
            # Left for the next round; the type only: messages may carry people's text.
            logger.warning("could not finish a booking yet: %s", type(exc).__name__)
    return delivered


async def _deliver_unfinished_changes(
    client_for: ClientFor, scheduler: Scheduler, people: PeopleCache
) -> int:
    delivered = 0
    for pending in await scheduler.unfinished_changes():
        try:
            client = await client_for(pending.team_id)
            if client is None:
                continue
            directory = SlackDirectory(client, people)
            change = await scheduler.resume_change(pending.team_id, pending.booking_key, directory)
            if change is not None and await deliver_change(client, scheduler, change):
                delivered += 1
        except Exception as exc:  # noqa: BLE001 - one stuck change must not stop the rest
            logger.warning("could not finish a move or cancel yet: %s", type(exc).__name__)
    return delivered


class Reconciler:
    """Runs ``reconcile_once`` now and then every ``every`` seconds, until stopped."""

    def __init__(
        self,
        client: AsyncWebClient | ClientFor,
        scheduler: Scheduler,
        every: float,
        reminders: Reminders | None = None,
    ) -> None:
        self.client = client
        self.scheduler = scheduler
        self.every = every
        self.reminders = reminders
        self.people = PeopleCache()
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
            await finish_round(self._task)
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                count = await reconcile_once(
                    self.client, self.scheduler, self.reminders, self.people
                )
                if count:
                    logger.info("finished %d half-done booking(s)", count)
            except Exception as exc:  # noqa: BLE001 - the loop outlives a database hiccup
                logger.warning("reconcile round failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.every)
