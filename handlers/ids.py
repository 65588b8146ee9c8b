"""Every action_id, callback_id and command name the handlers answer: one place, shared with
the Block Kit builders and checked against manifest.yml by the tests."""

from __future__ import annotations

import re
from datetime import datetime

from bot.recurrence import occurrence_id, parse_occurrence_id

COMMAND = "/schedule"

BOOK_SLOT = "book_slot"  # + "_<index>": action_ids must be unique within one message
BOOK_SLOT_PATTERN = re.compile(r"^book_slot(_\d+)?$")
MORE_TIMES = "more_times"
CANCEL_OFFER = "cancel_offer"
RESCHEDULE = "reschedule"
CANCEL_BOOKING = "cancel_booking"
CONFIRM_CANCEL = "confirm_cancel"
KEEP_BOOKING = "keep_booking"
# A recurring booking's Reschedule and Cancel meeting open a choice: one of its upcoming
# meetings (+ "_<index>") or the whole series. The value is ``occurrence_value``.
RESCHEDULE_OCCURRENCE = "reschedule_occurrence"
RESCHEDULE_SERIES = "reschedule_series"
RESCHEDULE_CHOICE_PATTERN = re.compile(r"^reschedule_(?:occurrence_\d+|series)$")
CANCEL_OCCURRENCE = "cancel_booking_occurrence"
CANCEL_SERIES = "cancel_booking_series"
CANCEL_CHOICE_PATTERN = re.compile(r"^cancel_booking_(?:occurrence_\d+|series)$")
# The Home tab's own buttons: a click in a view has no message to replace, so they get theirs.
HOME_RESCHEDULE = "home_reschedule"
HOME_CANCEL_BOOKING = "home_cancel_booking"
EDIT_SETTINGS = "edit_settings"

SETTINGS_VIEW = "settings"  # callback_id of the settings modal (its view_submission)

#: Events the app subscribes to (manifest.yml ``settings.event_subscriptions.bot_events``).
EVENTS = ("app_mention", "message.im", "app_home_opened")


def book_slot_action(index: int) -> str:
    return f"{BOOK_SLOT}_{index}"


def slot_value(offer_id: str, index: int) -> str:
    """A button value: the offer's opaque id and the slot's place in it; checked on click."""
    return f"{offer_id}:{index}"


def occurrence_value(key: str, original_start: datetime | None) -> str:
    """A booking's key, and for one meeting of a series its original start: ``key|20261201T…Z``."""
    return key if original_start is None else f"{key}|{occurrence_id(original_start)}"


def read_occurrence_value(value: str) -> tuple[str, datetime | None]:
    """The booking key and the original start (None: the whole booking) from a button value;
    a malformed start reads as the whole booking's key, which the store then does not know."""
    key, sep, stamp = value.partition("|")
    if not sep:
        return value, None
    original = parse_occurrence_id(stamp)
    return (key, original) if original is not None else (value, None)


def read_slot_value(value: str) -> tuple[str, int] | None:
    """The offer id and slot index from a button value, or None when it is not one of ours."""
    offer_id, sep, index = value.rpartition(":")
    # isascii: str.isdigit also accepts other scripts' digits, which int() would then read.
    if not sep or not offer_id or not (index.isascii() and index.isdigit()) or len(index) > 3:
        return None
    return offer_id, int(index)
