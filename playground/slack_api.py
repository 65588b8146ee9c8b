"""A loopback Slack Web API on 127.0.0.1 for slack_sdk's real clients: the methods Slotbot uses.

It keeps conversations, views and files, enforces Block Kit limits, records every call and can
inject faults. It also speaks Socket Mode: ``apps.connections.open`` with the app-level token, a
WebSocket that says hello, carries envelopes to the app and records its acks. For apps installed
in several workspaces it serves the OAuth consent page and ``oauth.v2.access``, and answers each
workspace's bot token (``add_workspace``) as that workspace.
Free of pytest, so a local playground can run it as well as the tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import json
import mimetypes
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

from aiohttp import WSCloseCode, WSMsgType, web

__all__ = [
    "MESSAGE_BLOCK_LIMIT",
    "RESPONSE_URL",
    "SOCKET_ACK_DEADLINE",
    "UPLOAD_URL",
    "VIEW_BLOCK_LIMIT",
    "Call",
    "Channel",
    "Envelope",
    "Hold",
    "Message",
    "ScheduledMessage",
    "SlackEmulator",
    "SlackUser",
    "SocketAck",
    "SocketConnection",
    "UploadedFile",
    "Workspace",
    "block_kit_errors",
    "users_from",
    "view_errors",
]

JSON = dict[str, Any]

MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100
# Pseudo method names under which the two non-API endpoints are recorded and faulted.
UPLOAD_URL = "upload_url"
RESPONSE_URL = "response_url"

_MAX_MESSAGE_TEXT = 40_000
_MAX_SCHEDULE_AHEAD = 120 * 24 * 3600
_MAX_SOCKET_CONNECTIONS = 10  # Slack's limit of concurrent Socket Mode connections per app
_RESPONSE_URL_USES = 5
_RESPONSE_URL_LIFETIME = 30 * 60
# Slack waits this long for an envelope's ack before it shows an error or retries an event.
SOCKET_ACK_DEADLINE = 3.0
# Methods that take the app-level token (xapp-…) rather than the bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
# Methods called with the app's client id and secret (HTTP Basic) rather than a token.
_CLIENT_CREDENTIAL_METHODS = frozenset({"oauth.v2.access"})
# The bot token of the request being answered, so methods can answer as its workspace.
_request_token: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "_request_token", default=None
)
# Parameters slack_sdk may send JSON-encoded inside a form or query string.
_JSON_PARAMS = ("blocks", "attachments", "view", "files", "metadata")


# --- values tests read ----------------------------------------------------------------------


@dataclass(frozen=True)
class SlackUser:
    """One member of the emulated workspace's directory."""

    id: str
    name: str
    real_name: str = ""
    email: str | None = None
    tz: str = "UTC"
    is_bot: bool = False
    deleted: bool = False
    display_name: str = ""


@dataclass(frozen=True)
class Workspace:
    """A workspace the app is installed in: its team, its bot and the bot token it was given.

    ``installer`` is who clicks "Allow" on the consent page.
    """

    team_id: str
    token: str
    bot_user_id: str
    bot_id: str
    installer: str
    team_name: str = "Slotbot Dev"
    team_domain: str = "slotbot-dev"


@dataclass(frozen=True)
class Channel:
    """A conversation: a channel, an IM (``D…``) or a group DM (``G…``)."""

    id: str
    name: str
    is_im: bool = False
    is_mpim: bool = False
    user: str | None = None
    members: frozenset[str] | None = None  # None: everyone in the directory
    bot_is_member: bool = True
    created: int = 0


@dataclass(frozen=True)
class Message:
    """A message as the emulator holds it; ``ephemeral_to`` is set for ephemeral ones."""

    channel: str
    ts: str
    text: str
    blocks: list[JSON] = field(default_factory=list)
    user: str = ""
    bot_id: str | None = None
    thread_ts: str | None = None
    ephemeral_to: str | None = None
    files: tuple[str, ...] = ()
    edited: bool = False
    deleted: bool = False
    metadata: JSON | None = None


@dataclass(frozen=True)
class ScheduledMessage:
    """A message waiting for its ``post_at`` (seconds since the epoch)."""

    id: str
    channel: str
    post_at: int
    text: str
    blocks: list[JSON]
    thread_ts: str | None
    date_created: int


@dataclass(frozen=True)
class UploadedFile:
    """A file that went through the external upload flow, with its bytes."""

    id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str | None = None
    alt_txt: str | None = None
    snippet_type: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    message_ts: str | None = None
    created: int = 0

    @property
    def completed(self) -> bool:
        """Whether ``files.completeUploadExternal`` finished this upload."""
        return self.title is not None


@dataclass(frozen=True)
class Call:
    """One recorded request: the method, its decoded parameters and what was answered."""

    method: str
    params: JSON
    encoding: Literal["json", "form", "query", "bytes"]
    at: float
    status: int
    response: JSON | str
    body: bytes | None = None
    token: str | None = None  # the token the call was made with (bot, app or none)

    @property
    def ok(self) -> bool:
        """Whether the call succeeded (HTTP 200 and ``ok: true``)."""
        if self.status != 200:
            return False
        return not isinstance(self.response, dict) or bool(self.response.get("ok"))


@dataclass(frozen=True)
class SocketConnection:
    """One Socket Mode WebSocket as the emulator saw it; ``closed_at`` is None while open."""

    id: str
    ticket: str
    opened_at: float
    closed_at: float | None = None

    @property
    def open(self) -> bool:
        """Whether the connection is still up."""
        return self.closed_at is None


@dataclass(frozen=True)
class Envelope:
    """An envelope the emulator sent to the app over Socket Mode."""

    envelope_id: str
    type: Literal["slash_commands", "interactive", "events_api"]
    payload: JSON
    accepts_response_payload: bool
    retry_attempt: int
    retry_reason: str
    connection: str

    def to_json(self) -> JSON:
        """The envelope as it travels over the WebSocket."""
        return {
            "envelope_id": self.envelope_id,
            "type": self.type,
            "payload": self.payload,
            "accepts_response_payload": self.accepts_response_payload,
            "retry_attempt": self.retry_attempt,
            "retry_reason": self.retry_reason,
        }


@dataclass(frozen=True)
class SocketAck:
    """The app's answer to an envelope: ``{"envelope_id", "payload"?}``.

    ``latency`` is the wall-clock seconds from sending the envelope to receiving the ack (for
    benchmarks); ``error`` is set when Slack could not use the response payload.
    """

    envelope_id: str
    payload: JSON | None
    connection: str
    at: float
    latency: float
    error: str | None = None


@dataclass
class _Link:
    id: str
    ticket: str
    socket: web.WebSocketResponse
    opened_at: float
    closed_at: float | None = None

    def snapshot(self) -> SocketConnection:
        return SocketConnection(self.id, self.ticket, self.opened_at, self.closed_at)


@dataclass
class Hold:
    """One call of ``method`` held back by ``SlackEmulator.hold`` until ``release()``.

    ``arrived`` is set once the call came in (and, with ``apply_first``, was carried out).
    A call held before it was applied whose caller is gone by the release (killed) is
    ``dropped``: never applied, as a request Slack never fully received.
    """

    method: str
    apply_first: bool
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False

    def release(self) -> None:
        self.released.set()


@dataclass
class _Fault:
    remaining: int
    status: int
    error: str | None
    retry_after: int | None


@dataclass
class _View:
    id: str
    view: JSON
    hash: str
    user: str | None
    external_id: str | None


@dataclass
class _ResponseUrl:
    id: str
    channel: str
    user: str
    message_ts: str | None
    created: float
    uses: int = 0


class _SlackError(Exception):
    """A logical API error, answered as ``{"ok": false, "error": name}``."""

    def __init__(self, error: str, messages: Iterable[str] = ()) -> None:
        super().__init__(error)
        self.error = error
        self.messages = list(messages)

    def payload(self) -> JSON:
        body: JSON = {"ok": False, "error": self.error}
        if self.messages:
            body["errors"] = self.messages
            body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in self.messages]}
        return body


# --- Block Kit limits -----------------------------------------------------------------------

_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)


def _text_errors(
    obj: Any, pointer: str, *, max_len: int, plain_only: bool = False, required: bool = True
) -> list[str]:
    if obj is None:
        return [f"missing required field: text [json-pointer:{pointer}]"] if required else []
    if not isinstance(obj, dict):
        return [f"must be an object [json-pointer:{pointer}]"]
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if obj.get("type") not in kinds:
        return [f"must be one of {', '.join(kinds)} [json-pointer:{pointer}/type]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters [json-pointer:{pointer}/text]"]
    if len(text) > max_len:
        return [f"must be less than {max_len + 1} characters [json-pointer:{pointer}/text]"]
    return []


def _element_errors(element: Any, pointer: str, action_ids: set[str]) -> list[str]:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        return [f"must be an element object [json-pointer:{pointer}]"]
    errors: list[str] = []
    kind = element["type"]
    action_id = element.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str) or not 0 < len(action_id) <= 255:
            errors.append(f"must be 1 to 255 characters [json-pointer:{pointer}/action_id]")
        elif action_id in action_ids:
            errors.append(f"duplicate action_id {action_id!r} [json-pointer:{pointer}/action_id]")
        else:
            action_ids.add(action_id)
    if kind == "button":
        errors += _text_errors(element.get("text"), f"{pointer}/text", max_len=75, plain_only=True)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            errors.append(f"must be less than 2001 characters [json-pointer:{pointer}/value]")
        url = element.get("url")
        if url is not None and (not isinstance(url, str) or len(url) > 3000):
            errors.append(f"must be less than 3001 characters [json-pointer:{pointer}/url]")
        if element.get("style") not in (None, "primary", "danger"):
            errors.append(f"must be primary or danger [json-pointer:{pointer}/style]")
    elif "placeholder" in element:
        errors += _text_errors(
            element["placeholder"], f"{pointer}/placeholder", max_len=150, plain_only=True
        )
    if kind in ("static_select", "multi_static_select", "overflow", "radio_buttons", "checkboxes"):
        options = element.get("options") or []
        limit = 5 if kind == "overflow" else 100
        if len(options) > limit:
            errors.append(f"must be less than {limit + 1} items [json-pointer:{pointer}/options]")
    return errors


def _block_errors(block: Any, pointer: str, block_ids: set[str]) -> list[str]:
    if not isinstance(block, dict):
        return [f"must be a block object [json-pointer:{pointer}]"]
    kind = block.get("type")
    if kind not in _BLOCK_TYPES:
        return [f"unsupported type: {kind!r} [json-pointer:{pointer}/type]"]
    errors: list[str] = []
    block_id = block.get("block_id")
    if block_id is not None:
        if not isinstance(block_id, str) or not 0 < len(block_id) <= 255:
            errors.append(f"must be 1 to 255 characters [json-pointer:{pointer}/block_id]")
        elif block_id in block_ids:
            errors.append(f"duplicate block_id {block_id!r} [json-pointer:{pointer}/block_id]")
        else:
            block_ids.add(block_id)
    # Slack wants action_ids unique among the elements of one block, not across the message.
    action_ids: set[str] = set()
    if kind == "section":
        text, fields = block.get("text"), block.get("fields")
        if text is None and not fields:
            errors.append(f"must provide either text or fields [json-pointer:{pointer}]")
        errors += _text_errors(text, f"{pointer}/text", max_len=3000, required=False)
        if fields is not None:
            if not isinstance(fields, list) or len(fields) > 10:
                errors.append(f"must be less than 11 items [json-pointer:{pointer}/fields]")
            else:
                for i, item in enumerate(fields):
                    errors += _text_errors(item, f"{pointer}/fields/{i}", max_len=2000)
        if "accessory" in block:
            errors += _element_errors(block["accessory"], f"{pointer}/accessory", action_ids)
    elif kind == "header":
        errors += _text_errors(block.get("text"), f"{pointer}/text", max_len=150, plain_only=True)
    elif kind in ("context", "actions"):
        elements = block.get("elements")
        limit = 10 if kind == "context" else 25
        if not isinstance(elements, list) or not elements:
            errors.append(f"must provide elements [json-pointer:{pointer}/elements]")
        elif len(elements) > limit:
            errors.append(f"must be less than {limit + 1} items [json-pointer:{pointer}/elements]")
        else:
            for i, element in enumerate(elements):
                where = f"{pointer}/elements/{i}"
                if kind == "actions":
                    errors += _element_errors(element, where, action_ids)
                elif isinstance(element, dict) and element.get("type") in ("plain_text", "mrkdwn"):
                    errors += _text_errors(element, where, max_len=3000)
                elif not (isinstance(element, dict) and element.get("type") == "image"):
                    errors.append(f"must be a text or image element [json-pointer:{where}]")
    elif kind == "image":
        if not isinstance(block.get("alt_text"), str) or not block["alt_text"]:
            errors.append(f"must provide alt_text [json-pointer:{pointer}/alt_text]")
    elif kind == "input":
        errors += _text_errors(
            block.get("label"), f"{pointer}/label", max_len=2000, plain_only=True
        )
        errors += _element_errors(block.get("element"), f"{pointer}/element", action_ids)
    return errors


def block_kit_errors(blocks: Any, *, limit: int, pointer: str = "/blocks") -> list[str]:
    """The Block Kit problems real Slack rejects in ``blocks``, in Slack's message format."""
    if not isinstance(blocks, list):
        return [f"must be an array [json-pointer:{pointer}]"]
    if len(blocks) > limit:
        return [f"must be less than {limit + 1} items [json-pointer:{pointer}]"]
    block_ids: set[str] = set()
    errors: list[str] = []
    for i, block in enumerate(blocks):
        errors += _block_errors(block, f"{pointer}/{i}", block_ids)
    return errors


def view_errors(view: Any) -> list[str]:
    """The problems real Slack rejects in a modal or Home tab ``view``."""
    if not isinstance(view, dict):
        return ["must be an object [json-pointer:/view]"]
    kind = view.get("type")
    if kind not in ("modal", "home"):
        return ["must be modal or home [json-pointer:/view/type]"]
    errors = block_kit_errors(view.get("blocks"), limit=VIEW_BLOCK_LIMIT, pointer="/view/blocks")
    for key, limit in (("private_metadata", 3000), ("callback_id", 255), ("external_id", 255)):
        value = view.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            errors.append(f"must be less than {limit + 1} characters [json-pointer:/view/{key}]")
    if kind == "modal":
        errors += _text_errors(view.get("title"), "/view/title", max_len=24, plain_only=True)
        for key in ("submit", "close"):
            errors += _text_errors(
                view.get(key), f"/view/{key}", max_len=24, plain_only=True, required=False
            )
        blocks = view.get("blocks")
        has_input = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if has_input and view.get("submit") is None:
            errors.append("must provide submit when using input blocks [json-pointer:/view]")
    return errors


# --- request decoding -----------------------------------------------------------------------


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true")
    return bool(value)


def _decode_json_params(params: JSON) -> JSON:
    decoded = dict(params)
    for key in _JSON_PARAMS:
        value = decoded.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            # Left as sent when not JSON; the method then answers as Slack would.
            with contextlib.suppress(json.JSONDecodeError):
                decoded[key] = json.loads(value)
    return decoded


async def _read_request(
    request: web.Request,
) -> tuple[JSON, Literal["json", "form", "query"], str | None]:
    """Merge query string, form body and JSON body as Slack does; return params and token."""
    params: JSON = dict(request.query)
    encoding: Literal["json", "form", "query"] = "query"
    raw = await request.read()
    if raw:
        if request.content_type == "application/json":
            body = json.loads(raw)
            if isinstance(body, dict):
                params.update(body)
            encoding = "json"
        else:
            params.update(parse_qsl(raw.decode(), keep_blank_values=True))
            encoding = "form"
    token = params.pop("token", None)
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth.removeprefix("Bearer ").strip()
    elif auth.startswith("Basic "):
        # oauth.v2.access: the app's client id and secret, as slack_sdk sends them.
        with contextlib.suppress(ValueError):
            pair = base64.b64decode(auth.removeprefix("Basic ").strip()).decode()
            client_id, _, client_secret = pair.partition(":")
            params.setdefault("client_id", client_id)
            params.setdefault("client_secret", client_secret)
    return _decode_json_params(params), encoding, token


def _required(params: JSON, name: str, error: str = "invalid_arguments") -> str:
    value = params.get(name)
    if value is None or value == "":
        raise _SlackError(error)
    return str(value)


# --- the emulator ---------------------------------------------------------------------------

_Handler = Callable[[JSON], Awaitable[JSON]]


class SlackEmulator:
    """A Slack Web API on a loopback port; use ``async with SlackEmulator() as slack``.

    Point ``AsyncWebClient(token=slack.token, base_url=slack.url)`` at it. Everything a test
    needs to read (calls, messages, files, views) is available as plain values. For Socket
    Mode, give the app ``slack.app_token``; ``socket_push`` then sends it envelopes.
    """

    def __init__(
        self,
        *,
        token: str = "xoxb-000-test-token",
        app_token: str = "xapp-1-A000APP01-0001-test-app-token",
        users: Iterable[SlackUser] = (),
        team_id: str = "T000TEAM1",
        team_domain: str = "slotbot-dev",
        bot_user_id: str = "U000B0T01",
        bot_id: str = "B000B0T01",
        app_id: str = "A000APP01",
        clock: Callable[[], float] = time.time,
        deliver_scheduled_every: float | None = None,
    ) -> None:
        self.token = token
        self.app_token = app_token
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.clock = clock
        # Seconds between posting scheduled messages that are due (the playground); None:
        # only ``deliver_due()`` posts them, when a test moved ``clock`` on.
        self.deliver_scheduled_every = deliver_scheduled_every
        self._delivering: asyncio.Task[None] | None = None
        self.latency: float = 0.0
        self.method_latency: dict[str, float] = {}
        self._users: dict[str, SlackUser] = {}
        self._channels: dict[str, Channel] = {}
        self._ims: dict[str, str] = {}
        self._messages: dict[tuple[str, str], Message] = {}
        self._order: list[tuple[str, str]] = []
        self._scheduled: dict[str, ScheduledMessage] = {}
        self._files: dict[str, UploadedFile] = {}
        self._upload_keys: dict[str, str] = {}
        self._views: dict[str, _View] = {}
        self._home_views: dict[str, str] = {}
        self._used_triggers: set[str] = set()
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._holds: dict[str, Hold] = {}
        self._limited_until: dict[str, float] = {}
        self._calls: list[Call] = []
        self._calls_by_method: dict[str, list[Call]] = {}  # the same, by method: waits are O(1)
        self._call_event: asyncio.Event | None = None
        self._tickets: set[str] = set()
        self._links: list[_Link] = []
        self._envelopes: dict[str, Envelope] = {}
        self._sent_at: dict[str, float] = {}
        self._acks: list[SocketAck] = []
        self._socket_event: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None
        self._seq = 0
        self._last_ts_micros = 0
        # OAuth: the app's credentials, the redirect URL configured for it, codes not yet used.
        self.client_id = "1111111111.2222222222"
        self.client_secret = "emulator-client-secret"
        self.oauth_redirect_url: str | None = None
        self._codes: dict[str, tuple[Workspace, str | None, str]] = {}
        self._workspaces: dict[str, Workspace] = {
            token: Workspace(team_id, token, bot_user_id, bot_id, "", "Slotbot Dev", team_domain)
        }
        self._runner: web.AppRunner | None = None
        self._root = ""
        self._methods: dict[str, _Handler] = {
            "auth.test": self._auth_test,
            "oauth.v2.access": self._oauth_v2_access,
            "apps.connections.open": self._apps_connections_open,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "conversations.open": self._conversations_open,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "chat.scheduleMessage": self._chat_schedule_message,
            "chat.deleteScheduledMessage": self._chat_delete_scheduled_message,
            "chat.scheduledMessages.list": self._chat_scheduled_messages_list,
            "views.open": self._views_open,
            "views.publish": self._views_publish,
            "views.update": self._views_update,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
        }
        self.add_user(SlackUser(id=bot_user_id, name="slotbot", real_name="Slotbot", is_bot=True))
        for user in users:
            self.add_user(user)

    # --- lifecycle ---

    async def start(self) -> None:
        """Bind to 127.0.0.1 on a free port and start answering."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/v1/{key}", self._handle_upload)
        app.router.add_post("/response/{id}", self._handle_response_url)
        app.router.add_get("/files-pri/{team_file}/{name}", self._handle_download)
        app.router.add_get("/link/", self._handle_link)
        app.router.add_get("/oauth/v2/authorize", self._handle_consent)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._root = f"http://{host}:{port}/"
        self._call_event = asyncio.Event()
        self._socket_event = asyncio.Event()
        self._closing = asyncio.Event()
        if self.deliver_scheduled_every is not None:
            self._delivering = asyncio.create_task(
                self._deliver_scheduled(self.deliver_scheduled_every),
                name="slack-emulator-scheduled",
            )

    async def close(self) -> None:
        """Stop answering and release the port."""
        if self._closing is not None:
            self._closing.set()
        if self._delivering is not None:
            await self._delivering
            self._delivering = None
        # Open WebSockets would hold the runner's shutdown; close them as Slack going away.
        for link in self._links:
            if link.closed_at is None:
                await link.socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The Web API base URL, with its trailing slash, for ``AsyncWebClient(base_url=...)``."""
        if not self._root:
            raise RuntimeError("the Slack emulator is not started")
        return f"{self._root}api/"

    @property
    def authorize_url(self) -> str:
        """The consent page, where an app's install link sends the browser."""
        if not self._root:
            raise RuntimeError("the Slack emulator is not started")
        return f"{self._root}oauth/v2/authorize"

    # --- seeding ---

    def add_workspace(
        self,
        team_id: str,
        *,
        installer: str,
        team_name: str = "",
        team_domain: str = "",
    ) -> Workspace:
        """Another workspace that can install the app; ``installer`` must be in the directory.

        The consent page picks it with ``?team=team_id``; its bot token (minted at install)
        is answered as this workspace by ``auth.test``. Directory and conversations are shared.
        """
        if installer not in self._users:
            raise KeyError(installer)
        found = [w for w in self._workspaces.values() if w.team_id == team_id]
        if found:
            workspace = replace(found[0], installer=installer)
        else:
            suffix = team_id[-4:]
            workspace = Workspace(
                team_id=team_id,
                token=f"xoxb-{team_id}-{secrets.token_hex(12)}",
                bot_user_id=f"U0B0T{suffix}",
                bot_id=f"B0B0T{suffix}",
                installer=installer,
                team_name=team_name or f"Team {team_id}",
                team_domain=team_domain or team_id.lower(),
            )
            self.add_user(SlackUser(id=workspace.bot_user_id, name="slotbot", is_bot=True))
        self._workspaces[workspace.token] = workspace
        return workspace

    def workspace(self, team_id: str) -> Workspace:
        """A workspace by team id (the one built from the constructor included)."""
        for workspace in self._workspaces.values():
            if workspace.team_id == team_id:
                return workspace
        raise KeyError(team_id)

    def add_user(self, user: SlackUser) -> SlackUser:
        """Add (or replace) a member of the directory."""
        zone = ZoneInfo(user.tz)  # fail early on a zone Slack would never send
        del zone
        self._users[user.id] = user
        return user

    def add_channel(
        self,
        name: str,
        *,
        channel_id: str | None = None,
        members: Iterable[str] | None = None,
        bot_is_member: bool = True,
    ) -> Channel:
        """Add a public channel; ``members=None`` means everyone in the directory."""
        channel = Channel(
            id=channel_id or self._new_id("C"),
            name=name,
            members=None if members is None else frozenset(members),
            bot_is_member=bot_is_member,
            created=int(self.clock()),
        )
        self._channels[channel.id] = channel
        return channel

    def open_im(self, user_id: str) -> Channel:
        """The bot's IM channel with ``user_id``, opened if needed."""
        if user_id not in self._users:
            raise KeyError(user_id)
        channel_id = self._ims.get(user_id)
        if channel_id is None:
            channel_id = self._new_id("D")
            self._ims[user_id] = channel_id
            self._channels[channel_id] = Channel(
                id=channel_id,
                name=user_id,
                is_im=True,
                user=user_id,
                members=frozenset({user_id, self.bot_user_id}),
                created=int(self.clock()),
            )
        return self._channels[channel_id]

    def post_as_user(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> Message:
        """Record a message a person wrote (it then shows in the conversation); return it."""
        message = Message(
            channel=channel, ts=self._next_ts(), text=text, user=user, thread_ts=thread_ts
        )
        self._store(message)
        return message

    def mint_response_url(self, *, channel: str, user: str, message_ts: str | None = None) -> str:
        """A ``response_url`` as Slack sends with a command or an interaction.

        ``message_ts`` names the original message (ephemeral or not) that ``replace_original``
        and ``delete_original`` act on; leave it out for a slash command.
        """
        self._seq += 1
        key = f"{self.team_id}-{self._seq}-{secrets.token_hex(8)}"
        self._response_urls[key] = _ResponseUrl(
            id=key, channel=channel, user=user, message_ts=message_ts, created=self.clock()
        )
        return f"{self._root}response/{key}"

    def mint_trigger_id(self) -> str:
        """A fresh ``trigger_id`` in Slack's shape (any unused one is accepted once)."""
        self._seq += 1
        return f"{int(self.clock())}.{self._seq}.{self._seq * 7919:x}f0e1d2c3b4a5"

    # --- fault knobs ---

    def fail_next(
        self,
        method: str,
        n: int = 1,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``n`` calls of ``method`` fail.

        ``status=429`` answers ``ratelimited`` with ``Retry-After`` (default 1 s) and keeps
        answering 429 until that time has passed, as Slack does; another status answers
        that HTTP status; ``error="name"`` alone answers HTTP 200 ``{"ok": false, "error": name}``.
        ``method`` may be :data:`UPLOAD_URL` or :data:`RESPONSE_URL`.
        """
        if status is None:
            status = 200 if error else 500
        if status == 429 and retry_after is None:
            retry_after = 1
        self._faults.setdefault(method, []).append(_Fault(n, status, error, retry_after))

    def hold(self, method: str, *, apply_first: bool = True) -> Hold:
        """Hold back the next call of ``method`` until the returned hold is released: after
        carrying it out (the answer is lost if the caller dies), or before (``apply_first``
        False: a caller that died meanwhile leaves it undone). Web API methods only."""
        held = Hold(method, apply_first)
        self._holds[method] = held
        return held

    def deliver_due(self) -> list[Message]:
        """Post every scheduled message whose ``post_at`` has come; return the new messages."""
        now = self.clock()
        due = sorted(
            (s for s in self._scheduled.values() if s.post_at <= now), key=lambda s: s.post_at
        )
        delivered = []
        for scheduled in due:
            del self._scheduled[scheduled.id]
            delivered.append(
                self._post(
                    self._channels[scheduled.channel],
                    text=scheduled.text,
                    blocks=scheduled.blocks,
                    thread_ts=scheduled.thread_ts,
                )
            )
        return delivered

    async def _deliver_scheduled(self, every: float) -> None:
        """Post scheduled messages when their time comes, as Slack does, until closed."""
        assert self._closing is not None
        while not self._closing.is_set():
            self.deliver_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), every)

    # --- reading the record ---

    def calls(self, method: str | None = None) -> list[Call]:
        """Every recorded call, or those of one method, in arrival order (failures included)."""
        return list(self._calls if method is None else self._calls_by_method.get(method, ()))

    async def wait_for(self, method: str, *, count: int = 1, within: float = 5.0) -> list[Call]:
        """Wait until ``method`` has been called ``count`` times; return those calls.

        Raises ``TimeoutError`` after ``within`` seconds: work after ``ack()`` is asynchronous.
        """
        event = self._call_event
        if event is None:
            raise RuntimeError("the Slack emulator is not started")
        async with asyncio.timeout(within):
            while len(self._calls_by_method.get(method, ())) < count:
                event.clear()
                await event.wait()
        return self.calls(method)

    def uploaded_files(self) -> list[UploadedFile]:
        """Files whose upload was completed, in completion order."""
        return [f for f in self._files.values() if f.completed]

    def file(self, file_id: str) -> UploadedFile:
        """One file by id, completed or not."""
        return self._files[file_id]

    def user(self, user_id: str) -> SlackUser:
        """One member of the directory."""
        return self._users[user_id]

    def channel(self, channel_id: str) -> Channel:
        """One conversation by id."""
        return self._channels[channel_id]

    def im_channel(self, user_id: str) -> str | None:
        """The id of the bot's IM with ``user_id`` if one is open."""
        return self._ims.get(user_id)

    def message(self, channel: str, ts: str) -> Message:
        """One message (even deleted or ephemeral) by channel and ts."""
        return self._messages[(channel, ts)]

    def messages_in(self, channel: str) -> list[Message]:
        """The visible top-level messages of a conversation, oldest first."""
        return [
            m
            for m in self._all_messages(channel)
            if m.thread_ts in (None, m.ts) and m.ephemeral_to is None
        ]

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        """The visible replies in a thread, oldest first (the parent excluded)."""
        return [
            m
            for m in self._all_messages(channel)
            if m.thread_ts == thread_ts and m.ts != thread_ts and m.ephemeral_to is None
        ]

    def ephemeral_messages(
        self, *, channel: str | None = None, user: str | None = None
    ) -> list[Message]:
        """Visible ephemeral messages, optionally only in one channel or for one user."""
        return [
            m
            for key in self._order
            if (m := self._messages[key]).ephemeral_to is not None
            and not m.deleted
            and channel in (None, m.channel)
            and user in (None, m.ephemeral_to)
        ]

    def scheduled_messages(self) -> list[ScheduledMessage]:
        """Messages still waiting for their time, by ``post_at``."""
        return sorted(self._scheduled.values(), key=lambda s: s.post_at)

    def view(self, view_id: str) -> JSON:
        """The current JSON of a view opened, published or updated."""
        return self._views[view_id].view

    def home_view(self, user_id: str) -> JSON | None:
        """The Home tab last published for ``user_id``, if any."""
        view_id = self._home_views.get(user_id)
        return None if view_id is None else self._views[view_id].view

    # --- Socket Mode ---

    @property
    def socket_connections(self) -> list[SocketConnection]:
        """Every Socket Mode connection opened so far, oldest first (closed ones included)."""
        return [link.snapshot() for link in self._links]

    def envelopes(self) -> list[Envelope]:
        """Every envelope sent to the app, in sending order."""
        return list(self._envelopes.values())

    def acks(self, envelope_id: str | None = None) -> list[SocketAck]:
        """The acks received, or those of one envelope, in arrival order."""
        return [a for a in self._acks if envelope_id in (None, a.envelope_id)]

    async def wait_for_socket(self, *, count: int = 1, within: float = 5.0) -> SocketConnection:
        """Wait until ``count`` connections have been opened and one is open; return the newest.

        The app's ``connect()`` may return before the emulator has sent its hello, so tests
        wait here before pushing or counting connections.
        """
        await self._wait_socket(
            lambda: len(self._links) >= count and self._open_link() is not None, within
        )
        link = self._open_link()
        assert link is not None
        return link.snapshot()

    async def socket_push(
        self,
        type: Literal["slash_commands", "interactive", "events_api"],
        payload: JSON,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        within: float = 5.0,
    ) -> str:
        """Send an envelope on the newest open connection; return its ``envelope_id``.

        ``payload`` is what Slack would POST in HTTP mode: a slash command's fields, an
        interaction payload or an ``event_callback``. By default only slash commands, view
        submissions and block suggestions accept a response payload, as in Slack.
        """
        if accepts_response_payload is None:
            accepts_response_payload = type == "slash_commands" or (
                type == "interactive"
                and payload.get("type") in ("view_submission", "block_suggestion")
            )
        await self._wait_socket(lambda: self._open_link() is not None, within)
        link = self._open_link()
        assert link is not None
        envelope = Envelope(
            envelope_id=str(uuid.uuid4()),
            type=type,
            payload=payload,
            accepts_response_payload=accepts_response_payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            connection=link.id,
        )
        self._envelopes[envelope.envelope_id] = envelope
        self._sent_at[envelope.envelope_id] = time.monotonic()
        await link.socket.send_json(envelope.to_json())
        return envelope.envelope_id

    async def redeliver(self, envelope_id: str, *, reason: str = "timeout") -> str:
        """Send an envelope again as Slack's retry does: same payload, ``retry_attempt`` + 1."""
        first = self._envelopes[envelope_id]
        return await self.socket_push(
            first.type,
            first.payload,
            accepts_response_payload=first.accepts_response_payload,
            retry_attempt=first.retry_attempt + 1,
            retry_reason=reason,
        )

    async def wait_for_ack(self, envelope_id: str, *, within: float = 5.0) -> SocketAck:
        """Wait for the app's ack of ``envelope_id``; the first one that came.

        Raises ``TimeoutError`` after ``within`` seconds. Slack itself gives up after
        :data:`SOCKET_ACK_DEADLINE`; compare ``SocketAck.latency`` with it in benchmarks.
        """
        await self._wait_socket(lambda: bool(self.acks(envelope_id)), within)
        return self.acks(envelope_id)[0]

    async def wait_for_socket_state(
        self, condition: Callable[[], bool], *, within: float = 5.0
    ) -> None:
        """Wait until ``condition()`` holds, checking it whenever a connection opens or closes
        or an ack arrives; ``TimeoutError`` after ``within`` seconds."""
        await self._wait_socket(condition, within)

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send ``{"type": "disconnect", "reason"}`` on every open connection.

        Slack sends this before it recycles a connection (``refresh_requested``, ``warning``,
        ``link_disabled``); the app should open a new one and let the old one go.
        """
        for link in self._links:
            if link.closed_at is None:
                await link.socket.send_json(self._disconnect_json(reason))

    async def drop_socket_connections(self) -> None:
        """Close every open connection from Slack's side, as a restart or a network cut would."""
        for link in self._links:
            if link.closed_at is None:
                await link.socket.close(code=WSCloseCode.GOING_AWAY, message=b"link recycled")

    # --- internals: ids, clock, storage ---

    def _new_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:010X}"

    def _next_ts(self) -> str:
        micros = max(int(self.clock() * 1_000_000), self._last_ts_micros + 100)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _store(self, message: Message) -> None:
        key = (message.channel, message.ts)
        if key not in self._messages:
            self._order.append(key)
        self._messages[key] = message

    def _all_messages(self, channel: str) -> list[Message]:
        return [
            m for key in self._order if key[0] == channel and not (m := self._messages[key]).deleted
        ]

    def _record(
        self,
        method: str,
        params: JSON,
        encoding: Literal["json", "form", "query", "bytes"],
        status: int,
        response: JSON | str,
        body: bytes | None = None,
    ) -> None:
        call = Call(
            method, params, encoding, self.clock(), status, response, body, _request_token.get()
        )
        self._calls.append(call)
        self._calls_by_method.setdefault(call.method, []).append(call)
        if self._call_event is not None:
            self._call_event.set()

    async def _delay(self, method: str) -> None:
        delay = self.method_latency.get(method, self.latency)
        if delay > 0 and self._closing is not None:
            # Wait on the closing flag, not a bare sleep, so close() never hangs on latency.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)

    def _fault_response(self, method: str) -> web.Response | None:
        until = self._limited_until.get(method)
        if until is not None and time.monotonic() < until:
            return self._rate_limited(until - time.monotonic())
        faults = self._faults.get(method)
        if not faults:
            return None
        fault = faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            faults.pop(0)
        if fault.status == 429:
            seconds = fault.retry_after or 1
            self._limited_until[method] = time.monotonic() + seconds
            return self._rate_limited(seconds)
        body = {"ok": False, "error": fault.error or "internal_error"}
        return web.json_response(body, status=fault.status)

    @staticmethod
    def _rate_limited(seconds: float) -> web.Response:
        return web.json_response(
            {"ok": False, "error": "ratelimited"},
            status=429,
            headers={"Retry-After": str(max(1, int(seconds + 0.999)))},
        )

    # --- Socket Mode internals ---

    def _authorize(self, method: str, token: str | None) -> None:
        if method in _CLIENT_CREDENTIAL_METHODS:
            return  # checked by the method itself
        if not token:
            raise _SlackError("not_authed")
        if method in _APP_TOKEN_METHODS:
            if token == self.app_token:
                return
        elif token in self._workspaces:
            return
        if token in self._workspaces or token == self.app_token:
            # Slack knows the token but it is the wrong kind for this method.
            raise _SlackError("not_allowed_token_type")
        raise _SlackError("invalid_auth")

    async def _apps_connections_open(self, params: JSON) -> JSON:
        ticket = secrets.token_hex(16)
        self._tickets.add(ticket)
        return {
            "url": f"ws{self._root.removeprefix('http')}link/?ticket={ticket}&app_id={self.app_id}"
        }

    def _open_link(self) -> _Link | None:
        open_links = [link for link in self._links if link.closed_at is None]
        return open_links[-1] if open_links else None

    def _disconnect_json(self, reason: str) -> JSON:
        return {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-emulator"}}

    def _notify_socket(self) -> None:
        if self._socket_event is not None:
            self._socket_event.set()

    async def _wait_socket(self, done: Callable[[], bool], within: float) -> None:
        event = self._socket_event
        if event is None:
            raise RuntimeError("the Slack emulator is not started")
        async with asyncio.timeout(within):
            while not done():
                event.clear()
                await event.wait()

    async def _handle_link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            # Tickets are single-use: every (re)connect starts with apps.connections.open.
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)
        socket = web.WebSocketResponse(autoping=True)  # answers the SDK's pings with pongs
        await socket.prepare(request)
        link = _Link(self._new_id("L"), ticket, socket, self.clock())
        open_count = sum(1 for other in self._links if other.closed_at is None) + 1
        if open_count > _MAX_SOCKET_CONNECTIONS:
            await socket.send_json(self._disconnect_json("too_many_websockets"))
            await socket.close()
            return socket
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": open_count,
                "debug_info": {
                    "host": "applink-emulator",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
        )
        self._links.append(link)
        self._notify_socket()
        try:
            async for frame in socket:
                if frame.type == WSMsgType.TEXT:
                    self._receive_ack(link, frame.data)
        finally:
            link.closed_at = self.clock()
            self._notify_socket()
        return socket

    def _receive_ack(self, link: _Link, text: str) -> None:
        try:
            frame = json.loads(text)
        except json.JSONDecodeError:
            return  # Slack ignores frames it cannot read; the envelope then times out
        if not isinstance(frame, dict) or not isinstance(frame.get("envelope_id"), str):
            return
        envelope_id = frame["envelope_id"]
        payload = frame.get("payload")
        payload = payload if isinstance(payload, dict) else None
        envelope = self._envelopes.get(envelope_id)
        error = None
        if envelope is None:
            error = "unknown envelope_id"
        elif payload and not envelope.accepts_response_payload:
            error = "response payload ignored: the envelope does not accept one"
        elif payload and envelope.type == "slash_commands":
            try:
                self._answer_command(envelope.payload, payload)
            except _SlackError as exc:
                error = exc.error
        sent = self._sent_at.get(envelope_id)
        self._acks.append(
            SocketAck(
                envelope_id=envelope_id,
                payload=payload,
                connection=link.id,
                at=self.clock(),
                latency=time.monotonic() - sent if sent is not None else 0.0,
                error=error,
            )
        )
        self._notify_socket()

    def _answer_command(self, command: JSON, answer: JSON) -> None:
        """Post a slash command's ack payload as Slack does with an HTTP response body."""
        if not answer.get("text") and not answer.get("blocks"):
            return
        text, blocks = self._message_content(_decode_json_params(answer))
        user = str(command.get("user_id") or "")
        channel = self._channels.get(str(command.get("channel_id") or "")) or self.open_im(user)
        public = answer.get("response_type") == "in_channel"
        self._post(channel, text=text, blocks=blocks, ephemeral_to=None if public else user)

    # --- HTTP endpoints ---

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, encoding, token = await _read_request(request)
        _request_token.set(token)
        await self._delay(method)
        faulted = self._fault_response(method)
        if faulted is not None:
            self._record(method, params, encoding, faulted.status, _response_body(faulted))
            return faulted
        held = self._holds.pop(method, None)
        if held is not None and not held.apply_first:
            held.arrived.set()
            await self._until_released(held)
            if request.transport is None or request.transport.is_closing():
                held.dropped = True
                return web.Response(status=503)  # nobody is listening any more
        handler = self._methods.get(method)
        try:
            if handler is None:
                raise _SlackError("unknown_method")
            self._authorize(method, token)
            body = {"ok": True, **(await handler(params))}
        except _SlackError as exc:
            body = exc.payload()
        self._record(method, params, encoding, 200, body)
        if held is not None and held.apply_first:
            held.arrived.set()
            await self._until_released(held)
        return web.json_response(body)

    async def _until_released(self, held: Hold) -> None:
        assert self._closing is not None
        # Wake on close() too, so a test that forgets to release never hangs the teardown.
        waits = [asyncio.ensure_future(e.wait()) for e in (held.released, self._closing)]
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def _handle_upload(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = next(iter(form.values()), b"")
            data = part.file.read() if isinstance(part, web.FileField) else str(part).encode()
        else:
            data = await request.read()
        params: JSON = {"key": key, "length": len(data)}
        await self._delay(UPLOAD_URL)
        faulted = self._fault_response(UPLOAD_URL)
        if faulted is not None:
            self._record(UPLOAD_URL, params, "bytes", faulted.status, _response_body(faulted), data)
            return faulted
        file_id = self._upload_keys.get(key)
        if file_id is None:
            self._record(UPLOAD_URL, params, "bytes", 404, "Not Found", data)
            return web.Response(status=404, text="Not Found")
        params["file_id"] = file_id
        self._files[file_id] = replace(self._files[file_id], content=data)
        text = f"OK - {len(data)}"
        self._record(UPLOAD_URL, params, "bytes", 200, text, data)
        return web.Response(text=text, content_type="text/plain")

    async def _handle_download(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        file_id = request.match_info["team_file"].rpartition("-")[2]
        uploaded = self._files.get(file_id)
        if auth != f"Bearer {self.token}" or uploaded is None or uploaded.content is None:
            return web.Response(status=404, text="Not Found")
        mimetype = mimetypes.guess_type(uploaded.filename)[0] or "application/octet-stream"
        return web.Response(body=uploaded.content, content_type=mimetype)

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            params: JSON = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            params = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        params = _decode_json_params(params)
        await self._delay(RESPONSE_URL)
        faulted = self._fault_response(RESPONSE_URL)
        if faulted is not None:
            self._record(RESPONSE_URL, params, "json", faulted.status, _response_body(faulted))
            return faulted
        status = 200
        try:
            body = {"ok": True, **self._respond(request.match_info["id"], params)}
        except _SlackError as exc:
            body = exc.payload()
            status = 404 if exc.error in ("expired_url", "used_url") else 400
        params["response_url_id"] = request.match_info["id"]
        self._record(RESPONSE_URL, params, "json", status, body)
        return web.json_response(body, status=status)

    # --- shared behaviour ---

    def _user_json(self, user: SlackUser) -> JSON:
        zone = ZoneInfo(user.tz)
        now = datetime.fromtimestamp(self.clock(), zone)
        offset = now.utcoffset()
        profile: JSON = {
            "real_name": user.real_name,
            "real_name_normalized": user.real_name,
            "display_name": user.display_name,
            "display_name_normalized": user.display_name,
            "team": self.team_id,
        }
        if user.email is not None:
            profile["email"] = user.email
        if user.is_bot and user.id == self.bot_user_id:
            profile["bot_id"] = self.bot_id
        return {
            "id": user.id,
            "team_id": self.team_id,
            "name": user.name,
            "deleted": user.deleted,
            "real_name": user.real_name,
            "tz": user.tz,
            "tz_label": now.tzname(),
            "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
            "is_bot": user.is_bot,
            "is_app_user": False,
            "is_admin": False,
            "updated": int(self.clock()),
            "profile": profile,
        }

    def _resolve_channel(self, params: JSON, name: str = "channel") -> Channel:
        """The target conversation; a user id means the bot's IM with that user, as in Slack."""
        value = params.get(name)
        if not value:
            raise _SlackError("channel_not_found")
        value = str(value)
        if value in self._channels:
            channel = self._channels[value]
        elif value[:1] in ("U", "W") and value in self._users:
            channel = self.open_im(value)
        else:
            by_name = [c for c in self._channels.values() if c.name == value.removeprefix("#")]
            if not by_name:
                raise _SlackError("channel_not_found")
            channel = by_name[0]
        if not channel.bot_is_member:
            raise _SlackError("not_in_channel")
        return channel

    def _is_member(self, channel: Channel, user_id: str) -> bool:
        return channel.members is None or user_id in channel.members

    def _message_content(
        self, params: JSON, *, require: bool = True
    ) -> tuple[str | None, list[JSON] | None]:
        text = params.get("text")
        blocks = params.get("blocks")
        if blocks is not None:
            errors = block_kit_errors(blocks, limit=MESSAGE_BLOCK_LIMIT)
            if errors:
                raise _SlackError("invalid_blocks", errors)
        if require and not text and not blocks and not params.get("attachments"):
            raise _SlackError("no_text")
        if text is not None and len(str(text)) > _MAX_MESSAGE_TEXT:
            raise _SlackError("msg_too_long")
        return (None if text is None else str(text)), blocks

    def _thread_root(self, channel: Channel, thread_ts: Any) -> str | None:
        if not thread_ts:
            return None
        parent = self._messages.get((channel.id, str(thread_ts)))
        if parent is None or parent.deleted:
            raise _SlackError("thread_not_found")
        return parent.thread_ts or parent.ts

    def _post(
        self,
        channel: Channel,
        *,
        text: str | None,
        blocks: list[JSON] | None,
        thread_ts: str | None = None,
        ephemeral_to: str | None = None,
        files: tuple[str, ...] = (),
        metadata: JSON | None = None,
    ) -> Message:
        message = Message(
            channel=channel.id,
            ts=self._next_ts(),
            text=text or "",
            blocks=blocks or [],
            user=self.bot_user_id,
            bot_id=self.bot_id,
            thread_ts=thread_ts,
            ephemeral_to=ephemeral_to,
            files=files,
            metadata=metadata,
        )
        self._store(message)
        return message

    def _message_json(self, message: Message) -> JSON:
        body: JSON = {
            "type": "message",
            "text": message.text,
            "user": message.user,
            "ts": message.ts,
            "team": self.team_id,
        }
        if message.bot_id is not None:
            body["bot_id"] = message.bot_id
            body["app_id"] = self.app_id
        if message.blocks:
            body["blocks"] = message.blocks
        if message.thread_ts is not None:
            body["thread_ts"] = message.thread_ts
        if message.files:
            body["files"] = [{"id": f} for f in message.files]
        if message.edited:
            body["edited"] = {"user": message.user, "ts": self._next_ts()}
        if message.metadata is not None:
            body["metadata"] = message.metadata
        return body

    def _respond(self, response_id: str, params: JSON) -> JSON:
        target = self._response_urls.get(response_id)
        if target is None or self.clock() - target.created > _RESPONSE_URL_LIFETIME:
            raise _SlackError("expired_url")
        if target.uses >= _RESPONSE_URL_USES:
            raise _SlackError("used_url")
        target.uses += 1
        channel = self._channels.get(target.channel) or self.open_im(target.user)
        replace_original = _flag(params.get("replace_original", False))
        if _flag(params.get("delete_original", False)) or replace_original:
            original = (
                self._messages.get((channel.id, target.message_ts)) if target.message_ts else None
            )
            if original is None or original.deleted:
                raise _SlackError("message_not_found")
            if replace_original:
                text, blocks = self._message_content(params)
                updated = replace(original, text=text or "", blocks=blocks or [], edited=True)
            else:
                updated = replace(original, deleted=True)
            self._store(updated)
            return {}
        text, blocks = self._message_content(params)
        ephemeral = params.get("response_type", "ephemeral") != "in_channel"
        self._post(
            channel,
            text=text,
            blocks=blocks,
            thread_ts=self._thread_root(channel, params.get("thread_ts")),
            ephemeral_to=target.user if ephemeral else None,
        )
        return {}

    # --- auth and users ---

    async def _auth_test(self, params: JSON) -> JSON:
        workspace = self._workspaces[str(_request_token.get())]
        return {
            "url": f"https://{workspace.team_domain}.slack.com/",
            "team": workspace.team_name,
            "user": "slotbot",
            "team_id": workspace.team_id,
            "user_id": workspace.bot_user_id,
            "bot_id": workspace.bot_id,
            "is_enterprise_install": False,
        }

    async def _handle_consent(self, request: web.Request) -> web.Response:
        """The consent page, "Allow" already clicked: back to the app with a one-time code."""
        query = request.query
        if query.get("client_id") != self.client_id:
            return web.Response(status=400, text="invalid_client_id")
        redirect_uri = query.get("redirect_uri") or self.oauth_redirect_url
        if not redirect_uri or urlsplit(redirect_uri).scheme not in ("http", "https"):
            return web.Response(status=400, text="bad_redirect_uri")
        installable = [w for w in self._workspaces.values() if w.installer]
        team = query.get("team")
        chosen = [w for w in installable if w.team_id == team] if team else installable[-1:]
        if not chosen:
            return web.Response(status=400, text="team_not_found")
        code = f"{chosen[0].team_id}.{secrets.token_hex(16)}"
        self._codes[code] = (chosen[0], query.get("redirect_uri"), query.get("scope", ""))
        back = {"code": code, "state": query.get("state", "")}
        separator = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(f"{redirect_uri}{separator}{urlencode(back)}")

    async def _oauth_v2_access(self, params: JSON) -> JSON:
        if params.get("client_id") != self.client_id:
            raise _SlackError("invalid_client_id")
        if params.get("client_secret") != self.client_secret:
            raise _SlackError("bad_client_secret")
        grant = self._codes.pop(str(params.get("code") or ""), None)
        if grant is None:
            raise _SlackError("invalid_code")
        workspace, redirect_uri, scope = grant
        if redirect_uri is not None and params.get("redirect_uri") != redirect_uri:
            raise _SlackError("bad_redirect_uri")
        return {
            "access_token": workspace.token,
            "token_type": "bot",
            "scope": scope,
            "bot_user_id": workspace.bot_user_id,
            "app_id": self.app_id,
            "team": {"id": workspace.team_id, "name": workspace.team_name},
            "enterprise": None,
            "authed_user": {"id": workspace.installer},
            "is_enterprise_install": False,
        }

    async def _users_info(self, params: JSON) -> JSON:
        user = self._users.get(_required(params, "user", "user_not_found"))
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": self._user_json(user)}

    async def _users_list(self, params: JSON) -> JSON:
        members = sorted(self._users.values(), key=lambda u: u.id)
        start = 0
        cursor = params.get("cursor")
        if cursor:
            try:
                after = base64.b64decode(str(cursor)).decode().removeprefix("user:")
            except ValueError as exc:
                raise _SlackError("invalid_cursor") from exc
            ids = [u.id for u in members]
            if after not in ids:
                raise _SlackError("invalid_cursor")
            start = ids.index(after)
        limit = int(params.get("limit") or 0) or len(members)
        page = members[start : start + limit]
        rest = members[start + limit :]
        next_cursor = base64.b64encode(f"user:{rest[0].id}".encode()).decode() if rest else ""
        return {
            "members": [self._user_json(u) for u in page],
            "cache_ts": int(self.clock()),
            "response_metadata": {"next_cursor": next_cursor},
        }

    async def _conversations_open(self, params: JSON) -> JSON:
        if params.get("channel"):
            channel = self._resolve_channel(params)
            return {"channel": {"id": channel.id}, "no_op": True, "already_open": True}
        users = [u for u in str(params.get("users") or "").split(",") if u]
        if not users:
            raise _SlackError("users_list_not_supplied")
        if any(u not in self._users for u in users):
            raise _SlackError("user_not_found")
        already = False
        if len(users) == 1:
            already = users[0] in self._ims
            channel = self.open_im(users[0])
        else:
            members = frozenset({*users, self.bot_user_id})
            found = [c for c in self._channels.values() if c.is_mpim and c.members == members]
            already = bool(found)
            channel = (
                found[0]
                if found
                else Channel(
                    id=self._new_id("G"),
                    name="mpdm-" + "--".join(self._users[u].name for u in users) + "-1",
                    is_mpim=True,
                    members=members,
                    created=int(self.clock()),
                )
            )
            self._channels[channel.id] = channel
        body: JSON = {"channel": {"id": channel.id}}
        if _flag(params.get("return_im", False)):
            body["channel"] = {
                "id": channel.id,
                "created": channel.created,
                "is_im": channel.is_im,
                "is_mpim": channel.is_mpim,
                "is_org_shared": False,
                "user": channel.user,
                "last_read": "0000000000.000000",
                "latest": None,
                "unread_count": 0,
                "unread_count_display": 0,
                "is_open": True,
                "priority": 0,
            }
        if already:
            body.update(no_op=True, already_open=True)
        return body

    # --- chat ---

    async def _chat_post_message(self, params: JSON) -> JSON:
        channel = self._resolve_channel(params)
        text, blocks = self._message_content(params)
        message = self._post(
            channel,
            text=text,
            blocks=blocks,
            thread_ts=self._thread_root(channel, params.get("thread_ts")),
            metadata=params.get("metadata") if isinstance(params.get("metadata"), dict) else None,
        )
        return {"channel": channel.id, "ts": message.ts, "message": self._message_json(message)}

    async def _chat_post_ephemeral(self, params: JSON) -> JSON:
        channel = self._resolve_channel(params)
        user = _required(params, "user", "user_not_found")
        if user not in self._users:
            raise _SlackError("user_not_found")
        if not self._is_member(channel, user):
            raise _SlackError("user_not_in_channel")
        text, blocks = self._message_content(params)
        message = self._post(
            channel,
            text=text,
            blocks=blocks,
            thread_ts=self._thread_root(channel, params.get("thread_ts")),
            ephemeral_to=user,
        )
        return {"message_ts": message.ts}

    def _own_message(self, params: JSON, ts_param: str = "ts") -> tuple[Channel, Message]:
        channel = self._resolve_channel(params)
        ts = _required(params, ts_param, "message_not_found")
        message = self._messages.get((channel.id, ts))
        if message is None or message.deleted or message.ephemeral_to is not None:
            raise _SlackError("message_not_found")
        return channel, message

    async def _chat_update(self, params: JSON) -> JSON:
        channel, message = self._own_message(params)
        if message.user != self.bot_user_id:
            raise _SlackError("cant_update_message")
        if not any(params.get(k) for k in ("text", "blocks", "attachments", "file_ids")):
            raise _SlackError("no_text")
        text, blocks = self._message_content(params, require=False)
        updated = replace(
            message,
            text=message.text if text is None else text,
            blocks=message.blocks if blocks is None else blocks,
            edited=True,
        )
        self._store(updated)
        return {
            "channel": channel.id,
            "ts": updated.ts,
            "text": updated.text,
            "message": self._message_json(updated),
        }

    async def _chat_delete(self, params: JSON) -> JSON:
        channel, message = self._own_message(params)
        if message.user != self.bot_user_id:
            raise _SlackError("cant_delete_message")
        self._store(replace(message, deleted=True))
        return {"channel": channel.id, "ts": message.ts}

    async def _chat_get_permalink(self, params: JSON) -> JSON:
        channel, message = self._own_message(params, "message_ts")
        link = (
            f"https://{self.team_domain}.slack.com/archives/{channel.id}/"
            f"p{message.ts.replace('.', '')}"
        )
        if message.thread_ts not in (None, message.ts):
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    async def _chat_schedule_message(self, params: JSON) -> JSON:
        channel = self._resolve_channel(params)
        try:
            post_at = int(float(_required(params, "post_at")))
        except ValueError as exc:
            raise _SlackError("invalid_time") from exc
        now = self.clock()
        if post_at <= now:
            raise _SlackError("time_in_past")
        if post_at > now + _MAX_SCHEDULE_AHEAD:
            raise _SlackError("time_too_far")
        text, blocks = self._message_content(params)
        scheduled = ScheduledMessage(
            id=self._new_id("Q"),
            channel=channel.id,
            post_at=post_at,
            text=text or "",
            blocks=blocks or [],
            thread_ts=self._thread_root(channel, params.get("thread_ts")),
            date_created=int(now),
        )
        self._scheduled[scheduled.id] = scheduled
        preview: JSON = {
            "type": "message",
            "text": scheduled.text,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "team": self.team_id,
        }
        if scheduled.blocks:
            preview["blocks"] = scheduled.blocks
        return {
            "channel": channel.id,
            "scheduled_message_id": scheduled.id,
            "post_at": post_at,
            "message": preview,
        }

    async def _chat_delete_scheduled_message(self, params: JSON) -> JSON:
        channel = self._resolve_channel(params)
        scheduled = self._scheduled.get(str(params.get("scheduled_message_id") or ""))
        if scheduled is None or scheduled.channel != channel.id:
            raise _SlackError("invalid_scheduled_message_id")
        del self._scheduled[scheduled.id]
        return {}

    async def _chat_scheduled_messages_list(self, params: JSON) -> JSON:
        channel_id = None
        if params.get("channel"):
            channel_id = self._resolve_channel(params).id
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or "inf")
        found = [
            s
            for s in self.scheduled_messages()
            if channel_id in (None, s.channel) and oldest <= s.post_at <= latest
        ]
        try:
            start = int(base64.b64decode(str(params.get("cursor") or "")).decode() or 0)
        except ValueError as exc:
            raise _SlackError("invalid_cursor") from exc
        limit = int(params.get("limit") or 0) or 100
        page = found[start : start + limit]
        following = start + limit
        cursor = (
            base64.b64encode(str(following).encode()).decode() if following < len(found) else ""
        )
        return {
            "scheduled_messages": [
                {
                    "id": s.id,
                    "channel_id": s.channel,
                    "post_at": s.post_at,
                    "date_created": s.date_created,
                    "text": s.text,
                }
                for s in page
            ],
            "response_metadata": {"next_cursor": cursor},
        }

    # --- views ---

    def _checked_view(self, params: JSON, *, kind: str) -> JSON:
        view = params.get("view")
        if not isinstance(view, dict):
            raise _SlackError("invalid_arguments", ["must be an object [json-pointer:/view]"])
        if view.get("type") != kind:
            raise _SlackError("invalid_arguments", [f"must be {kind} [json-pointer:/view/type]"])
        errors = view_errors(view)
        if errors:
            # Slack answers a bad view with invalid_arguments, not invalid_blocks.
            raise _SlackError("invalid_arguments", errors)
        return view

    def _save_view(self, view_id: str, view: JSON, *, user: str | None) -> JSON:
        self._seq += 1
        stored: JSON = {
            "id": view_id,
            "team_id": self.team_id,
            "type": view["type"],
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self.clock())}.{self._seq:08x}",
            "clear_on_close": _flag(view.get("clear_on_close", False)),
            "notify_on_close": _flag(view.get("notify_on_close", False)),
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
        }
        for key in ("title", "submit", "close"):
            if key in view:
                stored[key] = view[key]
        previous = self._views.get(view_id)
        external_id = view.get("external_id") or (previous.external_id if previous else None)
        stored["external_id"] = external_id or ""
        self._views[view_id] = _View(view_id, stored, stored["hash"], user, external_id)
        return stored

    async def _views_open(self, params: JSON) -> JSON:
        trigger = params.get("trigger_id") or params.get("interactivity_pointer")
        if not trigger:
            raise _SlackError("invalid_arguments")
        if trigger in self._used_triggers:
            raise _SlackError("expired_trigger_id")
        view = self._checked_view(params, kind="modal")
        external_id = view.get("external_id")
        if external_id and any(v.external_id == external_id for v in self._views.values()):
            raise _SlackError("duplicate_external_id")
        self._used_triggers.add(str(trigger))
        return {"view": self._save_view(self._new_id("V"), view, user=None)}

    async def _views_publish(self, params: JSON) -> JSON:
        user_id = _required(params, "user_id", "user_not_found")
        if user_id not in self._users:
            raise _SlackError("user_not_found")
        view = self._checked_view(params, kind="home")
        view_id = self._home_views.get(user_id)
        expected = params.get("hash")
        if expected and view_id is not None and self._views[view_id].hash != expected:
            raise _SlackError("hash_conflict")
        view_id = view_id or self._new_id("V")
        self._home_views[user_id] = view_id
        return {"view": self._save_view(view_id, view, user=user_id)}

    async def _views_update(self, params: JSON) -> JSON:
        if params.get("view_id"):
            current = self._views.get(str(params["view_id"]))
        elif params.get("external_id"):
            found = [v for v in self._views.values() if v.external_id == params["external_id"]]
            current = found[0] if found else None
        else:
            raise _SlackError("invalid_arguments")
        if current is None:
            raise _SlackError("not_found")
        view = self._checked_view(params, kind=current.view["type"])
        if params.get("hash") and params["hash"] != current.hash:
            raise _SlackError("hash_conflict")
        return {"view": self._save_view(current.id, view, user=current.user)}

    # --- files ---

    def _file_json(self, uploaded: UploadedFile) -> JSON:
        name = uploaded.filename
        extension = name.rpartition(".")[2].lower() if "." in name else "text"
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        private = f"{self._root}files-pri/{self.team_id}-{uploaded.id}/{name}"
        body: JSON = {
            "id": uploaded.id,
            "created": uploaded.created,
            "timestamp": uploaded.created,
            "name": name,
            "title": uploaded.title or name,
            "mimetype": mimetype,
            "filetype": extension,
            "pretty_type": extension.upper(),
            "user": self.bot_user_id,
            "user_team": self.team_id,
            "mode": "hosted",
            "editable": False,
            "is_external": False,
            "is_public": False,
            "size": len(uploaded.content or b""),
            "url_private": private,
            "url_private_download": private + "?download=1",
            "permalink": f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/"
            f"{uploaded.id}/{name}",
            "channels": [],
            "groups": [],
            "ims": [],
            "shares": {},
        }
        if uploaded.channel is not None and uploaded.message_ts is not None:
            channel = self._channels[uploaded.channel]
            share: JSON = {"ts": uploaded.message_ts, "channel_name": channel.name}
            if uploaded.thread_ts is not None:
                share["thread_ts"] = uploaded.thread_ts
            public = not (channel.is_im or channel.is_mpim)
            body["is_public"] = public
            body["shares"] = {("public" if public else "private"): {channel.id: [share]}}
            body["ims" if channel.is_im else "groups" if channel.is_mpim else "channels"] = [
                channel.id
            ]
        return body

    async def _files_get_upload_url(self, params: JSON) -> JSON:
        filename = _required(params, "filename")
        try:
            length = int(_required(params, "length"))
        except ValueError as exc:
            raise _SlackError("invalid_arguments") from exc
        if length <= 0:
            raise _SlackError("invalid_arguments")
        file_id = self._new_id("F")
        key = f"{self.team_id}-{file_id}-{self._seq:06x}"
        self._upload_keys[key] = file_id
        self._files[file_id] = UploadedFile(
            id=file_id,
            filename=filename,
            length=length,
            alt_txt=params.get("alt_txt"),
            snippet_type=params.get("snippet_type"),
            created=int(self.clock()),
        )
        return {"upload_url": f"{self._root}upload/v1/{key}", "file_id": file_id}

    async def _files_complete_upload(self, params: JSON) -> JSON:
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            raise _SlackError("invalid_arguments")
        pending: list[tuple[UploadedFile, str]] = []
        for entry in entries:
            if not isinstance(entry, dict) or "id" not in entry:
                raise _SlackError("invalid_arguments")
            uploaded = self._files.get(str(entry["id"]))
            if uploaded is None or uploaded.content is None or uploaded.completed:
                raise _SlackError("file_not_found")
            pending.append((uploaded, str(entry.get("title") or uploaded.filename)))
        channel: Channel | None = None
        channels = [c for c in str(params.get("channels") or "").split(",") if c]
        if params.get("channel_id"):
            channel = self._resolve_channel(params, "channel_id")
        elif channels:
            channel = self._resolve_channel({"channel": channels[0]})
        thread_ts = None
        if params.get("thread_ts"):
            if channel is None:
                raise _SlackError("invalid_arguments")
            thread_ts = self._thread_root(channel, params["thread_ts"])
        comment = params.get("initial_comment")
        message_ts = None
        if channel is not None:
            message = self._post(
                channel,
                text=None if comment is None else str(comment),
                blocks=None,
                thread_ts=thread_ts,
                files=tuple(f.id for f, _ in pending),
            )
            message_ts = message.ts
        completed = []
        for uploaded, title in pending:
            done = replace(
                uploaded,
                title=title,
                channel=None if channel is None else channel.id,
                thread_ts=thread_ts,
                initial_comment=None if comment is None else str(comment),
                message_ts=message_ts,
            )
            # Re-insert so uploaded_files() lists files in completion order.
            del self._files[done.id]
            self._files[done.id] = done
            completed.append({"id": done.id, "title": title})
        return {"files": completed}

    async def _files_info(self, params: JSON) -> JSON:
        uploaded = self._files.get(str(params.get("file") or ""))
        if uploaded is None or not uploaded.completed:
            raise _SlackError("file_not_found")
        return {
            "file": self._file_json(uploaded),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }


def _response_body(response: web.Response) -> JSON | str:
    text = response.text or ""
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return text
    return body if isinstance(body, dict) else text


def users_from(rows: Iterable[Mapping[str, Any]]) -> list[SlackUser]:
    """Directory entries from plain mappings (e.g. a JSON fixture) with SlackUser's fields."""
    return [SlackUser(**dict(row)) for row in rows]
