"""Slack-side latency: ack of /schedule and of a click at 1 and 50 concurrent requests, next to
a bare Bolt app answering the same requests; click → .ics uploaded; start-up to /healthz.

Run: ``.venv/bin/python bench/slack_bench.py [acks] [processes] [ics] [startup]`` (default: all).
Everything talks over loopback HTTP: signed requests into the app, the real slack_sdk client out
to the Slack emulator (zero latency).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slack_bolt.async_app import AsyncApp  # noqa: E402
from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402

from bench.bare_bolt_app import running  # noqa: E402
from handlers.http import SlackSignature, build_web_app  # noqa: E402
from playground import slack_requests  # noqa: E402
from playground.slack_api import SlackEmulator, SlackUser  # noqa: E402
from tests.scenarios.harness import (  # noqa: E402
    ANA,
    BEN,
    SECRET,
    Harness,
    offer_from_ephemeral,
    start_harness,
    stop_harness,
)

ROUNDS = 5
PEOPLE = itertools.count(1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed_posts(
    session: aiohttp.ClientSession, url: str, requests: list[slack_requests.SignedRequest]
) -> list[float]:
    # Neither app pays for the other's garbage (or the bench's): a full collection on this
    # shared loop would stall every request in flight, whichever app they are for.
    gc.collect()

    async def one(request: slack_requests.SignedRequest) -> float:
        started = time.perf_counter()
        async with session.post(url, data=request.body, headers=request.headers) as response:
            await response.read()
            assert response.status == 200, response.status
        return (time.perf_counter() - started) * 1000

    return list(await asyncio.gather(*(one(r) for r in requests)))


async def timed_posts_apart(url: str, requests: list[slack_requests.SignedRequest]) -> list[float]:
    """``timed_posts`` from a process of its own (``bench/fire.py``), whose loop does nothing
    but send and time: the emulator's work cannot delay the clock."""
    batch = [{"body": r.body.decode(), "headers": r.headers} for r in requests]
    job = json.dumps({"url": url, "requests": batch})
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "fire.py"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate(job.encode())
    if child.returncode:
        raise RuntimeError(f"bench/fire.py failed ({child.returncode})")
    return [float(ms) for ms in json.loads(out)]


async def warm_up(harness: Harness) -> None:
    """One request first, so connection set-up and auth.test are not counted."""
    answered = len(harness.slack.calls("response_url"))
    await harness.command("focus time next week")
    await harness.slack.wait_for("response_url", count=answered + 1, within=30)


def command_requests(harness: Harness, n: int) -> list[slack_requests.SignedRequest]:
    return [
        slack_requests.signed_slash_command(
            slack_requests.slash_command(
                f"sync with <@{BEN.id}> next week",
                user_id=ANA.id,
                channel_id=harness.channel,
                response_url=harness.slack.mint_response_url(channel=harness.channel, user=ANA.id),
                channel_name="general",
            ),
            secret=SECRET,
        )
        for _ in range(n)
    ]


async def click_requests(harness: Harness, n: int) -> list[slack_requests.SignedRequest]:
    """``n`` clicks by ``n`` different people, each on their own offer, so each one books."""
    requests = []
    for _ in range(n):
        person = harness.slack.add_user(
            SlackUser(id=f"U0BENCH{next(PEOPLE):04d}", name="bench", tz="Europe/Berlin")
        )
        answered = len(harness.slack.calls("response_url"))
        await harness.command("focus time in the next 2 weeks", user=person)
        await harness.slack.wait_for("response_url", count=answered + 1, within=30)
        offer = offer_from_ephemeral(harness, person)
        button = offer.buttons("book_slot")[0]
        payload = slack_requests.block_actions(
            [slack_requests.button_action(button["action_id"], button["value"])],
            user_id=person.id,
            channel_id=offer.channel,
            response_url=harness.slack.mint_response_url(
                channel=offer.channel, user=person.id, message_ts=offer.message.ts
            ),
            message_ts=offer.message.ts,
        )
        requests.append(slack_requests.signed_interaction(payload, secret=SECRET))
    return requests


async def bare_bolt(emulator_url: str, token: str) -> TestServer:
    """The baseline: a Bolt app that only acks, behind the same HTTP edge."""
    app = AsyncApp(
        client=AsyncWebClient(token=token, base_url=emulator_url),
        signing_secret=SECRET,
        request_verification_enabled=False,
    )

    @app.command("/schedule")
    async def command(ack: Any) -> None:
        await ack()

    @app.action({"action_id": __import__("re").compile("^book_slot")})
    async def click(ack: Any) -> None:
        await ack()

    server = TestServer(build_web_app(app, SlackSignature(SECRET)), host="127.0.0.1")
    await server.start_server()
    return server


async def measure_acks(tmp: Path) -> None:
    print("ack latency (ms): Slotbot vs a bare Bolt app, same HTTP edge, same machine")
    print(
        f"{'request':<10}{'concurrency':>12}{'slotbot p50':>13}{'p99':>8}{'bare p50':>10}"
        f"{'p99':>8}{'ratio p99':>11}"
    )
    for concurrency in (1, 50):
        for kind in ("command", "click"):
            ours: list[float] = []
            bare: list[float] = []
            for round_ in range(ROUNDS):
                harness = await start_harness(tmp / f"{kind}-{concurrency}-{round_}")
                baseline = await bare_bolt(harness.slack.url, harness.slack.token)
                try:
                    if kind == "command":
                        batch = command_requests(harness, concurrency)
                    else:
                        batch = await click_requests(harness, concurrency)
                    bare_batch = (
                        command_requests(harness, concurrency) if kind == "command" else batch
                    )
                    await warm_up(harness)
                    # Every command ends in a response_url post, every click in an upload.
                    done = "response_url" if kind == "command" else "files.completeUploadExternal"
                    before = len(harness.slack.calls(done))
                    ours += await timed_posts(harness.session, harness.url, batch)
                    bare_url = str(baseline.make_url("/slack/events"))
                    await timed_posts(harness.session, bare_url, command_requests(harness, 1))
                    # Let all the work finish before the baseline runs on the same machine.
                    await harness.slack.wait_for(done, count=before + concurrency, within=120)
                    await harness.settle(quiet=0.1, within=120)
                    bare += await timed_posts(harness.session, bare_url, bare_batch)
                finally:
                    await baseline.close()
                    await stop_harness(harness)
            p99_ours, p99_bare = percentile(ours, 0.99), percentile(bare, 0.99)
            print(
                f"{kind:<10}{concurrency:>12}{statistics.median(ours):>13.2f}{p99_ours:>8.2f}"
                f"{statistics.median(bare):>10.2f}{p99_bare:>8.2f}{p99_ours / p99_bare:>10.2f}x"
            )


async def measure_acks_in_processes(tmp: Path) -> None:
    """As deployed: Slotbot as `slotbot serve` and the bare app each in a process of their
    own, Slack (the emulator) in this one, and the measuring client in a fourth."""
    from tests.scenarios.harness import ANA as REQUESTER
    from tests.scenarios.harness import CARA, EVE, click_request, command_request
    from tests.scenarios.processes import ServeProcess

    print("\nack latency (ms), each app in its own process (as deployed)")
    print(
        f"{'request':<10}{'concurrency':>12}{'slotbot p50':>13}{'p99':>8}{'bare p50':>10}"
        f"{'p99':>8}{'ratio p99':>11}"
    )
    people = [REQUESTER, BEN, CARA, EVE]
    for concurrency in (1, 50):
        for kind in ("command", "click"):
            ours: list[float] = []
            bare: list[float] = []
            for round_ in range(ROUNDS):
                work = tmp / f"proc-{kind}-{concurrency}-{round_}"
                work.mkdir(parents=True)
                slack = SlackEmulator(users=people)
                await slack.start()
                channel = slack.add_channel("general").id
                serve = ServeProcess(
                    {
                        "SLACK_BOT_TOKEN": slack.token,
                        "SLACK_SIGNING_SECRET": SECRET,
                        "SLACK_API_URL": slack.url,
                        "DATABASE_URL": f"sqlite:///{work / 'slotbot.db'}",
                        "SLOTBOT_DATA_DIR": str(work),
                        "LOG_LEVEL": "WARNING",
                    },
                    work / "serve.log",
                )
                try:
                    await serve.start()
                    async with (
                        running(SECRET, slack.url, slack.token) as (_, bare_url),
                        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
                    ):
                        warm = [
                            command_request(slack, "focus time next week", REQUESTER, channel)[0]
                        ]
                        await timed_posts(session, serve.url, warm)
                        await timed_posts(session, bare_url, warm)
                        await slack.wait_for("response_url", count=1, within=30)
                        if kind == "command":
                            batch = [
                                command_request(
                                    slack, f"sync with <@{BEN.id}> next week", REQUESTER, channel
                                )[0]
                                for _ in range(concurrency)
                            ]
                        else:
                            batch = []
                            for n in range(concurrency):
                                person = slack.add_user(
                                    SlackUser(id=f"U0PROC{n:04d}", name="p", tz="Europe/Berlin")
                                )
                                answered = len(slack.calls("response_url"))
                                await timed_posts(
                                    session,
                                    serve.url,
                                    [
                                        command_request(
                                            slack, "focus time in the next 2 weeks", person, channel
                                        )[0]
                                    ],
                                )
                                await slack.wait_for("response_url", count=answered + 1, within=30)
                                offer = offer_from_ephemeral_of(slack, person)
                                batch.append(
                                    click_request(
                                        slack, offer, offer.buttons("book_slot")[0], person
                                    )
                                )
                        ours += await timed_posts_apart(serve.url, batch)
                        await asyncio.sleep(3)  # let the work finish before the baseline runs
                        bare += await timed_posts_apart(bare_url, batch)
                finally:
                    await serve.stop()
                    await slack.close()
            p99_ours, p99_bare = percentile(ours, 0.99), percentile(bare, 0.99)
            print(
                f"{kind:<10}{concurrency:>12}{statistics.median(ours):>13.2f}{p99_ours:>8.2f}"
                f"{statistics.median(bare):>10.2f}{p99_bare:>8.2f}{p99_ours / p99_bare:>10.2f}x"
            )


def offer_from_ephemeral_of(slack: SlackEmulator, person: SlackUser) -> Any:
    from tests.scenarios.harness import Offer

    message = slack.ephemeral_messages(user=person.id)[-1]
    return Offer(message.blocks, message.channel, message, None)


async def measure_click_to_ics(tmp: Path) -> None:
    samples = []
    harness = await start_harness(tmp / "ics")
    try:
        for _ in range(30):
            [request] = await click_requests(harness, 1)
            uploads = len(harness.slack.calls("files.completeUploadExternal"))
            started = time.perf_counter()
            await harness.post(request)
            await harness.slack.wait_for("files.completeUploadExternal", count=uploads + 1)
            samples.append((time.perf_counter() - started) * 1000)
            await harness.settle(quiet=0.02)
    finally:
        await stop_harness(harness)
    print(
        f"\nclick → .ics uploaded (emulator at 0 ms): p50 {statistics.median(samples):.1f} ms, "
        f"p99 {percentile(samples, 0.99):.1f} ms, max {max(samples):.1f} ms (target ≤ 50 ms)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure_startup(tmp: Path) -> None:
    samples = []
    for round_ in range(5):
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if "PROXY" not in k.upper()},
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "DATABASE_URL": f"sqlite:///{tmp / f'startup-{round_}.db'}",
            "HOST": "127.0.0.1",
            "PORT": str(port),
        }
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: ASYNC220 - the child must start now; we poll it
            [str(ROOT / ".venv/bin/slotbot"), "serve"],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            async with aiohttp.ClientSession() as session:
                while True:
                    try:
                        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        pass
                    if time.perf_counter() - started > 30:
                        raise RuntimeError("slotbot serve did not become healthy in 30 s")
                    await asyncio.sleep(0.01)
            samples.append(time.perf_counter() - started)
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(
        f"start-up to /healthz 200 (`slotbot serve`, fresh SQLite): median "
        f"{statistics.median(samples):.2f} s, max {max(samples):.2f} s (target ≤ 1.5 s)"
    )


async def main() -> None:
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {ROUNDS} rounds\n")
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        chosen = set(sys.argv[1:]) or set(PARTS)
        for name, part in PARTS.items():
            if name in chosen:
                await part(tmp)


#: ``python bench/slack_bench.py [part ...]`` runs only the parts named (default: all).
PARTS = {
    "acks": measure_acks,
    "processes": measure_acks_in_processes,
    "ics": measure_click_to_ics,
    "startup": measure_startup,
}


if __name__ == "__main__":
    asyncio.run(main())
