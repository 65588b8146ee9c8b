"""The list, Home tab, typed-command answers and settings modal builders, and the settings form
reader: buttons only on one's own meetings, views real Slack accepts, a form that checks every
field."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import time
from typing import Any

import pytest

from bot.models import Booking, BookingState, ScheduleObject, WorkingHours
from bot.scheduling.commands import Action
from bot.store import UserSettings
from handlers import blocks, ids
from handlers.views import read_day_hours, read_settings_form
from playground.slack_api import MESSAGE_BLOCK_LIMIT, block_kit_errors, view_errors
from tests.handlers.test_blocks import ANA, BEN, NASTY, at, slot
from tests.handlers.test_registry import RecordingRegistrar, matches, registrar

__all__ = ["registrar", "submitted_values"]


def booking(key: str, organizer: str, day: int = 1, title: str | None = "Sync") -> Booking:
    picked = slot(at(day, 13), 30)
    other = BEN.user_id if organizer == ANA.user_id else ANA.user_id
    return Booking(
        key=key,
        team_id="T000TEAM1",
        organizer_id=organizer,
        participant_ids=(other,),
        title=title,
        schedule=ScheduleObject.from_slot(picked, "Europe/Berlin"),
        state=BookingState.CONFIRMED,
    )


def submitted_values(view: dict[str, Any], **changes: str | None) -> dict[str, Any]:
    """``view.state.values`` as Slack sends them for ``view`` submitted with its initial
    values, except the fields named in ``changes`` (block_id → option value / typed text)."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element, block_id = block["element"], block["block_id"]
        if element["type"] == "static_select":
            chosen = changes.get(block_id, (element.get("initial_option") or {}).get("value"))
            option = next((o for o in element["options"] if o["value"] == chosen), None)
            state: dict[str, Any] = {"type": "static_select", "selected_option": option}
        else:
            typed = changes.get(block_id, element.get("initial_value"))
            state = {"type": element["type"], "value": typed}
        values[block_id] = {element["action_id"]: state}
    return values


def modal(settings: UserSettings | None = None) -> dict[str, Any]:
    return blocks.settings_modal(settings or UserSettings()).to_dict()


def action_ids(built: list[dict[str, Any]]) -> list[str]:
    found = []
    for block in built:
        for element in [block.get("accessory"), *(block.get("elements") or [])]:
            if isinstance(element, dict) and "action_id" in element:
                found.append(element["action_id"])
    return found


def test_the_list_offers_reschedule_and_cancel_only_on_meetings_the_person_organizes() -> None:
    """Ana's own meeting carries Reschedule/Cancel with its key; Ben's meeting has none."""
    own, theirs = booking("k-own", ANA.user_id), booking("k-theirs", BEN.user_id, day=2)
    built = [b.to_dict() for b in blocks.list_blocks([own, theirs], ANA.user_id)]
    buttons = [e for b in built for e in b.get("elements") or [] if e.get("type") == "button"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        (ids.RESCHEDULE, "k-own"),
        (ids.CANCEL_BOOKING, "k-own"),
    ]
    text = json.dumps(built)
    assert f"<!date^{int(own.slot.start.timestamp())}^" in text
    assert f"<!date^{int(theirs.slot.start.timestamp())}^" in text
    assert f"<@{BEN.user_id}>" in text
    assert blocks.list_text([own, theirs]) == "2 upcoming meetings"


def test_an_empty_list_says_so_and_shows_how_to_book() -> None:
    """No bookings: a single section saying nothing is booked and how to ask."""
    built = [b.to_dict() for b in blocks.list_blocks([], ANA.user_id)]
    assert len(built) == 1 and "No upcoming meetings" in built[0]["text"]["text"]
    assert blocks.list_text([]).startswith("No upcoming")


def test_a_long_list_stays_valid_block_kit_and_counts_the_rest() -> None:
    """Forty own meetings with hostile titles: valid blocks, titles inert, the rest counted."""
    many = [booking(f"k{i}", ANA.user_id, day=1 + i % 28, title=NASTY) for i in range(40)]
    built = [b.to_dict() for b in blocks.list_blocks(many, ANA.user_id)]
    assert block_kit_errors(built, limit=MESSAGE_BLOCK_LIMIT) == []
    assert "<!channel>" not in json.dumps(built)
    assert f"and {40 - blocks.LIST_LIMIT} more" in json.dumps(built)


def test_home_uses_its_own_move_and_cancel_ids_and_shows_settings_with_an_edit_button() -> None:
    """Home: own meetings get the Home action ids, settings are summarised, Edit opens them."""
    settings = UserSettings(time_zone="Asia/Tokyo", buffer_before_minutes=15)
    view = {
        "type": "home",
        "blocks": [
            b.to_dict()
            for b in blocks.home_blocks(
                [booking("k1", ANA.user_id)], user_id=ANA.user_id, settings=settings
            )
        ],
    }
    assert view_errors(view) == []
    found = action_ids(view["blocks"])
    assert found == [ids.HOME_RESCHEDULE, ids.HOME_CANCEL_BOOKING, ids.EDIT_SETTINGS]
    text = json.dumps(view)
    assert "Asia/Tokyo" in text and "15 min before" in text and "Sat off" in text


def test_every_button_of_the_list_and_home_has_a_listener(registrar: RecordingRegistrar) -> None:
    """Each action_id on the list and the Home tab is answered, and the modal's callback too."""
    own = [booking("k1", ANA.user_id)]
    rendered = [b.to_dict() for b in blocks.list_blocks(own, ANA.user_id)]
    rendered += [
        b.to_dict() for b in blocks.home_blocks(own, user_id=ANA.user_id, settings=UserSettings())
    ]
    matchers = registrar.keys("action")
    unanswered = {a for a in action_ids(rendered) if not any(matches(m, a) for m in matchers)}
    assert unanswered == set()
    assert ids.SETTINGS_VIEW in registrar.keys("view")


def test_the_modal_is_a_valid_view_that_shows_the_current_settings() -> None:
    """The modal passes Slack's view checks; initial values are the saved settings."""
    hours = WorkingHours.uniform(time(13), time(15), weekdays=(0, 2))
    view = modal(UserSettings(working_hours=hours, time_zone="Europe/Lisbon", horizon_days=30))
    assert view_errors(view) == []
    assert view["callback_id"] == ids.SETTINGS_VIEW
    by_id = {b["block_id"]: b for b in view["blocks"] if b.get("block_id")}
    assert by_id["hours_0"]["element"]["initial_value"] == "13:00-15:00"
    assert by_id["hours_1"]["element"]["initial_value"] == blocks.OFF
    assert by_id["time_zone"]["element"]["initial_value"] == "Europe/Lisbon"
    assert by_id["horizon"]["element"]["initial_value"] == "30"


def test_submitting_the_form_unchanged_gives_back_the_same_settings() -> None:
    """Round trip: settings → modal → submitted values → the same settings."""
    settings = UserSettings(
        working_hours=WorkingHours(
            (((time(8, 15), time(0)),), (), ((time(9), time(17)),), (), (), (), ())
        ),
        time_zone="America/New_York",
        buffer_before_minutes=5,
        buffer_after_minutes=10,
        minimum_notice_minutes=120,
        default_duration_minutes=45,
        horizon_days=21,
        reminder_lead_minutes=None,
    )
    form = read_settings_form(submitted_values(modal(settings)))
    assert form.errors == {}
    assert form.settings == settings


def test_an_emptied_zone_falls_back_to_the_slack_profile() -> None:
    """Clearing the zone field saves no override."""
    view = modal(UserSettings(time_zone="Asia/Tokyo"))
    form = read_settings_form(submitted_values(view, time_zone=""))
    assert form.settings is not None and form.settings.time_zone is None


@pytest.mark.parametrize(
    ("changes", "block_id", "words"),
    [
        ({"hours_0": "15:00-13:00"}, "hours_0", "ends before it starts"),
        ({"hours_2": "10:00-10:00"}, "hours_2", "ends before it starts"),
        ({"hours_3": "09:00-12:00, 11:30-13:00"}, "hours_3", "overlap"),
        ({"hours_4": "9 to"}, "hours_4", "can't read"),
        ({"hours_5": "lunch"}, "hours_5", "can't read"),
        ({"hours_6": "25:00-26:00"}, "hours_6", "like 09:00-12:00, 13:00-17:30"),
        ({"hours_1": ",".join(["9-10"] * 7)}, "hours_1", "Up to 6 intervals"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "not a time zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone", "not a time zone"),
        ({"buffer_before": "121"}, "buffer_before", "from 0 to 120"),
        ({"default_duration": "0"}, "default_duration", "from 5 to 480"),
        ({"horizon": "-3"}, "horizon", "from 1 to 90"),
        ({"minimum_notice": "1.5"}, "minimum_notice", "whole number"),
        ({"reminder_lead": "٣"}, "reminder_lead", "whole number"),
        ({"horizon": None}, "horizon", "whole number"),
    ],
)
def test_invalid_fields_are_named_on_their_own_block(
    changes: dict[str, str | None], block_id: str, words: str
) -> None:
    """Each invalid field gives no settings and an error on that field's block."""
    form = read_settings_form(submitted_values(modal(), **changes))
    assert form.settings is None
    assert list(form.errors) == [block_id]
    assert words in form.errors[block_id]


@pytest.mark.parametrize("typed", ["off", "", "  ", "OFF", "none", "closed"])
def test_off_or_an_empty_field_is_a_day_off(typed: str) -> None:
    """A day typed as off (or left empty) is a day off; the other days keep their hours."""
    form = read_settings_form(submitted_values(modal(), hours_0=typed))
    assert form.settings is not None
    assert form.settings.working_hours.days[0] == ()
    assert form.settings.working_hours.days[1] == ((time(9), time(17)),)


def test_several_errors_are_reported_together() -> None:
    """Every bad field is named at once, so one round trip fixes them all."""
    form = read_settings_form(
        submitted_values(modal(), time_zone="Nowhere/Land", buffer_after="999", horizon="0")
    )
    assert set(form.errors) == {"time_zone", "buffer_after", "horizon"}


def test_several_intervals_a_day_round_trip_through_the_form() -> None:
    """Saved hours with a lunch gap show as "09:00-12:00, 13:00-17:30" and come back as saved."""
    lunch = ((time(9), time(12)), (time(13), time(17, 30)))
    hours = WorkingHours((lunch, lunch, (), ((time(8, 15), time(16, 45)),), lunch, (), ()))
    view = modal(replace(UserSettings(), working_hours=hours))
    assert view_errors(view) == []
    shown = {b["block_id"]: b["element"].get("initial_value") for b in view["blocks"][1:8]}
    assert shown["hours_0"] == "09:00-12:00, 13:00-17:30"
    assert shown["hours_3"] == "08:15-16:45" and shown["hours_2"] == blocks.OFF
    form = read_settings_form(submitted_values(view))
    assert form.errors == {} and form.settings is not None
    assert form.settings.working_hours == hours


@pytest.mark.parametrize(
    ("typed", "hours"),
    [
        ("09:00-12:00, 13:00-17:30", ((time(9), time(12)), (time(13), time(17, 30)))),
        ("13:00-17:30; 9:00-12:00", ((time(9), time(12)), (time(13), time(17, 30)))),
        ("9-12 and 13-17", ((time(9), time(12)), (time(13), time(17)))),
        ("9am-12pm, 1pm-5:30pm", ((time(9), time(12)), (time(13), time(17, 30)))),
        ("9 to 5", ((time(9), time(17)),)),
        ("09.30 \u2013 16.00", ((time(9, 30), time(16)),)),
        ("9-12, 12-17", ((time(9), time(17)),)),
        ("20:00-24:00", ((time(20), time(0)),)),
        ("noon-midnight", ((time(12), time(0)),)),
    ],
)
def test_a_days_hours_are_read_in_common_spellings(
    typed: str, hours: tuple[tuple[time, time], ...]
) -> None:
    """Intervals in 24 h or am/pm, any order, comma/semicolon/and; touching ones are joined."""
    assert read_day_hours(typed) == hours


@pytest.mark.parametrize("typed", ["9-", "-5", "12:75-13:00", "13pm-14:00", "24:00-24:00", "x"])
def test_unreadable_hours_say_what_works(typed: str) -> None:
    """Hours that cannot be read are refused with an example that works."""
    with pytest.raises(ValueError, match=r"09:00-12:00, 13:00-17:30"):
        read_day_hours(typed)


@pytest.mark.parametrize("action", [Action.MOVE, Action.CANCEL])
def test_a_choice_of_meetings_is_valid_and_each_has_its_buttons(action: Action) -> None:
    """Several matches of a typed command: valid blocks, hostile titles inert, each own
    meeting with its Reschedule and Cancel meeting, and an example that narrows it down."""
    many = [booking(f"k{i}", ANA.user_id, day=1 + i, title=NASTY) for i in range(3)]
    built = [b.to_dict() for b in blocks.choice_blocks(many, ANA.user_id, action)]
    assert block_kit_errors(built, limit=MESSAGE_BLOCK_LIMIT) == []
    text = json.dumps(built)
    assert "<!channel>" not in text and "move my 3pm with @ana to tomorrow" in text
    assert [e["value"] for e in action_elements(built, ids.RESCHEDULE)] == ["k0", "k1", "k2"]
    assert len(action_elements(built, ids.CANCEL_BOOKING)) == 3
    assert ("two weeks" in text) == (action == Action.MOVE)
    assert blocks.choice_text(many) == "3 of your meetings match: which one?"


def test_nothing_found_lists_upcoming_meetings_or_says_there_are_none() -> None:
    """No match: the person's meetings with their buttons, or that they have none; always an
    example that works."""
    listed = [b.to_dict() for b in blocks.no_match_blocks([booking("k", ANA.user_id)], ANA.user_id)]
    assert block_kit_errors(listed, limit=MESSAGE_BLOCK_LIMIT) == []
    assert "couldn't find" in json.dumps(listed) and action_elements(listed, ids.RESCHEDULE)
    empty = json.dumps([b.to_dict() for b in blocks.no_match_blocks([], ANA.user_id)])
    assert "no upcoming meetings" in empty and "cancel my 1:1" in empty


def action_elements(built: list[dict[str, Any]], action_id: str) -> list[dict[str, Any]]:
    return [
        e
        for b in built
        for e in b.get("elements") or []
        if isinstance(e, dict) and e.get("action_id") == action_id
    ]
