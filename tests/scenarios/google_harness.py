"""A running Slotbot wired to the loopback Google emulator, in one of the three Google modes.

``start_google`` starts the Google emulator (a Workspace where Ana, Ben, Cara and Eve have
primary calendars and see each other's free/busy), writes the key or client file, and starts
the same HTTP Slotbot as ``harness.start_harness`` with the ``GOOGLE_*`` settings pointing at
the emulator. Retries do not really wait: their delays are recorded instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp.test_utils import TestServer, unused_port
from icalendar import Calendar

from bot.app import open_slotbot
from bot.calendars.google import SCOPES
from bot.config import Settings
from playground.slack_api import SlackEmulator, SlackUser
from tests.emulators.google import GoogleEmulator, OAuthClient, ServiceAccount
from tests.scenarios.harness import ANA, BEN, CARA, EVE, SECRET, Clock, Harness

Mode = Literal["delegation", "shared", "oauth"]

SHARED_CALENDAR = "team-meetings@group.calendar.google.com"
SECRET_KEY = "scenario-secret-key-0123456789-abcdefghij"
PEOPLE = (ANA, BEN, CARA, EVE)
UPLOAD_DONE = "files.completeUploadExternal"


@dataclass
class Sleeps:
    """The retry sleep Slotbot is given: it records each backoff delay and returns at once."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class GoogleBot:
    """A Slotbot (``bot``) and the Google it talks to (``google``)."""

    bot: Harness
    google: GoogleEmulator
    mode: Mode
    sleeps: Sleeps
    account: ServiceAccount | None = None
    client: OAuthClient | None = None
    public_url: str = ""

    def events(self, calendar_id: str) -> list[dict[str, Any]]:
        return self.google.events(calendar_id)

    def ics(self) -> Calendar:
        """The one .ics uploaded to Slack, parsed."""
        [upload] = [f for f in self.bot.slack.uploaded_files() if f.completed]
        assert upload.content is not None
        return Calendar.from_ical(upload.content)


def email_of(user: SlackUser) -> str:
    assert user.email
    return user.email


async def start_google(
    tmp_path: Path,
    mode: Mode,
    *,
    unshared: tuple[SlackUser, ...] = (),
    users: tuple[SlackUser, ...] = PEOPLE,
    **env: str,
) -> GoogleBot:
    """Slotbot in ``mode`` against a fresh Google emulator; ``unshared`` people's calendars
    are invisible to the service account (shared-calendar mode)."""
    google = GoogleEmulator()
    await google.start()
    everyone = [email_of(u) for u in users]
    for email in everyone:
        google.add_calendar(email, readers=everyone)
    settings_env: dict[str, str] = {"GOOGLE_API_URL": google.url, **env}
    account: ServiceAccount | None = None
    client: OAuthClient | None = None
    port = unused_port()
    public_url = f"http://127.0.0.1:{port}"
    if mode in ("delegation", "shared"):
        account = google.add_service_account()
        key = google.write_key_file(account, tmp_path / "service-account.json")
        settings_env["GOOGLE_SERVICE_ACCOUNT_FILE"] = str(key)
        if mode == "delegation":
            google.allow_delegation(account, SCOPES)
            settings_env["GOOGLE_DELEGATION"] = "1"
        else:
            google.add_calendar(SHARED_CALENDAR, time_zone="Europe/Berlin", writers=[account.email])
            for user in users:
                if user not in unshared:
                    google.share(email_of(user), account.email, "reader")
            settings_env["GOOGLE_CALENDAR_ID"] = SHARED_CALENDAR
    else:
        client = google.add_oauth_client(redirect_uris=(f"{public_url}/google/oauth/callback",))
        client_file = google.write_client_file(client, tmp_path / "client_secret.json")
        settings_env.update(
            GOOGLE_OAUTH_CLIENT_FILE=str(client_file),
            SLOTBOT_SECRET_KEY=SECRET_KEY,
            SLOTBOT_PUBLIC_URL=public_url,
        )
    sleeps = Sleeps()
    bot = await _start_slotbot(tmp_path, users, port, sleeps, settings_env)
    return GoogleBot(bot, google, mode, sleeps, account, client, public_url)


async def _start_slotbot(
    tmp_path: Path, users: tuple[SlackUser, ...], port: int, sleeps: Sleeps, env: dict[str, str]
) -> Harness:
    # As harness.start_harness, plus a fixed port (the OAuth redirect URI names it) and the
    # recording retry sleep.
    slack = SlackEmulator(users=users)
    await slack.start()
    settings = Settings.from_env(
        {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'slotbot.db'}",
            "SLOTBOT_DATA_DIR": str(tmp_path),
            **env,
        },
        dotenv=None,
    )
    clock = Clock()
    slotbot = await open_slotbot(settings, clock=clock, retry_sleep=sleeps)
    server = TestServer(slotbot.web_app(), host="127.0.0.1", port=port)
    await server.start_server()
    session = aiohttp.ClientSession()
    channel = slack.add_channel("general").id
    return Harness(slack, slotbot, server, session, clock, channel)


async def stop_google(harness: GoogleBot) -> None:
    await harness.bot.settle()
    await harness.bot.session.close()
    await harness.bot.server.close()
    await harness.bot.slack.close()
    await harness.google.close()
