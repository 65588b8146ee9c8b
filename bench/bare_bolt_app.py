"""The baseline for ack latency: a Bolt app that only acks, behind Slotbot's own HTTP edge.

Run as a process (``running`` below, used by ``bench/slack_bench.py`` and
``bench/floor_bench.py``): ``python bench/bare_bolt_app.py PORT SECRET API_URL TOKEN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from handlers.http import SlackSignature, build_web_app


def main() -> None:
    port, secret, api_url, token = sys.argv[1:5]
    app = AsyncApp(
        client=AsyncWebClient(token=token, base_url=api_url),
        signing_secret=secret,
        request_verification_enabled=False,
    )

    @app.command("/schedule")
    async def command(ack: Any) -> None:
        await ack()

    @app.action(re.compile("^book_slot"))
    async def click(ack: Any) -> None:
        await ack()

    web.run_app(build_web_app(app, SlackSignature(secret)), host="127.0.0.1", port=int(port))


@contextlib.asynccontextmanager
async def running(
    secret: str, api_url: str, token: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """This app in a process of its own on a free port, answering: the process and the URL
    Slack's requests go to. Stopped on leaving."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        str(port),
        secret,
        api_url,
        token,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("the bare Bolt app never answered")
        yield process, f"http://127.0.0.1:{port}/slack/events"
    finally:
        process.terminate()
        await process.wait()


if __name__ == "__main__":
    main()
