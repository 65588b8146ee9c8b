"""The HTTP edge: ``POST /slack/events`` (signed Slack requests), ``GET /healthz``, when
installed in several workspaces ``GET /slack/install`` and ``/slack/oauth_redirect`` (Bolt's
OAuth flow), and when people connect their own Google accounts the ``/google/oauth/*`` pages.

Signatures are checked here, before Bolt sees anything: forged, stale, future, missing and
malformed timestamps are all 401 (Bolt alone answers 500 to a non-numeric one), unreadable
payloads are 400, and neither is logged with its body.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable
from hashlib import sha256
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from handlers.errors import work_queue

if TYPE_CHECKING:  # only where Google is set up (see bot/app.py)
    from handlers.oauth_google import GoogleOAuthRoutes

__all__ = ["MAX_BODY_BYTES", "SlackSignature", "build_web_app"]

logger = logging.getLogger("slotbot.http")

#: Slack's payloads are far smaller; anything larger is refused before it is read.
MAX_BODY_BYTES = 1024 * 1024
#: Slack's own tolerance for the request timestamp.
MAX_CLOCK_SKEW_SECONDS = 5 * 60

READY = web.AppKey("ready", dict)


class SlackSignature:
    """Verifies ``X-Slack-Signature`` (v0, HMAC-SHA256 of ``v0:{timestamp}:{body}``)."""

    def __init__(self, signing_secret: str, clock: Callable[[], float] = time.time) -> None:
        self._secret = signing_secret.encode()
        self._clock = clock

    def is_valid(self, body: bytes, timestamp: str | None, signature: str | None) -> bool:
        if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit():
            return False
        if len(timestamp) > 12 or abs(self._clock() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            return False
        basestring = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self._secret, basestring, sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def _readable(body: str, content_type: str) -> bool:
    """Whether Bolt can read the body: JSON, or a form whose ``payload`` (if any) is JSON."""
    try:
        if content_type.startswith("application/json") or body.lstrip().startswith("{"):
            return isinstance(json.loads(body), dict)
        form = parse_qs(body, keep_blank_values=True)
        if "payload" in form:
            return isinstance(json.loads(form["payload"][0]), dict)
        return True
    except (ValueError, UnicodeDecodeError):
        return False


def build_web_app(
    bolt: AsyncApp,
    signature: SlackSignature | None,
    *,
    path: str | None = "/slack/events",
    google_oauth: GoogleOAuthRoutes | None = None,
) -> web.Application:
    """The aiohttp application serving Bolt; ``signature`` None only for trusted callers.

    ``path`` None serves no Slack requests at all (Socket Mode, where Slack's requests come
    over the socket and only ``/healthz`` and the browser routes are needed).

    With ``google_oauth`` it also serves ``/google/oauth/start`` and ``/google/oauth/callback``
    (people connecting their own Google Calendar); when ``bolt`` has an OAuth flow, its install
    and redirect paths.
    """
    web_app = web.Application(client_max_size=MAX_BODY_BYTES)
    web_app[READY] = {"ready": False}

    async def slack_events(request: web.Request) -> web.Response:
        raw = await request.read()
        if signature is not None and not signature.is_valid(
            raw,
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
        ):
            logger.info("rejected a request with a missing or invalid Slack signature")
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        if not text or not _readable(text, request.content_type):
            return web.json_response({"error": "malformed payload"}, status=400)
        bolt_request = AsyncBoltRequest(
            body=text,
            query=request.query_string,
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        with work_queue().answering():
            response = await bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    async def healthz(request: web.Request) -> web.Response:
        if not request.app[READY]["ready"]:
            return web.json_response({"ok": False}, status=503)
        return web.json_response({"ok": True})

    async def mark_ready(app: web.Application) -> None:
        app[READY]["ready"] = True

    async def slack_install(request: web.Request) -> web.Response:
        # Bolt's OAuth flow is not part of async_dispatch; its own adapters call it like this.
        # These are browser visits, not Slack's requests: nothing here is signed.
        flow = bolt.oauth_flow
        assert flow is not None
        bolt_request = AsyncBoltRequest(
            body="",
            query=request.query_string,
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        if request.path == flow.install_path:
            response = await flow.handle_installation(bolt_request)
        else:
            response = await flow.handle_callback(bolt_request)
        return await to_aiohttp_response(response)

    if path is not None:
        web_app.router.add_post(path, slack_events)
    web_app.router.add_get("/healthz", healthz)
    if bolt.oauth_flow is not None:
        web_app.router.add_get(bolt.oauth_flow.install_path, slack_install)
        web_app.router.add_get(bolt.oauth_flow.redirect_uri_path, slack_install)
    if google_oauth is not None:
        google_oauth.register(web_app.router)
    web_app.on_startup.append(mark_ready)
    return web_app
