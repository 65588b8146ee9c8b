"""Each person connects their own Google account, through Slack and a browser: ``/schedule
connect`` → our start page → the emulator's consent page → our callback, with a real aiohttp
client following the redirects; then offers read their calendar and bookings land on it."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from bot.secrets import SecretBox
from bot.store import google_accounts
from playground.slack_api import SlackUser
from tests.scenarios.google_harness import (
    SECRET_KEY,
    UPLOAD_DONE,
    GoogleBot,
    start_google,
    stop_google,
)
from tests.scenarios.harness import ANA, BEN, Offer, offer_from_ephemeral

BERLIN = ZoneInfo("Europe/Berlin")
FIFTEEN = datetime(2026, 12, 1, 15, 0, tzinfo=BERLIN)
SIXTEEN = datetime(2026, 12, 1, 16, 0, tzinfo=BERLIN)
REQUEST = f"design review with <@{BEN.id}> 45m tomorrow afternoon"


@pytest.fixture
async def oauth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GoogleBot]:
    # oauthlib refuses plain http for Google's endpoints; the emulator is http on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    harness = await start_google(tmp_path, "oauth")
    yield harness
    await stop_google(harness)


async def connect_link(harness: GoogleBot, user: SlackUser = ANA) -> str:
    """Send ``/schedule connect`` as ``user``; the link in the private answer."""
    status, _ = await harness.bot.command("connect", user=user)
    assert status == 200
    await harness.bot.settle()
    found = re.search(
        r"<(https?://[^|>]+)\|Connect", str(harness.bot.latest_ephemeral(user).blocks)
    )
    assert found, "the answer carries a connect link"
    return html.unescape(found.group(1))


async def open_in_browser(link: str, browser: aiohttp.ClientSession) -> tuple[int, str, list[str]]:
    """Follow the link and every redirect; the final status, page text and the URLs passed."""
    async with browser.get(link) as page:
        return page.status, await page.text(), [str(r.url) for r in page.history]


def browser() -> aiohttp.ClientSession:
    # The default jar ignores cookies from IP-address hosts; every host here is 127.0.0.1.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def connect(harness: GoogleBot, user: SlackUser = ANA) -> tuple[int, str]:
    assert user.email
    harness.google.consenting_user = user.email
    link = await connect_link(harness, user)
    async with browser() as session:
        status, text, _ = await open_in_browser(link, session)
    await harness.bot.settle()
    return status, text


def starts_at(blocks: object, moment: datetime) -> bool:
    return f"<!date^{int(moment.timestamp())}^" in str(blocks)


async def stored_token_column(harness: GoogleBot, user: SlackUser) -> str | None:
    engine = harness.bot.slotbot.store.engine
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                sa.select(google_accounts.c.refresh_token).where(
                    google_accounts.c.user_id == user.id
                )
            )
        ).scalar()
    return str(value) if value is not None else None


async def test_connecting_stores_the_token_encrypted_and_reruns_the_pending_request(
    oauth: GoogleBot,
) -> None:
    """Unconnected, the offer names Ana and Ben and ignores Ana's meetings; connecting goes
    through consent with PKCE, keeps only an encrypted token, and DMs a fresh offer that does
    see her calendar; booking from it puts the event on her calendar, Ben invited."""
    oauth.google.add_busy("ana@example.com", FIFTEEN, SIXTEEN, "Ana's 1:1")
    status, _ = await oauth.bot.command(REQUEST)
    assert status == 200
    await oauth.bot.settle()
    first = offer_from_ephemeral(oauth.bot)
    assert "could not read the calendar of" in first.text()
    assert "has not connected Google Calendar (/schedule connect)" in first.text()
    assert starts_at(first.blocks, FIFTEEN), "without her token Ana's 1:1 is invisible"

    oauth.google.consenting_user = "ana@example.com"
    link = await connect_link(oauth)
    assert link.startswith(f"{oauth.public_url}/google/oauth/start?state=")
    async with browser() as session:
        status, page, passed = await open_in_browser(link, session)
    await oauth.bot.settle()
    assert status == 200 and "Google Calendar connected" in page
    assert passed[0] == link and urlsplit(passed[1]).path == "/o/oauth2/auth"
    [consent] = oauth.google.calls_to("authorize")
    assert consent.query["access_type"] == "offline" and consent.query["prompt"] == "consent"
    assert consent.query["code_challenge_method"] == "S256"
    assert consent.query["redirect_uri"] == f"{oauth.public_url}/google/oauth/callback"
    assert parse_qs(urlsplit(link).query)["state"] == [consent.query["state"]]
    [exchange] = [g for g in oauth.google.grants if g.grant_type == "authorization_code"]
    assert exchange.principal == "ana@example.com"

    issued = set(oauth.google._refresh_tokens)
    column = await stored_token_column(oauth, ANA)
    assert column is not None
    assert not any(token in column for token in issued), "no refresh token in clear"
    assert SecretBox(SECRET_KEY).unseal(column) in issued

    dm = oauth.bot.slack.im_channel(ANA.id)
    assert dm is not None
    messages = oauth.bot.slack.messages_in(dm)
    assert "Google Calendar is connected" in messages[0].text
    [rerun] = [m for m in messages if "book_slot" in str(m.blocks)]
    assert not starts_at(rerun.blocks, FIFTEEN) and starts_at(rerun.blocks, SIXTEEN)
    assert "Ben" in str(rerun.blocks) and "Ana" not in _unreadable_line(rerun.blocks)

    offer = Offer(rerun.blocks, dm, rerun, None)
    assert await oauth.bot.click(offer, offer.buttons("book_slot")[0]) == 200
    await oauth.bot.settle()
    await oauth.bot.wait_for(UPLOAD_DONE)
    await oauth.bot.settle()
    [booked] = [e for e in oauth.events("ana@example.com") if e["summary"] == "design review"]
    assert booked["start"] == {
        "dateTime": "2026-12-01T16:00:00+01:00",
        "timeZone": "Europe/Berlin",
    }
    assert [a["email"] for a in booked["attendees"]] == ["ana@example.com", "ben@example.com"]
    assert oauth.google.calls_to("calendar.events.insert")[0].principal == "ana@example.com"
    ics = oauth.ics().walk("VEVENT")[0]
    assert str(ics["UID"]) == booked["iCalUID"]
    assert ics.decoded("DTSTART") == SIXTEEN
    [confirmation] = [m for m in oauth.bot.slack.messages_in(dm) if m.ts == rerun.ts]
    assert "is booked" in str(confirmation.blocks), "the DM offer became the confirmation"


def _unreadable_line(blocks: object) -> str:
    text = str(blocks)
    start = text.find("could not read the calendar of")
    return text[start : text.find(";", start)] if start >= 0 else ""


async def test_disconnect_revokes_the_token_at_google_and_forgets_it(oauth: GoogleBot) -> None:
    """`/schedule disconnect` calls Google's revoke endpoint with the token and deletes it;
    the next offer names the person as unconnected again."""
    status, _ = await connect(oauth)
    assert status == 200
    column = await stored_token_column(oauth, ANA)
    assert column is not None
    token = SecretBox(SECRET_KEY).unseal(column)

    await oauth.bot.command("disconnect")
    await oauth.bot.settle()
    assert "Google has withdrawn Slotbot's access" in oauth.bot.latest_ephemeral(ANA).text
    [revoke] = oauth.google.calls_to("revoke")
    assert revoke.body == {"token": token} and revoke.status == 200
    assert token not in oauth.google._refresh_tokens
    assert await stored_token_column(oauth, ANA) is None

    await oauth.bot.command(REQUEST)
    await oauth.bot.settle()
    assert "Ana Alves has not connected Google Calendar" in offer_from_ephemeral(oauth.bot).text()
    await oauth.bot.command("disconnect")
    await oauth.bot.settle()
    assert "nothing to disconnect" in oauth.bot.latest_ephemeral(ANA).text


async def test_links_are_signed_single_use_short_lived_and_bound_to_the_browser(
    oauth: GoogleBot,
) -> None:
    """A forged state, a second use, a callback in another browser and an expired link all
    end on a page that says what to do, and connect nobody."""
    start = f"{oauth.public_url}/google/oauth/start"
    async with browser() as session:
        status, page, _ = await open_in_browser(f"{start}?state=forged.signature", session)
    assert status == 400 and "/schedule connect" in page

    oauth.google.consenting_user = "ana@example.com"
    link = await connect_link(oauth)
    state = parse_qs(urlsplit(link).query)["state"][0]
    callback = f"{oauth.public_url}/google/oauth/callback?state={state}&code=4/stolen"
    async with browser() as other:
        status, page, _ = await open_in_browser(callback, other)
    assert status == 400 and "this browser" in page
    assert await stored_token_column(oauth, ANA) is None

    async with browser() as session:
        status, _, _ = await open_in_browser(link, session)
        assert status == 200
        status, page, _ = await open_in_browser(link, session)
    assert status == 400 and "already used" in page
    assert len(oauth.google.calls_to("authorize")) == 1

    late = await connect_link(oauth, BEN)
    oauth.bot.clock.now += timedelta(minutes=11)
    async with browser() as session:
        status, page, _ = await open_in_browser(late, session)
    assert status == 400 and "expired" in page
    assert await stored_token_column(oauth, BEN) is None


async def test_socket_mode_side_app_serves_the_browser_routes_but_no_slack_requests(
    oauth: GoogleBot,
) -> None:
    """In Socket Mode the connect links still work (and /healthz), while nothing accepts
    Slack requests over HTTP: those arrive only through the socket."""
    side = TestServer(oauth.bot.slotbot.web_app(slack_events=False), host="127.0.0.1")
    await side.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(side.make_url("/slack/events"), data=b"{}") as response:
                assert response.status in (404, 405)
            async with session.get(side.make_url("/healthz")) as response:
                assert response.status == 200
            async with session.get(side.make_url("/google/oauth/start?state=forged")) as page:
                assert page.status == 400 and "link" in (await page.text()).lower()
    finally:
        await side.close()  # its cleanup closes the Slotbot too; closing again is harmless
