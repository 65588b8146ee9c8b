"""The composition root: the one place that wires settings, storage, calendars and Slack.

``create_app`` builds the Bolt app for a scheduler; ``open_slotbot`` builds everything a
running process needs from ``Settings``, and ``Slotbot.close`` releases it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.calendars import CalendarProvider
from bot.calendars.google import GoogleCalendar, GoogleSettings
from bot.calendars.google_accounts import GoogleAccounts
from bot.calendars.local import LocalCalendar
from bot.config import Settings
from bot.scheduling.booking import Scheduler
from bot.store import Store, database_url_from
from handlers import Services, register_handlers
from handlers.http import SlackSignature, build_web_app
from handlers.oauth_google import GoogleOAuthRoutes
from handlers.retries import retry_handlers

__all__ = [
    "Slotbot",
    "create_app",
    "google_accounts",
    "google_settings",
    "open_slotbot",
    "slack_client",
]

Sleep = Callable[[float], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def slack_client(settings: Settings) -> AsyncWebClient:
    """The Web API client: Slack's base URL from settings, 429s retried after ``Retry-After``.

    429s are retried after ``Retry-After``; 5xx and timeouts only where a retry cannot post twice.
    """
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=retry_handlers(),
    )


def create_app(
    settings: Settings,
    scheduler: Scheduler,
    *,
    client: AsyncWebClient | None = None,
    accounts: GoogleAccounts | None = None,
) -> AsyncApp:
    """The Bolt app with every handler registered. Signatures are checked by the HTTP layer."""
    app = AsyncApp(
        client=client or slack_client(settings),
        signing_secret=settings.slack_signing_secret or "unused-in-socket-mode",
        request_verification_enabled=False,
        process_before_response=False,
    )
    register_handlers(app, Services(scheduler, accounts=accounts))
    return app


@dataclass
class Slotbot:
    """A running Slotbot's parts."""

    settings: Settings
    store: Store
    scheduler: Scheduler
    bolt: AsyncApp
    accounts: GoogleAccounts | None = None

    def web_app(self) -> web.Application:
        """The aiohttp app for HTTP mode; refuses to run without a signing secret."""
        if not self.settings.slack_signing_secret:
            raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET to verify Slack's requests")
        oauth = None
        if self.accounts is not None:
            oauth = GoogleOAuthRoutes(self.accounts, self.scheduler, self.bolt.client)
        web_app = build_web_app(
            self.bolt, SlackSignature(self.settings.slack_signing_secret), google_oauth=oauth
        )

        async def close(_: web.Application) -> None:
            await self.close()

        web_app.on_cleanup.append(close)
        return web_app

    async def close(self) -> None:
        await self.store.close()


def google_settings(settings: Settings) -> GoogleSettings | None:
    """How to reach Google Calendar, or None when Slotbot keeps its own (local) calendar."""
    if settings.google_mode is None:
        return None
    return GoogleSettings(
        api_url=settings.google_api_url,
        service_account_file=settings.google_service_account_file,
        delegation=settings.google_delegation,
        calendar_id=settings.google_calendar_id,
        send_updates=settings.google_send_updates,
        conference=settings.google_meet,
    )


def google_accounts(
    settings: Settings, store: Store, clock: Callable[[], datetime]
) -> GoogleAccounts | None:
    """People's own Google accounts, when each person connects theirs (the OAuth mode)."""
    if settings.google_mode != "oauth":
        return None
    assert settings.google_oauth_client_file and settings.secret_key and settings.public_url
    return GoogleAccounts(
        store,
        client_file=settings.google_oauth_client_file,
        secret_key=settings.secret_key,
        public_url=settings.public_url,
        clock=clock,
    )


def _calendar_for(
    settings: Settings, store: Store, accounts: GoogleAccounts | None, retry_sleep: Sleep
) -> CalendarProvider:
    google = google_settings(settings)
    if google is None:
        return LocalCalendar(store)
    if accounts is not None:
        return GoogleCalendar(google, user_credentials=accounts.credentials, sleep=retry_sleep)
    return GoogleCalendar(google, sleep=retry_sleep)


async def open_slotbot(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    calendar: CalendarProvider | None = None,
    client: AsyncWebClient | None = None,
    retry_sleep: Sleep = asyncio.sleep,
) -> Slotbot:
    """Open the store (migrating it) and build the scheduler and the Bolt app.

    The calendar is Google's when settings configure it, else the local one; ``retry_sleep``
    is how retries of an outside service wait between attempts (tests pass one that does not).
    """
    store = await Store.open(database_url_from(settings.database_url, settings.data_dir))
    accounts = google_accounts(settings, store, clock)
    scheduler = Scheduler(
        store,
        calendar or _calendar_for(settings, store, accounts, retry_sleep),
        clock=clock,
        default_duration_minutes=settings.default_duration_minutes,
        offer_ttl=timedelta(minutes=settings.offer_ttl_minutes),
    )
    bolt = create_app(settings, scheduler, client=client, accounts=accounts)
    return Slotbot(settings, store, scheduler, bolt, accounts)
