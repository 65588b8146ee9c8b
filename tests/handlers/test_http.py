"""The HTTP edge: Slack signatures, and the aiohttp app in front of a real Bolt app, over
loopback HTTP. Refused requests never reach a listener and never leave their body in the logs."""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from handlers.http import MAX_BODY_BYTES, MAX_CLOCK_SKEW_SECONDS, SlackSignature, build_web_app
from playground import slack_requests as sr
from playground.slack_api import SlackEmulator

SECRET = "http-test-signing-secret"
NOW = 1_795_000_000  # a fixed "now" for the signature unit tests
BODY = b"token=x&team_id=T000TEAM1&command=%2Fschedule&text=hello"
# A marker in request bodies: it must never appear in a log record.
MARKER = "zz-body-marker-7f3a"


def checker() -> SlackSignature:
    return SlackSignature(SECRET, clock=lambda: float(NOW))


def signature_of(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    return sr.sign(body, secret, timestamp)["X-Slack-Signature"]


# --- SlackSignature ---------------------------------------------------------------------------


def test_a_correct_signature_is_valid() -> None:
    """HMAC-SHA256 of v0:timestamp:body under the secret, timestamp now: valid."""
    assert checker().is_valid(BODY, str(NOW), signature_of(BODY, NOW))


@pytest.mark.parametrize("skew", [-MAX_CLOCK_SKEW_SECONDS, MAX_CLOCK_SKEW_SECONDS, -1, 1])
def test_timestamps_within_five_minutes_are_accepted(skew: int) -> None:
    """A timestamp up to five minutes either side of now is accepted."""
    stamp = NOW + skew
    assert checker().is_valid(BODY, str(stamp), signature_of(BODY, stamp))


@pytest.mark.parametrize("skew", [-MAX_CLOCK_SKEW_SECONDS - 1, MAX_CLOCK_SKEW_SECONDS + 1, -86400])
def test_stale_and_future_timestamps_are_refused_even_when_signed(skew: int) -> None:
    """More than five minutes old or ahead is refused, though the signature matches."""
    stamp = NOW + skew
    assert not checker().is_valid(BODY, str(stamp), signature_of(BODY, stamp))


def test_forged_and_tampered_requests_are_refused() -> None:
    """Another secret, another body, a truncated or unprefixed signature: all invalid."""
    good = signature_of(BODY, NOW)
    check = checker()
    assert not check.is_valid(BODY, str(NOW), signature_of(BODY, NOW, secret="guess"))
    assert not check.is_valid(BODY + b"&x=1", str(NOW), good)
    assert not check.is_valid(BODY, str(NOW + 1), good)
    assert not check.is_valid(BODY, str(NOW), good[:-1])
    assert not check.is_valid(BODY, str(NOW), good.removeprefix("v0="))
    assert not check.is_valid(BODY, str(NOW), good.upper())


@pytest.mark.parametrize(
    "timestamp",
    ["", "abc", "17.5", "-1", "+1795000000", " 1795000000", "1795000000 ", "0x6afc3f00", "1e9"],
)
def test_non_numeric_timestamps_are_refused(timestamp: str) -> None:
    """Anything but plain ASCII digits is refused before any arithmetic."""
    assert not checker().is_valid(BODY, timestamp, signature_of(BODY, NOW))


@pytest.mark.parametrize("timestamp", ["9" * 13, "9" * 400, "0" * 13 + str(NOW)])
def test_huge_timestamps_are_refused(timestamp: str) -> None:
    """Absurdly long digit strings are refused without converting them."""
    base = b"v0:" + timestamp.encode() + b":" + BODY
    signed = "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    assert not checker().is_valid(BODY, timestamp, signed)


def test_missing_headers_are_refused() -> None:
    """No timestamp or no signature: invalid."""
    good = signature_of(BODY, NOW)
    assert not checker().is_valid(BODY, None, good)
    assert not checker().is_valid(BODY, str(NOW), None)
    assert not checker().is_valid(BODY, str(NOW), "")


def test_non_ascii_input_is_refused_without_an_error() -> None:
    """Non-ASCII digits and signatures are refused cleanly; non-ASCII bodies verify normally."""
    arabic_digits = "".join(chr(0x0660 + int(d)) for d in str(NOW))
    assert arabic_digits.isdigit()
    assert not checker().is_valid(BODY, arabic_digits, signature_of(BODY, NOW))
    assert not checker().is_valid(BODY, str(NOW), "v0=" + "é" * 64)
    assert not checker().is_valid(BODY, "²", signature_of(BODY, NOW))
    body = "text=réunion 会議 🗓".encode()
    assert checker().is_valid(body, str(NOW), signature_of(body, NOW))


# --- the web app over real HTTP ---------------------------------------------------------------


@dataclass
class Served:
    server: TestServer
    session: aiohttp.ClientSession
    heard: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/slack/events"))

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        # aiohttp warns about large raw bytes bodies; a stream says the same thing quietly.
        data = io.BytesIO(body) if len(body) > 64 * 1024 else body
        async with self.session.post(self.url, data=data, headers=headers) as response:
            return response.status, await response.text()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with SlackEmulator() as slack:
        bolt = AsyncApp(
            client=AsyncWebClient(token=slack.token, base_url=slack.url),
            signing_secret=SECRET,
            request_verification_enabled=False,  # the web app checks; this proves it does
            process_before_response=True,
        )
        heard: list[str] = []

        @bolt.command("/schedule")
        async def schedule(ack: AsyncAck, command: dict[str, Any]) -> None:
            heard.append(command["text"])
            await ack(text="heard you")

        server = TestServer(build_web_app(bolt, SlackSignature(SECRET)), host="127.0.0.1")
        await server.start_server()
        async with aiohttp.ClientSession() as session:
            yield Served(server, session, heard)
        await server.close()


def command_request(text: str = f"sync {MARKER}", **kw: Any) -> sr.SignedRequest:
    fields = sr.slash_command(
        text, user_id="U0ANA0001", channel_id="C0GENERAL", response_url="http://127.0.0.1:9/r"
    )
    return sr.signed_slash_command(fields, secret=kw.pop("secret", SECRET), **kw)


async def test_a_signed_command_reaches_the_listener(served: Served) -> None:
    """A correctly signed /schedule is dispatched to Bolt and its ack comes back."""
    request = command_request("design review")
    status, text = await served.post(request.body, request.headers)
    assert (status, text) == (200, "heard you")
    assert served.heard == ["design review"]


def unsigned(request: sr.SignedRequest) -> dict[str, str]:
    return {"Content-Type": request.headers["Content-Type"]}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda r: command_request(secret="forged").headers, id="forged"),
        pytest.param(
            lambda r: command_request(timestamp=int(time.time()) - 600).headers, id="stale"
        ),
        pytest.param(
            lambda r: command_request(timestamp=int(time.time()) + 600).headers, id="future"
        ),
        pytest.param(lambda r: {**r.headers, "X-Slack-Request-Timestamp": "soon"}, id="nan"),
        pytest.param(unsigned, id="unsigned"),
        pytest.param(lambda r: {**r.headers, "X-Slack-Signature": ""}, id="empty signature"),
    ],
)
async def test_bad_signatures_are_401_and_never_reach_the_listener(
    served: Served, headers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Forged, stale, future, malformed or missing signatures: 401, listener not called."""
    caplog.set_level(logging.DEBUG)
    request = command_request()
    status, text = await served.post(request.body, headers(request))
    assert status == 401
    assert MARKER not in text
    assert served.heard == []
    assert any("rejected" in r.getMessage() for r in caplog.records)
    assert_body_not_logged(caplog)


def assert_body_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert MARKER not in record.getMessage()
        assert MARKER not in (record.exc_text or "")


def signed(body: bytes, content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, **sr.sign(body, SECRET, int(time.time()))}


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(f"payload=%7Bnot-json-{MARKER}".encode(), FORM, id="form payload not json"),
        pytest.param(f"payload=%5B%22{MARKER}%22%5D".encode(), FORM, id="form payload a list"),
        pytest.param(f'{{"type": "{MARKER}'.encode(), "application/json", id="truncated json"),
        pytest.param(f'["{MARKER}"]'.encode(), "application/json", id="json array"),
        pytest.param(b"\xff\xfe" + MARKER.encode(), FORM, id="not utf-8"),
        pytest.param(b"", FORM, id="empty"),
    ],
)
async def test_signed_but_malformed_payloads_are_400(
    served: Served, body: bytes, content_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A correctly signed body Bolt cannot read is 400, not a 500, and is not logged."""
    caplog.set_level(logging.DEBUG)
    status, text = await served.post(body, signed(body, content_type))
    assert status == 400
    assert "malformed" in text and MARKER not in text
    assert served.heard == []
    assert_body_not_logged(caplog)


async def test_an_oversize_body_is_413(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    """A body over MAX_BODY_BYTES is refused with 413, signed or not, and never dispatched."""
    caplog.set_level(logging.DEBUG)
    body = (MARKER * (MAX_BODY_BYTES // len(MARKER) + 2)).encode()
    assert len(body) > MAX_BODY_BYTES
    status, text = await served.post(body, signed(body, FORM))
    assert status == 413
    assert MARKER not in text
    assert served.heard == []
    assert_body_not_logged(caplog)


async def test_healthz_is_ok_once_started(served: Served) -> None:
    """GET /healthz answers 200 with ok true once the app has started."""
    async with served.session.get(served.server.make_url("/healthz")) as response:
        assert response.status == 200
        assert await response.json() == {"ok": True}


async def test_url_verification_echoes_the_challenge(served: Served) -> None:
    """Slack's signed url_verification handshake gets its challenge back."""
    request = sr.signed_event(sr.url_verification("challenge-3f9c"), secret=SECRET)
    async with served.session.post(
        served.url, data=request.body, headers=request.headers
    ) as response:
        assert response.status == 200
        assert "challenge-3f9c" in await response.text()


async def test_an_unsigned_url_verification_is_refused(served: Served) -> None:
    """Even the handshake must be signed: a forged one gets 401 and no challenge."""
    request = sr.signed_event(sr.url_verification("challenge-3f9c"), secret="forged")
    status, text = await served.post(request.body, request.headers)
    assert status == 401 and "challenge-3f9c" not in text
