"""Slack Web API faults: 429 waits for Retry-After; 5xx is retried only where it is safe."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import slack_client
from bot.config import Settings
from handlers.retries import IDEMPOTENT_METHODS, method_of
from playground.slack_api import SlackEmulator, SlackUser

ANA = SlackUser(id="U0ANA0001", name="ana", tz="Europe/Berlin", email="ana@example.com")


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(users=[ANA]) as emulator:
        yield emulator


@pytest.fixture
def client(slack: SlackEmulator) -> AsyncWebClient:
    settings = Settings.from_env(
        {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.url}, dotenv=None
    )
    return slack_client(settings)


def test_method_names_are_read_from_the_url() -> None:
    """The retry policy keys on the Web API method in the request URL."""
    assert method_of("http://127.0.0.1:1/api/chat.update") == "chat.update"
    assert method_of("https://slack.com/api/users.info?user=U1") == "users.info"
    assert "chat.postMessage" not in IDEMPOTENT_METHODS
    assert "files.completeUploadExternal" not in IDEMPOTENT_METHODS


async def test_rate_limit_is_retried_after_retry_after(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """A 429 on a post is retried once Retry-After has passed, and posts exactly once."""
    channel = slack.add_channel("general").id
    slack.fail_next("chat.postMessage", 1, status=429, retry_after=1)
    response = await client.chat_postMessage(channel=channel, text="hello")
    assert response["ok"]
    calls = slack.calls("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.9
    assert [m.text for m in slack.messages_in(channel)] == ["hello"]


async def test_server_error_on_a_read_is_retried(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """users.info answering 500 once is asked again and succeeds."""
    slack.fail_next("users.info", 1, status=500)
    response = await client.users_info(user=ANA.id)
    assert response["user"]["tz"] == "Europe/Berlin"
    assert [c.status for c in slack.calls("users.info")] == [500, 200]


async def test_server_error_on_a_post_is_not_retried(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """chat.postMessage answering 500 is not sent again: Slack may already have posted it."""
    channel = slack.add_channel("general").id
    slack.fail_next("chat.postMessage", 1, status=500)
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel=channel, text="hello")
    assert len(slack.calls("chat.postMessage")) == 1
