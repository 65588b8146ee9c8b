"""The browser half of ``/schedule connect``: ``GET /google/oauth/start`` sends the person to
Google's consent page, ``GET /google/oauth/callback`` finishes, answers with a small page, and
tells them in Slack, offering again what they asked while their calendar was not connected.

A cookie set at the start must come back to the callback, so a callback only completes in
the browser that began it. Pages are ``no-store`` and send no referrer (the URL holds a code).
"""

from __future__ import annotations

import html
import logging

from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.calendars.google_accounts import CALLBACK_PATH, START_PATH, GoogleAccounts
from bot.errors import PermissionDeniedError, SlotbotError
from bot.scheduling.booking import Scheduler
from handlers import blocks

__all__ = ["COOKIE", "GoogleOAuthRoutes"]

logger = logging.getLogger("slotbot.oauth")

COOKIE = "slotbot_google_oauth"
_WRONG_BROWSER = (
    "Please open the link from Slack in this browser and go through Google's page from there; "
    "if it keeps failing, run `/schedule connect` again."
)


class GoogleOAuthRoutes:
    """The two aiohttp handlers, over the accounts, the scheduler and the Slack client."""

    def __init__(
        self, accounts: GoogleAccounts, scheduler: Scheduler, client: AsyncWebClient
    ) -> None:
        self._accounts = accounts
        self._scheduler = scheduler
        self._client = client

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get(START_PATH, self.start)
        router.add_get(CALLBACK_PATH, self.callback)

    async def start(self, request: web.Request) -> web.StreamResponse:
        """Check the state, remember it in a cookie, and redirect to Google's consent page."""
        try:
            url, signed = await self._accounts.consent_url(request.query.get("state", ""))
        except SlotbotError as error:
            return _page(400, "This link cannot be used", error.user_message)
        response = web.Response(status=302, headers={"Location": url, **_NO_STORE})
        response.set_cookie(
            COOKIE,
            signed.nonce,
            max_age=int(self._accounts.state_ttl.total_seconds()),
            path=CALLBACK_PATH,
            httponly=True,
            secure=self._accounts.public_url.startswith("https://"),
            samesite="Lax",  # sent on Google's top-level redirect back, not on other sites' posts
        )
        return response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        """Exchange the code, store the token, tell the person; a page says how it went."""
        query = request.query
        if query.get("error"):
            return _page(
                400,
                "Not connected",
                "Google did not give Slotbot access (you may have pressed Cancel). Run "
                "`/schedule connect` in Slack to try again.",
            )
        state, code = query.get("state", ""), query.get("code", "")
        try:
            if not code:
                raise PermissionDeniedError(_WRONG_BROWSER, hint="no code")
            signed = await self._accounts.check_state(state)
            if request.cookies.get(COOKIE) != signed.nonce:
                raise PermissionDeniedError(_WRONG_BROWSER, hint="cookie mismatch")
            person = await self._accounts.complete(state, code)
        except SlotbotError as error:
            return _page(400, "Not connected", error.user_message)
        await self._tell(person.team_id, person.user_id)
        response = _page(
            200,
            "Google Calendar connected",
            "Slotbot can now see when you are busy. You can close this tab and go back to Slack.",
        )
        response.del_cookie(COOKIE, path=CALLBACK_PATH)
        return response

    async def _tell(self, team_id: str, user_id: str) -> None:
        """DM the person, then re-run the request they made while unconnected, if any."""
        try:
            opened = await self._client.conversations_open(users=user_id)
            channel = str((opened.get("channel") or {})["id"])
            await self._client.chat_postMessage(channel=channel, text=blocks.connected_text())
            try:
                proposal = await self._scheduler.rerun_pending(team_id, user_id)
            except SlotbotError as error:
                await self._client.chat_postMessage(channel=channel, text=error.user_message)
                return
            if proposal is not None:
                await self._client.chat_postMessage(
                    channel=channel,
                    text=blocks.offer_text(proposal),
                    blocks=blocks.offer_blocks(proposal),
                )
        except (SlackApiError, KeyError) as error:
            # The connection itself succeeded; the page says so even if Slack is unreachable.
            logger.warning("could not tell %s about their connection: %s", user_id, error)


_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _page(status: int, title: str, message: str) -> web.Response:
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)} · Slotbot</title>"
        '<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;'
        'padding:0 1rem">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return web.Response(
        status=status,
        text=body,
        content_type="text/html",
        headers={**_NO_STORE, "Content-Security-Policy": _CSP},
    )
