"""Timings of GoogleCalendar against the loopback Google emulator at 0 ms and 300 ms latency.

Run: ``.venv/bin/python bench/google_bench.py``. Prints milliseconds per ``create_event`` and
``free_busy`` (median and max), with the latency the emulator adds to every request.
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


async def main() -> None:
    await measure(0.0, 20)
    await measure(0.3, 5)


if __name__ == "__main__":
    asyncio.run(main())
