"""The measuring client, in a process of its own: fires signed requests at once and prints each
one's latency. Used by ``bench/slack_bench.py`` so that neither the Slack emulator's work nor the
bench's bookkeeping shares an event loop with the clock.

Input (stdin): JSON ``{"url": ..., "requests": [{"body": ..., "headers": {...}}, ...]}``.
Output (stdout): a JSON list of milliseconds, in the order of the requests.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp


async def fire(url: str, requests: list[dict[str, Any]]) -> list[float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(request: dict[str, Any]) -> float:
            started = time.perf_counter()
            async with session.post(
                url, data=request["body"].encode(), headers=request["headers"]
            ) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
            return (time.perf_counter() - started) * 1000

        return list(await asyncio.gather(*(one(r) for r in requests)))


def main() -> None:
    job = json.load(sys.stdin)
    print(json.dumps(asyncio.run(fire(job["url"], job["requests"]))))


if __name__ == "__main__":
    main()
