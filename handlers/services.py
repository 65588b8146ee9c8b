"""What the listeners need from the rest of Slotbot, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from bot.models import Booking
from bot.scheduling.booking import Scheduler
from bot.scheduling.reminders import Reminders
from handlers.directory import PeopleCache, SlackDirectory
from handlers.messenger import FollowUps, SlackMessenger

if TYPE_CHECKING:  # only where Google is set up (see bot/app.py)
    from bot.calendars.google_accounts import GoogleAccounts


@dataclass(frozen=True)
class Services:
    scheduler: Scheduler
    reminders: Reminders
    people: PeopleCache = field(default_factory=PeopleCache)
    accounts: GoogleAccounts | None = None  # people's own Google accounts, when they connect
    followups: FollowUps = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "followups", FollowUps(self.reminders, self.people))

    def directory(self, client: AsyncWebClient) -> SlackDirectory:
        """The people directory of the workspace ``client`` speaks for."""
        return SlackDirectory(client, self.people)

    def follow_up(
        self, client: AsyncWebClient, team_id: str, key: str, booking: Booking | None = None
    ) -> None:
        """Owe a booking's reminders and notices after it was booked or changed (``booking``:
        as the caller has just stored it, read again otherwise); they follow in a batch."""
        self.followups.add(client, team_id, key, booking)

    async def follow_settings(self, client: AsyncWebClient, team_id: str, user_id: str) -> None:
        """Move the person's upcoming reminders to the lead they just saved (failures logged:
        the settings are saved either way)."""
        messenger = SlackMessenger(client, self.people.direct_channels(team_id))
        await self.reminders.sync_person(messenger, team_id, user_id)
