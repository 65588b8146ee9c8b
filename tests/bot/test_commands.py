"""The typed move/cancel reader and matcher: which texts are commands, what they select, where
a move goes, and which booked meetings a selector means (in the person's own zone)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.errors import RequestError
from bot.models import Booking, BookingState, ScheduleObject, TimeSlot
from bot.scheduling.commands import (
    Action,
    BookingCommand,
    Selector,
    is_booking_command,
    name_words,
    read_booking_command,
    select_bookings,
    target_request,
)

BERLIN = "Europe/Berlin"
TZ = ZoneInfo(BERLIN)
# Monday 30 November 2026, 09:00 in Berlin.
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
ANA, BEN, CARA = "U0ANA0001", "U0BEN0002", "U0CARA003"


def read(text: str, now: datetime = NOW, tz: str = BERLIN) -> BookingCommand:
    command = read_booking_command(text, now, tz)
    assert command is not None, text
    return command


def day(number: int, hour: int = 0, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, number, hour, minute, tzinfo=TZ)


# --- commands or requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("move my 3pm with Ana to tomorrow", Action.MOVE),
        ("reschedule the design review to next week", Action.MOVE),
        ("move my meeting with <@U0ANA0001> on friday to monday afternoon", Action.MOVE),
        ("Please push tomorrow's 3pm to 4pm", Action.MOVE),
        ("can you shift our sync to thursday", Action.MOVE),
        ("bump my 15:00 to friday", Action.MOVE),
        ("postpone the retro", Action.MOVE),
        ("move friday's standup to monday", Action.MOVE),
        ("Move @ben's 1:1 to next week", Action.MOVE),
        ("move at 3 to 4", Action.MOVE),
        ("reschedule", Action.MOVE),
        ("cancel my 3pm", Action.CANCEL),
        ("cancel the 1:1 with ana", Action.CANCEL),
        ("Cancel all my meetings tomorrow", Action.CANCEL),
        ("call off the launch sync", Action.CANCEL),
        ("delete this meeting", Action.CANCEL),
        ("cancel", Action.CANCEL),
        ("hey, cancel my 9am", Action.CANCEL),
    ],
)
def test_a_verb_then_a_pointer_at_a_booked_meeting_is_a_command(text: str, action: Action) -> None:
    """Move/reschedule/push/shift/... or cancel, then my/the/a day's/a time/a mention."""
    assert is_booking_command(text)
    assert read(text).action == action


@pytest.mark.parametrize(
    "text",
    [
        "schedule a meeting to move the piano",
        "move planning with @ana tomorrow",
        "moving company intro with @ben next week",
        "cancellation policy review with @ana friday",
        "design review with @ana, can we move fast?",
        "sync about the reschedule flow tomorrow",
        "push notifications demo with <@U0BEN0002> at 3",
        "movement workshop on friday",
        "1:1 with @ana to cancel the old plan",
    ],
)
def test_new_requests_are_not_commands(text: str) -> None:
    """A verb later in the sentence, or a verb not followed by a pointer, is a new request."""
    assert not is_booking_command(text)
    assert read_booking_command(text, NOW, BERLIN) is None


# --- what a command selects -----------------------------------------------------------------


def test_my_3pm_with_a_name_is_a_clock_and_a_name() -> None:
    """ "my 3pm with Ana": the local clock 15:00 (no day) and the typed name "ana"."""
    command = read("move my 3pm with Ana to tomorrow")
    assert command.selector == Selector(clock=time(15), names=("ana",))
    assert command.target == "tomorrow"


@pytest.mark.parametrize(
    ("text", "clock"),
    [
        ("cancel my 3pm", time(15)),
        ("cancel my 3 pm", time(15)),
        ("cancel my 15:00", time(15)),
        ("cancel my meeting at 3", time(15)),  # a bare hour in business context
        ("cancel my 9", time(9)),
        ("cancel my 9:30am", time(9, 30)),
        ("cancel my noon", time(12)),
    ],
)
def test_times_of_day_are_read_like_requests(text: str, clock: time) -> None:
    """Times follow the request language: 3pm, 15:00, bare 3 = 15:00, bare 9 = 09:00."""
    assert read(text).selector.clock == clock


def test_a_time_on_a_day_is_that_instant() -> None:
    """ "tomorrow's 3pm" and "my meeting at 3 on friday" name one start instant."""
    assert read("push tomorrow's 3pm to 4pm").selector.start == day(1, 15)
    assert read("move my meeting at 3 on friday to 4pm").selector.start == day(4, 15)


def test_a_day_alone_is_a_window() -> None:
    """ "on friday", "friday's", "next week" select meetings within that window."""
    assert read("cancel my meeting on friday").selector.window == TimeSlot(day(4), day(5))
    friday = read("cancel friday's standup").selector
    assert friday.window == TimeSlot(day(4), day(5)) and friday.words == ("standup",)
    assert read("cancel my meetings next week").selector.window == TimeSlot(day(7), day(14))


def test_people_by_mention_handle_and_name() -> None:
    """Mentions give user ids, typed handles "@ben", names after "with" (and ", and")."""
    selector = read(f"move my sync with <@{ANA}>, @ben and cara to friday").selector
    assert selector.people == (ANA, "@ben")
    assert selector.names == ("cara",)
    assert selector.words == ("sync",)


def test_title_words_leave_out_determiners_days_and_people() -> None:
    """ "the design review with ana on friday": words design, review; name ana; Friday."""
    selector = read("reschedule the design review with ana on friday to monday").selector
    assert selector.words == ("design", "review")
    assert selector.names == ("ana",)
    assert selector.window == TimeSlot(day(4), day(5))


def test_a_bare_verb_selects_everything() -> None:
    """ "cancel" alone selects all the person's meetings (one is acted on, several listed)."""
    assert read("cancel").selector.empty
    assert read("reschedule my meeting").selector.empty


# --- where a move goes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "selector_words", "target"),
    [
        ("reschedule the design review to next week", ("design", "review"), "next week"),
        ("move my 3pm to tomorrow afternoon", (), "tomorrow afternoon"),
        ("reschedule the intro to sales to friday", ("intro",), "sales to friday"),
        ("move the 1:1 for tomorrow", ("1:1",), "tomorrow"),
        ("push the retro until thursday", ("retro",), "thursday"),
        ("move the trip to paris planning", ("trip", "paris", "planning"), None),
    ],
)
def test_a_move_splits_at_the_first_to_that_names_a_time(
    text: str, selector_words: tuple[str, ...], target: str | None
) -> None:
    """The new time starts after the first "to"/"for"/"until" followed by a time phrase."""
    command = read(text)
    assert command.selector.words == selector_words
    assert command.target == target


def test_a_cancel_has_no_target() -> None:
    """ "cancel the talk to marketing on friday" cancels; nothing is a new time."""
    command = read("cancel the talk to marketing on friday")
    assert command.target is None and command.selector.window == TimeSlot(day(4), day(5))


def test_the_target_is_read_by_the_request_rules() -> None:
    """ "to thursday afternoon" is Thursday 12-17 local; "to next week" Monday to Monday."""
    meeting = day(1, 15)
    afternoon = target_request(read("move my 3pm to thursday afternoon"), meeting, NOW, BERLIN)
    assert afternoon is not None
    assert (afternoon.window_start, afternoon.window_end) == (day(3, 12), day(3, 17))
    week = target_request(read("move my 3pm to next week"), meeting, NOW, BERLIN)
    assert week is not None and (week.window_start, week.window_end) == (day(7), day(14))
    assert target_request(read("move my 3pm"), meeting, NOW, BERLIN) is None


def test_a_bare_target_time_stays_on_the_meetings_day() -> None:
    """ "move tomorrow's 3pm to 4pm" looks at 16:00 tomorrow, not today."""
    command = read("move tomorrow's 3pm to 4pm")
    target = target_request(command, day(1, 15), NOW, BERLIN)
    assert target is not None and target.exact_start == day(1, 16)
    assert target.window_start >= NOW


def test_a_bare_target_time_on_a_meeting_today_is_later_today() -> None:
    """A meeting today moved "to 4pm" looks at 16:00 today (it is 09:00 now)."""
    target = target_request(read("move my 3pm to 4pm"), day(30, 15, month=11), NOW, BERLIN)
    assert target is not None and target.exact_start == day(30, 16, month=11)


def test_a_past_target_is_a_friendly_error() -> None:
    """ "to yesterday" says the time is past, with an example."""
    with pytest.raises(RequestError, match="past"):
        target_request(read("move my 3pm to yesterday"), day(1, 15), NOW, BERLIN)


def test_an_impossible_day_in_the_selector_is_a_friendly_error() -> None:
    """ "on feb 31" cannot be read: the error names it."""
    with pytest.raises(RequestError, match="does not exist"):
        read_booking_command("cancel my meeting on feb 31", NOW, BERLIN)


# --- which bookings a selector means --------------------------------------------------------


def booking(
    key: str,
    start: datetime,
    *,
    organizer: str = ANA,
    others: tuple[str, ...] = (BEN,),
    title: str | None = "Sync",
    minutes: int = 30,
) -> Booking:
    return Booking(
        key=key,
        team_id="T1",
        organizer_id=organizer,
        participant_ids=others,
        title=title,
        schedule=ScheduleObject.from_slot(
            TimeSlot(start, start + timedelta(minutes=minutes)), BERLIN
        ),
        state=BookingState.CONFIRMED,
    )


KNOWN = {ANA: name_words("Ana Alves"), BEN: name_words("Ben Brown"), CARA: name_words("Cara Cho")}


def pick(
    text: str,
    bookings: list[Booking],
    *,
    user: str = ANA,
    tz: str = BERLIN,
    resolved: dict[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    command = read(text, tz=tz)
    selection = select_bookings(
        bookings, command.selector, user_id=user, tz=tz, known=KNOWN, resolved=resolved or {}
    )
    return [b.key for b in selection.own], [b.key for b in selection.others]


def test_my_3pm_is_the_next_meeting_starting_at_15_local() -> None:
    """Of three 15:00 meetings on different days, "my 3pm" is the soonest; 14:00 never."""
    bookings = [
        booking("tue-14", day(1, 14)),
        booking("tue-15", day(1, 15)),
        booking("thu-15", day(3, 15)),
        booking("fri-15", day(4, 15)),
    ]
    assert pick("cancel my 3pm", bookings) == (["tue-15"], [])
    assert pick("cancel my 3pm on thursday", bookings) == (["thu-15"], [])
    assert pick("cancel my 5pm", bookings) == ([], [])


def test_the_clock_is_read_in_the_persons_own_zone() -> None:
    """15:00 Berlin is 09:00 in New York: Ben's "my 9am" finds it, his "my 3pm" does not."""
    meeting = booking("m", day(1, 15))
    assert pick("cancel my 9am", [meeting], user=BEN, tz="America/New_York") == ([], ["m"])
    assert pick("cancel my 3pm", [meeting], user=BEN, tz="America/New_York") == ([], [])


def test_the_clock_follows_daylight_saving_time() -> None:
    """Across the spring change (28 March 2027 in Berlin) "my 3pm" is still 15:00 local."""
    before_change = NOW.replace(year=2027, month=3, day=26)
    after = booking("after", datetime(2027, 3, 29, 15, 0, tzinfo=TZ))
    command = read("cancel my 3pm", now=before_change)
    selection = select_bookings(
        [after], command.selector, user_id=ANA, tz=BERLIN, known=KNOWN, resolved={}
    )
    assert [b.key for b in selection.own] == ["after"]


def test_people_are_matched_by_id_resolved_handle_or_name() -> None:
    """A mention, a handle the directory resolved, or a word of the person's name."""
    with_ben = booking("ben", day(1, 10), others=(BEN,))
    with_cara = booking("cara", day(1, 11), others=(CARA,))
    both = [with_ben, with_cara]
    assert pick(f"cancel the sync with <@{BEN}>", both) == (["ben"], [])
    assert pick("cancel the sync with @bb", both, resolved={"bb": BEN}) == (["ben"], [])
    assert pick("cancel the sync with cara", both) == (["cara"], [])
    assert pick("cancel the sync with Brown", both) == (["ben"], [])
    assert pick("cancel the sync with dave", both) == ([], [])


def test_title_words_must_all_be_found_and_generic_ones_only_narrow() -> None:
    """ "design review" needs both words (in the title or a name); "1:1" or "sync" only
    prefers meetings called that, never rules the rest out."""
    review = booking("review", day(1, 10), title="Design review")
    one = booking("one", day(2, 10), title="1:1")
    plain = booking("plain", day(3, 10), title=None)
    bookings = [review, one, plain]
    assert pick("cancel the design review", bookings) == (["review"], [])
    assert pick("cancel the review", bookings) == (["review"], [])
    assert pick("cancel the code review", bookings) == ([], [])
    assert pick("cancel the 1:1", bookings) == (["one"], [])
    assert pick("cancel the meeting with ben", bookings) == (["review", "one", "plain"], [])
    assert pick("cancel the 1:1 with ben", [review, plain]) == (["review", "plain"], [])


def test_a_window_selects_meetings_that_overlap_it() -> None:
    """ "on tuesday" selects Tuesday's meetings only."""
    bookings = [booking("tue", day(1, 10)), booking("wed", day(2, 10))]
    assert pick("move my meeting on tuesday to friday", bookings) == (["tue"], [])


def test_own_meetings_come_first_and_others_only_when_none_are_own() -> None:
    """Ben's meeting with Ana counts for Ana only when none of her own match (a refusal)."""
    own = booking("own", day(1, 10))
    theirs = booking("theirs", day(2, 10), organizer=BEN, others=(ANA,))
    assert pick("cancel the sync", [own, theirs]) == (["own"], [])
    assert pick("cancel the sync", [theirs]) == ([], ["theirs"])
