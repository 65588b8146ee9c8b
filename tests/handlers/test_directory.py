"""SlackDirectory over the real slack_sdk client against the loopback Slack emulator: who people
are (users.info), which person a typed @handle names (users.list), and what is cached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import RequestError
from bot.models import Participant
from handlers.directory import PeopleCache, SlackDirectory
from playground.slack_api import SlackEmulator, SlackUser

TEAM = "T000TEAM1"
ANA = SlackUser(
    id="U0ANA0001",
    name="ana",
    real_name="Ana Alves",
    email="ana@example.com",
    tz="Europe/Berlin",
    display_name="Ana A",
)
BEN = SlackUser(
    id="U0BEN0002", name="ben", real_name="Ben Brown", email="ben@example.com", tz="Asia/Kolkata"
)
SAM1 = SlackUser(id="U0SAM0003", name="sam.one", real_name="Sam One", display_name="Sam")
SAM2 = SlackUser(id="U0SAM0004", name="sam.two", real_name="Sam Two", display_name="sam")
GONE = SlackUser(id="U0GONE005", name="gone", real_name="Gone Person", deleted=True)
BOT = "U000B0T01"  # the emulator's own bot user


@dataclass
class ManualClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    slack: SlackEmulator
    directory: SlackDirectory
    clock: ManualClock

    def calls(self, method: str) -> int:
        return len(self.slack.calls(method))


async def open_setup(slack: SlackEmulator) -> Setup:
    await slack.start()
    clock = ManualClock()
    client = AsyncWebClient(token=slack.token, base_url=slack.url)
    return Setup(slack, SlackDirectory(client, PeopleCache(ttl=300.0, clock=clock)), clock)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    slack = SlackEmulator(users=(ANA, BEN, SAM1, SAM2, GONE))
    opened = await open_setup(slack)
    yield opened
    await slack.close()


# --- users.info -------------------------------------------------------------------------------


async def test_person_has_zone_email_and_display_name(setup: Setup) -> None:
    """users.info gives the profile zone, email and display name."""
    person = await setup.directory.person(TEAM, ANA.id)
    assert person == Participant(ANA.id, "Europe/Berlin", "ana@example.com", "Ana A")


async def test_person_without_a_display_name_is_called_by_real_name(setup: Setup) -> None:
    """No display name: the real name is used."""
    person = await setup.directory.person(TEAM, BEN.id)
    assert (person.time_zone, person.name) == ("Asia/Kolkata", "Ben Brown")


async def test_a_second_lookup_is_answered_from_the_cache(setup: Setup) -> None:
    """The same person twice within the TTL costs one users.info call."""
    first = await setup.directory.person(TEAM, ANA.id)
    second = await setup.directory.person(TEAM, ANA.id)
    assert first == second
    assert setup.calls("users.info") == 1


async def test_the_cache_expires_and_is_kept_per_workspace(setup: Setup) -> None:
    """After the TTL, or for another team, users.info is asked again."""
    await setup.directory.person(TEAM, ANA.id)
    await setup.directory.person("T0OTHER00", ANA.id)
    assert setup.calls("users.info") == 2
    setup.clock.now += 301
    await setup.directory.person(TEAM, ANA.id)
    assert setup.calls("users.info") == 3


async def test_an_unknown_user_is_a_request_error_saying_what_to_do(setup: Setup) -> None:
    """A user Slack does not know: RequestError naming them and saying to mention with @."""
    with pytest.raises(RequestError) as caught:
        await setup.directory.person(TEAM, "U0NOBODY9")
    message = caught.value.user_message
    assert "<@U0NOBODY9>" in message and "@" in message.replace("<@U0NOBODY9>", "")
    assert "/schedule" in message


@pytest.mark.parametrize("user_id", [BOT, GONE.id], ids=["bot", "deactivated"])
async def test_bots_and_deactivated_users_are_request_errors(setup: Setup, user_id: str) -> None:
    """A bot or a deactivated account cannot be invited: RequestError, and nothing cached."""
    with pytest.raises(RequestError, match="bot or a deactivated account"):
        await setup.directory.person(TEAM, user_id)
    with pytest.raises(RequestError):
        await setup.directory.person(TEAM, user_id)
    assert setup.calls("users.info") == 2


async def test_other_slack_errors_are_not_disguised(setup: Setup) -> None:
    """A Slack failure other than an unknown user propagates as SlackApiError."""
    setup.slack.fail_next("users.info", error="fatal_error")
    with pytest.raises(SlackApiError):
        await setup.directory.person(TEAM, ANA.id)


# --- users.list -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "handle",
    ["ana", "@ana", "ANA", "Ana A", "ana a", "anaa", "Ana Alves", "anaalves", "@AnaAlves"],
)
async def test_a_handle_resolves_by_name_display_name_or_real_name(
    setup: Setup, handle: str
) -> None:
    """Username, display name or real name, any case, with or without @ or spaces."""
    person = await setup.directory.find_handle(TEAM, handle)
    assert person is not None and person.user_id == ANA.id


@pytest.mark.parametrize("handle", ["sam", "@Sam", "nobody", "", "slotbot", "gone"])
async def test_ambiguous_unknown_bot_and_deactivated_handles_are_none(
    setup: Setup, handle: str
) -> None:
    """Two people called Sam, no such person, the bot, a deactivated user: None."""
    assert await setup.directory.find_handle(TEAM, handle) is None


async def test_a_handle_unique_by_username_still_resolves(setup: Setup) -> None:
    """Sam One's username is unique even though the display name 'sam' is shared."""
    person = await setup.directory.find_handle(TEAM, "sam.one")
    assert person is not None and person.user_id == SAM1.id


async def test_handles_are_listed_once_per_ttl(setup: Setup) -> None:
    """Several handles within the TTL cost one users.list walk; after it, another."""
    await setup.directory.find_handle(TEAM, "ana")
    await setup.directory.find_handle(TEAM, "ben")
    assert setup.calls("users.list") == 1
    setup.clock.now += 301
    await setup.directory.find_handle(TEAM, "ana")
    assert setup.calls("users.list") == 2


async def test_handles_are_found_on_later_pages() -> None:
    """users.list is followed through its cursor: a person past the first 200 is found."""
    crowd = [SlackUser(id=f"U0CROWD{i:03d}", name=f"person{i}") for i in range(250)]
    last = SlackUser(id="U0ZZZZ999", name="zelda", real_name="Zelda Zed")
    slack = SlackEmulator(users=(*crowd, last))
    setup = await open_setup(slack)
    try:
        person = await setup.directory.find_handle(TEAM, "zelda")
        assert person is not None and person.user_id == last.id
        assert setup.calls("users.list") == 2
    finally:
        await slack.close()


# --- zones this machine does not know -------------------------------------------------------


class FutureZoneSlack(SlackEmulator):
    """Slack sending a zone name newer than this machine's tz database."""

    def _user_json(self, user: SlackUser) -> dict[str, Any]:
        data = super()._user_json(user)
        if user.id == ANA.id:
            data["tz"] = "America/Nowhere_Newly_Named"
        return data


async def test_an_unknown_zone_falls_back_to_utc() -> None:
    """A zone name the tz database lacks becomes UTC; email and name are kept."""
    slack = FutureZoneSlack(users=(ANA,))
    setup = await open_setup(slack)
    try:
        person = await setup.directory.person(TEAM, ANA.id)
        assert (person.time_zone, person.email, person.name) == ("UTC", ANA.email, "Ana A")
    finally:
        await slack.close()
