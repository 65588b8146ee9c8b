"""A running Slotbot for end-to-end scenarios: ``slotbot serve``'s web app on a loopback port,
talking to the Slack emulator through the real slack_sdk client, on a real SQLite file or the
PostgreSQL database a test passes in.

Tests send signed HTTP requests in and read what reached "Slack" from the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import Slotbot, open_slotbot
from bot.config import Settings
from handlers.errors import work_queue
from playground import slack_requests
from playground.slack_api import Message, SlackEmulator, SlackUser
from tests.scenarios.processes import ServeProcess

SECRET = "scenario-signing-secret"

# Monday 30 November 2026, 08:00 UTC: 09:00 in Berlin, 03:00 in New York.
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

ANA = SlackUser(
    id="U0ANA0001", name="ana", real_name="Ana Alves", email="ana@example.com", tz="Europe/Berlin"
)
BEN = SlackUser(
    id="U0BEN0002",
    name="ben",
    real_name="Ben Brown",
    email="ben@example.com",
    tz="America/New_York",
)
CARA = SlackUser(
    id="U0CARA003", name="cara", real_name="Cara Cho", email="cara@example.com", tz="Asia/Tokyo"
)
EVE = SlackUser(id="U0EVE0004", name="eve", real_name="Eve", email="eve@example.com", tz="UTC")


@dataclass
class Clock:
    """The scheduler's clock; tests move it on."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Offer:
    """An offer as the requester saw it, with what a click on it needs."""

    blocks: list[dict[str, Any]]
    channel: str
    message: Message
    response_url: str | None  # for ephemeral offers: where the click's response_url points

    def buttons(self, prefix: str = "") -> list[dict[str, Any]]:
        found = []
        for block in self.blocks:
            elements = [block.get("accessory"), *(block.get("elements") or [])]
            found += [
                e
                for e in elements
                if isinstance(e, dict)
                and e.get("type") == "button"
                and e.get("action_id", "").startswith(prefix)
            ]
        return found

    def text(self) -> str:
        return json.dumps(self.blocks)


@dataclass
class Harness:
    slack: SlackEmulator
    slotbot: Slotbot
    server: TestServer
    session: aiohttp.ClientSession
    clock: Clock
    channel: str = ""

    @property
    def url(self) -> str:
        return str(self.server.make_url("/slack/events"))

    async def post(self, request: slack_requests.SignedRequest) -> aiohttp.ClientResponse:
        async with self.session.post(self.url, data=request.body, headers=request.headers) as r:
            await r.read()
            return r

    async def command(
        self, text: str, *, user: SlackUser = ANA, channel: str | None = None
    ) -> tuple[int, str]:
        """Send ``/schedule text`` and wait for its answer (an offer, help or a note) to reach
        Slack; the HTTP status and the command's response_url."""
        request, response_url = command_request(self.slack, text, user, channel or self.channel)
        before = self._answers()
        response = await self.post(request)
        if response.status == 200:
            # The answer comes after ack(); the first request of a process can take a while
            # (cold caches), longer than settle()'s quiet spell.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10.0
            # Three counters of the emulator together have no event to wait on: poll them.
            while self._answers() == before and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        return response.status, response_url

    def _answers(self) -> int:
        return sum(
            len(self.slack.calls(m))
            for m in ("response_url", "chat.postMessage", "chat.postEphemeral")
        )

    async def wait_for(self, method: str, count: int = 1) -> None:
        await self.slack.wait_for(method, count=count, within=10.0)

    async def settle(self, quiet: float = 0.15, within: float = 5.0) -> None:
        """Wait until the app's listeners have finished and Slack has then heard nothing new
        for ``quiet`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(work_queue().idle(), within)
        seen = -1
        while loop.time() < deadline:
            count = len(self.slack.calls())
            if count == seen:
                return
            seen = count
            await asyncio.sleep(quiet)

    def latest_ephemeral(self, user: SlackUser = ANA) -> Message:
        messages = self.slack.ephemeral_messages(user=user.id)
        assert messages, "no ephemeral message reached the user"
        return messages[-1]

    async def click(
        self,
        offer: Offer,
        button: dict[str, Any],
        *,
        user: SlackUser = ANA,
    ) -> int:
        """Click ``button`` in ``offer`` as ``user``; the HTTP status of the interaction."""
        response = await self.post(click_request(self.slack, offer, button, user))
        return response.status


def command_request(
    slack: SlackEmulator, text: str, user: SlackUser, channel: str
) -> tuple[slack_requests.SignedRequest, str]:
    """``/schedule text`` from ``user`` in ``channel``, signed; and its response_url."""
    response_url = slack.mint_response_url(channel=channel, user=user.id)
    fields = slack_requests.slash_command(
        text,
        user_id=user.id,
        channel_id=channel,
        response_url=response_url,
        channel_name="directmessage" if channel.startswith("D") else "general",
    )
    return slack_requests.signed_slash_command(fields, secret=SECRET), response_url


def click_request(
    slack: SlackEmulator, offer: Offer, button: dict[str, Any], user: SlackUser
) -> slack_requests.SignedRequest:
    """A signed click on ``button`` of ``offer`` by ``user``, with a fresh response_url."""
    action = slack_requests.button_action(button["action_id"], button["value"])
    ephemeral = offer.message.ephemeral_to is not None
    response_url = slack.mint_response_url(
        channel=offer.channel, user=user.id, message_ts=offer.message.ts
    )
    payload = slack_requests.block_actions(
        [action],
        user_id=user.id,
        channel_id=offer.channel,
        response_url=response_url,
        message=None if ephemeral else _message_json(offer.message),
        message_ts=offer.message.ts,
    )
    if offer.message.thread_ts:
        payload["container"]["thread_ts"] = offer.message.thread_ts
    return slack_requests.signed_interaction(payload, secret=SECRET)


def _message_json(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "message",
        "ts": message.ts,
        "text": message.text,
        "blocks": message.blocks,
        "user": message.user,
    }
    if message.bot_id:
        data["bot_id"] = message.bot_id
    if message.thread_ts:
        data["thread_ts"] = message.thread_ts
    return data


async def start_harness(
    tmp_path: Path,
    *,
    users: tuple[SlackUser, ...] = (ANA, BEN, CARA, EVE),
    database_url: str | None = None,
    **env: str,
) -> Harness:
    """Start the emulator and the bot; ``database_url`` (e.g. the ``database_url`` fixture's
    PostgreSQL database) replaces the default SQLite file in ``tmp_path``."""
    slack = SlackEmulator(users=users)
    await slack.start()
    settings = Settings.from_env(
        {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.url,
            "DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'slotbot.db'}",
            "SLOTBOT_DATA_DIR": str(tmp_path),
            # Clicks deliver their own bookings here; the reconcile has its own (kill -9) tests,
            # and a background pass would only make these scenarios timing-dependent.
            "SLOTBOT_RECONCILE_SECONDS": "0",
            **env,
        },
        dotenv=None,
    )
    clock = Clock()
    slotbot = await open_slotbot(settings, clock=clock)
    server = TestServer(slotbot.web_app(), host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    channel = slack.add_channel("general").id
    return Harness(slack, slotbot, server, session, clock, channel)


#: Run a scenario on both databases: a SQLite file and a fresh PostgreSQL database.
on_each_database = pytest.mark.usefixtures("database_url")


async def stop_harness(harness: Harness) -> None:
    await harness.settle()
    await harness.session.close()
    await harness.server.close()  # runs the app's cleanup, which closes the store
    await harness.slack.close()


def offer_from_ephemeral(harness: Harness, user: SlackUser = ANA) -> Offer:
    message = harness.latest_ephemeral(user)
    return Offer(message.blocks, message.channel, message, None)


def offer_in(harness: Harness, channel: str, pick: Callable[[Message], bool] = bool) -> Offer:
    messages = [m for m in harness.slack.messages_in(channel) if m.blocks and pick(m)]
    assert messages, f"no offer in {channel}"
    return Offer(messages[-1].blocks, channel, messages[-1], None)


# --- several instances --------------------------------------------------------------------


@dataclass
class Cluster:
    """Several ``slotbot serve`` processes on one database; the Slack emulator runs here.

    Requests name the instance they go to, as a load balancer would pick one.
    """

    slack: SlackEmulator
    instances: list[ServeProcess]
    session: aiohttp.ClientSession
    database_url: str
    channel: str

    async def post(self, instance: int, request: slack_requests.SignedRequest) -> int:
        """Send a signed request to instance ``instance`` (modulo their number); its status."""
        url = self.instances[instance % len(self.instances)].url
        async with self.session.post(url, data=request.body, headers=request.headers) as r:
            await r.read()
            return r.status

    async def command(self, text: str, *, user: SlackUser, instance: int) -> int:
        """``/schedule text`` from ``user`` in the cluster's channel."""
        request, _ = command_request(self.slack, text, user, self.channel)
        return await self.post(instance, request)

    async def click(
        self, offer: Offer, button: dict[str, Any], *, user: SlackUser, instance: int
    ) -> int:
        """Click ``button`` of ``offer`` as ``user``."""
        return await self.post(instance, click_request(self.slack, offer, button, user))

    def offer_of(self, user: SlackUser) -> Offer | None:
        """The latest ephemeral message to ``user`` as an offer, if there is one."""
        messages = self.slack.ephemeral_messages(user=user.id)
        if not messages:
            return None
        return Offer(messages[-1].blocks, messages[-1].channel, messages[-1], None)

    async def wait_for_offers(
        self, users: Sequence[SlackUser], within: float = 30.0
    ) -> dict[str, Offer]:
        """Wait until every one of ``users`` has an offer with Book buttons; by user id."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            offers = {u.id: o for u in users if (o := self.offer_of(u)) and o.buttons("book_slot")}
            if len(offers) == len(users):
                return offers
            if loop.time() > deadline:
                missing = [u.id for u in users if u.id not in offers]
                raise TimeoutError(f"no offer reached {missing}")
            await asyncio.sleep(0.05)


async def start_cluster(
    tmp_path: Path,
    database_url: str,
    *,
    users: Sequence[SlackUser],
    instances: int = 2,
    **env: str,
) -> Cluster:
    """Start the emulator and ``instances`` serve processes on ``database_url``, all at once
    (so their start-up migrations race, as they do behind a load balancer)."""
    slack = SlackEmulator(users=users)
    await slack.start()
    environment = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.url,
        "DATABASE_URL": database_url,
        "SLOTBOT_DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        **env,
    }
    processes = [ServeProcess(environment, tmp_path / f"serve-{n}.log") for n in range(instances)]
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    cluster = Cluster(slack, processes, session, database_url, slack.add_channel("general").id)
    try:
        await asyncio.gather(*(p.start() for p in processes))
    except BaseException:
        await stop_cluster(cluster)
        raise
    return cluster


async def stop_cluster(cluster: Cluster) -> None:
    await asyncio.gather(*(p.stop() for p in cluster.instances))
    await cluster.session.close()
    await cluster.slack.close()
