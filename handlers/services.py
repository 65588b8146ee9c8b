"""What the listeners need from the rest of Slotbot, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_sdk.web.async_client import AsyncWebClient

from bot.calendars.google_accounts import GoogleAccounts
from bot.scheduling.booking import Scheduler
from handlers.directory import PeopleCache, SlackDirectory


@dataclass(frozen=True)
class Services:
    scheduler: Scheduler
    people: PeopleCache = field(default_factory=PeopleCache)
    accounts: GoogleAccounts | None = None  # people's own Google accounts, when they connect

    def directory(self, client: AsyncWebClient) -> SlackDirectory:
        """The people directory of the workspace ``client`` speaks for."""
        return SlackDirectory(client, self.people)
