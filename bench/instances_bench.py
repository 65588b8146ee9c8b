"""Bookings per second with several ``slotbot serve`` processes on one PostgreSQL database.

Run: ``.venv/bin/python bench/instances_bench.py [--instances 2] [--clicks 100] [--rounds 3]``.
Each round: ``clicks`` people ask for their own meeting (so every click can book), then all
click at once, spread over the instances. Printed per round: bookings per second (first click
sent → last booking CONFIRMED, i.e. its .ics uploaded), when the last reminder or notice the
bookings owe went out (they follow the confirmations in batches), p50/p99 click ack latency,
and CPU per click of every process up to that last message; at the end, duplicates (bookings
per offer, uploads per booking, events per booking; must all be 0).

Then one click is profiled in this process on PostgreSQL: the Web API calls and SQL statements
it costs, and where its time goes. Needs PostgreSQL (``SLOTBOT_TEST_POSTGRES_URL``, default
postgres@127.0.0.1:5432/test); the Slack emulator (0 ms latency) runs in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import os
import pstats
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from icalendar import Calendar
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot import direct  # noqa: E402
from bot.store import database_url_from  # noqa: E402
from playground.slack_api import SlackUser  # noqa: E402
from tests.scenarios.harness import (  # noqa: E402
    Cluster,
    click_request,
    offer_from_ephemeral,
    start_cluster,
    start_harness,
    stop_cluster,
    stop_harness,
)
from tests.storage_fixtures import POSTGRES_URL  # noqa: E402

UPLOAD_DONE = "files.completeUploadExternal"
#: What a booking owes after its confirmation: both people's reminders, the partner's notice.
FOLLOW_UPS_PER_BOOKING = 3


def messages_sent(slack: Any) -> int:
    """Direct messages posted or scheduled so far."""
    return len(slack.calls("chat.scheduleMessage")) + len(slack.calls("chat.postMessage"))


#: The libraries a click runs through, for the profile.
OURS = r"(bot|handlers|slack_bolt|slack_sdk|sqlalchemy|asyncpg|icalendar|aiohttp)/.*\.py"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for this run; dropped afterwards. Its async URL."""
    admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    name = f"slotbot_bench_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        yield database_url_from(url, Path("."))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def people(prefix: str, count: int) -> list[SlackUser]:
    return [
        SlackUser(
            id=f"U0{prefix}{n:05d}",
            name=f"{prefix.lower()}{n}",
            real_name=f"{prefix} {n}",
            email=f"{prefix.lower()}{n}@example.com",
        )
        for n in range(count)
    ]


async def scalar(engine: Any, sql: str) -> Any:
    async with engine.connect() as connection:
        return (await connection.execute(sa.text(sql))).scalar()


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def cpu_snapshot(cluster: Cluster) -> dict[str, float]:
    """CPU seconds so far: the serve processes, this process (emulator + client), PostgreSQL."""
    serve = sum(cpu_seconds(p.process.pid) for p in cluster.instances if p.process)
    return {
        "serve": serve,
        "emulator+client": time.process_time(),
        "postgres": sum(cpu_seconds(pid) for pid in postgres_pids()),
    }


async def one_round(
    cluster: Cluster, engine: Any, requesters: list[SlackUser], partners: list[SlackUser]
) -> dict[str, Any]:
    """Offers for everyone, then every click at once; the round's figures."""
    slack = cluster.slack
    confirmed_before = int(
        await scalar(engine, "SELECT count(*) FROM bookings WHERE state = 'confirmed'")
    )
    semaphore = asyncio.Semaphore(20)

    async def ask(n: int, user: SlackUser, partner: SlackUser) -> None:
        async with semaphore:
            status = await cluster.command(
                f"sync with <@{partner.id}> 30m in the next 2 weeks", user=user, instance=n
            )
            assert status == 200, status

    await asyncio.gather(
        *(ask(n, u, p) for n, (u, p) in enumerate(zip(requesters, partners, strict=True)))
    )
    offers = await cluster.wait_for_offers(requesters, within=120)
    requests = [
        (n + 1, click_request(slack, offers[u.id], offers[u.id].buttons("book_slot")[0], u))
        for n, u in enumerate(requesters)
    ]
    calls_before = len(slack.calls())
    uploads_before = len(slack.calls(UPLOAD_DONE))
    messages_before = messages_sent(slack)
    cpu_before = cpu_snapshot(cluster)
    acks: list[float] = []

    async def click(instance: int, request: Any) -> None:
        started = time.perf_counter()
        status = await cluster.post(instance, request)
        acks.append((time.perf_counter() - started) * 1000)
        assert status == 200, status

    started_wall = time.time()
    started = time.perf_counter()
    await asyncio.gather(*(click(i, r) for i, r in requests))
    acked = time.perf_counter() - started
    target = confirmed_before + len(requesters)
    # Every .ics upload first (the emulator tells, at no cost to the database), then the few
    # milliseconds to each booking's confirmed state: polling the table all along would charge
    # the bench's own scans to PostgreSQL and take a core from the instances.
    await slack.wait_for(UPLOAD_DONE, count=uploads_before + len(requesters), within=120)
    while (
        int(await scalar(engine, "SELECT count(*) FROM bookings WHERE state = 'confirmed'"))
        < target
    ):
        if time.perf_counter() - started > 120:
            raise TimeoutError("the bookings were not all confirmed within 120 s")
        await asyncio.sleep(0.01)
    confirmed = time.perf_counter() - started
    # Then each booking's reminders (both people) and the partner's notice: they follow the
    # confirmations in batches. The CPU figures cover them too.
    owed = messages_before + FOLLOW_UPS_PER_BOOKING * len(requesters)
    while messages_sent(slack) < owed:
        if time.perf_counter() - started > 120:
            raise TimeoutError("the reminders and notices were not all sent within 120 s")
        await asyncio.sleep(0.005)
    followed = time.perf_counter() - started
    cpu = {k: v - cpu_before[k] for k, v in cpu_snapshot(cluster).items()}
    uploads = slack.calls(UPLOAD_DONE)[uploads_before:]
    last_upload = max(c.at for c in uploads) - started_wall if uploads else float("nan")
    calls = collections.Counter(c.method for c in slack.calls()[calls_before:])
    return {
        "clicks": len(requesters),
        "acked_s": acked,
        "confirmed_s": confirmed,
        "followed_s": followed,
        "last_upload_s": last_upload,
        "ack_p50": statistics.median(acks),
        "ack_p99": percentile(acks, 0.99),
        "calls": calls,
        "cpu_ms_per_click": {k: 1000 * v / len(requesters) for k, v in cpu.items()},
    }


async def duplicates(cluster: Cluster, engine: Any) -> dict[str, int]:
    """Bookings per offer, uploads per booking, events per booking beyond one: all should be 0."""
    per_offer = await scalar(
        engine,
        "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM bookings "
        "GROUP BY offer_id HAVING count(*) > 1) AS d",
    )
    per_uid = await scalar(
        engine,
        "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM local_events "
        "GROUP BY ical_uid HAVING count(*) > 1) AS d",
    )
    bookings = int(await scalar(engine, "SELECT count(*) FROM bookings"))
    events = int(await scalar(engine, "SELECT count(*) FROM local_events"))
    uids = collections.Counter(
        str(Calendar.from_ical(f.content).walk("VEVENT")[0]["UID"])
        for f in cluster.slack.uploaded_files()
        if f.completed and f.content
    )
    return {
        "bookings per offer": int(per_offer),
        "uploads per booking": sum(n - 1 for n in uids.values()),
        "events per booking": int(per_uid) + max(0, events - bookings),
        "bookings without upload": bookings - len(uids),
    }


async def measure_cluster(instances: int, clicks: int, rounds: int) -> None:
    requesters, partners = people("REQ", clicks), people("PAR", clicks)
    async with fresh_database() as url:
        engine = create_async_engine(url)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            cluster = await start_cluster(
                Path(tmp), url, users=(*requesters, *partners), instances=instances
            )
            print(
                f"{instances} instances on PostgreSQL started (migrating at once) in "
                f"{time.perf_counter() - started:.2f} s; {clicks} concurrent clicks per round\n"
            )
            try:
                # Warm-up: every process imports, connects and fills its caches once.
                await one_round(cluster, engine, requesters[:10], partners[:10])
                print(
                    f"{'round':<7}{'bookings/s':>11}{'all acked':>11}{'all confirmed':>15}"
                    f"{'last .ics':>11}{'reminders sent':>16}{'ack p50':>9}{'ack p99':>9}"
                    f"{'CPU ms/click: serve':>21}{'emulator':>9}"
                    f"{'postgres':>9}"
                )
                totals = []
                for n in range(1, rounds + 1):
                    r = await one_round(cluster, engine, requesters, partners)
                    rate = r["clicks"] / r["confirmed_s"]
                    totals.append(rate)
                    print(
                        f"{n:<7}{rate:>11.1f}{r['acked_s']:>10.2f}s{r['confirmed_s']:>14.2f}s"
                        f"{r['last_upload_s']:>10.2f}s{r['followed_s']:>15.2f}s"
                        f"{r['ack_p50']:>7.0f}ms{r['ack_p99']:>7.0f}ms"
                        + "".join(
                            f"{v:>{w}.1f}"
                            for w, v in zip((21, 9, 9), r["cpu_ms_per_click"].values(), strict=True)
                        )
                    )
                per_click = {m: c / r["clicks"] for m, c in sorted(r["calls"].items())}
                print(
                    f"\nmedian {statistics.median(totals):.1f} bookings/s (target ≥ 200); "
                    "Web API calls per click (last round): "
                    + ", ".join(f"{m} {v:.2f}" for m, v in per_click.items())
                )
                print(
                    "CPU per click (last round, 2 cores in all): "
                    + ", ".join(f"{k} {v:.1f} ms" for k, v in r["cpu_ms_per_click"].items())
                )
                print("duplicates:", await duplicates(cluster, engine))
            finally:
                await stop_cluster(cluster)
                await engine.dispose()


async def profile_one_click() -> None:
    """One click in this process on PostgreSQL: Web API calls, SQL statements, hot spots."""
    async with fresh_database() as url:
        with tempfile.TemporaryDirectory() as tmp:
            harness = await start_harness(Path(tmp), database_url=url)
            try:
                statements: collections.Counter[str] = collections.Counter()
                # The store sends its statements through bot.direct on PostgreSQL: count there.
                send = direct.DirectConnection.execute

                async def count(self: Any, statement: Any, parameters: Any = None) -> Any:
                    one = parameters[0] if isinstance(parameters, list) else parameters or {}
                    words = direct.sql_for(statement, one)[0].split()  # compiled once, cached
                    statements[" ".join(words[:3])[:60] if words else "?"] += 1
                    return await send(self, statement, parameters)

                direct.DirectConnection.execute = count  # type: ignore[method-assign]
                take_locks = direct.DirectConnection.lock

                async def count_locks(self: Any, keys: Any) -> None:
                    statements["BEGIN; SELECT pg_advisory_xact_lock(…)"] += 1
                    await take_locks(self, keys)

                direct.DirectConnection.lock = count_locks  # type: ignore[method-assign]

                samples, profile = [], cProfile.Profile()
                for n in range(12):
                    person = harness.slack.add_user(
                        SlackUser(id=f"U0PROF{n:04d}", name=f"p{n}", email=f"p{n}@example.com")
                    )
                    partner = harness.slack.add_user(
                        SlackUser(id=f"U0PRTN{n:04d}", name=f"q{n}", email=f"q{n}@example.com")
                    )
                    answered = len(harness.slack.calls("response_url"))
                    await harness.command(
                        f"sync with <@{partner.id}> in the next 2 weeks", user=person
                    )
                    await harness.slack.wait_for("response_url", count=answered + 1, within=30)
                    await harness.settle(quiet=0.05)
                    offer = offer_from_ephemeral(harness, person)
                    request = click_request(
                        harness.slack, offer, offer.buttons("book_slot")[0], person
                    )
                    measured = n >= 2  # the first two warm the caches
                    calls_before, uploads = (
                        len(harness.slack.calls()),
                        len(harness.slack.calls(UPLOAD_DONE)),
                    )
                    statements.clear()
                    if measured:
                        profile.enable()
                    started = time.perf_counter()
                    await harness.post(request)
                    await harness.slack.wait_for(UPLOAD_DONE, count=uploads + 1, within=30)
                    await harness.settle(quiet=0.05)
                    if measured:
                        profile.disable()
                        samples.append((time.perf_counter() - started) * 1000)
                methods = collections.Counter(
                    c.method for c in harness.slack.calls()[calls_before:]
                )
                print(
                    f"\none click in-process on PostgreSQL (until quiet, incl. a 50 ms settle): "
                    f"p50 {statistics.median(samples):.1f} ms"
                )
                print("  Web API calls:", dict(methods))
                print(f"  SQL statements: {sum(statements.values())}:", dict(statements))
                text = io.StringIO()
                pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(OURS, 25)
                print("  cumulative time by function (10 clicks):")
                for line in text.getvalue().splitlines():
                    if line.strip() and ("/" in line or "{" in line):
                        print("   ", line.strip()[:150])
            finally:
                direct.DirectConnection.execute = send  # type: ignore[method-assign]
                direct.DirectConnection.lock = take_locks  # type: ignore[method-assign]
                await stop_harness(harness)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--clicks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(measure_cluster(args.instances, args.clicks, args.rounds))
    if not args.no_profile:
        asyncio.run(profile_one_click())


if __name__ == "__main__":
    main()
