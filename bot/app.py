"""The composition root: the one place that wires settings, storage, calendars and Slack.

``create_app`` builds the Bolt app for a scheduler; ``open_slotbot`` builds everything a
running process needs from ``Settings``, and ``Slotbot.close`` releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.calendars import CalendarProvider
from bot.calendars.local import LocalCalendar
from bot.config import Settings
from bot.scheduling.booking import Scheduler
from bot.scheduling.reminders import Reminders
from bot.store import Store, database_url_from
from bot.upkeep import StoreUpkeep
from bot.webhooks import Outbox, Webhooks
from handlers import Services, register_handlers
from handlers.errors import work_queue
from handlers.http import SlackSignature, build_web_app
from handlers.installations import SlackInstalls, oauth_settings, open_slack_installs
from handlers.reconcile import Reconciler, installed_clients
from handlers.retries import retry_handlers

if TYPE_CHECKING:
    # Google's client libraries take about 0.3 s to import: a Slotbot on its own calendar
    # (the default) never loads them, so they are imported where Google is set up.
    from bot.calendars.google import GoogleSettings
    from bot.calendars.google_accounts import GoogleAccounts

__all__ = [
    "Slotbot",
    "create_app",
    "google_accounts",
    "google_settings",
    "open_slotbot",
    "slack_client",
]

Sleep = Callable[[float], Awaitable[None]]
#: On shutdown, work already acknowledged to Slack gets this long to finish.
SHUTDOWN_GRACE_SECONDS = 10.0

#: What someone in a workspace without an installation sees (OAuth mode) instead of Bolt's text.
NOT_INSTALLED = (
    "Slotbot isn't installed in this workspace (or was removed from it). "
    "Ask a workspace admin to install it again."
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def slack_client(
    settings: Settings, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """The Web API client: Slack's base URL from settings, 429s retried after ``Retry-After``,
    5xx and timeouts only where a retry cannot post twice. With ``session``, every call reuses
    its connections instead of opening a new session (and TCP connection) per call."""
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=retry_handlers(),
        session=session,
    )


def create_app(
    settings: Settings,
    scheduler: Scheduler,
    *,
    client: AsyncWebClient | None = None,
    accounts: GoogleAccounts | None = None,
    installs: SlackInstalls | None = None,
    reminders: Reminders | None = None,
) -> AsyncApp:
    """The Bolt app with every handler registered. Signatures are checked by the HTTP layer.

    With ``SLACK_CLIENT_ID`` (installed in several workspaces) ``installs`` is required: each
    request is authorized with its workspace's token from there, and Bolt's OAuth flow serves
    ``/slack/install`` and ``/slack/oauth_redirect``.
    """
    client = client or slack_client(settings)
    oauth = None
    if settings.slack_oauth:
        if installs is None:
            raise ValueError("installing in several workspaces needs the installation store")
        oauth = oauth_settings(settings, installs, client)
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret or "unused-in-socket-mode",
        request_verification_enabled=False,
        process_before_response=False,
        oauth_settings=oauth,
        user_facing_authorize_error_message=NOT_INSTALLED,
    )
    reminders = reminders or Reminders(scheduler.store, clock=scheduler.clock)
    register_handlers(app, Services(scheduler, reminders, accounts=accounts))
    return app


@dataclass
class Slotbot:
    """A running Slotbot's parts."""

    settings: Settings
    store: Store
    scheduler: Scheduler
    bolt: AsyncApp
    accounts: GoogleAccounts | None = None
    reconciler: Reconciler | None = None
    session: aiohttp.ClientSession | None = None
    installs: SlackInstalls | None = None
    outbox: Outbox | None = None  # sends webhooks, when SLOTBOT_WEBHOOK_URLS names some
    reminders: Reminders | None = None  # reminders and notices owed; the reconcile catches up
    upkeep: StoreUpkeep | None = None  # analyzes and vacuums where autovacuum does not

    def start_reconcile(self) -> None:
        """Finish half-done bookings now and every ``SLOTBOT_RECONCILE_SECONDS`` (0: never);
        start sending webhooks from the outbox; and on PostgreSQL, analyze and vacuum the
        tables autovacuum leaves alone every ``SLOTBOT_DB_UPKEEP_SECONDS`` (0: never)."""
        if self.outbox is not None:
            self.outbox.start()
        if self.upkeep is None:
            also = self.installs.tables if self.installs is not None else ()
            self.upkeep = StoreUpkeep(self.store, self.settings.db_upkeep_seconds, also)
            self.upkeep.start()  # nothing to do on SQLite
        if self.settings.reconcile_seconds > 0 and self.reconciler is None:
            clients = (
                installed_clients(self.installs, self.bolt.client)
                if self.installs is not None
                else self.bolt.client
            )
            self.reconciler = Reconciler(
                clients, self.scheduler, self.settings.reconcile_seconds, self.reminders
            )
            self.reconciler.start()

    def web_app(self, *, slack_events: bool = True) -> web.Application:
        """The aiohttp app: Slack's requests (HTTP mode; refused without a signing secret),
        ``/healthz`` and the browser routes. ``slack_events`` False is Socket Mode's side app."""
        signature = None
        if slack_events:
            if not self.settings.slack_signing_secret:
                raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET to verify Slack's requests")
            signature = SlackSignature(self.settings.slack_signing_secret)
        oauth = None
        if self.accounts is not None:
            from handlers.oauth_google import GoogleOAuthRoutes

            oauth = GoogleOAuthRoutes(self.accounts, self.scheduler, self.bolt.client)
        web_app = build_web_app(
            self.bolt,
            signature,
            path="/slack/events" if slack_events else None,
            google_oauth=oauth,
        )

        async def close(_: web.Application) -> None:
            await self.close()

        async def reconcile(_: web.Application) -> None:
            self.start_reconcile()

        web_app.on_startup.append(reconcile)
        web_app.on_cleanup.append(close)
        return web_app

    async def close(self) -> None:
        """Stop: the work already acknowledged to Slack finishes first (for a while), so no
        click is cut off between its calendar event and its .ics; then the loops and the
        connections close."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(work_queue().idle(), SHUTDOWN_GRACE_SECONDS)
        if self.reconciler is not None:
            await self.reconciler.stop()
        if self.outbox is not None:
            await self.outbox.stop()
        if self.upkeep is not None:
            await self.upkeep.stop()
        if self.session is not None:
            await self.session.close()
        await self.store.close()


def google_settings(settings: Settings) -> GoogleSettings | None:
    """How to reach Google Calendar, or None when Slotbot keeps its own (local) calendar."""
    if settings.google_mode is None:
        return None
    from bot.calendars.google import GoogleSettings

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
    from bot.calendars.google_accounts import GoogleAccounts

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
    from bot.calendars.google import GoogleCalendar

    if accounts is not None:
        return GoogleCalendar(google, user_credentials=accounts.credentials, sleep=retry_sleep)
    return GoogleCalendar(google, sleep=retry_sleep)


async def _slack_installs(settings: Settings, store: Store) -> SlackInstalls | None:
    """Slack installations on the store's database, when Slotbot serves several workspaces."""
    if not settings.slack_oauth:
        return None
    assert settings.slack_client_id and settings.secret_key
    # The same engine (pool, dialect settings) as the store.
    return await open_slack_installs(
        store.engine, client_id=settings.slack_client_id, secret_key=settings.secret_key
    )


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
    webhooks = Webhooks(settings.webhook_urls) if settings.webhook_urls else None
    scheduler = Scheduler(
        store,
        calendar or _calendar_for(settings, store, accounts, retry_sleep),
        clock=clock,
        default_duration_minutes=settings.default_duration_minutes,
        offer_ttl=timedelta(minutes=settings.offer_ttl_minutes),
        delivery_lease=timedelta(seconds=settings.delivery_lease_seconds),
        webhooks=webhooks,
    )
    installs = await _slack_installs(settings, store)
    session = None
    if client is None:
        session = aiohttp.ClientSession()
        client = slack_client(settings, session)
    reminders = Reminders(store, clock=clock)
    bolt = create_app(
        settings,
        scheduler,
        client=client,
        accounts=accounts,
        installs=installs,
        reminders=reminders,
    )
    outbox = None
    if webhooks is not None:
        assert settings.webhook_secret  # Settings refuse URLs without it
        outbox = Outbox(store, webhooks, settings.webhook_secret, clock=clock)
    return Slotbot(
        settings,
        store,
        scheduler,
        bolt,
        accounts,
        session=session,
        installs=installs,
        outbox=outbox,
        reminders=reminders,
    )
