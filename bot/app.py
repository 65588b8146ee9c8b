"""The composition root: the one place that wires settings, storage, calendars and Slack.

``create_app`` builds the Bolt app for a scheduler; ``open_slotbot`` builds everything a
running process needs from ``Settings``, and ``Slotbot.close`` releases it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.calendars import CalendarProvider
from bot.calendars.local import LocalCalendar
from bot.config import Settings
from bot.scheduling.booking import Scheduler
from bot.store import Store, database_url_from
from handlers import Services, register_handlers
from handlers.http import SlackSignature, build_web_app

__all__ = ["Slotbot", "create_app", "open_slotbot", "slack_client"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def slack_client(settings: Settings) -> AsyncWebClient:
    """The Web API client: Slack's base URL from settings, 429s retried after ``Retry-After``.

    Only rate-limit answers are retried: Slack did not act on them, so a retry cannot post twice.
    """
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )


def create_app(
    settings: Settings, scheduler: Scheduler, *, client: AsyncWebClient | None = None
) -> AsyncApp:
    """The Bolt app with every handler registered. Signatures are checked by the HTTP layer."""
    app = AsyncApp(
        client=client or slack_client(settings),
        signing_secret=settings.slack_signing_secret or "unused-in-socket-mode",
        request_verification_enabled=False,
        process_before_response=False,
    )
    register_handlers(app, Services(scheduler))
    return app


@dataclass
class Slotbot:
    """A running Slotbot's parts."""

    settings: Settings
    store: Store
    scheduler: Scheduler
    bolt: AsyncApp

    def web_app(self) -> web.Application:
        """The aiohttp app for HTTP mode; refuses to run without a signing secret."""
        if not self.settings.slack_signing_secret:
            raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET to verify Slack's requests")
        web_app = build_web_app(self.bolt, SlackSignature(self.settings.slack_signing_secret))

        async def close(_: web.Application) -> None:
            await self.close()

        web_app.on_cleanup.append(close)
        return web_app

    async def close(self) -> None:
        await self.store.close()


async def open_slotbot(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    calendar: CalendarProvider | None = None,
    client: AsyncWebClient | None = None,
) -> Slotbot:
    """Open the store (migrating it) and build the scheduler and the Bolt app."""
    store = await Store.open(database_url_from(settings.database_url, settings.data_dir))
    scheduler = Scheduler(
        store,
        calendar or LocalCalendar(store),
        clock=clock,
        default_duration_minutes=settings.default_duration_minutes,
        offer_ttl=timedelta(minutes=settings.offer_ttl_minutes),
    )
    return Slotbot(settings, store, scheduler, create_app(settings, scheduler, client=client))
