"""Quiet hours: a message that can wait reaches a person only within their own working hours.

Pure: the person's working hours and zone and the time are passed in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.models import WorkingHours, require_aware, zone_of

__all__ = ["quiet_until"]

#: Working hours repeat weekly, so a window is found within a week and a day or not at all.
_LOOK_AHEAD_DAYS = 8


def quiet_until(now: datetime, hours: WorkingHours, zone: str) -> datetime | None:
    """When a non-urgent message to this person may go: None when ``now`` is within their
    working hours (send it now), else the start of their next working window in ``zone``,
    DST-exact. Someone with no working hours at all is never held back: no time is better.
    """
    require_aware(now, "now")
    today = now.astimezone(zone_of(zone)).date()
    windows = sorted(
        window
        for offset in range(-1, _LOOK_AHEAD_DAYS)
        for window in hours.intervals_on(today + timedelta(days=offset), zone)
    )
    for window in windows:
        if window.end <= now:
            continue
        return None if window.start <= now else window.start
    return None
