"""Typed commands about a booked meeting: "move my 3pm with Ana to tomorrow", "cancel the 1:1".

A pure reader turns the text into an action, a selector of the booking and (for a move) the
text of the new window, read later by the request parser's own rules; a pure matcher picks the
bookings a selector means. Everything is relative to the ``now`` and zone passed in.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from enum import StrEnum

from bot.errors import RequestError
from bot.models import Booking, MeetingRequest, TimeSlot, wall_to_instant, zone_of
from bot.scheduling.parsing import parse_request, read_when
from bot.scheduling.phrases import WEEKDAY_PATTERN

__all__ = [
    "COMMAND_EXAMPLE",
    "Action",
    "BookingCommand",
    "Selection",
    "Selector",
    "is_booking_command",
    "name_words",
    "read_booking_command",
    "select_bookings",
    "target_request",
]

COMMAND_EXAMPLE = (
    "For example: `move my 3pm with @ana to tomorrow`, `reschedule the design review to next "
    "week` or `cancel my 1:1 with @ben`."
)


class Action(StrEnum):
    MOVE = "move"
    CANCEL = "cancel"


_MOVE_VERBS = ("move", "reschedule", "resched", "push", "shift", "bump", "postpone")
_CANCEL_VERBS = ("cancel", "call off", "delete")
_DAY_WORD = rf"(?:today|tomorrow|tonight|{WEEKDAY_PATTERN})"
_CLOCK = r"(?:\d{1,2}(?:[:.]\d{2})?\s*(?:[ap]\.?m\.?)?|noon|midday)(?![\w/])"
# The rule of docs/request-language.md section 10: a verb at the very start, then a word that
# points at a meeting already booked. "move planning with @ana" is a request for "planning".
_VERB = "|".join(v.replace(" ", r"\s+") for v in (*_MOVE_VERBS, *_CANCEL_VERBS))
_COMMAND_RE = re.compile(
    r"^\s*(?:(?:please|pls|plz|hey|hi|ok|okay|kindly|can\s+you|could\s+you|would\s+you)[\s,]+)*"
    rf"(?P<verb>{_VERB})"
    r"(?:\s+(?:back|out|up))?"
    rf"(?:\s+(?=(?:my|the|our|this|that|all|it)\b|{_DAY_WORD}'s\b|(?:at\s+)?{_CLOCK}"
    r"|<@[UW][A-Z0-9]+(?:\|[^>]*)?>|@\w)|\s*[.!]*\s*$)",
    re.IGNORECASE,
)
_LEADING_WORDS = re.compile(r"^(?:(?:my|the|our|this|that|all|of|it|one)\b\s*)+", re.IGNORECASE)
# "my 9": a bare hour right after the pointer is a time of day, as "at 9" would be.
_BARE_HOUR = re.compile(r"^(?:my|the|our|this|that)\s+(?=\d{1,2}(?:[:.]\d{2})?(?:\s|$))", re.I)
_POSSESSIVE_DAY = re.compile(rf"\b({_DAY_WORD})'s\b", re.IGNORECASE)
# Where a move's new time starts: the first of these after which the text names a time.
_TARGET_SPLIT = re.compile(r"\s(?:to|until|till|into|onto|for)\s", re.IGNORECASE)
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_HANDLE = re.compile(r"(?<![\w@.<])@([a-z][a-z0-9._\-]*[a-z0-9]|[a-z])", re.IGNORECASE)
_NAME = r"(?:<@[UW][A-Z0-9]+(?:\|[^>]*)?>|@?[^\W\d_][\w.'\-]*)"
_WITH_PEOPLE = re.compile(
    rf"(?<!\w)(?:with|w/)\s+(?P<names>{_NAME}(?:\s*(?:,|&|\band\b)\s*{_NAME})*)", re.IGNORECASE
)
#: Words after "with" that start the rest of the sentence, not a name.
_NOT_NAMES = frozenset(
    {"on", "at", "to", "for", "about", "in", "next", "this", "that", "the", "my", "our",
     "today", "tomorrow", "tonight", "morning", "afternoon", "evening", "noon", "from",
     "between", "after", "before", "by", "and", "re", "regarding", "me", "us", "everyone"}
)  # fmt: skip
_WEEKDAY_RE = re.compile(rf"^{WEEKDAY_PATTERN}$", re.IGNORECASE)
_WORD = re.compile(r"[^\W_][\w:'\-]*")
#: Title words that name any meeting: they narrow a choice but never rule a meeting out.
_SOFT_WORDS = frozenset(
    {"meeting", "meetings", "call", "calls", "chat", "sync", "1:1", "1-on-1", "one-on-one",
     "session", "appointment", "event", "invite", "catch-up", "catchup"}
)  # fmt: skip
_DAY_WORDS = frozenset({"today", "tomorrow", "tonight"})
_SMALL_WORDS = frozenset(
    {"my", "our", "the", "a", "an", "to", "of", "for", "with", "and", "on", "at", "in", "about"}
)


@dataclass(frozen=True, slots=True)
class Selector:
    """Which booked meeting a command means; every part given must hold.

    ``clock`` alone (``my 3pm``) means the next meeting starting at that local time; ``start``
    a meeting starting at that instant; ``window`` one overlapping it. ``people`` are user ids
    and typed ``@handles``, ``names`` typed names (``with ana``), ``words`` title words.
    """

    clock: time | None = None
    start: datetime | None = None
    window: TimeSlot | None = None
    people: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    words: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self == Selector()


@dataclass(frozen=True, slots=True)
class BookingCommand:
    """A move or cancel typed in words; ``target`` is a move's new time as typed, if any."""

    action: Action
    selector: Selector
    target: str | None = None
    text: str = field(default="", compare=False)


def is_booking_command(text: str) -> bool:
    """Whether ``text`` is a move or cancel of a booked meeting rather than a new request."""
    return _COMMAND_RE.match(_plain(text)) is not None


def read_booking_command(text: str, now: datetime, tz: str) -> BookingCommand | None:
    """Read a move or cancel; None when ``text`` is not one (section 10 of the request doc).

    Raises ``RequestError`` for a time that cannot be read (``cancel my meeting on feb 31``).
    """
    plain = _plain(text)
    found = _COMMAND_RE.match(plain)
    if found is None:
        return None
    verb = " ".join(found.group("verb").lower().split())
    action = Action.CANCEL if verb in _CANCEL_VERBS else Action.MOVE
    rest = plain[found.end() :].strip()
    target = None
    if action == Action.MOVE:
        rest, target = _split_target(rest, now, tz)
    return BookingCommand(action, _selector(rest, now, tz), target, text)


def target_request(
    command: BookingCommand, meeting_start: datetime, now: datetime, tz: str
) -> MeetingRequest | None:
    """Where a move may go, read as a request; None when the command names no new time.

    A bare time (``to 4pm``) stays on the meeting's own day, unless that day is already over.
    """
    if command.target is None:
        return None
    reference = now
    if read_when(command.target, now, tz).clock is not None:
        zone = zone_of(tz)
        day_start = wall_to_instant(
            datetime.combine(meeting_start.astimezone(zone).date(), time()), tz
        )
        reference = max(now, day_start)
    request = parse_request(command.target, reference, tz)
    if request.window_start < now:  # read from the meeting's day: never before now
        request = MeetingRequest(
            window_start=now,
            window_end=request.window_end,
            exact_start=request.exact_start,
            time_zone=tz,
        )
    return request


# --- reading ------------------------------------------------------------------------------------


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'")
    return " ".join(text.split())


def _split_target(rest: str, now: datetime, tz: str) -> tuple[str, str | None]:
    """The selector and the new time of a move: split at the first "to"/"for"/... after
    which the text names a time ("the intro to sales to friday" splits before "friday")."""
    for split in _TARGET_SPLIT.finditer(rest):
        after = rest[split.end() :].strip()
        try:
            names = read_when(after, now, tz).named
        except RequestError:
            names = True  # a time that cannot be: the move's parse says what is wrong
        if names:
            return rest[: split.start()].strip(), after
    return rest, None


def _selector(text: str, now: datetime, tz: str) -> Selector:
    people = [m.group(1) for m in _MENTION.finditer(text)]
    people += ["@" + m.group(1).lower() for m in _HANDLE.finditer(_MENTION.sub(" ", text))]
    names: list[str] = []

    def with_people(match: re.Match[str]) -> str:
        for piece in re.split(r"\s*(?:,|&|\band\b)\s*", match.group("names"), flags=re.I):
            words = piece.split()
            if not words:
                continue
            word = words[0]
            if _MENTION.match(word) or word.startswith("@"):
                continue  # mentions and handles are read below, wherever they stand
            if word.lower() in _NOT_NAMES or _WEEKDAY_RE.match(word):
                return " , " + match.group("names")[match.group("names").find(word) :]
            names.append(word.lower())
        return " "

    text = _WITH_PEOPLE.sub(with_people, text)
    text = _HANDLE.sub(" ", _MENTION.sub(" ", text))
    text = _POSSESSIVE_DAY.sub(r"\1", text)
    text = _BARE_HOUR.sub("at ", text.strip(), count=1)
    text = _LEADING_WORDS.sub("", text)
    selector = Selector(people=tuple(dict.fromkeys(people)), names=tuple(dict.fromkeys(names)))
    if not text.strip(" ,.!?"):
        return selector
    when = read_when(text, now, tz)
    request = parse_request(text, now, tz)
    words = tuple(
        w
        for w in _words(request.title or "")
        if w not in _DAY_WORDS and w not in _SMALL_WORDS and not _WEEKDAY_RE.match(w)
    )
    if not when.named:
        return replace(selector, words=words)
    if when.clock is not None:
        return replace(selector, clock=when.clock, words=words)
    if request.exact_start is not None:
        return replace(selector, start=request.exact_start, words=words)
    window = TimeSlot(request.window_start, request.window_end)
    return replace(selector, window=window, words=words)


def _words(text: str) -> list[str]:
    found = []
    for word in _WORD.findall(_fold(text)):
        word = word.removesuffix("'s").strip("'-")
        if word:
            found.append(word)
    return found


def _fold(text: str) -> str:
    """Lowercase without accents, so "Zoë" and "zoe" are one name."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def name_words(*names: str | None) -> tuple[str, ...]:
    """The words a person may be called by: each word of their handle and names, folded."""
    return tuple(dict.fromkeys(w for name in names if name for w in _words(name)))


# --- matching -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """The upcoming bookings a selector means: those ``user`` organizes (``own``) and, only
    when there are none, those they merely attend (``others``)."""

    own: tuple[Booking, ...]
    others: tuple[Booking, ...]


def select_bookings(
    bookings: Iterable[Booking],
    selector: Selector,
    *,
    user_id: str,
    tz: str,
    known: Mapping[str, Sequence[str]],
    resolved: Mapping[str, str],
) -> Selection:
    """The bookings ``selector`` means among ``bookings`` (the person's upcoming ones).

    ``known`` gives the name words of each person involved (``name_words``); ``resolved`` the
    user id a typed name or handle stands for, where the directory knows exactly one. Times are
    read in ``tz``, the person's own zone. A bare ``clock`` picks the soonest meeting starting
    at that local time.
    """
    zone = zone_of(tz)
    hard = [w for w in selector.words if w not in _SOFT_WORDS]
    soft = [w for w in selector.words if w in _SOFT_WORDS]
    found = []
    for booking in bookings:
        members = (booking.organizer_id, *booking.participant_ids)
        words = set(_words(booking.title or ""))
        for member in members:
            words.update(known.get(member, ()))
        slot = booking.slot
        if selector.clock is not None and (
            slot.start.astimezone(zone).time().replace(tzinfo=None) != selector.clock
        ):
            continue
        if selector.start is not None and slot.start != selector.start:
            continue
        if selector.window is not None and not (
            slot.start < selector.window.end and selector.window.start < slot.end
        ):
            continue
        terms = [*selector.people, *selector.names]
        if not all(_names_member(term, members, known, resolved) for term in terms):
            continue
        if not all(any(_same_word(w, have) for have in words) for w in hard):
            continue
        found.append(booking)
    if soft:
        # "the sync with ana": a meeting called a sync wins over her other meetings.
        titled = [b for b in found if set(soft) & set(_words(b.title or ""))]
        found = titled or found
    own = [b for b in found if b.organizer_id == user_id]
    others = [] if own else [b for b in found if b.organizer_id != user_id]
    if selector.clock is not None:
        own, others = own[:1], others[:1]
    return Selection(tuple(own), tuple(others))


def _names_member(
    term: str,
    members: Sequence[str],
    known: Mapping[str, Sequence[str]],
    resolved: Mapping[str, str],
) -> bool:
    if not term.startswith("@") and term in members:
        return True  # a mention: the user id itself
    name = term.removeprefix("@")
    if resolved.get(name) in members:
        return True
    folded = _fold(name)
    return any(folded in known.get(member, ()) for member in members)


def _same_word(wanted: str, have: str) -> bool:
    if wanted == have:
        return True
    # "review" finds "reviews", "retro" finds "retrospective"; short words must be whole.
    return len(wanted) >= 4 and have.startswith(wanted)
