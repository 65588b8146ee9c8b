"""Timings of GoogleCalendar against the loopback Google emulator at 0 ms and 300 ms latency.

Run: ``.venv/bin/python bench/google_bench.py``. Prints milliseconds per ``create_event`` and
``free_busy`` (median and max), with the latency the emulator adds to every request; then,
end to end through Slack (delegation mode), click → event created → ``.ics`` uploaded (p50/p99).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.calendars import Attendee, CalendarEvent, event_id_for
from bot.calendars.google import SCOPES, GoogleCalendar, GoogleSettings
from bot.models import Participant
from tests.emulators.google import GoogleEmulator
from tests.scenarios.google_harness import UPLOAD_DONE, start_google, stop_google
from tests.scenarios.harness import BEN, offer_from_ephemeral

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
PEOPLE = [Participant(f"U{n}", "Europe/Berlin", f"p{n}@example.com", f"P{n}") for n in range(8)]


async def measure(latency: float, rounds: int) -> None:
    async with GoogleEmulator() as google:
        account = google.add_service_account()
        google.allow_delegation(account, SCOPES)
        for person in PEOPLE:
            assert person.email
            google.add_calendar(person.email, readers=[p.email for p in PEOPLE if p.email])
            google.add_busy(person.email, T0, T0 + timedelta(hours=1))
        with tempfile.TemporaryDirectory() as folder:
            key = google.write_key_file(account, Path(folder) / "key.json")
            calendar = GoogleCalendar(
                GoogleSettings(api_url=google.url, service_account_file=key, delegation=True)
            )
            # The first call also fetches the token; time it apart from the steady state.
            started = time.perf_counter()
            await calendar.free_busy("T", PEOPLE, T0, T0 + timedelta(days=14))
            first = (time.perf_counter() - started) * 1000
            google.latency = latency
            creates, reads = [], []
            for number in range(rounds):
                started = time.perf_counter()
                await calendar.free_busy("T", PEOPLE, T0, T0 + timedelta(days=14))
                reads.append((time.perf_counter() - started) * 1000)
                event = CalendarEvent(
                    event_id=event_id_for(f"bench-{latency}-{number}"),
                    calendar_id="p0@example.com",
                    summary="Bench",
                    start=T0 + timedelta(days=1, hours=number),
                    end=T0 + timedelta(days=1, hours=number, minutes=30),
                    time_zone="Europe/Berlin",
                    attendees=tuple(Attendee.of(p) for p in PEOPLE[1:]),
                    organizer=Attendee.of(PEOPLE[0]),
                )
                started = time.perf_counter()
                await calendar.create_event("T", event)
                creates.append((time.perf_counter() - started) * 1000)
    label = f"latency {latency * 1000:>4.0f} ms"
    print(f"{label}  first call (token + free/busy)   {first:8.1f} ms")
    for name, values in (("free_busy, 8 people, 14 days", reads), ("create_event", creates)):
        print(
            f"{label}  {name:<32} median {statistics.median(values):7.1f} ms"
            f"  max {max(values):7.1f} ms  (n={len(values)})"
        )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def click_to_ics(latency: float, rounds: int) -> None:
    """Through Slack: a click's signed request → Google event → .ics upload completed."""
    with tempfile.TemporaryDirectory() as folder:
        harness = await start_google(Path(folder), "delegation")
        bot = harness.bot
        try:
            durations = []
            for number in range(rounds + 1):  # the first round warms tokens and caches
                harness.google.latency = 0.0 if number == 0 else latency
                # Each round is two response_url posts: the offer, then the confirmation.
                await bot.command(f"bench {number} with <@{BEN.id}> 15m this week")
                await bot.slack.wait_for("response_url", count=2 * number + 1, within=30.0)
                offer = offer_from_ephemeral(bot)
                button = offer.buttons("book_slot")[0]
                started = time.perf_counter()
                assert await bot.click(offer, button) == 200
                await bot.slack.wait_for(UPLOAD_DONE, count=number + 1, within=30.0)
                if number:
                    durations.append((time.perf_counter() - started) * 1000)
                await bot.slack.wait_for("response_url", count=2 * number + 2, within=30.0)
            assert len(harness.google.calls_to("calendar.events.insert")) == rounds + 1
        finally:
            await stop_google(harness)
    print(
        f"latency {latency * 1000:>4.0f} ms  click → event → .ics uploaded (Slack, delegation)"
        f"  p50 {percentile(durations, 0.5):7.1f} ms  p99 {percentile(durations, 0.99):7.1f} ms"
        f"  (n={len(durations)})"
    )


async def main() -> None:
    await measure(0.0, 20)
    await measure(0.3, 5)
    await click_to_ics(0.0, 30)
    await click_to_ics(0.3, 10)


if __name__ == "__main__":
    asyncio.run(main())
