"""Timings of the availability engine: the target case, then growth with intervals and people.

Run: ``.venv/bin/python bench/slots_bench.py``. Prints milliseconds per ``find_free_slots`` call.
"""

from __future__ import annotations

import random
import statistics
import time as clock
from datetime import UTC, datetime, time, timedelta

from bot.models import Participant, TimeSlot, WorkingHours
from bot.scheduling.slots import (
    Availability,
    _local_midnights,
    _working_days,
    _zone_clock,
    find_free_slots,
)

NOW = datetime(2026, 11, 26, 7, tzinfo=UTC)
WINDOW = TimeSlot(NOW, NOW + timedelta(days=14))
DURATION = timedelta(minutes=30)
# Europe and the US east coast share a few hours; five hour patterns make ten distinct
# (zone, hours) pairs, as in a real team.
ZONES = ("Europe/Berlin", "Europe/London", "Europe/Lisbon", "America/New_York", "Europe/Madrid")
QUARTERS = [q for q in range(28, 72) if not 52 - 6 < q < 60]  # meetings end by 13:00 UTC
HOURS = tuple(WorkingHours.uniform(time(h), time(h + 9)) for h in (7, 8))


def build(participants: int, intervals: int, seed: int = 7) -> list[Availability]:
    """``intervals`` busy meetings (15-90 minutes) spread over everyone.

    They start between 07:00 and 12:45 UTC or from 15:00, so 13:00-15:00 UTC stays free and
    the search ends in slots, not in reasons.
    """
    rng = random.Random(seed)
    people = []
    for index in range(participants):
        zone = ZONES[index % len(ZONES)]
        person = Participant(f"U{index}", zone, working_hours=HOURS[index % len(HOURS)])
        people.append((person, []))
    for n in range(intervals):
        day = rng.randrange(14)
        quarter = rng.choice(QUARTERS)
        start = NOW.replace(hour=0) + timedelta(days=day, minutes=15 * quarter)
        busy = TimeSlot(start, start + timedelta(minutes=15 * rng.randint(1, 6)))
        people[n % participants][1].append(busy)
    return [Availability(person, tuple(busy)) for person, busy in people]


def fill_shared_hours(availabilities: list[Availability]) -> list[Availability]:
    """The same people, with one 12:00-16:00 UTC meeting a day handed round: together they
    fill the shared hours (13:00-15:00 UTC) though nobody is busy throughout, so the search
    ends in reasons after checking every person."""
    extra: dict[int, list[TimeSlot]] = {}
    for day in range(14):
        start = NOW.replace(hour=12) + timedelta(days=day)
        extra.setdefault(day % len(availabilities), []).append(
            TimeSlot(start, start + timedelta(hours=4))
        )
    return [
        Availability(a.participant, (*a.busy, *extra.get(index, ())))
        for index, a in enumerate(availabilities)
    ]


def time_calls(availabilities: list[Availability], runs: int, *, cold: bool = False) -> list[float]:
    """Milliseconds per call over ``runs`` calls (after a warm-up call).

    ``cold`` empties the engine's caches (working spans, midnights, zone offsets) before
    each call, as for a team's first search of the day.
    """
    find_free_slots(availabilities, WINDOW, DURATION, now=NOW, viewer_zone="Europe/Berlin")
    samples = []
    for _ in range(runs):
        if cold:
            clear_caches()
        began = clock.perf_counter()
        find_free_slots(availabilities, WINDOW, DURATION, now=NOW, viewer_zone="Europe/Berlin")
        samples.append((clock.perf_counter() - began) * 1000)
    return samples


def clear_caches() -> None:
    for cached in (_local_midnights, _working_days, _zone_clock):
        cached.cache_clear()


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered):6.3f} ms   p99 {p99:6.3f} ms"


def main() -> None:
    target = build(50, 2_000)
    result = find_free_slots(target, WINDOW, DURATION, now=NOW, viewer_zone="Europe/Berlin")
    print("target: 50 participants, 2,000 busy intervals, 14-day window, 30-minute meeting")
    print(f"  {summary(time_calls(target, 2_000))}   ({len(result.slots)} slots offered)")
    full = fill_shared_hours(target)
    reasons = find_free_slots(full, WINDOW, DURATION, now=NOW, viewer_zone="Europe/Berlin")
    print(f"  nothing fits: {summary(time_calls(full, 2_000))}   ({reasons.reasons[0][:40]}...)")
    print(f"  cold caches:  {summary(time_calls(target, 300, cold=True))}")
    print()
    print("busy intervals (50 participants)")
    for intervals in (100, 500, 2_000, 10_000):
        print(f"  {intervals:>6}  {summary(time_calls(build(50, intervals), 300))}")
    print()
    print("participants (2,000 busy intervals)")
    for participants in (1, 10, 50, 200):
        print(f"  {participants:>6}  {summary(time_calls(build(participants, 2_000), 300))}")


if __name__ == "__main__":
    main()
