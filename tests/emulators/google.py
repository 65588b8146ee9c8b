"""A loopback Google on 127.0.0.1: the OAuth token endpoint and the Calendar v3 methods we use.

Requests are checked the way Google checks them: JWT-bearer assertions by their RS256 signature,
bearer tokens by what this emulator issued, bodies and query parameters against the Calendar v3
discovery document bundled with google-api-python-client. Calendars have owners and sharing,
every call is recorded, and faults can be injected. Free of pytest, so a playground can run it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from dateutil.rrule import rrulestr

from bot.calendars.google import calendar_discovery_document

__all__ = [
    "JWT_BEARER",
    "GoogleCall",
    "GoogleEmulator",
    "Hold",
    "OAuthClient",
    "ServiceAccount",
    "TokenGrant",
    "rfc3339",
]

JSON = dict[str, Any]
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
_EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")
# An instance of a recurring event: "<eventId>_<original start in UTC, basic format>".
_INSTANCE_ID = re.compile(r"(?P<base>[a-v0-9]{5,1024})_(?P<stamp>\d{8}T\d{6}Z)")
# RFC 3339 date-time with a mandatory offset (Z or ±hh:mm); fractions optional.
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.I)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FREEBUSY_MAX_CALENDARS = 50
_FREEBUSY_MAX_RANGE = timedelta(days=62)
_JWT_LIFETIME = 3600
# google-auth always names Google's token endpoint as the audience, whatever token_uri says.
_GOOGLE_AUDIENCES = (
    "https://oauth2.googleapis.com/token",
    "https://accounts.google.com/o/oauth2/token",
)
_CLOCK_SKEW = 300
# The Calendar methods served, by discovery id.
_SERVED = (
    "calendar.freebusy.query",
    "calendar.events.insert",
    "calendar.events.get",
    "calendar.events.patch",
    "calendar.events.delete",
    "calendar.events.list",
)


def rfc3339(value: datetime) -> str:
    """An aware datetime as Google writes it: UTC with a ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- values tests read ----------------------------------------------------------------------


@dataclass
class ServiceAccount:
    """A service account and its key pair; ``key_file`` writes the JSON Google hands out."""

    email: str
    key_id: str
    private_key: rsa.RSAPrivateKey
    client_id: str
    delegated_scopes: frozenset[str] = frozenset()

    def key_info(self, token_uri: str) -> JSON:
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "slotbot-emulated",
            "private_key_id": self.key_id,
            "private_key": pem,
            "client_email": self.email,
            "client_id": self.client_id,
            "auth_uri": token_uri.rsplit("/", 1)[0] + "/o/oauth2/auth",
            "token_uri": token_uri,
            "universe_domain": "googleapis.com",
        }


@dataclass
class OAuthClient:
    """An OAuth client (a "web application" in Google's console)."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class TokenGrant:
    """One successful token request: what was granted, to whom, for which scopes."""

    grant_type: str
    principal: str
    scopes: frozenset[str]
    service_account: str | None = None
    subject: str | None = None
    client_id: str | None = None


@dataclass
class GoogleCall:
    """One recorded request: the discovery method id (or ``token``), its inputs and status."""

    method: str
    http_method: str
    path: str
    query: dict[str, str]
    body: Any
    principal: str | None = None
    status: int = 0


@dataclass
class _Token:
    principal: str
    scopes: frozenset[str]
    expires_at: float
    service_account: bool = False
    refresh_token: str | None = None


@dataclass
class _Refresh:
    principal: str
    client_id: str
    scopes: frozenset[str]


@dataclass
class _Code:
    principal: str
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    challenge: str | None
    method: str | None


@dataclass
class _Calendar:
    id: str
    time_zone: str = "UTC"
    readers: set[str] = field(default_factory=set)
    writers: set[str] = field(default_factory=set)
    events: dict[str, JSON] = field(default_factory=dict)


@dataclass
class _Fault:
    target: str
    status: int = 0
    reason: str | None = None
    retry_after: float | None = None
    hang: float = 0.0
    method: str | None = None  # only calls of this discovery method id, e.g. events.insert


@dataclass
class Hold:
    """One call of a Calendar method held back by ``GoogleEmulator.hold`` until ``release()``.

    ``arrived`` is set once the call came in (and, with ``apply_first``, was carried out).
    A call held before it was applied whose caller is gone by the release (killed) is
    ``dropped``: never applied, as a request Google never fully received.
    """

    method: str
    apply_first: bool
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False

    def release(self) -> None:
        self.released.set()


class _Refusal(Exception):
    """An answer that is not a success, in Google's error shape."""

    def __init__(self, status: int, reason: str, message: str, extra: JSON | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.extra = extra or {}


class GoogleEmulator:
    """Google's token endpoint and Calendar v3, on a loopback port; use as ``async with``."""

    def __init__(self, *, token_lifetime: int = 3600, clock: Callable[[], float] = time.time):
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.latency: float = 0.0
        self.calls: list[GoogleCall] = []
        self.grants: list[TokenGrant] = []
        self.users: set[str] = set()
        self.service_accounts: dict[str, ServiceAccount] = {}
        self.clients: dict[str, OAuthClient] = {}
        self.consenting_user: str | None = None
        self._calendars: dict[str, _Calendar] = {}
        self._tokens: dict[str, _Token] = {}
        self._refresh_tokens: dict[str, _Refresh] = {}
        self._codes: dict[str, _Code] = {}
        self._faults: list[_Fault] = []
        self._holds: dict[str, Hold] = {}
        self._document = calendar_discovery_document()
        self._routes = _routes(self._document)
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._root = ""
        self._sequence = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to 127.0.0.1 on a free port and start answering."""
        app = web.Application()
        app.router.add_post("/token", self._handle_token)
        app.router.add_post("/revoke", self._handle_revoke)
        app.router.add_get("/o/oauth2/auth", self._handle_authorize)
        app.router.add_route("*", "/calendar/v3/{tail:.*}", self._handle_calendar)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._root = f"http://{host}:{port}/"
        self._closing = asyncio.Event()

    async def close(self) -> None:
        """Stop answering (hung requests end at once) and release the port."""
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> GoogleEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The APIs' root with its trailing slash: ``GOOGLE_API_URL``."""
        if not self._root:
            raise RuntimeError("the Google emulator is not started")
        return self._root

    @property
    def token_uri(self) -> str:
        return self.url + "token"

    @property
    def auth_uri(self) -> str:
        return self.url + "o/oauth2/auth"

    @property
    def revoke_uri(self) -> str:
        return self.url + "revoke"

    @property
    def open_connections(self) -> int:
        """Client connections the server holds open right now."""
        if self._runner is None or self._runner.server is None:
            return 0
        return len(self._runner.server.connections)

    # --- principals ------------------------------------------------------------------------

    def add_service_account(
        self, email: str = "slotbot@slotbot-emulated.iam.gserviceaccount.com"
    ) -> ServiceAccount:
        """A service account with a fresh RSA key pair."""
        account = ServiceAccount(
            email=email,
            key_id=secrets.token_hex(20),
            private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
            client_id=str(100_000_000_000 + len(self.service_accounts)),
        )
        self.service_accounts[email] = account
        return account

    def write_key_file(self, account: ServiceAccount, path: Path) -> Path:
        """Write the account's JSON key, its ``token_uri`` pointing here."""
        path.write_text(json.dumps(account.key_info(self.token_uri)), encoding="utf-8")
        return path

    def allow_delegation(self, account: ServiceAccount, scopes: Iterable[str]) -> None:
        """What a Workspace admin does in the Admin console: domain-wide delegation."""
        account.delegated_scopes = frozenset(scopes)

    def add_oauth_client(
        self, redirect_uris: Iterable[str] = ("http://127.0.0.1/google/oauth/callback",)
    ) -> OAuthClient:
        client = OAuthClient(
            f"{len(self.clients) + 1}-emulated.apps.googleusercontent.com",
            secrets.token_urlsafe(18),
            tuple(redirect_uris),
        )
        self.clients[client.client_id] = client
        return client

    def write_client_file(self, client: OAuthClient, path: Path) -> Path:
        """Write the "client secret" JSON the Google console downloads, pointing here."""
        data = {
            "web": {
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "redirect_uris": list(client.redirect_uris),
                "auth_uri": self.auth_uri,
                "token_uri": self.token_uri,
                "revoke_uri": self.revoke_uri,
            }
        }
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    def authorization_code(
        self,
        client: OAuthClient,
        user: str,
        scopes: Iterable[str],
        redirect_uri: str | None = None,
    ) -> str:
        """A code as if ``user`` had just consented on Google's screen."""
        code = "4/emu-" + secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            user,
            client.client_id,
            redirect_uri or client.redirect_uris[0],
            frozenset(scopes),
            None,
            None,
        )
        return code

    def issue_refresh_token(self, client: OAuthClient, user: str, scopes: Iterable[str]) -> str:
        """A refresh token for ``user``, as a finished consent would have stored."""
        token = "1//emu-" + secrets.token_urlsafe(32)
        self._refresh_tokens[token] = _Refresh(user, client.client_id, frozenset(scopes))
        return token

    def expire_access_tokens(self) -> int:
        """Make every access token issued so far invalid (the client still thinks it is valid)."""
        count = len(self._tokens)
        self._tokens.clear()
        return count

    # --- calendars -------------------------------------------------------------------------

    def add_calendar(
        self,
        calendar_id: str,
        *,
        time_zone: str = "UTC",
        readers: Iterable[str] = (),
        writers: Iterable[str] = (),
    ) -> None:
        """A calendar; an id that looks like an address is that user's primary calendar.

        ``readers`` may see free/busy, ``writers`` may also change events; the owner may both.
        """
        ZoneInfo(time_zone)
        calendar = _Calendar(calendar_id, time_zone, set(readers), set(writers))
        if "@" in calendar_id and not calendar_id.endswith("calendar.google.com"):
            self.users.add(calendar_id)
            calendar.writers.add(calendar_id)
        self._calendars[calendar_id] = calendar

    def share(self, calendar_id: str, principal: str, role: Literal["reader", "writer"]) -> None:
        calendar = self._calendars[calendar_id]
        (calendar.writers if role == "writer" else calendar.readers).add(principal)

    def add_busy(
        self, calendar_id: str, start: datetime, end: datetime, summary: str = "Busy"
    ) -> str:
        """Seed an event that makes the calendar busy; returns its id."""
        self._sequence += 1
        event_id = f"seed{self._sequence:04d}"
        self._calendars[calendar_id].events[event_id] = self._new_event(
            calendar_id,
            calendar_id,
            {
                "id": event_id,
                "summary": summary,
                "start": {"dateTime": rfc3339(start)},
                "end": {"dateTime": rfc3339(end)},
            },
        )
        return event_id

    def events(self, calendar_id: str, *, include_cancelled: bool = False) -> list[JSON]:
        """The calendar's events as Google would return them."""
        return [
            event
            for event in self._calendars[calendar_id].events.values()
            if include_cancelled or event["status"] != "cancelled"
        ]

    # --- faults ----------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        *,
        reason: str | None = None,
        retry_after: float | None = None,
        target: Literal["api", "token"] = "api",
        method: str | None = None,
    ) -> None:
        """Answer the next ``n`` requests to ``target`` with ``status`` (and a Google reason);
        with ``method`` (``calendar.events.insert``) only the next ``n`` calls of that method."""
        default = {429: "rateLimitExceeded", 403: "rateLimitExceeded"}.get(status, "backendError")
        for _ in range(n):
            self._faults.append(_Fault(target, status, reason or default, retry_after, 0.0, method))

    def hang_next(
        self, n: int = 1, seconds: float = 5.0, *, target: Literal["api", "token"] = "api"
    ) -> None:
        """Do the next ``n`` requests' work, then wait ``seconds`` before answering."""
        for _ in range(n):
            self._faults.append(_Fault(target, hang=seconds))

    def hold(self, method: str, *, apply_first: bool = True) -> Hold:
        """Hold back the next call of ``method`` (``calendar.events.insert``) until the returned
        hold is released: after carrying it out (the answer is lost if the caller dies), or
        before (``apply_first`` False: a caller that died meanwhile leaves it undone)."""
        held = Hold(method, apply_first)
        self._holds[method] = held
        return held

    def calls_to(self, method: str) -> list[GoogleCall]:
        return [call for call in self.calls if call.method == method]

    # --- the token endpoint ----------------------------------------------------------------

    async def _handle_token(self, request: web.Request) -> web.Response:
        form = dict(parse_qsl(await request.text()))
        call = GoogleCall("token", "POST", "/token", {}, {k: v for k, v in form.items()})
        self.calls.append(call)
        fault = await self._before(call, "token")
        if fault is not None and fault.status:
            return self._oauth_error(call, fault.status, "temporarily_unavailable", "fault")
        try:
            answer = self._grant(form, request.headers.get("Authorization"))
        except _Refusal as refusal:
            return self._oauth_error(call, refusal.status, refusal.reason, refusal.message)
        call.status = 200
        if fault is not None:
            await self._hang(fault)
        return web.json_response(answer)

    def _grant(self, form: Mapping[str, str], authorization: str | None) -> JSON:
        grant_type = form.get("grant_type", "")
        if grant_type == JWT_BEARER:
            return self._jwt_grant(form.get("assertion", ""))
        client = self._client(form, authorization)
        if grant_type == "authorization_code":
            code = self._codes.pop(form.get("code", ""), None)
            if code is None or code.client_id != client.client_id:
                raise _Refusal(400, "invalid_grant", "Malformed auth code.")
            if form.get("redirect_uri") != code.redirect_uri:
                raise _Refusal(400, "redirect_uri_mismatch", "Bad Request")
            if code.challenge is not None:
                verifier = form.get("code_verifier", "")
                digest = _b64url(hashlib.sha256(verifier.encode()).digest())
                expected = digest if code.method == "S256" else verifier
                if expected != code.challenge:
                    raise _Refusal(400, "invalid_grant", "Invalid code verifier.")
            refresh = "1//emu-" + secrets.token_urlsafe(32)
            self._refresh_tokens[refresh] = _Refresh(code.principal, client.client_id, code.scopes)
            answer = self._access(code.principal, code.scopes, refresh_token=refresh)
            answer["refresh_token"] = refresh
            self.grants.append(
                TokenGrant(grant_type, code.principal, code.scopes, client_id=client.client_id)
            )
            return answer
        if grant_type == "refresh_token":
            stored = self._refresh_tokens.get(form.get("refresh_token", ""))
            if stored is None or stored.client_id != client.client_id:
                raise _Refusal(400, "invalid_grant", "Token has been expired or revoked.")
            scopes = stored.scopes
            if form.get("scope"):
                asked = frozenset(form["scope"].split())
                if not asked <= stored.scopes:
                    raise _Refusal(400, "invalid_scope", "Bad Request")
                scopes = asked
            self.grants.append(
                TokenGrant(grant_type, stored.principal, scopes, client_id=client.client_id)
            )
            return self._access(stored.principal, scopes, refresh_token=form["refresh_token"])
        raise _Refusal(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _jwt_grant(self, assertion: str) -> JSON:
        try:
            head, body, signature = assertion.split(".")
            header = json.loads(_unb64url(head))
            claims = json.loads(_unb64url(body))
        except ValueError as error:
            raise _Refusal(400, "invalid_grant", "Invalid JWT: malformed") from error
        if header.get("alg") != "RS256":
            raise _Refusal(400, "invalid_grant", "Invalid JWT: only RS256 is accepted")
        account = self.service_accounts.get(str(claims.get("iss", "")))
        if account is None:
            raise _Refusal(400, "invalid_grant", "Invalid JWT: unknown issuer")
        if header.get("kid") not in (None, account.key_id):
            raise _Refusal(400, "invalid_grant", "Invalid JWT Signature.")
        try:
            account.private_key.public_key().verify(
                _unb64url(signature),
                f"{head}.{body}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature as error:
            raise _Refusal(400, "invalid_grant", "Invalid JWT Signature.") from error
        now = self.clock()
        issued, expires = float(claims.get("iat", 0)), float(claims.get("exp", 0))
        if claims.get("aud") not in (*_GOOGLE_AUDIENCES, self.token_uri):
            raise _Refusal(400, "invalid_grant", "Invalid JWT: aud is not the token endpoint")
        if expires <= now - _CLOCK_SKEW or issued > now + _CLOCK_SKEW:
            raise _Refusal(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe",
            )
        if expires - issued > _JWT_LIFETIME:
            raise _Refusal(400, "invalid_grant", "Invalid JWT: lifetime over one hour")
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            raise _Refusal(400, "invalid_scope", "Invalid OAuth scope or ID token audience.")
        subject = claims.get("sub")
        if subject and subject != account.email:
            if not scopes <= account.delegated_scopes:
                raise _Refusal(
                    401,
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens using this method, or "
                    "client not authorized for any of the scopes requested.",
                )
            if subject not in self.users:
                raise _Refusal(400, "invalid_grant", "Invalid email or User ID")
            self.grants.append(TokenGrant(JWT_BEARER, subject, scopes, account.email, subject))
            return self._access(subject, scopes)
        self.grants.append(TokenGrant(JWT_BEARER, account.email, scopes, account.email))
        return self._access(account.email, scopes, service_account=True)

    def _client(self, form: Mapping[str, str], authorization: str | None) -> OAuthClient:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        client = self.clients.get(client_id or "")
        if client is None or client.client_secret != secret:
            raise _Refusal(401, "invalid_client", "The OAuth client was not found.")
        return client

    def _access(
        self,
        principal: str,
        scopes: frozenset[str],
        *,
        service_account: bool = False,
        refresh_token: str | None = None,
    ) -> JSON:
        token = "ya29.emu-" + secrets.token_urlsafe(32)
        self._tokens[token] = _Token(
            principal,
            scopes,
            self.clock() + self.token_lifetime,
            service_account,
            refresh_token,
        )
        return {
            "access_token": token,
            "expires_in": self.token_lifetime,
            "scope": " ".join(sorted(scopes)),
            "token_type": "Bearer",
        }

    def _oauth_error(
        self, call: GoogleCall, status: int, error: str, description: str
    ) -> web.Response:
        call.status = status
        return web.json_response({"error": error, "error_description": description}, status=status)

    async def _handle_revoke(self, request: web.Request) -> web.Response:
        form = dict(parse_qsl(await request.text()))
        token = form.get("token") or request.query.get("token", "")
        call = GoogleCall("revoke", "POST", "/revoke", dict(request.query), form)
        self.calls.append(call)
        known = self._refresh_tokens.pop(token, None) is not None
        if known:
            for key in [k for k, v in self._tokens.items() if v.refresh_token == token]:
                del self._tokens[key]
        else:
            known = self._tokens.pop(token, None) is not None
        if not known:
            return self._oauth_error(call, 400, "invalid_token", "Token expired or revoked")
        call.status = 200
        return web.json_response({})

    async def _handle_authorize(self, request: web.Request) -> web.Response:
        """Google's consent screen, already answered "Allow" by ``consenting_user``."""
        query = request.query
        call = GoogleCall("authorize", "GET", request.path, dict(query), None)
        self.calls.append(call)
        client = self.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        user = query.get("login_hint") or self.consenting_user
        if client is None or redirect_uri not in client.redirect_uris:
            call.status = 400
            return web.Response(status=400, text="Error 400: redirect_uri_mismatch")
        if query.get("response_type") != "code" or not query.get("scope") or user is None:
            call.status = 400
            return web.Response(status=400, text="Error 400: invalid_request")
        code = "4/emu-" + secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            user,
            client.client_id,
            redirect_uri,
            frozenset(query["scope"].split()),
            query.get("code_challenge"),
            query.get("code_challenge_method", "plain") if query.get("code_challenge") else None,
        )
        params = {"code": code, "scope": query["scope"]}
        if "state" in query:
            params["state"] = query["state"]
        call.status = 302
        raise web.HTTPFound(redirect_uri + "?" + urlencode(params))

    # --- Calendar v3 -----------------------------------------------------------------------

    async def _handle_calendar(self, request: web.Request) -> web.Response:
        raw_tail = request.raw_path.split("?", 1)[0][len("/calendar/v3/") :]
        body: Any = None
        if request.can_read_body:
            text = await request.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
        call = GoogleCall("", request.method, request.path, dict(request.query), body)
        self.calls.append(call)
        fault: _Fault | None = None
        held: Hold | None = None
        try:
            method_id, path_params = self._route(request.method, raw_tail)
            call.method = method_id
            fault = await self._before(call, "api")
            if fault is not None and fault.status:
                raise _Refusal(
                    fault.status,
                    fault.reason or "backendError",
                    "Injected fault.",
                    {"retry_after": fault.retry_after},
                )
            held = self._holds.pop(method_id, None)
            if held is not None and not held.apply_first:
                held.arrived.set()
                await self._until_released(held)
                if request.transport is None or request.transport.is_closing():
                    held.dropped = True
                    call.status = 503
                    return web.Response(status=503)  # nobody is listening any more
            token = self._authenticate(request, method_id)
            call.principal = token.principal
            method = self._method(method_id)
            query = self._query(method, request.query)
            answer, status = self._serve(method_id, token, path_params, query, body, method)
        except _Refusal as refusal:
            call.status = refusal.status
            if held is not None and held.apply_first:
                held.arrived.set()
                await self._until_released(held)
            return self._google_error(refusal)
        call.status = status
        if fault is not None:
            await self._hang(fault)
        if held is not None and held.apply_first:
            held.arrived.set()
            await self._until_released(held)
        if status == 204:
            return web.Response(status=204)
        return web.json_response(answer, status=status)

    def _route(self, verb: str, raw_tail: str) -> tuple[str, dict[str, str]]:
        for method_id, http_method, pattern in self._routes:
            match = pattern.fullmatch(raw_tail)
            if match and http_method == verb:
                return method_id, {k: unquote(v) for k, v in match.groupdict().items()}
        raise _Refusal(404, "notFound", "Not Found")

    def _method(self, method_id: str) -> JSON:
        _, resource, name = method_id.split(".")
        method: JSON = self._document["resources"][resource]["methods"][name]
        return method

    def _authenticate(self, request: web.Request, method_id: str) -> _Token:
        header = request.headers.get("Authorization", "")
        token = self._tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if token is None or token.expires_at <= self.clock():
            raise _Refusal(
                401,
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
                {"location": "Authorization", "status": "UNAUTHENTICATED"},
            )
        allowed = set(self._method(method_id).get("scopes", ()))
        if not token.scopes & allowed:
            raise _Refusal(
                403,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
                {"status": "PERMISSION_DENIED"},
            )
        return token

    def _query(self, method: JSON, raw: Mapping[str, str]) -> JSON:
        known = {**self._document.get("parameters", {}), **method.get("parameters", {})}
        values: JSON = {}
        for name, text in raw.items():
            spec = known.get(name)
            if spec is None or spec.get("location") == "path":
                raise _Refusal(400, "badRequest", f"Unknown query parameter: {name}")
            values[name] = _parse_parameter(name, text, spec)
        return values

    def _serve(
        self,
        method_id: str,
        token: _Token,
        path: Mapping[str, str],
        query: JSON,
        body: Any,
        method: JSON,
    ) -> tuple[JSON | None, int]:
        if "request" in method:
            if not isinstance(body, dict):
                raise _Refusal(400, "parseError", "This API does not support parsing form data.")
            problems = _schema_errors(self._document, body, method["request"], "")
            if problems:
                raise _Refusal(400, "invalid", problems[0])
        if method_id == "calendar.freebusy.query":
            return self._free_busy(token, body), 200
        calendar = self._calendar(token, path["calendarId"])
        if method_id == "calendar.events.list":
            return self._list(calendar, query), 200
        if method_id == "calendar.events.insert":
            return self._insert(token, calendar, body, query), 200
        event = calendar.events.get(path["eventId"])
        if event is None:
            event = self._instance(calendar, path["eventId"])
        if method_id == "calendar.events.get":
            return event, 200
        self._require_writer(token, calendar)
        if event["status"] == "cancelled":
            raise _Refusal(410, "deleted", "Resource has been deleted")
        if event.get("recurringEventId") and event["id"] not in calendar.events:
            # Changing one instance makes it an exception stored beside its series.
            calendar.events[event["id"]] = event
        if method_id == "calendar.events.delete":
            event["status"] = "cancelled"
            event["updated"] = rfc3339(datetime.fromtimestamp(self.clock(), UTC))
            return None, 204
        return self._patch(token, calendar, event, body, query), 200

    def _instance(self, calendar: _Calendar, instance_id: str) -> JSON:
        """The instance ``<eventId>_<YYYYMMDDTHHMMSSZ>`` of a recurring event, as Google
        serves one not changed yet: the series' fields at that occurrence's time."""
        match = _INSTANCE_ID.fullmatch(instance_id)
        series = calendar.events.get(match.group("base")) if match else None
        if match is None or series is None or not series.get("recurrence"):
            raise _Refusal(404, "notFound", "Not Found")
        original = datetime.strptime(match.group("stamp"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        first, last = _event_span(series)
        if original not in _occurrences(series, original, original + timedelta(seconds=1)):
            raise _Refusal(404, "notFound", "Not Found")
        zone = ZoneInfo(series["start"]["timeZone"])
        instance = {k: v for k, v in series.items() if k not in ("recurrence", "id", "htmlLink")}
        eid = _b64url(f"{instance_id} {calendar.id}".encode())
        instance.update(
            id=instance_id,
            htmlLink=f"{self.url}calendar/event?eid={eid}",
            recurringEventId=series["id"],
            originalStartTime={"dateTime": rfc3339(original), "timeZone": zone.key},
            start={"dateTime": original.astimezone(zone).isoformat(), "timeZone": zone.key},
            end={
                "dateTime": (original + (last - first)).astimezone(zone).isoformat(),
                "timeZone": zone.key,
            },
        )
        return instance

    def _calendar(self, token: _Token, calendar_id: str) -> _Calendar:
        resolved = token.principal if calendar_id == "primary" else calendar_id
        calendar = self._calendars.get(resolved)
        if calendar is None or not self._can_read(token.principal, calendar):
            raise _Refusal(404, "notFound", "Not Found")
        return calendar

    def _can_read(self, principal: str, calendar: _Calendar) -> bool:
        return principal in calendar.readers or principal in calendar.writers

    def _require_writer(self, token: _Token, calendar: _Calendar) -> None:
        if token.principal not in calendar.writers:
            raise _Refusal(
                403, "requiredAccessLevel", "You need to have writer access to this calendar."
            )

    def _free_busy(self, token: _Token, body: JSON) -> JSON:
        for name in ("timeMin", "timeMax"):
            if name not in body:
                raise _Refusal(400, "required", f"Missing {name} parameter.")
        start, end = _instant(body["timeMin"]), _instant(body["timeMax"])
        if end <= start:
            raise _Refusal(400, "timeRangeEmpty", "The specified time range is empty.")
        if end - start > _FREEBUSY_MAX_RANGE:
            raise _Refusal(400, "timeRangeTooLong", "The requested time range is too long.")
        limit = min(int(body.get("calendarExpansionMax", _FREEBUSY_MAX_CALENDARS)), 50)
        calendars: JSON = {}
        for index, item in enumerate(body.get("items", [])):
            calendar_id = str(item.get("id", ""))
            if index >= limit:
                calendars[calendar_id] = _entry_error("tooManyCalendarsRequested")
                continue
            resolved = token.principal if calendar_id == "primary" else calendar_id
            calendar = self._calendars.get(resolved)
            if calendar is None or not self._can_read(token.principal, calendar):
                calendars[calendar_id] = _entry_error("notFound")
                continue
            calendars[calendar_id] = {"busy": self._busy(calendar, start, end)}
        return {
            "kind": "calendar#freeBusy",
            "timeMin": rfc3339(start),
            "timeMax": rfc3339(end),
            "calendars": calendars,
        }

    def _busy(self, calendar: _Calendar, start: datetime, end: datetime) -> list[JSON]:
        """Busy periods: the calendar's own events and those it attends, clipped, merged."""
        spans: list[tuple[datetime, datetime]] = []
        for other in self._calendars.values():
            for event in other.events.values():
                if event["status"] == "cancelled" or event.get("transparency") == "transparent":
                    continue
                mine = other is calendar
                attending = any(
                    a.get("email", "").lower() == calendar.id.lower()
                    and a.get("responseStatus") != "declined"
                    for a in event.get("attendees", ())
                )
                if not (mine or attending):
                    continue
                first, last = _event_span(event)
                if event.get("recurrence"):
                    # Every occurrence is busy, but those its exceptions moved or cancelled.
                    changed = {
                        _instant(e["originalStartTime"]["dateTime"])
                        for e in other.events.values()
                        if e.get("recurringEventId") == event["id"]
                    }
                    length = last - first
                    for moment in _occurrences(event, start - length, end):
                        if moment not in changed:
                            spans.append((max(moment, start), min(moment + length, end)))
                    continue
                if first < end and start < last:
                    spans.append((max(first, start), min(last, end)))
        merged: list[list[datetime]] = []
        for first, last in sorted(spans):
            if merged and first <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        return [{"start": rfc3339(a), "end": rfc3339(b)} for a, b in merged]

    def _list(self, calendar: _Calendar, query: JSON) -> JSON:
        items = []
        for event in calendar.events.values():
            if event["status"] == "cancelled" and not query.get("showDeleted"):
                continue
            if "iCalUID" in query and event["iCalUID"] != query["iCalUID"]:
                continue
            first, last = _event_span(event)
            if "timeMin" in query and last <= _instant(query["timeMin"]):
                continue
            if "timeMax" in query and first >= _instant(query["timeMax"]):
                continue
            items.append(event)
        items.sort(key=lambda e: _event_span(e)[0])
        return {
            "kind": "calendar#events",
            "summary": calendar.id,
            "timeZone": calendar.time_zone,
            "items": items,
        }

    def _insert(self, token: _Token, calendar: _Calendar, body: JSON, query: JSON) -> JSON:
        self._require_writer(token, calendar)
        for name in ("start", "end"):
            if name not in body:
                raise _Refusal(
                    400, "required", "Missing end time." if name == "end" else "Missing start time."
                )
        event_id = body.get("id")
        if event_id is not None:
            if not _EVENT_ID.fullmatch(str(event_id)):
                raise _Refusal(400, "invalid", "Invalid resource id value.")
            if event_id in calendar.events:
                raise _Refusal(409, "duplicate", "The requested identifier already exists.")
        else:
            event_id = secrets.token_hex(13)
        if body.get("attendees") and token.service_account:
            raise _Refusal(
                403,
                "forbiddenForServiceAccounts",
                "Service accounts cannot invite attendees without Domain-Wide Delegation of "
                "Authority.",
            )
        _check_times(body)
        event = self._new_event(calendar.id, token.principal, {**body, "id": event_id})
        if query.get("conferenceDataVersion", 0) >= 1 and "conferenceData" in body:
            event["conferenceData"] = _conference(body["conferenceData"], event_id)
            event["hangoutLink"] = event["conferenceData"]["entryPoints"][0]["uri"]
        else:
            event.pop("conferenceData", None)
        calendar.events[event_id] = event
        return event

    def _patch(
        self, token: _Token, calendar: _Calendar, event: JSON, body: JSON, query: JSON
    ) -> JSON:
        if "id" in body and body["id"] != event["id"]:
            raise _Refusal(400, "invalid", "Invalid resource id value.")
        if "sequence" in body and int(body["sequence"]) < int(event.get("sequence", 0)):
            raise _Refusal(
                400,
                "invalid",
                "Invalid sequence value. The specified sequence "
                "number is below the current sequence number of the resource.",
            )
        if body.get("attendees") and token.service_account:
            raise _Refusal(
                403,
                "forbiddenForServiceAccounts",
                "Service accounts cannot invite "
                "attendees without Domain-Wide Delegation of Authority.",
            )
        merged = {**event, **body}
        _check_times(merged)
        if "conferenceData" in body and query.get("conferenceDataVersion", 0) < 1:
            merged["conferenceData"] = event.get("conferenceData")
        merged["updated"] = rfc3339(datetime.fromtimestamp(self.clock(), UTC))
        merged["etag"] = f'"{secrets.randbits(48)}"'
        event.clear()
        event.update({k: v for k, v in merged.items() if v is not None})
        return event

    def _new_event(self, calendar_id: str, creator: str, body: JSON) -> JSON:
        stamp = rfc3339(datetime.fromtimestamp(self.clock(), UTC))
        event_id = body["id"]
        eid = _b64url(f"{event_id} {calendar_id}".encode())
        event: JSON = {
            "kind": "calendar#event",
            "etag": f'"{secrets.randbits(48)}"',
            "status": "confirmed",
            "htmlLink": f"{self.url}calendar/event?eid={eid}",
            "created": stamp,
            "updated": stamp,
            "creator": {"email": creator},
            "organizer": {"email": calendar_id, "self": True},
            "iCalUID": f"{event_id}@google.com",
            "sequence": 0,
            "reminders": {"useDefault": True},
            "eventType": "default",
            **body,
        }
        for attendee in event.get("attendees", ()):
            attendee.setdefault("responseStatus", "needsAction")
        return event

    # --- plumbing --------------------------------------------------------------------------

    async def _before(self, call: GoogleCall, target: str) -> _Fault | None:
        if self.latency > 0:
            await self._wait(self.latency)
        for index, fault in enumerate(self._faults):
            if fault.target == target and fault.method in (None, call.method):
                return self._faults.pop(index)
        return None

    async def _hang(self, fault: _Fault) -> None:
        if fault.hang > 0:
            await self._wait(fault.hang)

    async def _until_released(self, held: Hold) -> None:
        assert self._closing is not None
        # Wake on close() too, so a test that forgets to release never hangs the teardown.
        waits = [asyncio.ensure_future(e.wait()) for e in (held.released, self._closing)]
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def _wait(self, seconds: float) -> None:
        # Wait on the closing flag, not a bare sleep, so close() never waits for a hang.
        assert self._closing is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    def _google_error(self, refusal: _Refusal) -> web.Response:
        extra = dict(refusal.extra)
        retry_after = extra.pop("retry_after", None)
        status_name = extra.pop("status", None)
        detail: JSON = {"domain": "global", "reason": refusal.reason, "message": refusal.message}
        detail.update(extra)
        error: JSON = {"errors": [detail], "code": refusal.status, "message": refusal.message}
        if status_name:
            error["status"] = status_name
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if refusal.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
        return web.json_response({"error": error}, status=refusal.status, headers=headers)


# --- validation against the discovery document ----------------------------------------------


def _routes(document: JSON) -> list[tuple[str, str, re.Pattern[str]]]:
    routes = []
    for resource in document["resources"].values():
        for method in resource["methods"].values():
            if method["id"] not in _SERVED:
                continue
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(method["path"]))
            routes.append((method["id"], method["httpMethod"], re.compile(pattern)))
    return routes


def _parse_parameter(name: str, text: str, spec: JSON) -> Any:
    kind = spec.get("type")
    if kind == "integer":
        try:
            value: Any = int(text)
        except ValueError as error:
            raise _Refusal(400, "invalidParameter", f"Invalid value for {name}: {text}") from error
        if "minimum" in spec and value < int(spec["minimum"]):
            raise _Refusal(400, "invalidParameter", f"{name} below its minimum")
    elif kind == "boolean":
        if text not in ("true", "false"):
            raise _Refusal(400, "invalidParameter", f"Invalid boolean value for {name}: {text}")
        value = text == "true"
    else:
        value = text
    if "enum" in spec and text not in spec["enum"]:
        raise _Refusal(400, "invalidParameter", f"Invalid value for {name}: {text}")
    if spec.get("format") == "date-time" and not _DATE_TIME.fullmatch(text):
        raise _Refusal(400, "invalid", f"Bad date-time value for {name}: {text}")
    return value


def _schema_errors(document: JSON, value: Any, schema: JSON, path: str) -> list[str]:
    """What is wrong with ``value`` under a discovery schema (types, formats, known names)."""
    if "$ref" in schema:
        schema = document["schemas"][schema["$ref"]]
    kind = schema.get("type")
    where = path or "body"
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        problems = []
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                problems += _schema_errors(
                    document, item, properties[key], f"{path}.{key}".lstrip(".")
                )
            elif extra is not None:
                problems += _schema_errors(document, item, extra, f"{path}.{key}".lstrip("."))
            else:
                # Strict on purpose: a misspelt field is a client bug the real API would ignore.
                problems.append(f"{where}: unknown field {key!r}")
        return problems
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        problems = []
        for index, item in enumerate(value):
            problems += _schema_errors(document, item, schema.get("items", {}), f"{where}[{index}]")
        return problems
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected a string"]
        if schema.get("format") == "date-time" and not _DATE_TIME.fullmatch(value):
            return [f"{where}: {value!r} is not RFC 3339 with a UTC offset"]
        if schema.get("format") == "date" and not _DATE.fullmatch(value):
            return [f"{where}: {value!r} is not a date"]
        return []
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: expected an integer"]
        return []
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected true or false"]
    return []


def _check_times(event: JSON) -> None:
    """Google's rules for start/end beyond their schema: one of date/dateTime, zones, order."""
    for name in ("start", "end"):
        point = event[name]
        if ("date" in point) == ("dateTime" in point):
            raise _Refusal(400, "invalid", f"{name}: give exactly one of date and dateTime.")
        zone = point.get("timeZone")
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError) as error:
                raise _Refusal(400, "timeZoneInvalid", f"Invalid time zone: {zone}") from error
    if event.get("recurrence") and not event["start"].get("timeZone"):
        raise _Refusal(400, "invalid", "A recurring event needs start.timeZone.")
    first, last = _event_span(event)
    if last <= first:
        raise _Refusal(400, "timeRangeEmpty", "The specified time range is empty.")
    for attendee in event.get("attendees", ()):
        if not attendee.get("email"):
            raise _Refusal(400, "required", "Missing attendee email.")
    for override in (event.get("reminders") or {}).get("overrides", ()):
        if override.get("method") not in ("email", "popup"):
            raise _Refusal(400, "invalid", "Invalid reminder method.")
        if not 0 <= int(override.get("minutes", -1)) <= 40320:
            raise _Refusal(400, "invalid", "Invalid reminder minutes.")


def _instant(text: str) -> datetime:
    if not _DATE_TIME.fullmatch(text):
        raise _Refusal(400, "invalid", f"Bad date-time value: {text}")
    return datetime.fromisoformat(text.replace("z", "Z"))


def _event_span(event: JSON) -> tuple[datetime, datetime]:
    def point(value: JSON) -> datetime:
        if "dateTime" in value:
            return _instant(value["dateTime"])
        return datetime.fromisoformat(value["date"]).replace(tzinfo=UTC)

    return point(event["start"]), point(event["end"])


def _occurrences(event: JSON, start: datetime, end: datetime) -> list[datetime]:
    """A recurring event's occurrence starts in ``[start, end)``, in UTC: its RRULE read on
    the wall clock of ``start.timeZone``, as Google expands it."""
    zone = ZoneInfo(event["start"]["timeZone"])
    first = _instant(event["start"]["dateTime"]).astimezone(zone)
    lines = [line[len("RRULE:") :] for line in event["recurrence"] if line.startswith("RRULE:")]
    found: list[datetime] = []
    for line in lines:
        rule = rrulestr(line, dtstart=first)
        found += [m.astimezone(UTC) for m in rule.between(start, end, inc=True) if m < end]
    return sorted(set(found))


def _entry_error(reason: str) -> JSON:
    return {"busy": [], "errors": [{"domain": "calendar", "reason": reason}]}


def _conference(request: JSON, event_id: str) -> JSON:
    create = request.get("createRequest") or {}
    code = hashlib.sha256(event_id.encode()).hexdigest()
    meeting = f"{code[:3]}-{code[3:7]}-{code[7:10]}"
    return {
        "createRequest": {**create, "status": {"statusCode": "success"}},
        "entryPoints": [{"entryPointType": "video", "uri": f"https://meet.google.com/{meeting}"}],
        "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
        "conferenceId": meeting,
    }
