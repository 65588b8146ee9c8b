"""Block Kit for recurring meetings: the "which meeting?" choice, the one-meeting prompts, a
series in the upcoming list, and the DMs (reminders and notices) about a series."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.models import (
    Booking,
    BookingState,
    OccurrenceChange,
    Participant,
    ScheduleObject,
    SchedulePoint,
    TimeSlot,
)
from bot.recurrence import Occurrence
from bot.scheduling.booking import Change
from bot.scheduling.reminders import Note, NoteKind
from handlers import blocks, ids

FIRST = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
HALF = timedelta(minutes=30)
BOOKING = Booking(
    key="k1",
    team_id="T1",
    organizer_id="U1",
    participant_ids=("U2",),
    title="<!channel> sync & plan",
    schedule=ScheduleObject.from_slot(
        TimeSlot(FIRST, FIRST + HALF), "Europe/Berlin", recurrence=["RRULE:FREQ=WEEKLY;BYDAY=TU"]
    ),
    state=BookingState.CONFIRMED,
)
UPCOMING = tuple(
    Occurrence(
        FIRST + timedelta(days=7 * n),
        TimeSlot(FIRST + timedelta(days=7 * n), FIRST + timedelta(days=7 * n) + HALF),
    )
    for n in range(3)
)
CHANGE = Change(
    booking=BOOKING,
    participants=(Participant("U1", "Europe/Berlin"), Participant("U2", "America/New_York")),
    invite=b"",
    filename="sync.ics",
    fresh=False,
    upcoming=UPCOMING,
    repeats="every Tuesday",
)


def elements(built: list[object]) -> list[dict[str, object]]:
    found = []
    for block in built:
        data = block.to_dict()  # type: ignore[attr-defined]
        found += [e for e in [data.get("accessory"), *data.get("elements", [])] if e]
    return found


def test_choice_offers_each_upcoming_meeting_and_the_whole_series() -> None:
    """Each upcoming meeting gets its own button (value: key|original start), then the series."""
    for cancel, pattern in (
        (False, ids.RESCHEDULE_CHOICE_PATTERN),
        (True, ids.CANCEL_CHOICE_PATTERN),
    ):
        built = blocks.occurrence_choice_blocks(CHANGE, cancel=cancel)
        buttons = [e for e in elements(built) if e["action_id"] != ids.KEEP_BOOKING]
        assert all(pattern.match(str(b["action_id"])) for b in buttons)
        values = [ids.read_occurrence_value(str(b["value"])) for b in buttons]
        assert values == [*(("k1", o.original_start) for o in UPCOMING), ("k1", None)]
        text = json.dumps([b.to_dict() for b in built])  # type: ignore[attr-defined]
        assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_cancel_prompt_for_one_meeting_confirms_that_meeting() -> None:
    """The one-meeting prompt names it and its Cancel meeting carries key|original start."""
    built = blocks.cancel_prompt_blocks(CHANGE, UPCOMING[1].original_start)
    [confirm] = [e for e in elements(built) if e["action_id"] == ids.CONFIRM_CANCEL]
    assert ids.read_occurrence_value(str(confirm["value"])) == ("k1", UPCOMING[1].original_start)
    assert "Cancel only the meeting" in json.dumps(built[0].to_dict())  # type: ignore[attr-defined]


def test_a_malformed_occurrence_value_reads_as_an_unknown_key() -> None:
    """A tampered value never names an occurrence: it is a key the store does not know."""
    assert ids.read_occurrence_value("k1|20261301T150000Z") == ("k1|20261301T150000Z", None)
    assert ids.read_occurrence_value("k1") == ("k1", None)


def test_a_listed_series_shows_its_next_meeting_and_how_it_repeats() -> None:
    """A series in the list (as ``Scheduler.upcoming`` gives it: at its next meeting) says
    "(repeats every Tuesday)", the title escaped, and its buttons open the usual flows."""
    listed = replace(
        BOOKING, schedule=replace(BOOKING.schedule, **_at(UPCOMING[1].slot)), exceptions=()
    )
    built = blocks.list_blocks([listed], "U1")
    text = json.dumps([b.to_dict() for b in built])
    assert "*&lt;!channel&gt; sync &amp; plan* (repeats every Tuesday)" in text
    assert f"<!date^{int(UPCOMING[1].slot.start.timestamp())}^" in text
    actions = {str(e["action_id"]): e["value"] for e in elements(built)}
    assert actions == {ids.RESCHEDULE: "k1", ids.CANCEL_BOOKING: "k1"}
    home = blocks.home_blocks([listed], user_id="U1")
    assert {str(e.get("action_id")) for e in elements(home)} >= {
        ids.HOME_RESCHEDULE,
        ids.HOME_CANCEL_BOOKING,
    }


def test_a_next_meeting_moved_to_another_day_keeps_the_rules_words() -> None:
    """``weekly`` (no BYDAY) from Tuesday, its next meeting moved to Thursday: still "every
    Tuesday", not the day the meeting went to."""
    thursday = TimeSlot(FIRST + timedelta(days=9), FIRST + timedelta(days=9) + HALF)
    weekly = replace(
        BOOKING,
        schedule=ScheduleObject.from_slot(
            thursday, "Europe/Berlin", recurrence=["RRULE:FREQ=WEEKLY"]
        ),
        exceptions=(OccurrenceChange(UPCOMING[1].original_start, thursday, 1),),
    )
    text = json.dumps([b.to_dict() for b in blocks.list_blocks([weekly], "U2")])
    assert "(repeats every Tuesday)" in text and "Thursday" not in text


def _at(slot: TimeSlot) -> dict[str, SchedulePoint]:
    return {
        "start_time": SchedulePoint.from_datetime(slot.start, "Europe/Berlin"),
        "end_time": SchedulePoint.from_datetime(slot.end, "Europe/Berlin"),
    }


def test_notes_about_a_series_say_it_repeats_and_name_the_meeting_changed() -> None:
    """Booked: "every Tuesday from …"; one meeting moved or cancelled: named by its day in
    the reader's zone (Tue 8 Dec, 16:00 Berlin, is still Tuesday in New York); several in
    one note, a line each; a reminder names the meeting it is for. Titles stay escaped."""
    second, third = UPCOMING[1], UPCOMING[2]
    moved_to = TimeSlot(second.slot.start + timedelta(days=1), second.slot.end + timedelta(days=1))
    title = "*&lt;!channel&gt; sync &amp; plan*"
    booked = blocks.note_text(Note(NoteKind.BOOKED, BOOKING))
    assert booked.startswith(
        f":calendar: <@U1> booked {title} with you, every Tuesday from {token(FIRST)}"
    )
    changes = (
        OccurrenceChange(second.original_start, moved_to, 1),
        OccurrenceChange(third.original_start, None, 2),
    )
    note = Note(NoteKind.CHANGED, BOOKING, changes=changes, zone="America/New_York")
    moved, cancelled = blocks.note_text(note).split("\n")
    assert moved.startswith(
        f":arrows_counterclockwise: <@U1> moved the Tue 8 Dec meeting of {title} "
        f"from ~{token(second.slot.start)}"
    )
    assert f"~ to {token(moved_to.start)}" in moved
    assert cancelled.startswith(
        f":x: <@U1> cancelled the Tue 15 Dec meeting of {title}, ~{token(third.slot.start)}"
    )
    # 16:00 on Tuesday in Berlin is already Wednesday in Tokyo: each reader's own day.
    tokyo = blocks.note_text(replace(note, zone="Asia/Tokyo"))
    assert "the Wed 9 Dec meeting" in tokyo
    reminder = blocks.note_text(Note(NoteKind.REMINDER, BOOKING, 10, meeting=third.slot))
    assert token(third.slot.start) in reminder and token(FIRST) not in reminder


def token(moment: datetime) -> str:
    return f"<!date^{int(moment.timestamp())}^"
