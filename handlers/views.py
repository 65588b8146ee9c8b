"""The settings modal: opened from the Home tab, read and checked on submit, saved, and the
Home tab published again so it shows what now holds."""

from __future__ import annotations

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

__all__ = ["SettingsForm", "read_settings_form", "register"]


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


def _wall_time(text: str) -> time | None:
    if text == blocks.MIDNIGHT_END:
        return time(0)
    try:
        return time.fromisoformat(text)
    except ValueError:
        return None


def _hours(values: Mapping[str, Any], errors: dict[str, str]) -> WorkingHours | None:
    days: list[tuple[tuple[time, time], ...]] = []
    for day, name in enumerate(blocks.WEEKDAYS):
        start_id, end_id = blocks.hours_block(day, "start"), blocks.hours_block(day, "end")
        start_text = _selected(values, start_id) or blocks.OFF
        if start_text == blocks.OFF:
            days.append(())
            continue
        end_text = _selected(values, end_id)
        start = _wall_time(start_text)
        end = _wall_time(end_text) if end_text else None
        if start is None or start_text == blocks.MIDNIGHT_END:
            errors[start_id] = "Pick a start time from the list."
        elif end is None:
            errors[end_id] = f"Pick when {name} ends, or set its start to Off."
        elif end != time(0) and end <= start:
            errors[end_id] = f"{name} must end after it starts."
        else:
            days.append(((start, end),))
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
    on its own field (the end of a day that ends before it starts, an unknown zone, a number
    out of range)."""
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
