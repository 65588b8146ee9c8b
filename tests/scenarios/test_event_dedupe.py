"""Events API redeliveries over signed HTTP: Slack retries an event (``X-Slack-Retry-Num``) it
thinks failed; Slotbot answers each event_id once, yet a delivery that really failed is retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from playground import slack_requests
from playground.slack_requests import SignedRequest
from tests.scenarios.harness import ANA, BEN, SECRET, Harness, start_harness, stop_harness


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await start_harness(tmp_path)
    yield harness
    await stop_harness(harness)


def retried(request: SignedRequest, number: int, reason: str = "http_timeout") -> SignedRequest:
    """The same signed delivery as Slack's retry ``number`` sends it."""
    headers = {**request.headers, "X-Slack-Retry-Num": str(number)}
    headers["X-Slack-Retry-Reason"] = reason
    return SignedRequest(request.body, headers)


def dm_event(bot: Harness, text: str) -> tuple[str, SignedRequest]:
    im = bot.slack.open_im(ANA.id).id
    said = bot.slack.post_as_user(im, ANA.id, text)
    event = slack_requests.im_message_event(said.text, user=ANA.id, channel=im, ts=said.ts)
    payload = slack_requests.event_callback(event)
    return im, slack_requests.signed_event(payload, secret=SECRET)


def offers_in(bot: Harness, channel: str) -> list[str]:
    return [
        m.ts
        for m in bot.slack.messages_in(channel)
        if m.user == bot.slack.bot_user_id and "book_slot" in str(m.blocks)
    ]


async def test_a_retried_dm_event_is_answered_once(bot: Harness) -> None:
    """The same event_id delivered again with retry headers after it was handled: one offer."""
    im, request = dm_event(bot, f"1:1 with <@{BEN.id}> tomorrow at 4pm")
    assert (await bot.post(request)).status == 200
    await bot.wait_for("chat.postMessage")
    await bot.settle()
    for number in (1, 2, 3):
        assert (await bot.post(retried(request, number))).status == 200
    await bot.settle()
    assert len(offers_in(bot, im)) == 1
    assert len(bot.slack.calls("chat.postMessage")) == 1


async def test_a_retry_arriving_while_the_original_runs_is_dropped(bot: Harness) -> None:
    """Slack's first retry can come while the first delivery is still being handled: one offer."""
    root = bot.slack.post_as_user(bot.channel, ANA.id, "we should talk")
    mention = slack_requests.app_mention_event(
        f"<@{bot.slack.bot_user_id}> sync with <@{BEN.id}> tomorrow afternoon",
        user=ANA.id,
        channel=bot.channel,
        ts=root.ts,
    )
    request = slack_requests.signed_event(slack_requests.event_callback(mention), secret=SECRET)
    # A slow directory keeps the first handling busy while the retries arrive.
    bot.slack.method_latency["users.info"] = 0.3
    statuses = await asyncio.gather(
        bot.post(request), bot.post(retried(request, 1)), bot.post(retried(request, 2))
    )
    assert [s.status for s in statuses] == [200, 200, 200]
    await bot.wait_for("chat.postEphemeral")
    await bot.settle(quiet=0.5)
    offers = [m for m in bot.slack.ephemeral_messages(user=ANA.id) if "book_slot" in str(m.blocks)]
    assert len(offers) == 1


async def test_a_retry_of_a_delivery_that_failed_still_offers(bot: Harness) -> None:
    """The first handling failed (Slack refused the offer): the retry of that event offers."""
    im, request = dm_event(bot, f"1:1 with <@{BEN.id}> tomorrow at 4pm")
    bot.slack.fail_next("chat.postMessage", error="internal_error")
    assert (await bot.post(request)).status == 200
    await bot.wait_for("chat.postMessage")
    await bot.settle()
    assert offers_in(bot, im) == []
    assert (await bot.post(retried(request, 1, "http_error"))).status == 200
    await bot.settle()
    assert len(offers_in(bot, im)) == 1
    # A further retry of the now handled event changes nothing.
    assert (await bot.post(retried(request, 2, "http_error"))).status == 200
    await bot.settle()
    assert len(offers_in(bot, im)) == 1
