"""The ``slotbot`` command: read settings, pick a mode, start. ``python -m bot`` is the same."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from bot.config import ConfigError, Settings
from bot.errors import RequestError
from bot.logs import configure_logging
from bot.models import wall_to_instant

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.app import Slotbot

HELP_NO_CONFIG = """\
Slotbot has no Slack credentials yet, so it runs the local playground: a page that behaves like
Slack, with demo colleagues on a local calendar (SQLite), answered by the same handlers.
(`slotbot try` is the same in the terminal.)

To run it in your workspace, create the app from manifest.yml (https://api.slack.com/apps →
Create New App → From an app manifest), install it, and set either:

  Socket Mode (no public URL needed):  SLACK_BOT_TOKEN=xoxb-…  SLACK_APP_TOKEN=xapp-…
  HTTP mode (behind a public URL):     SLACK_BOT_TOKEN=xoxb-…  SLACK_SIGNING_SECRET=…

in the environment or in a .env file, then run `slotbot` again.
"""
#: The playground acts as its user, so it only ever listens on this machine.
PLAYGROUND_HOST = "127.0.0.1"


def parse_line(line: str, now: datetime | None = None) -> dict[str, Any]:
    """Answer one ``slotbot parse`` input line (``{"text", "now", "tz"}``) with the output shape."""
    from bot.scheduling.parsing import parse_request  # imported here: dateparser loads slowly

    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"error": f"That line is not JSON ({exc.msg}). Send {{'text', 'now', 'tz'}}."}
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return {
            "error": 'Send an object with a "text" string, e.g. {"text": "call tomorrow at 3"}.'
        }
    tz = data.get("tz") or "UTC"
    if not isinstance(tz, str):
        return {"error": '"tz" must be an IANA zone name like "Europe/Berlin".'}
    try:
        reference = _read_now(data.get("now"), tz, now)
        return parse_request(data["text"], reference, tz).to_json()
    except RequestError as exc:
        return {"error": exc.user_message}


def _read_now(value: object, tz: str, default: datetime | None) -> datetime:
    if value is None:
        from bot.models import zone_of

        try:
            return (default or datetime.now(tz=zone_of(tz))).astimezone(zone_of(tz))
        except (ValueError, KeyError) as exc:
            raise RequestError(f"Unknown time zone {tz!r}; use an IANA name.") from exc
    if not isinstance(value, str):
        raise RequestError('"now" must be an ISO 8601 date-time like "2026-11-26T14:00:00+01:00".')
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise RequestError(f'"now" is not an ISO 8601 date-time: {value[:40]!r}.') from exc
    if moment.tzinfo is None:
        try:
            moment = wall_to_instant(moment, tz)
        except (ValueError, KeyError) as exc:
            raise RequestError(f"Unknown time zone {tz!r}; use an IANA name.") from exc
    return moment


def _utc_now() -> datetime:
    return datetime.now(UTC)


def run_parse(stdin: IO[str], stdout: IO[str]) -> int:
    """Stream: answer each JSON line as soon as it arrives, one JSON line out per line in."""
    while True:
        line = stdin.readline()
        if not line:
            return 0
        if not line.strip():
            continue
        stdout.write(json.dumps(parse_line(line), ensure_ascii=False) + "\n")
        stdout.flush()


async def _serve(settings: Settings) -> None:
    """HTTP mode: Slack posts signed requests to ``/slack/events``; ``/healthz`` for probes."""
    from aiohttp import web

    from bot.app import open_slotbot

    slotbot = await open_slotbot(settings)
    runner = web.AppRunner(slotbot.web_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    _settle_heap()
    logging.getLogger("slotbot").info(
        "Slotbot is listening on http://%s:%d/slack/events", settings.host, settings.port
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _settle_heap() -> None:
    """What start-up loaded lives as long as the process: collect once, then keep it out of
    the collector's sight, so that a full collection in the middle of a burst of requests (a
    pause of tens of milliseconds before every ack queued behind it) walks only what the
    requests made."""
    gc.collect()
    gc.freeze()


def socket_handler(slotbot: Slotbot) -> AsyncSocketModeHandler:
    """Socket Mode's connection for Slotbot's Bolt app, with the app-level token.

    ``apps.connections.open`` goes through the app's own Web API client, so it reaches
    ``SLACK_API_URL`` (a test emulator, a proxy) rather than a hard-coded slack.com.
    """
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    app_token = slotbot.settings.slack_app_token
    if not app_token:
        raise ValueError("Socket Mode needs SLACK_APP_TOKEN (an app-level xapp- token)")
    return AsyncSocketModeHandler(slotbot.bolt, app_token, web_client=slotbot.bolt.client)


async def _socket(settings: Settings) -> None:
    """Socket Mode: Slotbot opens the connection to Slack; no public URL needed."""
    from aiohttp import web

    from bot.app import open_slotbot

    slotbot = await open_slotbot(settings)
    slotbot.start_reconcile()  # stopped by slotbot.close()
    side: web.AppRunner | None = None
    try:
        if slotbot.accounts is not None:
            # People connecting their Google account come back through a browser: serve those
            # routes (and /healthz) beside the socket; Slack's own requests stay on the socket.
            side = web.AppRunner(slotbot.web_app(slack_events=False), access_log=None)
            await side.setup()
            await web.TCPSite(side, settings.host, settings.port).start()
        handler = socket_handler(slotbot)
        try:
            _settle_heap()
            await handler.start_async()  # type: ignore[no-untyped-call]  # untyped in slack_bolt
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
    finally:
        if side is not None:
            await side.cleanup()  # closes the store through the app's cleanup
        else:
            await slotbot.close()


def _missing(settings: Settings, mode: str) -> str | None:
    needs: tuple[str, ...] = {
        "serve": ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"),
        "socket": ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"),
    }[mode]
    if mode == "serve" and settings.slack_oauth:
        # Installed in many workspaces: tokens come from the installations, not the environment.
        needs = ("SLACK_SIGNING_SECRET",)
    values = {
        "SLACK_BOT_TOKEN": settings.slack_bot_token,
        "SLACK_SIGNING_SECRET": settings.slack_signing_secret,
        "SLACK_APP_TOKEN": settings.slack_app_token,
    }
    absent = [name for name in needs if not values[name]]
    return f"slotbot {mode} needs {' and '.join(absent)} (see README.md)" if absent else None


def choose_mode(command: str | None, settings: Settings) -> str:
    """The mode to run: the command given, else what the Slack settings allow, else playground."""
    if command:
        return command
    return {"socket": "socket", "http": "serve"}.get(settings.mode, "playground")


async def _playground(settings: Settings) -> int:
    """The local playground at http://127.0.0.1:PORT until Ctrl+C."""
    from playground.server import run_playground

    def ready(url: str) -> None:
        print(f"Slotbot playground: open {url} in your browser (Ctrl+C stops it).", flush=True)

    try:
        await run_playground(
            settings, host=PLAYGROUND_HOST, port=settings.port, clock=_utc_now, ready=ready
        )
    except OSError as exc:
        print(
            f"slotbot: cannot serve on port {settings.port} ({exc.strerror}); "
            "set PORT to a free one",
            file=sys.stderr,
        )
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``slotbot`` console script."""
    parser = argparse.ArgumentParser(prog="slotbot", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("parse", help="read JSON lines {text, now, tz}; write parsed requests")
    commands.add_parser("serve", help="HTTP mode: POST /slack/events, GET /healthz")
    commands.add_parser("socket", help="Socket Mode, with SLACK_APP_TOKEN")
    commands.add_parser("try", help="a local conversation with demo colleagues, no Slack needed")
    commands.add_parser("playground", help="the local playground in your browser, no Slack needed")
    args = parser.parse_args(argv)

    if args.command == "parse":
        return run_parse(sys.stdin, sys.stdout)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"slotbot: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    mode = choose_mode(args.command, settings)
    if mode == "try":
        from bot.console import run_console

        return asyncio.run(run_console(settings, sys.stdin, sys.stdout, clock=_utc_now))
    if mode == "playground":
        if args.command is None:
            print(HELP_NO_CONFIG)
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(_playground(settings))
        return 0
    problem = _missing(settings, mode)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings) if mode == "serve" else _socket(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
