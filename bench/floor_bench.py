"""The floor under bookings per second: what the parts every booking is made of cost on this
machine, each measured alone, in CPU time of every process involved.

Run: ``.venv/bin/python bench/floor_bench.py [--n 2000]``.

The parts, each with the library Slotbot uses and nothing of Slotbot's own logic:

- a click into a Bolt app that only acks it (``bench/bare_bolt_app.py``: Slotbot's HTTP edge,
  signature checked), 100 at a time;
- a Web API call through ``slack_sdk``'s ``AsyncWebClient`` on one shared aiohttp session (as
  ``slotbot serve`` makes them), to the loopback Slack emulator, 4 at a time (the work slots);
- an SQL statement on PostgreSQL through ``bot/direct.py`` (pool checkout included): a one-row
  read, and a one-row update in autocommit (its commit), 4 at a time.

A booking costs at least one click, seven Web API calls (three for the upload, one to answer
the click, three scheduled messages) and 14 statements (6 reads, 8 writes). Their sum, the
floor, is set beside the budget ≥ 200 bookings/s leaves on two cores: 10 ms of CPU per booking.
Needs PostgreSQL (``SLOTBOT_TEST_POSTGRES_URL``, default postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bare_bolt_app import running  # noqa: E402
from bench.instances_bench import cpu_seconds, fresh_database, postgres_pids  # noqa: E402
from bot import direct  # noqa: E402
from bot.store import Store  # noqa: E402
from playground import slack_requests  # noqa: E402
from playground.slack_api import SlackEmulator, SlackUser  # noqa: E402

SECRET = "floor-bench-secret"
#: What one booking is made of (see the module's docstring).
CALLS_PER_BOOKING = 7
READS_PER_BOOKING = 6
WRITES_PER_BOOKING = 8
BUDGET_MS = 2 * 1000 / 200  # two cores at 200 bookings per second

Row = tuple[str, float, float]  # what, caller's CPU ms per unit, callee's CPU ms per unit


async def clicks_into_bare_bolt(n: int) -> Row:
    """Signed clicks into the ack-only Bolt app, 100 at a time: its CPU and the sender's."""
    person = SlackUser(id="U0FLOOR01", name="floor", tz="Europe/Berlin")
    async with (
        SlackEmulator(users=(person,)) as slack,
        running(SECRET, slack.url, slack.token) as (app, url),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):

        async def click(k: int) -> None:
            action = slack_requests.button_action(f"book_slot_{k % 6}", f"o-{k}:{k % 6}")
            payload = slack_requests.block_actions(
                [action],
                user_id=person.id,
                channel_id="C0FLOOR",
                response_url=slack.mint_response_url(channel="C0FLOOR", user=person.id),
                message_ts="1700000000.000100",
            )
            request = slack_requests.signed_interaction(payload, secret=SECRET)
            async with session.post(url, data=request.body, headers=request.headers) as response:
                await response.read()
                assert response.status == 200, response.status

        await asyncio.gather(*(click(k) for k in range(100)))  # warm
        caller, callee = time.process_time(), cpu_seconds(app.pid)
        for start in range(0, n, 100):
            await asyncio.gather(*(click(k) for k in range(start, start + 100)))
        caller, callee = time.process_time() - caller, cpu_seconds(app.pid) - callee
    return ("click into a Bolt app that only acks (sender / app)", *_per(n, caller, callee))


#: Web API calls from a process of their own, so that the caller's and the emulator's CPU
#: are told apart; it prints the CPU its calls took.
_CALLER = textwrap.dedent(
    """
    import asyncio, sys, time
    import aiohttp
    from slack_sdk.web.async_client import AsyncWebClient

    async def main(url, token, method, n):
        async with aiohttp.ClientSession() as session:
            client = AsyncWebClient(token=token, base_url=url, session=session)
            channel = (await client.conversations_open(users="U0FLOOR01"))["channel"]["id"]

            async def call():
                if method == "files.getUploadURLExternal":
                    await client.files_getUploadURLExternal(filename="meeting.ics", length=900)
                else:
                    await client.chat_scheduleMessage(
                        channel=channel, text="Reminder: Design review at 10:00",
                        post_at=int(time.time()) + 3600,
                    )

            async def worker(count):
                for _ in range(count):
                    await call()

            await asyncio.gather(*(worker(25) for _ in range(4)))  # warm
            started = time.process_time()
            await asyncio.gather(*(worker(n // 4) for _ in range(4)))
            print(time.process_time() - started)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    """
)


async def web_api_calls(method: str, n: int) -> Row:
    person = SlackUser(id="U0FLOOR01", name="floor", tz="Europe/Berlin")
    async with SlackEmulator(users=(person,)) as slack:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CALLER,
            slack.url,
            slack.token,
            method,
            str(n),
            stdout=asyncio.subprocess.PIPE,
        )
        # This process only serves the emulator meanwhile: its CPU is the emulator's (the
        # caller's start-up and warm-up calls included, 100 of them: counted in below).
        callee = time.process_time()
        output, _ = await process.communicate()
        callee = time.process_time() - callee
        caller = float(output.decode().strip())
    return (f"Web API call {method} (caller / emulator)", *_per(n, caller, callee, warm=100))


async def statements(n: int) -> list[Row]:
    """One-row reads and one-row autocommit updates on PostgreSQL, 4 at a time, on a
    connection pool set up as the store's."""
    async with fresh_database() as url:
        store = await Store.open(url)
        try:
            return await _statements(store, n)
        finally:
            await store.close()


async def _statements(store: Store, n: int) -> list[Row]:
    engine = store.engine
    async with direct.connect(engine, transaction=False) as conn:
        await conn.execute(sa.text("CREATE TABLE floor (k int PRIMARY KEY, v int)"))
        await conn.execute(sa.text("INSERT INTO floor SELECT g, 0 FROM generate_series(0, 99) g"))
    rows: list[Row] = []
    for label, statement in (
        ("read", sa.text("SELECT k, v FROM floor WHERE k = :k")),
        ("write", sa.text("UPDATE floor SET v = v + 1 WHERE k = :k")),
    ):

        async def worker(first: int, count: int, statement: sa.TextClause = statement) -> None:
            for k in range(first, first + count):
                async with direct.connect(engine, transaction=False) as conn:
                    await conn.execute(statement, {"k": k % 100})

        await asyncio.gather(*(worker(w * 25, 25) for w in range(4)))  # warm
        caller = time.process_time()
        callee = sum(cpu_seconds(pid) for pid in postgres_pids())
        await asyncio.gather(*(worker(w * (n // 4), n // 4) for w in range(4)))
        caller = time.process_time() - caller
        callee = sum(cpu_seconds(pid) for pid in postgres_pids()) - callee
        what = f"SQL one-row {label}, autocommit (Slotbot / PostgreSQL)"
        rows.append((what, *_per(n, caller, callee)))
    return rows


def _per(n: int, caller: float, callee: float, *, warm: int = 0) -> tuple[float, float]:
    return 1000 * caller / n, 1000 * callee / (n + warm)


async def main(n: int) -> None:
    click = await clicks_into_bare_bolt(n)
    upload = await web_api_calls("files.getUploadURLExternal", n)
    scheduled = await web_api_calls("chat.scheduleMessage", n)
    read, write = await statements(n)
    print(f"each part measured alone, {n} times; CPU ms per unit")
    print(f"{'part':<66}{'caller':>8}{'callee':>8}{'total':>8}")
    for what, caller, callee in (click, upload, scheduled, read, write):
        print(f"{what:<66}{caller:>8.3f}{callee:>8.3f}{caller + callee:>8.3f}")
    call = (upload[1] + scheduled[1]) / 2, (upload[2] + scheduled[2]) / 2
    serve = click[2] + CALLS_PER_BOOKING * call[0]
    serve += READS_PER_BOOKING * read[1] + WRITES_PER_BOOKING * write[1]
    floor = {
        "Slotbot (the app's side of the click, its calls and statements)": serve,
        "Slack emulator and the clicks' sender": click[1] + CALLS_PER_BOOKING * call[1],
        "PostgreSQL": READS_PER_BOOKING * read[2] + WRITES_PER_BOOKING * write[2],
    }
    print(
        f"\nfloor per booking (1 click, {CALLS_PER_BOOKING} Web API calls, "
        f"{READS_PER_BOOKING} reads and {WRITES_PER_BOOKING} writes), CPU ms:"
    )
    for where, ms in floor.items():
        print(f"  {where:<66}{ms:>7.2f}")
    total = sum(floor.values())
    print(f"  {'all':<66}{total:>7.2f}")
    print(
        f"budget at 200 bookings/s on 2 cores: {BUDGET_MS:.1f} ms; the floor alone allows "
        f"{2000 / total:.0f} bookings/s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="units per part (default 2000)")
    n = parser.parse_args().n
    asyncio.run(main(n - n % 100 or 100))
