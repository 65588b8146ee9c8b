"""Block Kit for recurring meetings: the "which meeting?" choice and the one-meeting prompts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.models import Booking, BookingState, Participant, ScheduleObject, TimeSlot
from bot.recurrence import Occurrence
from bot.scheduling.booking import Change
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
