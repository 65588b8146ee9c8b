"""The baseline for ack latency: a Bolt app that only acks, behind Slotbot's own HTTP edge.

Run as a process by ``bench/slack_bench.py``: ``python bench/bare_bolt_app.py PORT SECRET API_URL
TOKEN``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

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


if __name__ == "__main__":
    main()
