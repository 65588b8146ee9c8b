"""The settings modal: opened from the Home tab, read and checked on submit, saved, and the
Home tab published again so it shows what now holds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.models import WorkingHours, zone_of
from bot.store import UserSettings
from handlers import blocks, ids
from handlers.errors import reporting_errors
from handlers.home import publish_home
from handlers.payloads import PayloadError
from handlers.services import Services

__all__ = ["SettingsForm", "read_day_hours", "read_settings_form", "register"]


@dataclass(frozen=True, slots=True)
class SettingsForm:
    """A submitted settings form: the settings, or the errors to show by block_id."""

    settings: UserSettings | None
    errors: dict[str, str]


def _field(values: Mapping[str, Any], block_id: str) -> Mapping[str, Any]:
    block = values.get(block_id)
    element = block.get(blocks.FIELD_ACTION) if isinstance(block, Mapping) else None
    return element if isinstance(element, Mapping) else {}


def _selected(values: Mapping[str, Any], block_id: str) -> str | None:
    option = _field(values, block_id).get("selected_option")
    value = option.get("value") if isinstance(option, Mapping) else None
    return value if isinstance(value, str) and value else None


def _typed(values: Mapping[str, Any], block_id: str) -> str:
    value = _field(values, block_id).get("value")
    return value.strip() if isinstance(value, str) else ""


#: What a day's field may say for a day off.
_OFF_WORDS = frozenset({"", "off", "none", "no", "-", "closed", "free", "day off"})
#: More intervals than this in one day is a typing accident, not a working day.
MAX_INTERVALS = 6
_INTERVAL = re.compile(
    r"^(?P<start>[^-\u2013\u2014]+?)\s*(?:-|\u2013|\u2014|\bto\b|\buntil\b|\btill\b)\s*(?P<end>.+)$",
    re.IGNORECASE,
)
_CLOCK = re.compile(
    r"^(?P<hour>\d{1,2})(?:[:.h](?P<minute>\d{2}))?\s*(?P<meridiem>[ap]\.?m\.?)?$", re.IGNORECASE
)
_EXAMPLE = "Write hours like 09:00-12:00, 13:00-17:30, or off."


def _minutes(text: str, *, end: bool) -> tuple[int, bool] | None:
    """Minutes after midnight of a typed wall time (24:00 only as an end), and whether it
    was a bare hour (``5``: no minutes, am/pm or leading zero); None when it is not a time."""
    typed = text.strip().lower()
    if typed in ("noon", "midday"):
        return 12 * 60, False
    if typed == "midnight":
        return (24 * 60 if end else 0), False
    found = _CLOCK.match(typed)
    if found is None:
        return None
    hour, minute = int(found["hour"]), int(found["minute"] or 0)
    meridiem = found["meridiem"]
    if minute > 59:
        return None
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem.startswith("p") else 0)
    elif hour > 24 or (hour == 24 and (minute or not end)):
        return None
    bare = not (meridiem or found["minute"] or found["hour"].startswith("0"))
    return hour * 60 + minute, bare


def _clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def read_day_hours(text: str) -> tuple[tuple[time, time], ...]:
    """A day's working intervals from the form: ``09:00-12:00, 13:00-17:30`` (also ``9-12``,
    ``9am-5pm``, ``13:00 to 17:30``), or ``off``. Sorted; touching intervals are joined.

    Raises ``ValueError`` with the message to show on the field: a piece that is not an
    interval, an interval that ends before it starts, intervals that overlap.
    """
    typed = " ".join(text.split())
    if typed.lower() in _OFF_WORDS:
        return ()
    pieces = [p for p in re.split(r"\s*(?:[,;]|\band\b)\s*", typed, flags=re.IGNORECASE) if p]
    if len(pieces) > MAX_INTERVALS:
        raise ValueError(f"Up to {MAX_INTERVALS} intervals fit in a day. {_EXAMPLE}")
    intervals: list[tuple[int, int]] = []
    for piece in pieces:
        found = _INTERVAL.match(piece)
        start = _minutes(found["start"], end=False) if found else None
        end = _minutes(found["end"], end=True) if found else None
        if start is None or end is None:
            raise ValueError(f"I can't read \u201c{piece[:40]}\u201d as hours. {_EXAMPLE}")
        (low, _), (high, bare_end) = start, end
        if bare_end and high < low and high + 12 * 60 <= 24 * 60:
            high += 12 * 60  # "9-5": the afternoon, as people say it
        if high <= low:
            raise ValueError(
                f"{_clock_text(low)}-{_clock_text(high)} ends before it starts. {_EXAMPLE}"
            )
        intervals.append((low, high))
    intervals.sort()
    joined: list[tuple[int, int]] = []
    for low, high in intervals:
        if joined and low < joined[-1][1]:
            before = joined[-1]
            raise ValueError(
                f"{_clock_text(before[0])}-{_clock_text(before[1])} and "
                f"{_clock_text(low)}-{_clock_text(high)} overlap. Give each hour once, "
                "e.g. 09:00-12:00, 13:00-17:30."
            )
        if joined and low == joined[-1][1]:
            joined[-1] = (joined[-1][0], high)
        else:
            joined.append((low, high))
    return tuple(
        (time(low // 60, low % 60), time(0) if high == 24 * 60 else time(high // 60, high % 60))
        for low, high in joined
    )


def _hours(values: Mapping[str, Any], errors: dict[str, str]) -> WorkingHours | None:
    days: list[tuple[tuple[time, time], ...]] = []
    for day in range(len(blocks.WEEKDAYS)):
        block_id = blocks.hours_block(day)
        try:
            days.append(read_day_hours(_typed(values, block_id)))
        except ValueError as problem:
            errors[block_id] = str(problem)
    return WorkingHours(tuple(days)) if len(days) == len(blocks.WEEKDAYS) else None


def _zone(values: Mapping[str, Any], errors: dict[str, str]) -> str | None:
    typed = _typed(values, blocks.ZONE_BLOCK)
    if not typed:
        return None
    try:
        zone_of(typed)
    except (ZoneInfoNotFoundError, ValueError):  # unknown, or not a zone name at all
        errors[blocks.ZONE_BLOCK] = f"{typed[:64]} is not a time zone I know (try Europe/Berlin)."
        return None
    return typed


def _numbers(values: Mapping[str, Any], errors: dict[str, str]) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for block_id, label, lowest, highest, _ in blocks.NUMBER_FIELDS:
        typed = _typed(values, block_id)
        if not typed and block_id == "reminder_lead":
            found[block_id] = None
            continue
        # isascii: str.isdigit also accepts other scripts' digits.
        if not (typed.isascii() and typed.isdigit()) or not lowest <= int(typed) <= highest:
            name = label.split(" (")[0]
            errors[block_id] = f"{name} must be a whole number from {lowest} to {highest}."
            continue
        found[block_id] = int(typed)
    return found


def read_settings_form(values: Mapping[str, Any]) -> SettingsForm:
    """Read a settings modal's ``view.state.values``: each field checked, every problem named
    on its own field (hours that cannot be read, end before they start or overlap, an unknown
    zone, a number out of range)."""
    errors: dict[str, str] = {}
    hours = _hours(values, errors)
    zone = _zone(values, errors)
    numbers = _numbers(values, errors)
    if errors or hours is None:
        return SettingsForm(None, errors)
    settings = UserSettings(
        working_hours=hours,
        time_zone=zone,
        buffer_before_minutes=numbers["buffer_before"] or 0,
        buffer_after_minutes=numbers["buffer_after"] or 0,
        minimum_notice_minutes=numbers["minimum_notice"] or 0,
        default_duration_minutes=numbers["default_duration"] or 0,
        horizon_days=numbers["horizon"] or 0,
        reminder_lead_minutes=numbers["reminder_lead"],
    )
    return SettingsForm(settings, {})


def _submitter(body: Mapping[str, Any]) -> tuple[str, str]:
    """The team and user ids of a view_submission."""
    user = body.get("user")
    team = body.get("team")
    user_id = user.get("id") if isinstance(user, Mapping) else None
    team_id = (team.get("id") if isinstance(team, Mapping) else None) or (
        user.get("team_id") if isinstance(user, Mapping) else None
    )
    if not (isinstance(user_id, str) and user_id and isinstance(team_id, str) and team_id):
        raise PayloadError("missing user or team")
    return team_id, user_id


def _state_values(body: Mapping[str, Any]) -> Mapping[str, Any]:
    view = body.get("view")
    state = view.get("state") if isinstance(view, Mapping) else None
    values = state.get("values") if isinstance(state, Mapping) else None
    if not isinstance(values, Mapping):
        raise PayloadError("missing view.state.values")
    return values


def register(app: AsyncApp, services: Services) -> None:
    @app.view(ids.SETTINGS_VIEW)
    @reporting_errors
    async def settings_submitted(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        team_id, user_id = _submitter(body)
        form = read_settings_form(_state_values(body))
        if form.settings is None:
            await ack(response_action="errors", errors=form.errors)
            return
        # Saved before the modal closes: one local write, well within Slack's 3 seconds.
        await services.scheduler.save_settings(team_id, user_id, form.settings)
        await ack()
        await publish_home(client, services, team_id, user_id)
        # Reminders already scheduled follow a new lead (or go, when it was turned off).
        await services.follow_settings(client, team_id, user_id)
