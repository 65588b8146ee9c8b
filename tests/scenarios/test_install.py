"""Installed in several workspaces: Slack's OAuth flow through a browser, then every request
served with its own workspace's token and every query scoped by workspace.

A browser (an aiohttp session with a cookie jar) follows ``/slack/install`` to the emulator's
consent page and back to ``/slack/oauth_redirect``; the installation lands in the same
database as the bookings, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import create_async_engine
from yarl import URL

from bot.app import Slotbot, open_slotbot
from bot.config import DEFAULT_SLACK_SCOPES, Settings
from bot.secrets import SecretBox
from bot.store import Store
from handlers.installations import open_slack_installs
from handlers.reconcile import installed_clients, reconcile_once
from playground import slack_requests
from playground.slack_api import Message, SlackEmulator, SlackUser, Workspace
from tests.scenarios.harness import ANA, BEN, CARA, EVE, Clock

SECRET = "install-signing-secret"
SECRET_KEY = "install-scenario-secret-key-0123456789abcdef"
UPLOAD_DONE = "files.completeUploadExternal"
TEAM_A, TEAM_B = "T000TEAM1", "T0000BBBB"
DAN = SlackUser(id="U0DAN0005", name="dan", real_name="Dan Diaz", email="dan@b.example", tz="UTC")
FAY = SlackUser(id="U0FAY0006", name="fay", real_name="Fay Fox", email="fay@b.example", tz="UTC")


@dataclass
class Installed:
    """Slotbot serving several workspaces, the emulator behind them and a browser."""

    slack: SlackEmulator
    slotbot: Slotbot
    server: TestServer
    session: aiohttp.ClientSession
    database_url: str
    channel: str

    def url(self, path: str) -> URL:
        return self.server.make_url(path)

    async def browse_install(self, team_id: str) -> aiohttp.ClientResponse:
        """Install from a fresh browser as the workspace's installer; the final response."""
        root = str(self.url("/"))
        # The state cookie is Secure; browsers treat loopback origins as secure, so do we.
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[root])
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            async with browser.get(self.url("/slack/install"), allow_redirects=False) as first:
                assert first.status == 302, await first.text()
                consent = URL(first.headers["Location"])
            assert str(consent).startswith(self.slack.authorize_url)
            async with browser.get(consent.update_query(team=team_id)) as last:
                await last.read()
                return last

    def workspace(self, team_id: str) -> slack_requests.Workspace:
        found = self.slack.workspace(team_id)
        return slack_requests.Workspace(team_id, found.team_domain, "A000APP01", found.bot_user_id)

    async def post(self, request: slack_requests.SignedRequest) -> int:
        async with self.session.post(
            self.url("/slack/events"), data=request.body, headers=request.headers
        ) as response:
            await response.read()
            return response.status

    async def ask(self, team_id: str, user: SlackUser, text: str) -> Message:
        """``/schedule text`` in the shared channel; the ephemeral offer it got."""
        before = len(self.slack.ephemeral_messages(user=user.id))
        fields = slack_requests.slash_command(
            text,
            user_id=user.id,
            channel_id=self.channel,
            response_url=self.slack.mint_response_url(channel=self.channel, user=user.id),
            channel_name="general",
            workspace=self.workspace(team_id),
        )
        assert await self.post(slack_requests.signed_slash_command(fields, secret=SECRET)) == 200
        await self.slack.wait_for("response_url", count=1, within=10)
        await self.settle()
        messages = self.slack.ephemeral_messages(user=user.id)
        assert len(messages) > before, "no offer reached the requester"
        return messages[-1]

    async def click(self, team_id: str, user: SlackUser, offer: Message, button: Any) -> int:
        action = slack_requests.button_action(button["action_id"], button["value"])
        payload = slack_requests.block_actions(
            [action],
            user_id=user.id,
            channel_id=offer.channel,
            response_url=self.slack.mint_response_url(
                channel=offer.channel, user=user.id, message_ts=offer.ts
            ),
            message_ts=offer.ts,
            workspace=self.workspace(team_id),
        )
        return await self.post(slack_requests.signed_interaction(payload, secret=SECRET))

    async def open_home(self, team_id: str, user: SlackUser) -> str:
        """Open the Home tab in ``team_id``; the view published for it."""
        count = len(self.slack.calls("views.publish"))
        opened = slack_requests.app_home_opened_event(user=user.id, channel="D0HOME001")
        event = slack_requests.event_callback(opened, workspace=self.workspace(team_id))
        assert await self.post(slack_requests.signed_event(event, secret=SECRET)) == 200
        [*_, call] = await self.slack.wait_for("views.publish", count=count + 1, within=10)
        assert call.ok
        return json.dumps(call.params["view"])

    async def settle(self, quiet: float = 0.15) -> None:
        seen = -1
        while len(self.slack.calls()) != seen:
            seen = len(self.slack.calls())
            await asyncio.sleep(quiet)

    def tokens_of(self, *methods: str, since: int = 0) -> set[str | None]:
        """The tokens of calls to ``methods`` from the ``since``-th recorded call on."""
        return {c.token for c in self.slack.calls()[since:] if c.method in methods}


def book_buttons(offer: Message) -> list[dict[str, Any]]:
    found = []
    for block in offer.blocks:
        for element in [block.get("accessory"), *(block.get("elements") or [])]:
            if isinstance(element, dict) and element.get("action_id", "").startswith("book_slot"):
                found.append(element)
    assert found, "the offer has Book buttons"
    return found


@pytest.fixture
async def installed(tmp_path: Path, database_url: str) -> AsyncIterator[Installed]:
    slack = SlackEmulator(users=(ANA, BEN, CARA, EVE, DAN, FAY))
    await slack.start()
    slack.add_workspace(TEAM_A, installer=ANA.id)
    slack.add_workspace(TEAM_B, installer=DAN.id, team_name="Team B")
    settings = Settings.from_env(
        {
            "SLACK_CLIENT_ID": slack.client_id,
            "SLACK_CLIENT_SECRET": slack.client_secret,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.url,
            "SLOTBOT_SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": database_url,
            "SLOTBOT_DATA_DIR": str(tmp_path),
        },
        dotenv=None,
    )
    slotbot = await open_slotbot(settings, clock=Clock())
    server = TestServer(slotbot.web_app(), host="127.0.0.1")
    await server.start_server()
    # The redirect URL configured in the Slack app's settings (no SLOTBOT_PUBLIC_URL here).
    slack.oauth_redirect_url = str(server.make_url("/slack/oauth_redirect"))
    session = aiohttp.ClientSession()
    channel = slack.add_channel("general").id
    yield Installed(slack, slotbot, server, session, database_url, channel)
    await session.close()
    await server.close()
    await slack.close()


async def raw_rows(database_url: str, table: str) -> list[dict[str, Any]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(sa.text(f"SELECT * FROM {table}"))
            return [dict(row) for row in result.mappings()]
    finally:
        await engine.dispose()


async def test_two_workspaces_install_in_a_browser_and_each_books_with_its_own_token(
    installed: Installed,
) -> None:
    """Install A and B through /slack/install; each books, every call with its own bot token."""
    a, b = installed.slack.workspace(TEAM_A), installed.slack.workspace(TEAM_B)
    for team in (TEAM_A, TEAM_B):
        done = await installed.browse_install(team)
        assert done.status == 200 and done.url.path == "/slack/oauth_redirect"
    grants = installed.slack.calls("oauth.v2.access")
    assert [c.ok for c in grants] == [True, True]
    # The consent page was asked for the manifest's scopes, and granted them.
    assert [c.response["scope"] for c in grants if isinstance(c.response, dict)] == [
        ",".join(DEFAULT_SLACK_SCOPES)
    ] * 2

    installs_done = len(installed.slack.calls())
    offer = await installed.ask(TEAM_A, ANA, f"design review with <@{BEN.id}> 45m tomorrow")
    assert await installed.click(TEAM_A, ANA, offer, book_buttons(offer)[0]) == 200
    await installed.slack.wait_for(UPLOAD_DONE, within=10)
    await installed.settle()
    methods = ("auth.test", "users.info", UPLOAD_DONE)
    assert installed.tokens_of(*methods, since=installs_done) == {a.token}
    booked_in_a = len(installed.slack.calls())

    offer = await installed.ask(TEAM_B, DAN, f"b-side sync with <@{FAY.id}> 30m tomorrow")
    assert await installed.click(TEAM_B, DAN, offer, book_buttons(offer)[0]) == 200
    await installed.slack.wait_for(UPLOAD_DONE, count=2, within=10)
    await installed.settle()
    assert installed.tokens_of(*methods, since=booked_in_a) == {b.token}

    store = installed.slotbot.store
    now = Clock().now
    assert [x.title for x in await store.bookings_for_user(TEAM_A, ANA.id, now)] == [
        "design review"
    ]
    assert [x.title for x in await store.bookings_for_user(TEAM_B, DAN.id, now)] == ["b-side sync"]
    assert await store.bookings_for_user(TEAM_B, ANA.id, now) == []
    # Every Web API call went to SLACK_API_URL: the emulator saw all of them, none failed auth.
    assert not [c for c in installed.slack.calls() if not c.ok and c.method != "response_url"]


async def test_a_click_in_workspace_b_on_workspace_a_s_offer_is_refused_and_changes_nothing(
    installed: Installed,
) -> None:
    """B's user clicking a Book button carrying A's offer id books nothing; A can still book."""
    for team in (TEAM_A, TEAM_B):
        await installed.browse_install(team)
    offer = await installed.ask(TEAM_A, ANA, f"budget with <@{BEN.id}> 45m tomorrow afternoon")
    button = book_buttons(offer)[0]

    # Same offer id, same requester id even (a user id can be in both workspaces), team B.
    assert await installed.click(TEAM_B, ANA, offer, button) == 200
    await installed.settle()
    assert installed.slack.uploaded_files() == []
    store, now = installed.slotbot.store, Clock().now
    for team in (TEAM_A, TEAM_B):
        assert await store.bookings_for_user(team, ANA.id, now) == []

    assert await installed.click(TEAM_A, ANA, offer, button) == 200
    await installed.slack.wait_for(UPLOAD_DONE, within=10)
    [booking] = await store.bookings_for_user(TEAM_A, ANA.id, now)
    assert booking.title == "budget"


async def test_home_in_workspace_b_never_shows_workspace_a_s_bookings(
    installed: Installed,
) -> None:
    """The same person's Home tab shows A's meeting in A and nothing of it in B."""
    for team in (TEAM_A, TEAM_B):
        await installed.browse_install(team)
    offer = await installed.ask(TEAM_A, ANA, f"quarterly plan with <@{BEN.id}> 45m tomorrow")
    await installed.click(TEAM_A, ANA, offer, book_buttons(offer)[0])
    await installed.slack.wait_for(UPLOAD_DONE, within=10)
    await installed.settle()

    assert "quarterly plan" in await installed.open_home(TEAM_A, BEN)
    home_b = await installed.open_home(TEAM_B, BEN)
    assert "quarterly plan" not in home_b and "Nothing booked" in home_b
    [*_, publish_b] = installed.slack.calls("views.publish")
    assert publish_b.token == installed.slack.workspace(TEAM_B).token


async def test_the_installation_tables_hold_no_token_in_clear(installed: Installed) -> None:
    """The raw rows hold sealed tokens only; unsealed with SLOTBOT_SECRET_KEY they are the bot's."""
    for team in (TEAM_A, TEAM_B):
        await installed.browse_install(team)
    tokens = {team: installed.slack.workspace(team).token for team in (TEAM_A, TEAM_B)}
    box = SecretBox(SECRET_KEY)
    for table in ("slack_installations", "slack_bots"):
        rows = await raw_rows(installed.database_url, table)
        assert sorted(r["team_id"] for r in rows) == sorted(tokens)
        for row in rows:
            text = json.dumps(row, default=str)
            assert not any(token in text for token in tokens.values())
            assert "xoxb-" not in text
            assert box.unseal(row["bot_token"]) == tokens[row["team_id"]]


async def test_a_redirect_without_the_browser_s_state_cookie_installs_nothing(
    installed: Installed,
) -> None:
    """The consent redirect opened in another browser (no state cookie) is refused, as is a
    replayed state; no installation is stored and no code is exchanged."""
    root = str(installed.url("/"))
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[root])
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        async with browser.get(installed.url("/slack/install"), allow_redirects=False) as first:
            consent = URL(first.headers["Location"]).update_query(team=TEAM_B)
        async with browser.get(consent, allow_redirects=False) as back:
            redirect = URL(back.headers["Location"])
    async with aiohttp.ClientSession() as stranger, stranger.get(redirect) as refused:
        assert refused.status == 400
    assert installed.slack.calls("oauth.v2.access") == []
    assert await raw_rows(installed.database_url, "slack_installations") == []

    # The rightful browser still completes once; the same state replayed is refused.
    cookie = jar.filter_cookies(installed.url("/"))
    headers = {"Cookie": "; ".join(f"{k}={v.value}" for k, v in cookie.items())}
    async with aiohttp.ClientSession() as owner:
        async with owner.get(redirect, headers=headers) as done:
            assert done.status == 200
        async with owner.get(redirect, headers=headers) as replay:
            assert replay.status == 401
    assert len(await raw_rows(installed.database_url, "slack_installations")) == 1


async def test_a_workspace_that_never_installed_is_not_served(installed: Installed) -> None:
    """A command from a workspace without an installation: a reinstall notice, no API call."""
    await installed.browse_install(TEAM_A)
    before = len(installed.slack.calls())
    fields = slack_requests.slash_command(
        "sync tomorrow",
        user_id=DAN.id,
        channel_id=installed.channel,
        response_url=installed.slack.mint_response_url(channel=installed.channel, user=DAN.id),
        workspace=slack_requests.Workspace(team_id="T0UNKNOWN"),
    )
    status = await installed.post(slack_requests.signed_slash_command(fields, secret=SECRET))
    await installed.settle()
    assert status == 200
    [notice] = installed.slack.ephemeral_messages(user=DAN.id)
    assert "isn't installed in this workspace" in notice.text and not notice.blocks
    # Only the command's answer reached Slack (through response_url): no token was used.
    assert [c.method for c in installed.slack.calls()[before:]] == ["response_url"]


def test_workspace_helper_matches_the_emulator() -> None:
    """The emulator's default workspace and slack_requests' default agree on ids."""
    emulator = SlackEmulator()
    default = slack_requests.DEFAULT_WORKSPACE
    found: Workspace = emulator.workspace(default.team_id)
    assert (found.bot_user_id, found.token) == (default.bot_user_id, emulator.token)


async def test_instances_starting_at_once_create_the_tables_once(database_url: str) -> None:
    """Four instances creating the installation tables at the same moment all succeed."""
    stores = [await Store.open(database_url) for _ in range(4)]
    try:
        opened = await asyncio.gather(
            *(open_slack_installs(s.engine, client_id="1.2", secret_key=SECRET_KEY) for s in stores)
        )
        await opened[0].states.async_issue()
        assert len(await raw_rows(database_url, "slack_oauth_states")) == 1
    finally:
        for store in stores:
            await store.close()


async def test_an_oauth_state_is_accepted_once_and_never_after_expiry(database_url: str) -> None:
    """Consuming a state twice succeeds once; an unknown state never."""
    store = await Store.open(database_url)
    try:
        installs = await open_slack_installs(store.engine, client_id="1.2", secret_key=SECRET_KEY)
        state = await installs.states.async_issue()
        results = await asyncio.gather(*(installs.states.async_consume(state) for _ in range(3)))
        assert sorted(results) == [False, False, True]
        assert await installs.states.async_consume("forged") is False
    finally:
        await store.close()


async def test_the_emulator_refuses_wrong_client_credentials_and_reused_codes() -> None:
    """oauth.v2.access checks the client secret and honours each code once, as Slack does."""
    async with SlackEmulator(users=(ANA,)) as slack:
        slack.add_workspace(TEAM_A, installer=ANA.id)
        slack.oauth_redirect_url = "http://127.0.0.1:9/back"
        consent = URL(slack.authorize_url).with_query(client_id=slack.client_id, state="s")
        async with (
            aiohttp.ClientSession() as browser,
            browser.get(consent, allow_redirects=False) as answer,
        ):
            code = URL(answer.headers["Location"]).query["code"]
        client = AsyncWebClient(base_url=slack.url)
        with pytest.raises(SlackApiError, match="bad_client_secret"):
            await client.oauth_v2_access(client_id=slack.client_id, client_secret="x", code=code)
        granted = await client.oauth_v2_access(
            client_id=slack.client_id, client_secret=slack.client_secret, code=code
        )
        assert granted["team"]["id"] == TEAM_A and granted["token_type"] == "bot"
        with pytest.raises(SlackApiError, match="invalid_code"):
            await client.oauth_v2_access(
                client_id=slack.client_id, client_secret=slack.client_secret, code=code
            )
        assert (await client.auth_test(token=granted["access_token"]))["team_id"] == TEAM_A


async def test_the_reconcile_finishes_a_booking_with_its_own_workspace_s_token(
    installed: Installed,
) -> None:
    """A booking in B whose delivery failed is finished by the reconcile, speaking as B."""
    b = installed.slack.workspace(TEAM_B)
    assert (await installed.browse_install(TEAM_B)).status == 200
    offer = await installed.ask(TEAM_B, DAN, f"b-side sync with <@{FAY.id}> 30m tomorrow")
    installed.slack.fail_next("files.getUploadURLExternal", 1, error="fatal_error")
    assert await installed.click(TEAM_B, DAN, offer, book_buttons(offer)[0]) == 200
    await installed.settle()
    assert not [f for f in installed.slack.uploaded_files() if f.completed]

    # The failed click gave its lease back; a booking left alone this long is picked up.
    installed.slotbot.scheduler.delivery_lease = timedelta(0)
    since = len(installed.slack.calls())
    clients = installed_clients(installed.slotbot.installs, installed.slotbot.bolt.client)
    assert await reconcile_once(clients, installed.slotbot.scheduler) == 1
    assert len([f for f in installed.slack.uploaded_files() if f.completed]) == 1
    assert installed.tokens_of(UPLOAD_DONE, since=since) == {b.token}
