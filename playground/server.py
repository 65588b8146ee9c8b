"""The playground server: a page that behaves like a Slack client, in front of the real Slotbot.

What the page sends becomes what Slack would send: a signed slash command, Events API call or
``block_actions`` interaction, POSTed over HTTP to Slotbot's ``/slack/events``. Slotbot answers
through the loopback Slack Web API (the emulator), and the page polls what that holds.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from aiohttp import web

from bot.app import Slotbot, open_slotbot
from bot.calendars import event_id_for
from bot.calendars.local import LocalCalendar
from bot.config import Settings
from bot.console import DEMO_PEOPLE, DEMO_TEAM, YOU, seed_demo_calendars
from bot.models import wall_to_instant, zone_of
from playground import slack_requests
from playground.slack_api import Message, SlackEmulator, SlackUser

__all__ = ["DEMO_PLACES", "Playground", "demo_users", "open_playground", "run_playground"]

JSON = dict[str, Any]

STATIC = Path(__file__).with_name("static")
COMMAND = "/schedule"
#: Where each demo colleague sits; shown next to their name.
DEMO_PLACES = {"ana": "Berlin", "ben": "New York", "chen": "Tokyo", "dev": "Kolkata"}
#: The viewer: the person at the browser, in the browser's zone once the page says which.
VIEWER_HANDLE = "sam"
_MENTION = re.compile(r"(?<![\w<@])@([A-Za-z][\w.-]*)")
#: Old names browsers still report (Chromium's ICU) for zones that were renamed in tzdata.
ZONE_RENAMES = {
    "Asia/Calcutta": "Asia/Kolkata",
    "Asia/Saigon": "Asia/Ho_Chi_Minh",
    "Asia/Katmandu": "Asia/Kathmandu",
    "Asia/Rangoon": "Asia/Yangon",
    "Europe/Kiev": "Europe/Kyiv",
    "America/Godthab": "America/Nuuk",
    "Atlantic/Faeroe": "Atlantic/Faroe",
    "America/Buenos_Aires": "America/Argentina/Buenos_Aires",
}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def demo_users(viewer_zone: str) -> list[SlackUser]:
    """The demo workspace's people: you (in ``viewer_zone``) and the four colleagues."""
    users = [
        SlackUser(
            id=YOU,
            name=VIEWER_HANDLE,
            real_name="Sam",
            display_name="Sam",
            email="sam@example.com",
            tz=viewer_zone,
        )
    ]
    for handle, person in DEMO_PEOPLE.items():
        users.append(
            SlackUser(
                id=person.user_id,
                name=handle,
                real_name=person.name,
                display_name=person.name,
                email=person.email,
                tz=person.time_zone,
            )
        )
    return users


def _escape(text: str) -> str:
    """Escape as Slack's client does before a message leaves it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class _Echo:
    """A line only the viewer sees that Slack's client shows itself (no API call behind it)."""

    channel: str
    ts: str
    user: str
    text: str


@dataclass
class Playground:
    """A running playground: the emulator, Slotbot behind its HTTP endpoint, and the page's API."""

    slack: SlackEmulator
    slotbot: Slotbot
    events_url: str
    secret: str
    clock: Callable[[], datetime]
    general: str
    direct: str
    session: aiohttp.ClientSession
    slotbot_runner: web.AppRunner
    workspace: slack_requests.Workspace
    echoes: list[_Echo] = field(default_factory=list)
    changes: int = 0

    # --- what the page sends ---

    async def send(self, channel: str, text: str) -> JSON:
        """Deliver what the viewer typed in ``channel``, as Slack would; says what happened."""
        text = text.strip()
        if channel not in (self.general, self.direct):
            raise web.HTTPNotFound(text="no such channel")
        if not text:
            return {"ok": False, "error": "empty"}
        self.changes += 1
        if text.startswith("/"):
            return await self._command(channel, text)
        posted = self.slack.post_as_user(channel, YOU, self._linked(text))
        if channel == self.direct:
            event = slack_requests.im_message_event(
                posted.text, user=YOU, channel=channel, ts=posted.ts, workspace=self.workspace
            )
        elif f"<@{self.slack.bot_user_id}>" in posted.text:
            event = slack_requests.app_mention_event(
                posted.text, user=YOU, channel=channel, ts=posted.ts, workspace=self.workspace
            )
        else:
            return {"ok": True, "delivered": "message"}
        payload = slack_requests.event_callback(event, workspace=self.workspace)
        status = await self._post(slack_requests.signed_event(payload, secret=self.secret))
        return {"ok": status == 200, "delivered": event["type"], "status": status}

    async def click(self, channel: str, ts: str, action_id: str, value: str) -> JSON:
        """Click the button ``action_id`` of message ``ts``: a signed ``block_actions``."""
        try:
            message = self.slack.message(channel, ts)
        except KeyError:
            raise web.HTTPNotFound(text="no such message") from None
        button = _find_button(message.blocks, action_id, value)
        if button is None or message.deleted:
            raise web.HTTPNotFound(text="no such button")
        self.changes += 1
        ephemeral = message.ephemeral_to is not None
        action = slack_requests.button_action(
            action_id,
            value,
            block_id=str(button.get("block_id") or "actions"),
            text=str((button.get("text") or {}).get("text") or "Button"),
        )
        response_url = self.slack.mint_response_url(channel=channel, user=YOU, message_ts=ts)
        payload = slack_requests.block_actions(
            [action],
            user_id=YOU,
            user_name=VIEWER_HANDLE,
            channel_id=channel,
            response_url=response_url,
            # Slack sends no ``message`` for a click in an ephemeral message.
            message=None if ephemeral else _message_json(message),
            message_ts=ts,
            trigger_id=self.slack.mint_trigger_id(),
            workspace=self.workspace,
        )
        if message.thread_ts:
            payload["container"]["thread_ts"] = message.thread_ts
        status = await self._post(slack_requests.signed_interaction(payload, secret=self.secret))
        return {"ok": status == 200, "status": status}

    def set_viewer_zone(self, zone: str) -> bool:
        """Put the viewer in ``zone`` (the browser's); False when it is not an IANA zone."""
        zone = ZONE_RENAMES.get(zone, zone)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return False
        viewer = self.slack.user(YOU)
        if viewer.tz != zone:
            self.slack.add_user(replace(viewer, tz=zone))
            self.changes += 1
        return True

    async def _command(self, channel: str, text: str) -> JSON:
        name, _, rest = text.partition(" ")
        # Slack's client shows the command to its author; the app never sees this line.
        self._echo(channel, YOU, _escape(text))
        if name != COMMAND:
            self._echo(
                channel,
                "USLACKBOT",
                f"`{_escape(name)}` is not a valid command. "
                f"Only `{COMMAND}` is installed in this playground.",
            )
            return {"ok": False, "error": "unknown_command"}
        response_url = self.slack.mint_response_url(channel=channel, user=YOU)
        fields = slack_requests.slash_command(
            # The manifest asks Slack to escape mentions: ``<@U…|handle>``.
            self._linked(rest.strip(), with_handle=True),
            user_id=YOU,
            user_name=VIEWER_HANDLE,
            channel_id=channel,
            channel_name="directmessage" if channel == self.direct else "general",
            response_url=response_url,
            trigger_id=self.slack.mint_trigger_id(),
            workspace=self.workspace,
        )
        request = slack_requests.signed_slash_command(fields, secret=self.secret)
        async with self.session.post(
            self.events_url, data=request.body, headers=request.headers
        ) as response:
            body = await response.read()
            status = response.status
        if status != 200:
            self._echo(channel, "USLACKBOT", f'`{COMMAND}` failed with the error "http_{status}".')
        elif body.strip():
            await self._answer_ack(response_url, body)
        return {"ok": status == 200, "delivered": "slash_command", "status": status}

    async def _answer_ack(self, response_url: str, body: bytes) -> None:
        """Show a command's immediate answer, as Slack does with the HTTP response body."""
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {"text": body.decode("utf-8", "replace")}
        if isinstance(answer, dict) and (answer.get("text") or answer.get("blocks")):
            answer.setdefault("response_type", "ephemeral")
            async with self.session.post(response_url, json=answer) as response:
                await response.read()

    async def _post(self, request: slack_requests.SignedRequest) -> int:
        async with self.session.post(
            self.events_url, data=request.body, headers=request.headers
        ) as response:
            await response.read()
            return response.status

    def _linked(self, text: str, *, with_handle: bool = False) -> str:
        """Escape the text and turn ``@handle`` of known people into ``<@U…>`` as Slack does."""
        handles = {u.name.lower(): u.id for u in self._people()}
        handles["slotbot"] = self.slack.bot_user_id

        def link(match: re.Match[str]) -> str:
            handle = match.group(1).rstrip(".").lower()
            user_id = handles.get(handle)
            if user_id is None:
                return match.group(0)
            tail = match.group(1)[len(handle) :]
            return (f"<@{user_id}|{handle}>" if with_handle else f"<@{user_id}>") + tail

        return _MENTION.sub(link, _escape(text))

    def _echo(self, channel: str, user: str, text: str) -> None:
        # After every message so far, so it shows where it was typed.
        latest = max(
            (float(m["ts"]) for m in self._channel_messages(channel)),
            default=0.0,
        )
        ts = max(self.clock().timestamp(), latest + 0.000001)
        self.echoes.append(_Echo(channel, f"{ts:.6f}", user, text))

    # --- what the page reads ---

    @property
    def version(self) -> int:
        """Grows whenever anything the page shows may have changed."""
        return len(self.slack.calls()) + self.changes

    def _people(self) -> list[SlackUser]:
        return [self.slack.user(YOU), *(self.slack.user(p.user_id) for p in DEMO_PEOPLE.values())]

    def state(self) -> JSON:
        """People, channels, messages (with the viewer's ephemeral ones) and files."""
        people = [
            {
                "id": u.id,
                "handle": u.name,
                "name": u.real_name,
                "tz": u.tz,
                "place": DEMO_PLACES.get(u.name, ""),
                "you": u.id == YOU,
            }
            for u in self._people()
        ]
        people.append(
            {
                "id": self.slack.bot_user_id,
                "handle": "slotbot",
                "name": "Slotbot",
                "tz": "",
                "place": "",
                "bot": True,
            }
        )
        people.append({"id": "USLACKBOT", "handle": "slackbot", "name": "Slackbot", "bot": True})
        files: dict[str, JSON] = {}
        messages: list[JSON] = []
        for channel in (self.general, self.direct):
            for message in self._channel_messages(channel):
                messages.append(message)
                for file_id in message["files"]:
                    uploaded = self.slack.file(file_id)
                    files[file_id] = {
                        "id": file_id,
                        "name": uploaded.filename,
                        "title": uploaded.title or uploaded.filename,
                        "size": len(uploaded.content or b""),
                        "url": f"/files/{file_id}",
                    }
        return {
            "version": self.version,
            "you": YOU,
            "bot": self.slack.bot_user_id,
            "people": people,
            "channels": [
                {"id": self.general, "name": "general", "kind": "channel"},
                {"id": self.direct, "name": "Slotbot", "kind": "im"},
            ],
            "messages": messages,
            "files": files,
        }

    def _channel_messages(self, channel: str) -> list[JSON]:
        found: list[tuple[Message, bool]] = []
        for top in self.slack.messages_in(channel):
            found.append((top, False))
            found += [(reply, False) for reply in self.slack.replies(channel, top.ts)]
        found += [(m, True) for m in self.slack.ephemeral_messages(channel=channel, user=YOU)]
        shown = [_shown(m, ephemeral) for m, ephemeral in found]
        shown += [
            {
                "channel": e.channel,
                "ts": e.ts,
                "user": e.user,
                "text": e.text,
                "blocks": [],
                "thread_ts": None,
                "ephemeral": True,
                "edited": False,
                "files": [],
                "bot": e.user != YOU,
                "echo": True,
            }
            for e in self.echoes
            if e.channel == channel
        ]
        # On a tie the viewer's own line goes first: it was typed before the answer came.
        return sorted(shown, key=lambda m: (float(m["ts"]), not m.get("echo")))

    async def calendars(self, week: date | None = None) -> JSON:
        """Each person's events in the week (Monday to Sunday in their own zone) holding ``week``.

        Events are cut at local midnights so the page can lay them out as a grid.
        """
        viewer = self.slack.user(YOU)
        anchor = week or self.clock().astimezone(zone_of(viewer.tz)).date()
        monday = anchor - timedelta(days=anchor.weekday())
        calendar = LocalCalendar(self.slotbot.store)
        people = []
        for user in self._people():
            start = wall_to_instant(datetime.combine(monday, time()), user.tz)
            end = wall_to_instant(datetime.combine(monday + timedelta(days=7), time()), user.tz)
            seeded = _seeded_ids(user.name, monday)
            stored = await calendar.events_for(DEMO_TEAM, user.id, start, end)
            hours = (await self.slotbot.store.get_settings(DEMO_TEAM, user.id)).working_hours
            events = []
            for item in stored:
                event = item.event
                events.append(
                    {
                        "title": event.summary,
                        "kind": "busy" if event.event_id in seeded else "booking",
                        "start": event.start.isoformat(),
                        "end": event.end.isoformat(),
                        "with": [a.name or a.email or "" for a in event.attendees],
                        "pieces": _pieces(event.start, event.end, monday, user.tz),
                    }
                )
            people.append(
                {
                    "id": user.id,
                    "name": user.real_name,
                    "handle": user.name,
                    "tz": user.tz,
                    "place": DEMO_PLACES.get(user.name, ""),
                    "you": user.id == YOU,
                    "working": [
                        [[_minutes(a), _minutes(b) or 24 * 60] for a, b in day]
                        for day in hours.days
                    ],
                    "events": events,
                }
            )
        days = [(monday + timedelta(days=i)).isoformat() for i in range(7)]
        return {"week": monday.isoformat(), "days": days, "people": people}

    # --- HTTP ---

    def web_app(self) -> web.Application:
        """The page, its static files and its JSON API."""
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_static("/static/", STATIC, show_index=False)
        app.router.add_get("/api/state", self._get_state)
        app.router.add_post("/api/send", self._post_send)
        app.router.add_post("/api/click", self._post_click)
        app.router.add_get("/api/calendars", self._get_calendars)
        app.router.add_get("/files/{file_id}", self._get_file)
        return app

    async def _page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _get_state(self, request: web.Request) -> web.Response:
        zone = request.query.get("tz")
        if zone:
            self.set_viewer_zone(zone)
        since = request.query.get("since", "")
        if since.isdigit() and int(since) == self.version:
            return web.json_response({"version": self.version, "unchanged": True})
        return web.json_response(self.state())

    async def _post_send(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        channel, text = data.get("channel"), data.get("text")
        if not isinstance(channel, str) or not isinstance(text, str) or len(text) > 4000:
            raise web.HTTPBadRequest(text="send {channel, text}")
        return web.json_response(await self.send(channel, text))

    async def _post_click(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        fields = [data.get(k) for k in ("channel", "ts", "action_id", "value")]
        if not all(isinstance(f, str) for f in fields[:3]) or not isinstance(fields[3], str | None):
            raise web.HTTPBadRequest(text="send {channel, ts, action_id, value}")
        channel, ts, action_id, value = (str(f or "") for f in fields)
        return web.json_response(await self.click(channel, ts, action_id, value))

    async def _get_calendars(self, request: web.Request) -> web.Response:
        week = request.query.get("week", "")
        anchor = None
        if week:
            if not _ISO_DATE.match(week):
                raise web.HTTPBadRequest(text="week must be a date like 2026-11-30")
            try:
                anchor = date.fromisoformat(week)
            except ValueError:
                raise web.HTTPBadRequest(text="week must be a date like 2026-11-30") from None
        return web.json_response(await self.calendars(anchor))

    async def _get_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        try:
            uploaded = self.slack.file(file_id)
        except KeyError:
            raise web.HTTPNotFound() from None
        if uploaded.content is None or not uploaded.completed:
            raise web.HTTPNotFound()
        name = re.sub(r"[^\w.-]", "_", uploaded.filename)
        kind = "text/calendar" if name.endswith(".ics") else "application/octet-stream"
        return web.Response(
            body=uploaded.content,
            content_type=kind,
            charset="utf-8" if kind == "text/calendar" else None,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def close(self) -> None:
        """Stop Slotbot (which closes its store), the client session and the emulator."""
        await self.session.close()
        await self.slotbot_runner.cleanup()
        await self.slack.close()


def _find_button(blocks: list[JSON], action_id: str, value: str) -> JSON | None:
    for block in blocks:
        elements = [block.get("accessory"), *(block.get("elements") or [])]
        for element in elements:
            if (
                isinstance(element, dict)
                and element.get("type") == "button"
                and element.get("action_id") == action_id
                and str(element.get("value") or "") == value
            ):
                return {**element, "block_id": block.get("block_id")}
    return None


def _message_json(message: Message) -> JSON:
    """The message as Slack puts it in an interaction payload."""
    data: JSON = {
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


def _shown(message: Message, ephemeral: bool) -> JSON:
    return {
        "channel": message.channel,
        "ts": message.ts,
        "user": message.user,
        "text": message.text,
        "blocks": message.blocks,
        "thread_ts": message.thread_ts if message.thread_ts != message.ts else None,
        "ephemeral": ephemeral,
        "edited": message.edited,
        "files": list(message.files),
        "bot": message.bot_id is not None,
    }


def _seeded_ids(handle: str, monday: date) -> set[str]:
    """The event ids ``seed_demo_calendars`` gives ``handle``'s meetings around this week."""
    days = (monday + timedelta(days=offset) for offset in range(-1, 8))
    return {event_id_for(f"demo:{handle}:{day.isoformat()}") for day in days}


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def _pieces(start: datetime, end: datetime, monday: date, zone: str) -> list[JSON]:
    """The event cut at local midnights: ``{day (0 = Monday), from, to}`` in minutes."""
    tz = zone_of(zone)
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    pieces = []
    day = local_start.date()
    while day <= local_end.date():
        index = (day - monday).days
        begin = _minutes(local_start.time()) if day == local_start.date() else 0
        finish = _minutes(local_end.time()) if day == local_end.date() else 24 * 60
        if 0 <= index < 7 and finish > begin:
            pieces.append({"day": index, "from": begin, "to": finish})
        day += timedelta(days=1)
    return pieces


async def _json_body(request: web.Request) -> JSON:
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="send JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="send a JSON object")
    return data


async def open_playground(settings: Settings, *, clock: Callable[[], datetime]) -> Playground:
    """Start the emulator with the demo people, Slotbot on SQLite behind its HTTP endpoint,
    and seed the demo calendars. ``settings`` only lend the zone, data dir and defaults."""
    slack = SlackEmulator(
        users=demo_users(settings.default_time_zone),
        team_id=DEMO_TEAM,
        team_domain="slotbot-playground",
        clock=lambda: clock().timestamp(),
        deliver_scheduled_every=1.0,  # reminders arrive on the page when their time comes
    )
    await slack.start()
    try:
        secret = secrets.token_hex(16)
        local = replace(
            settings,
            slack_api_url=slack.url,
            slack_bot_token=slack.token,
            slack_signing_secret=secret,
            slack_app_token=None,
            # Its own file: the demo workspace never mixes with a real install's data.
            database_url=f"sqlite:///{settings.data_dir / 'playground.db'}",
            google_service_account_file=None,
            google_delegation=False,
            google_calendar_id=None,
            google_oauth_client_file=None,
        )
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        slotbot = await open_slotbot(local, clock=clock)
        await seed_demo_calendars(LocalCalendar(slotbot.store), clock())
        runner = web.AppRunner(slotbot.web_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
    except BaseException:
        await slack.close()
        raise
    host, port = runner.addresses[0][:2]
    general = slack.add_channel("general").id
    direct = slack.open_im(YOU).id
    workspace = slack_requests.Workspace(
        team_id=DEMO_TEAM,
        team_domain=slack.team_domain,
        api_app_id=slack.app_id,
        bot_user_id=slack.bot_user_id,
    )
    return Playground(
        slack=slack,
        slotbot=slotbot,
        events_url=f"http://{host}:{port}/slack/events",
        secret=secret,
        clock=clock,
        general=general,
        direct=direct,
        session=aiohttp.ClientSession(),
        slotbot_runner=runner,
        workspace=workspace,
    )


async def run_playground(
    settings: Settings,
    *,
    host: str,
    port: int,
    clock: Callable[[], datetime],
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the playground at ``http://host:port/`` until cancelled; ``ready`` gets the URL."""
    playground = await open_playground(settings, clock=clock)
    runner = web.AppRunner(playground.web_app(), access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        if ready is not None:
            ready(f"http://{bound_host}:{bound_port}/")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await playground.close()
