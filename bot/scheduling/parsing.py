"""Turns one line of chat into a MeetingRequest, following docs' REQUEST-LANGUAGE.md rules.

Compiled regexes find the phrases and a resolver turns them into instants; dateparser reads
month-name dates. Everything is relative to the ``now`` and zone passed in.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfoNotFoundError

import dateparser
from dateutil.rrule import rrulestr

from bot.errors import RequestError
from bot.models import MeetingRequest, wall_to_instant, zone_of
from bot.scheduling.phrases import (
    CONTEXT_OPENERS,
    GENERIC_TITLES,
    MEETING_NOUNS,
    MONTH_PATTERN,
    NUMBER_PATTERN,
    TOPIC_INTRODUCER,
    WEEKDAY_PATTERN,
    ZONE_AFTER_TIME,
    ZONE_NAMED,
    ZONES,
    count_of,
    leading_filler,
    month_number,
    trailing_filler,
    weekday_number,
)

__all__ = ["MAX_LENGTH", "When", "parse_request", "read_when"]

MAX_LENGTH = 4000
EXAMPLE = 'For example: "30 min with @ana tomorrow afternoon" or "sync next tuesday at 3pm".'
_DAY_NAMES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_FREE, _USED, _KEPT = 0, 1, 2
_BREAK = "\x00"
_MAX_YEARS_AHEAD = 50
_MAX_TRIES = 120


def _fail(message: str) -> RequestError:
    return RequestError(f"{message} {EXAMPLE}")


# --- cleaning Slack markup --------------------------------------------------------------------

_MENTION_RE = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_LINK_LABEL_RE = re.compile(r"<(?:https?://|mailto:)[^|>]*\|([^>]*)>")
_ANGLE_RE = re.compile(r"<[^>]{0,300}>")
_HANDLE_RE = re.compile(r"(?<![\w@.])@([a-z][a-z0-9._\-]*[a-z0-9]|[a-z])", re.IGNORECASE)
_STRUCK_RE = re.compile(r"(?<!\w)~(?=\S)[^~\n]{0,300}\S~(?!\w)|(?<!\w)~[^~\s\d]~(?!\w)")
_EMOJI_CODE_RE = re.compile(r":(?=[a-z0-9_+\-]*[a-z])[a-z0-9_+\-]{1,60}:", re.IGNORECASE)
_UNDERSCORE_RE = re.compile(r"(?<!\w)_(?=\S)|(?<=\S)_(?!\w)")
_QUOTED_RE = re.compile(r"\"([^\"\x00]{1,200})\"|(?<!\w)'([^'\x00]{1,200})'(?!\w)")
_NON_HANDLES = frozenset({"here", "channel", "everyone"})
_TRANSLATE = str.maketrans(
    {
        "\u2013": "-",
        "\u2014": " , ",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "*": " ",
        "`": " ",
        "\u00a0": " ",
    }
)


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char) in ("So", "Sk", "Cs", "Co")
        or 0x1F000 <= code <= 0x1FAFF
        or code in (0x200D, 0xFE0F, 0xFE0E, 0x20E3)
    )


_CONTROLS_TO_SPACE = {code: " " for code in (*range(32), *range(0x7F, 0xA0)) if code != ord("\n")}


class _EmojiToSpace(dict[int, str]):
    """A ``str.translate`` table that blanks emoji, filled in as characters are first seen."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        value = " " if _is_emoji(char) else char
        if len(self) < 1 << 16:  # a bound, so odd input cannot grow it without limit
            self[code] = value
        return value


_EMOJI_TO_SPACE = _EmojiToSpace()


@dataclass
class _Message:
    text: str
    low: str
    mask: bytearray
    attendees: list[str]
    quoted: str | None


def _clean(raw: str) -> _Message:
    attendees: list[str] = []

    def mention(match: re.Match[str]) -> str:
        attendees.append(match.group(1))
        return _BREAK

    def handle(match: re.Match[str]) -> str:
        name = match.group(1).lower()
        if name in _NON_HANDLES:
            return _BREAK
        attendees.append("@" + name)
        return _BREAK

    # Line breaks survive: they separate agenda bullets and sentences for the title.
    text = raw.translate(_CONTROLS_TO_SPACE)
    text = _MENTION_RE.sub(mention, text)
    text = _LINK_LABEL_RE.sub(lambda m: f" {m.group(1)} ", text)
    text = _ANGLE_RE.sub(_BREAK, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    text = text.translate(_TRANSLATE)
    text = _STRUCK_RE.sub(" ", text)
    text = _EMOJI_CODE_RE.sub(" ", text)
    text = text.translate(_EMOJI_TO_SPACE)
    text = _UNDERSCORE_RE.sub("", text)
    text = _HANDLE_RE.sub(handle, text)
    # "re:" / "topic:" introduce the title; the colon must not split the clause before it.
    text = re.sub(r"\bre\s*:", "re ", text, flags=re.IGNORECASE)
    text = re.sub(r"\b(?:topic|subject)\s*:", "regarding ", text, flags=re.IGNORECASE)
    low = text.lower()
    if len(low) != len(text):
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    mask = bytearray(len(text))
    quoted = None
    match = _QUOTED_RE.search(text)
    if match:
        quoted = (match.group(1) or match.group(2)).strip() or None
        mask[match.start() : match.end()] = b"\x02" * (match.end() - match.start())
    seen: dict[str, None] = {}
    for person in attendees:
        seen.setdefault(person, None)
    return _Message(text, low, mask, list(seen), quoted)


# --- what the scan finds ----------------------------------------------------------------------


@dataclass
class _Span:
    """Days ``[start, end)`` on the requester's calendar; ``end_time`` cuts the last day."""

    start: date
    end: date
    end_time: time | None = None

    @property
    def single(self) -> date | None:
        if self.end_time is None and self.end - self.start == timedelta(days=1):
            return self.start
        return None


@dataclass
class _Clock:
    """A wall-clock time; ``minutes`` may be 1440 for the midnight that ends a day."""

    minutes: int


@dataclass
class _Facts:
    spans: list[_Span] = field(default_factory=list)
    deferred_spans: list[tuple[_Span, int, int]] = field(default_factory=list)
    explicit_today: bool = False
    parts: list[tuple[int, int, str]] = field(default_factory=list)
    evening: bool = False
    times: list[_Clock] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    slots: list[tuple[int, int]] = field(default_factory=list)
    lower: list[int] = field(default_factory=list)
    upper: list[int] = field(default_factory=list)
    relative: timedelta | None = None
    within: timedelta | None = None
    next_days: int | None = None
    zone: str | None = None
    duration: int | None = None
    past: list[int] = field(default_factory=list)
    recurrence: list[str] = field(default_factory=list)
    # "for 2 weeks" (days) or "6 times" (a count) after a recurrence: how long it repeats.
    recur_days: int | None = None
    recur_count: int | None = None
    sched_positions: list[int] = field(default_factory=list)


# --- patterns -----------------------------------------------------------------------------------

WD = WEEKDAY_PATTERN
MON = MONTH_PATTERN
NUM = NUMBER_PATTERN
_NOT_TIME_AFTER = r"(?![:\d]|\s*(?:[ap]\.?m\b|h\b|hrs?\b|hours?\b|mins?\b|minutes?\b|o'?clock))"
_TOMORROW = (
    r"tomorrow|tmrw|tmrow|tmr|tmw|2moro|2morrow|2mrw|2morow|tomorow|tommorow|tommorrow|"
    r"tomorro|tomoz|tomm?or+ow"
)


def _day_expr(s: str) -> str:
    """A single-day expression; group names carry the suffix ``s`` so two can share a regex."""
    return (
        rf"(?:(?P<dat{s}>(?:the\s+)?day\s+after\s+(?:{_TOMORROW}))"
        rf"|(?P<tom{s}>{_TOMORROW})"
        rf"|(?P<tod{s}>today|tdy|2day)"
        rf"|(?P<iso{s}>(?P<isoy{s}>\d{{4}})-(?P<isom{s}>\d{{1,2}})-(?P<isod{s}>\d{{1,2}}))"
        rf"|(?:(?P<dwd{s}>{WD})\.?,?\s+(?:the\s+)?)?(?:"
        rf"(?P<mname{s}>{MON})\.?\s+(?P<mday{s}>\d{{1,2}})(?:st|nd|rd|th)?\b{_NOT_TIME_AFTER}"
        rf"(?:,?\s+(?P<myear{s}>\d{{4}})\b)?"
        rf"|(?P<dmday{s}>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<dmname{s}>{MON})\b\.?"
        rf"(?:,?\s+(?P<dmyear{s}>\d{{4}})\b)?"
        rf"|(?P<sa{s}>\d{{1,2}})/(?P<sb{s}>\d{{1,2}})(?:/(?P<sy{s}>\d{{4}}|\d{{2}}))?"
        rf"(?![\d/]|\s*(?:hrs?|hours?|h)\b)"
        rf"|(?P<da{s}>[0-3]?\d)\.(?P<db{s}>0?[1-9]|1[0-2])\.(?P<dy{s}>\d{{4}}|\d{{2}}(?!\d))?"
        rf"|(?P<nth{s}>\d{{1,2}})(?:st|nd|rd|th)\b(?!\s+(?:of\s+)?{MON})"
        rf")"
        rf"|(?:(?P<wmod{s}>next|this coming|this|coming|on|every|each)\s+)?"
        rf"(?P<wd{s}>{WD})\b(?!'s)(?P<wsfx{s}>\s+(?:next|this)\s+week\b)?"
        rf")"
    )


# The scanner reads lowercased text, where IGNORECASE only matters for the few characters that
# fold onto an ASCII letter without being one; elsewhere a case-sensitive twin gives the same
# matches and lets the regex engine skip ahead on literal first characters.
_FOLDS_TO_ASCII = re.compile("[A-Z\u0130\u0131\u017f\u212a]")
# Keyed by id(): hashing a compiled pattern hashes its whole program, on every lookup.
_CASE_SENSITIVE: dict[int, re.Pattern[str]] = {}
# Words a match cannot do without: each group lists alternatives, and one of every group must
# be in the (lowercased) text, or the pattern is not run at all. _DIGIT stands for any \d.
_NEEDS: dict[int, tuple[tuple[str, ...], ...]] = {}
_DIGIT = r"\d"
_GATE_FROM = 200
_DIGIT_RE = re.compile(r"\d")
_TIME_NEED = (_DIGIT, "noon", "midday", "midnight")
_DAY_NEED = (
    _DIGIT, "day", "tom", "tmr", "tmw", "2mo", "2mr", "tod", "tdy",
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    "mon", "tue", "tus", "teu", "wed", "wen", "thu", "thr", "fri", "fir", "sat", "sun",
)  # fmt: skip
_MONTH_NEED = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_PROTECTED_NEED = ("1:1", "1-on-1", "1on1", "one", "24/7", "'s", "day", "year", "quarter",
                   "q1", "q2", "q3", "q4", "h1", "h2", "fy")  # fmt: skip
_PERIOD_NEED = ("week", "wk", "eow", "eom", "month", "day", "now", "asap", "a.s.a.p",
                "whenever", "time", "convenience")  # fmt: skip
_BOUND_NEED = ("after", "before", "earl", "start", "from", "by", "til", "later", "finish",
               "end", "wrap", "done", "over")  # fmt: skip
_HOUR_NEED = (*_TIME_NEED, "one", "two", "three", "four", "five", "six", "seven", "eight",
              "nine", "ten", "eleven", "twelve")  # fmt: skip


def _compile(pattern: str, *needs: tuple[str, ...]) -> re.Pattern[str]:
    compiled = re.compile(pattern, re.IGNORECASE)
    _CASE_SENSITIVE[id(compiled)] = re.compile(pattern)
    _NEEDS[id(compiled)] = needs
    return compiled


_TP_MER = r"(?:a\.m\.?|p\.m\.?|am|pm|(?<=\d)a\b|(?<=\d)p\b)"


def _time_piece(s: str) -> str:
    return (
        rf"(?:(?P<noon{s}>\b(?:12\s*)?noon|\bmidday)|(?P<midn{s}>midnight)"
        rf"|(?P<h{s}>\d{{1,2}})(?:[:.](?P<m{s}>\d{{2}}))?\s*(?P<mer{s}>{_TP_MER})?)(?![\w/]|:\d)"
    )


_ZONE_SUFFIX = rf"(?:\s*\(?(?P<zone>{ZONE_NAMED}|{ZONE_AFTER_TIME})\b\)?)?"
_B = r"(?<![\w/.:])"
_E = r"(?![\w])"

_PROTECTED = _compile(
    rf"{_B}(?:1:1s?|1-on-1s?|1on1s?|one-on-ones?|one\s+on\s+one|24/7)\b"
    rf"|\b(?:yesterday|today|tomorrow|tonight|(?:last|this|next)\s+(?:week|month|year|quarter)"
    rf"|last\s+{WD}|{WD})'s\b"
    rf"|(?<!in\s)\b\d{{1,4}}[- ]day\b(?!s)|\b(?:last|this|next)\s+(?:year|quarter)\b"
    rf"|\b(?:q[1-4]|h[12]|fy\d{{2,4}})\b",
    _PROTECTED_NEED,
)
_PAST = _compile(
    rf"\b(?:{NUM}|couple|few|several)\s+(?:hours?|hrs?|minutes?|mins?|days?|weeks?|months?)\s+ago\b"
    rf"|\byesterday\b|\blast\s+(?:{WD}|week|night|month)\b|\bearlier\s+today\b"
    rf"|\bthis\s+past\s+{WD}\b|\bday\s+before\s+yesterday\b",
    ("ago", "yesterday", "last", "earlier", "past"),
)
_PAST_NARRATION = _compile(
    r"\b(?:was|were|did|had|went|got|came|saw|met|made|said|told|sent|broke|ran|spoke|began"
    r"|(?!need|speed|feed|seed|proceed|indeed|embed)\w{3,}ed)\b"
)
_WITHIN_HOURS = _compile(
    rf"\b(?:(?:within|in|during|over)\s+)?(?:the\s+)?next\s+(?P<n>{NUM}|couple(?:\s+of)?|few)?\s*"
    rf"(?P<u>hours?|hrs?|minutes?|mins?)\b"
    rf"|\bwithin\s+(?:the\s+)?(?P<n2>{NUM})\s+(?P<u2>hours?|hrs?|minutes?|mins?)\b",
    ("next", "within"),
)
_NEXT_DAYS = _compile(
    rf"\b(?:(?:within|in|during|over)\s+)?(?:the\s+)?next\s+(?:(?P<n>{NUM})|(?:a\s+)?couple(?:\s+of)?"
    rf"|(?:a\s+)?few)\s+(?P<u>days?|weeks?)\b"
    rf"|\bwithin\s+(?:the\s+)?(?P<n2>{NUM})\s+(?P<u2>days?|weeks?)\b",
    ("next", "within"),
)
_IN_DELTA = _compile(
    rf"(?<!lock\s)(?<!pencil\s)(?<!fit\s)(?<!squeeze\s)(?<!slot\s)(?<!put\s)"
    rf"\bin\s+(?:(?P<hh>an\s+hour\s+and\s+a\s+half)|(?P<half>half\s+an?\s+hour)"
    rf"|(?P<n>\d+(?:\.\d+)?|{NUM})\s*(?P<u>hours?|hrs?|h|minutes?|mins?|m)(?:\s+and\s+a\s+half)?)\b",
    ("in",),
    ("h", "m"),
)
_IN_DAYS = _compile(
    rf"\bin\s+(?P<n>{NUM})\s+(?P<u>days?|weeks?)\b"
    rf"|\b(?P<n2>{NUM})\s+(?P<u2>days?|weeks?)\s+from\s+(?:now|today)\b",
    ("day", "week"),
)
# "every monday and wednesday", "on tuesdays and thursdays": the list is one rule's days.
_MORE_DAYS = rf"(?P<more>(?:\s*(?:,\s*and|,|and|&)\s+(?:every\s+|each\s+)?{WD}s?\b)*)"
_RECUR = _compile(
    rf"\b(?:every|each)\s+(?:other\s+)?(?P<wd>{WD})s?\b{_MORE_DAYS}"
    rf"|\bon\s+(?P<wd2>{WD})s\b(?P<more2>(?:\s*(?:,\s*and|,|and|&)\s+{WD}s\b)*)"
    rf"|\b(?P<freq>weekly|daily|biweekly|bi-weekly|fortnightly|monthly|every\s+(?:week|day|month|weekday))\b",
    ("every", "each", "on", "weekly", "daily", "bi-weekly", "fortnightly", "monthly"),
)
# How long a series runs: "for 2 weeks", "for the next 3 months", "6 times", "for 8 sessions".
_RECUR_LENGTH = _compile(
    rf"\bfor\s+(?:the\s+next\s+)?(?P<n>{NUM})\s+(?P<u>days?|weeks?|months?)\b"
    rf"|\b(?:for\s+)?(?P<c>{NUM})\s+(?:times|occurrences|sessions|meetings)\b",
    ("for", "times", "occurrences", "sessions", "meetings"),
)
_WEEKDAY_WORD = re.compile(rf"(?<![a-z]){WD}(?=s?\b)", re.IGNORECASE)
_DURATION = _compile(
    rf"{_B}(?:(?P<ninety>(?:an?\s+|one\s+)?hour\s+and\s+a\s+half|(?:one|1)\s+and\s+a\s+half\s+hours?)"
    rf"|(?P<thirty>half\s+an?\s+hour|half[- ]hour|1/2\s*(?:hr|hour)s?)"
    rf"|(?P<fifteen>(?:a\s+)?quarter(?:\s+of\s+an)?\s+hour)"
    rf"|(?P<couple>(?:a\s+)?couple(?:\s+of)?\s+hours?)|(?P<few>(?:a\s+)?few\s+hours)"
    rf"|(?P<long>(?:an?\s+)?hour[- ]long)"
    rf"|(?P<hm>\d{{1,2}})h(?P<hmm>\d{{1,2}})m?"
    rf"|(?P<h>\d+(?:\.\d+)?|an?|one|two|three|four)\s*-?\s*(?P<hu>hours?|hrs?|h)\b"
    rf"(?:\s*(?:and\s+)?(?P<hmin>\d{{1,2}})\s*(?:minutes?|mins?|m)\b)?"
    rf"|(?P<m>\d{{1,3}}|five|ten|fifteen|twenty|thirty|forty-five|forty|fifty|sixty|ninety)"
    rf"\s*-?\s*(?:minutes?|mins?|m)\b)",
    ("h", "m"),
)
_WORDS_MINUTES = {
    "five": 5, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
    "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
}  # fmt: skip
_WEEK_OF = _compile(rf"\bweek\s+of\s+(?:the\s+)?{_day_expr('a')}", ("week",), _DAY_NEED)
_NTH_WEEKDAY = _compile(
    rf"\b(?P<ord>first|1st|second|2nd|third|3rd|fourth|4th|last)\s+(?P<wd>{WD})\s+(?:of|in)\s+"
    rf"(?P<mon>{MON})\b(?:\s+(?P<y>\d{{4}}))?",
    _MONTH_NEED,
)
_MONTH_DAY_RANGE = _compile(
    rf"\b(?P<mon>{MON})\.?\s+(?P<a>\d{{1,2}})(?:st|nd|rd|th)?\s*(?:-|to|through|thru|until|till)\s*"
    rf"(?P<b>\d{{1,2}})(?:st|nd|rd|th)?\b{_NOT_TIME_AFTER}",
    _MONTH_NEED,
)
_DAY_RANGE = _compile(
    rf"(?:\b(?:between|from)\s+)?{_B}{_day_expr('a')}\s*(?:-|and|to|through|thru|until|till|or)\s*"
    rf"{_day_expr('b')}{_E}",
    ("-", "and", "to", "thr", "til", "or"),
    _DAY_NEED,
)
_DAY_BOUND = _compile(
    rf"(?<!day\s)\b(?P<pre>by|before|after|until|till|til|no\s+later\s+than|not\s+later\s+than)\s+"
    rf"(?:(?:the\s+)?end\s+of\s+)?(?:on\s+)?{_day_expr('a')}{_E}",
    ("by", "before", "after", "til", "later"),
    _DAY_NEED,
)
_EOD = _compile(
    rf"\b(?:(?:by|before|until|till|at)\s+)?(?:the\s+)?(?:eod|cob|eob|close\s+of\s+business"
    rf"|end\s+of\s+(?:the\s+)?(?:business\s+|work\s+)?day)\b(?:\s+(?:on\s+)?{_day_expr('a')}{_E})?",
    ("eod", "cob", "eob", "close", "end"),
)
_PERIODS = _compile(
    r"\b(?:(?P<early>early\s+next\s+week)|(?P<late>(?:late|later)\s+next\s+week|end\s+of\s+next\s+week)"
    r"|(?P<nextweekend>next\s+weekend)|(?P<nextweek>next\s+week|next\s+wk)"
    r"|(?P<eow>(?:(?:by|before|until)\s+)?(?:the\s+)?(?:end\s+of\s+(?:the\s+|this\s+)?week|eow))"
    r"|(?P<weekend>(?:this\s+|the\s+|over\s+the\s+)?weekend)"
    r"|(?P<thisweek>(?:later\s+|sometime\s+)?this\s+week|this\s+wk|rest\s+of\s+(?:the|this)\s+week)"
    r"|(?P<eom>(?:(?:by|before|until)\s+)?(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?month|eom)"
    r"|(?P<thismonth>(?:later\s+)?this\s+month|rest\s+of\s+(?:the|this)\s+month)"
    r"|(?P<nextmonth>next\s+month)"
    r"|(?P<today>later\s+today|rest\s+of\s+(?:the\s+)?day|rest\s+of\s+today)"
    r"|(?P<weekfrom>(?:a|one|1)\s+week\s+from\s+(?:today|now))"
    r"|(?P<noop>right\s+now|asap|a\.s\.a\.p\.?|whenever|any\s*time|sometime|at\s+your\s+convenience))\b",
    _PERIOD_NEED,
)
_WEEKDAY_OF_WEEK = _compile(
    rf"{_B}(?:on\s+)?(?P<wd>{WD})\b,?\s+(?:of\s+)?(?P<which>next|this)\s+week\b"
    rf"|\b(?P<which2>next|this)\s+week\s+(?:on\s+)?(?P<wd2>{WD})\b",
    ("week",),
)
_SINGLE_DAY = _compile(rf"{_B}{_day_expr('a')}{_E}", _DAY_NEED)
_PARTS = _compile(
    r"\b(?:(?P<mod>this|in\s+the|during\s+the|tomorrow|tmrw)\s+)?(?P<adj>early|late)?[- ]?"
    r"(?P<part>morning|afternoon|arvo|aft|evening|night)(?:s|-?ish)?\b"
    r"|\b(?P<tonight>tonight|tonite|2nite)\b|\b(?P<first>first\s+thing)(?:\s+in\s+the\s+morning)?\b",
    ("morning", "aft", "arvo", "evening", "night", "tonite", "2nite", "first"),
)
_TIME_RANGE = _compile(
    rf"(?:\b(?P<kind>between|btw|btwn|from)\s+)?{_B}{_time_piece('a')}\s*(?P<sep>-|and|to|till|until|til)"
    rf"\s*{_time_piece('b')}{_ZONE_SUFFIX}",
    _TIME_NEED,
    ("-", "and", "to", "til"),
)
_BOUND = _compile(
    rf"\b(?:(?P<lo>after|not\s+before|no\s+earlier\s+than|starting(?:\s+at|\s+from)?|from|earliest)"
    rf"|(?P<hi>before|by|until|till|til|no\s+later\s+than|not\s+later\s+than"
    rf"|(?:(?:has|have|needs?|got)\s+to\s+|must\s+|should\s+|to\s+)?(?:finish|end|wrap\s+up|be\s+done"
    rf"|be\s+over|done)(?:\s+(?:by|before|at))?))\s+(?:at\s+)?{_time_piece('a')}{_ZONE_SUFFIX}",
    _TIME_NEED,
    _BOUND_NEED,
)
_NUM_WORD_HOURS = r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\d{1,2}"
_ISH = r"(?:\s*-?ish\b)?"  # "11ish", "3pm-ish": treated as exact (section 5)
_SINGLE_TIME = _compile(
    rf"(?P<pre>(?:\b(?:at|around|about|approx(?:imately)?|say|circa|ca\.?)\s*|@\s*|~\s*))?"
    rf"(?:(?P<half>half\s+past|quarter\s+past|quarter\s+(?:to|till|of))\s+(?P<qh>{_NUM_WORD_HOURS})\b"
    rf"|\b(?P<noon>(?:12\s*)?noon|midday)\b|\b(?P<midn>midnight)\b"
    rf"|{_B}(?P<h>\d{{1,2}})(?P<sep>[:.])(?P<m>\d{{2}})\s*(?P<mer>{_TP_MER})?{_ISH}(?![\w/]|:\d)"
    rf"|{_B}(?P<h2>\d{{1,2}})\s*(?P<mer2>{_TP_MER}){_ISH}(?![\w/])"
    rf"|{_B}(?P<h3>\d{{3,4}})\s*(?P<mer3>{_TP_MER})?{_ISH}(?![\w/]|[:.]\d)"
    rf"|{_B}(?P<h4>\d{{1,2}})h(?P<m4>\d{{2}})?\b"
    rf"|{_B}(?P<h5>\d{{1,2}}|{_NUM_WORD_HOURS})(?P<oc>\s*o'?clock)?{_ISH}(?![\w/]|[:.]\d)"
    rf"){_ISH}{_ZONE_SUFFIX}",
    _HOUR_NEED,
)
# A number right after a day that counts something is not an hour ("friday 3 people").
_COUNTED = _compile(
    r"\s*(?:people|persons?|folks|of\b|times|x\b|more|others|slots?|sessions?|meetings?|calls?"
    r"|interviews?|candidates?|items?|topics?|teams?|days?|weeks?|months?|years?)"
)
_ZONE_ALONE = _compile(rf"\b(?:in\s+)?(?P<zone>{ZONE_NAMED})\b", ("time", "gmt", "utc"))
_BAD_TIME = _compile(r"(?<![\w:.])(\d{1,2}):(\d{2})(?![\d:])|\b(\d{1,2})\s*([ap]m)\b", (_DIGIT,))
_HOUR_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_DETERMINER_BEFORE = re.compile(r"(?<![\w'])(?:the|our|their|that|those|its)\s+$")
_ATTRIBUTIVE_NEXT = re.compile(r"\s+([a-z][a-z0-9:\-]*)")
_NOT_ATTRIBUTIVE = frozenset(
    {
        "at", "or", "and", "to", "through", "thru", "till", "until", "morning", "afternoon",
        "evening", "night", "noon", "midday", "next", "this", "the", "between", "from", "after",
        "before", "by", "works", "work", "is", "are", "would", "could", "should", "with", "w/",
        "for", "please", "pls", "if", "ok", "okay", "any", "anytime", "sometime", "around",
        "about", "re", "regarding", "ish", "lunchtime", "early", "late", "eod", "cob",
    }
)  # fmt: skip


# --- the scanner --------------------------------------------------------------------------------


class _Scanner:
    """Runs the patterns in order; a phrase once used is invisible to later patterns."""

    def __init__(self, message: _Message, today: date) -> None:
        self.low = message.low
        self.mask = message.mask
        self.today = today
        self.facts = _Facts()
        self.plain = _FOLDS_TO_ASCII.search(self.low) is None
        # Checking the needs costs more than it saves on a chat-sized message.
        self.gated = self.plain and len(self.low) > _GATE_FROM
        self.digit = self.gated and _DIGIT_RE.search(self.low) is not None
        self.narration = (-1, -1, False)

    def free(self, start: int, end: int) -> bool:
        return not any(self.mask[start:end])

    def take(self, start: int, end: int, how: int = _USED) -> None:
        self.mask[start:end] = bytes([how]) * (end - start)
        if how == _USED:
            self.facts.sched_positions.append(start)

    def each(self, pattern: re.Pattern[str], handle: Callable[[re.Match[str]], object]) -> None:
        key = id(pattern)
        if self.gated and not all(any(map(self.holds, group)) for group in _NEEDS[key]):
            return
        if self.plain:
            pattern = _CASE_SENSITIVE[key]
        position = 0
        # A bound on tries keeps pathological input (thousands of bare numbers) fast.
        for _ in range(_MAX_TRIES):
            match = pattern.search(self.low, position)
            if match is None:
                break
            start, end = match.span()
            if end > start and self.free(start, end):
                keep = handle(match)
                if keep is not False:
                    self.take(start, end, _KEPT if keep == "kept" else _USED)
                    position = end
                    continue
            # A phrase overlapping a used one may still hide a shorter phrase inside it.
            position = start + 1

    def run(self) -> _Facts:
        self.each(_PROTECTED, lambda match: "kept")
        self.each(_PAST, self.on_past)
        self.each(_WITHIN_HOURS, self.on_within_hours)
        self.each(_NEXT_DAYS, self.on_next_days)
        self.each(_IN_DELTA, self.on_in_delta)
        self.each(_IN_DAYS, self.on_in_days)
        self.each(_RECUR, self.on_recurrence)
        self.each(_RECUR_LENGTH, self.on_recurrence_length)
        self.each(_DURATION, self.on_duration)
        self.each(_WEEK_OF, self.on_week_of)
        self.each(_NTH_WEEKDAY, self.on_nth_weekday)
        self.each(_MONTH_DAY_RANGE, self.on_month_day_range)
        self.each(_EOD, self.on_eod)
        self.each(_DAY_BOUND, self.on_day_bound)
        self.each(_WEEKDAY_OF_WEEK, self.on_weekday_of_week)
        self.each(_PERIODS, self.on_period)
        self.each(_DAY_RANGE, self.on_day_range)
        self.each(_SINGLE_DAY, self.on_single_day)
        self.each(_PARTS, self.on_part)
        self.each(_TIME_RANGE, self.on_time_range)
        self.each(_BOUND, self.on_bound)
        self.each(_SINGLE_TIME, self.on_single_time)
        self.each(_ZONE_ALONE, self.on_zone)
        self.each(_BAD_TIME, self.on_bad_time)
        return self.facts

    # -- relative --------------------------------------------------------------------------

    def on_past(self, match: re.Match[str]) -> str | None:
        sentence_start = max(self.low.rfind(c, 0, match.start()) for c in ".!?\n") + 1
        if self.narrated(sentence_start, match.start()):
            return "kept"  # "we fixed it yesterday": context, not a request for yesterday
        self.facts.past.append(match.start())
        return None

    def on_within_hours(self, match: re.Match[str]) -> None:
        word = match.group("n") or match.group("n2") or "1"
        unit = match.group("u") or match.group("u2")
        amount = count_of(word.replace(" of", ""))
        self.facts.within = timedelta(hours=amount) if unit[0] == "h" else timedelta(minutes=amount)

    def on_next_days(self, match: re.Match[str]) -> None:
        word = match.group("n") or match.group("n2")
        amount = count_of(word) if word else (2 if "couple" in match.group(0) else 3)
        unit = match.group("u") or match.group("u2")
        self.facts.next_days = amount * (7 if unit.startswith("week") else 1)

    def on_in_delta(self, match: re.Match[str]) -> None:
        if match.group("hh"):
            minutes = 90.0
        elif match.group("half"):
            minutes = 30.0
        else:
            word = match.group("n")
            amount = float(word) if word[0].isdigit() else float(count_of(word))
            if match.group(0).endswith("half"):
                amount += 0.5
            minutes = amount * (60 if match.group("u")[0] == "h" else 1)
        self.facts.relative = timedelta(minutes=min(minutes, 60 * 24 * 400))

    def on_in_days(self, match: re.Match[str]) -> None:
        amount = count_of(match.group("n") or match.group("n2"))
        unit = match.group("u") or match.group("u2")
        day = self.today + timedelta(days=amount * (7 if unit.startswith("week") else 1))
        self.facts.spans.append(_Span(day, day + timedelta(days=1)))

    def on_recurrence(self, match: re.Match[str]) -> None:
        word = match.group("wd") or match.group("wd2")
        if word:
            number = weekday_number(word)
            every_other = "other" in match.group(0)
            interval = ";INTERVAL=2" if every_other else ""
            more = match.group("more") or match.group("more2") or ""
            numbers = [number, *(weekday_number(w) for w in _WEEKDAY_WORD.findall(more))]
            days = ",".join(_DAY_NAMES[n] for n in sorted(set(numbers)))
            self.facts.recurrence.append(f"RRULE:FREQ=WEEKLY{interval};BYDAY={days}")
            day = _bare_weekday(self.today, number)
            self.facts.spans.append(_Span(day, day + timedelta(days=1)))
            return
        freq = match.group("freq").replace("-", "")
        rule = {
            "weekly": "FREQ=WEEKLY",
            # A daily meeting at work (a standup) is on workdays; "every day" means every day.
            "daily": "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
            "biweekly": "FREQ=WEEKLY;INTERVAL=2",
            "fortnightly": "FREQ=WEEKLY;INTERVAL=2",
            "monthly": "FREQ=MONTHLY",
            "every week": "FREQ=WEEKLY",
            "every day": "FREQ=DAILY",
            "every month": "FREQ=MONTHLY",
            "every weekday": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
        }.get(" ".join(freq.split()), "FREQ=WEEKLY")
        self.facts.recurrence.append("RRULE:" + rule)

    def on_recurrence_length(self, match: re.Match[str]) -> bool | None:
        if not self.facts.recurrence:
            return False  # "for 2 weeks" without a rule is not about repeating: leave it
        if match.group("c"):
            self.facts.recur_count = max(1, count_of(match.group("c")))
            return None
        amount = max(1, count_of(match.group("n")))
        unit = match.group("u")
        self.facts.recur_days = amount * {"d": 1, "w": 7, "m": 30}[unit[0]]
        return None

    def on_duration(self, match: re.Match[str]) -> bool | None:
        g = match.group
        minutes: float
        if g("ninety"):
            minutes = 90
        elif g("thirty"):
            minutes = 30
        elif g("fifteen"):
            minutes = 15
        elif g("couple"):
            minutes = 120
        elif g("few"):
            minutes = 180
        elif g("long"):
            minutes = 60
        elif g("hm"):
            minutes = int(g("hm")) * 60 + int(g("hmm"))
        elif g("h"):
            word = g("h")
            hours = float(word) if word[0].isdigit() else float(count_of(word))
            if g("hu") == "h" and hours >= 9 and not g("hmin"):
                return False  # "17h" is a time of day, not a 17-hour meeting
            minutes = hours * 60 + int(g("hmin") or 0)
        else:
            word = g("m")
            minutes = int(word) if word.isdigit() else _WORDS_MINUTES[word]
        if minutes <= 0 or minutes > 24 * 60:
            return False
        if self.facts.duration is None:
            self.facts.duration = round(minutes)
        return None

    # -- days ------------------------------------------------------------------------------

    def on_week_of(self, match: re.Match[str]) -> None:
        day = self.resolve_day(match, "a")
        monday = day - timedelta(days=day.weekday())
        self.facts.spans.append(_Span(monday, monday + timedelta(days=7)))

    def on_nth_weekday(self, match: re.Match[str]) -> None:
        number = weekday_number(match.group("wd"))
        month = month_number(match.group("mon"))
        order = match.group("ord")
        index = {"f": 0, "1": 0, "s": 1, "2": 1, "t": 2, "3": 2, "4": 3, "l": -1}[order[0]]
        if order.startswith("fo"):
            index = 3

        def pick(year: int) -> date:
            days = [
                date(year, month, d)
                for d in range(1, calendar.monthrange(year, month)[1] + 1)
                if date(year, month, d).weekday() == number
            ]
            return days[index]

        if match.group("y"):
            day = pick(self.checked_year(int(match.group("y"))))
            if day < self.today:
                raise _fail("That date is in the past.")
        else:
            day = pick(self.today.year)
            if day < self.today:
                day = pick(self.today.year + 1)
        self.facts.spans.append(_Span(day, day + timedelta(days=1)))

    def on_month_day_range(self, match: re.Match[str]) -> None:
        month = month_number(match.group("mon"))
        first, last = int(match.group("a")), int(match.group("b"))
        start = self.month_day(month, first, None)
        end = _valid_date(start.year, month, last)
        if end < start:
            raise _fail("That date range ends before it starts.")
        self.facts.spans.append(_Span(start, end + timedelta(days=1)))

    def on_eod(self, match: re.Match[str]) -> None:
        day = self.resolve_day(match, "a") if match.group("wda") or _has_day(match, "a") else None
        self.facts.spans.append(_Span(self.today, (day or self.today), time(17)))

    def on_day_bound(self, match: re.Match[str]) -> None:
        day = self.resolve_day(match, "a")
        pre = match.group("pre")
        one = timedelta(days=1)
        if pre == "before":
            if day <= self.today:
                raise _fail("That day is already over.")
            self.facts.spans.append(_Span(self.today, day))
        elif pre == "after":
            self.facts.spans.append(_Span(day + one, day + 8 * one))
        else:
            self.facts.spans.append(_Span(self.today, day + one))

    def on_weekday_of_week(self, match: re.Match[str]) -> None:
        number = weekday_number(match.group("wd") or match.group("wd2"))
        monday = self.today - timedelta(days=self.today.weekday())
        if (match.group("which") or match.group("which2")) == "next":
            monday += timedelta(days=7)
        day = monday + timedelta(days=number)
        if day < self.today:
            raise _fail("That day of this week is already over.")
        self.facts.spans.append(_Span(day, day + timedelta(days=1)))

    def on_period(self, match: re.Match[str]) -> None:
        today = self.today
        one = timedelta(days=1)
        monday = today - timedelta(days=today.weekday())
        next_monday = monday + 7 * one
        first_next = _add_months(today.replace(day=1), 1)
        kind = match.lastgroup
        spans = {
            "early": (next_monday, next_monday + 2 * one),
            "late": (next_monday + 3 * one, next_monday + 5 * one),
            "nextweekend": (next_monday + 5 * one, next_monday + 7 * one),
            "nextweek": (next_monday, next_monday + 7 * one),
            "eow": (today, monday + 5 * one),
            "weekend": (monday + 5 * one, next_monday),
            "thisweek": (today, next_monday),
            "eom": (today, first_next),
            "thismonth": (today, first_next),
            "nextmonth": (first_next, _add_months(first_next, 1)),
            "today": (today, today + one),
            "weekfrom": (today + 7 * one, today + 8 * one),
        }
        if kind == "noop" or kind is None:
            return
        start, end = spans[kind]
        if end <= today:
            raise _fail("That part of the week is already over.")
        self.facts.spans.append(_Span(max(start, today), end))

    def on_day_range(self, match: re.Match[str]) -> bool | None:
        first = self.resolve_day(match, "a")
        if match.group("wdb") and not match.group("wmodb"):
            # The last weekday follows the first one within a week.
            offset = (weekday_number(match.group("wdb")) - first.weekday()) % 7
            last = first + timedelta(days=offset)
        else:
            last = self.resolve_day(match, "b")
        if last < first:
            raise _fail("That range ends before it starts.")
        self.facts.spans.append(_Span(first, last + timedelta(days=1)))
        return None

    def on_single_day(self, match: re.Match[str]) -> bool | None:
        if match.group("wda") and not match.group("wmoda") and not match.group("wsfxa"):
            following = _ATTRIBUTIVE_NEXT.match(self.low, match.end())
            if (
                following
                and following.group(1) not in _NOT_ATTRIBUTIVE
                and (MEETING_NOUNS.match(following.group(1)) or following.group(1).endswith("up"))
            ):
                day = self.resolve_day(match, "a")
                self.facts.deferred_spans.append(
                    (_Span(day, day + timedelta(days=1)), match.start(), match.end())
                )
                return False
        if (match.group("mnamea") or match.group("dmnamea")) and self.names_a_topic(match):
            return False  # section 8: part of the title, never used for scheduling
        day = self.resolve_day(match, "a")
        if match.group("toda"):
            self.facts.explicit_today = True
        self.facts.spans.append(_Span(day, day + timedelta(days=1)))
        return None

    # -- parts and times -------------------------------------------------------------------

    def on_part(self, match: re.Match[str]) -> bool | None:
        if match.group("tonight"):
            self.facts.parts.append((17 * 60, 24 * 60, "tonight"))
            self.facts.evening = True
            return None
        if match.group("first"):
            self.facts.parts.append((8 * 60, 10 * 60, _part_kind(match.group("mod"))))
            return None
        part, adj = match.group("part"), match.group("adj")
        if part == "night" and not (match.group("mod") or adj or self.after_day(match.start())):
            return False  # "game night" names the meeting; "friday night" is a part of day
        table = {
            "morning": (8, 12),
            "afternoon": (12, 17),
            "arvo": (12, 17),
            "aft": (12, 17),
            "evening": (17, 21),
            "night": (17, 24),
        }
        start, end = table[part]
        if part in ("afternoon", "arvo", "aft"):
            if adj == "early":
                end = 15
            elif adj == "late":
                start = 15
        elif part == "morning":
            if adj == "early":
                end = 10
            elif adj == "late":
                start = 10
        if part in ("evening", "night"):
            self.facts.evening = True
        mod = match.group("mod")
        if mod in ("tomorrow", "tmrw"):
            day = self.today + timedelta(days=1)
            self.facts.spans.append(_Span(day, day + timedelta(days=1)))
        self.facts.parts.append((start * 60, end * 60, _part_kind(mod)))
        return None

    def on_time_range(self, match: re.Match[str]) -> bool | None:
        kind, sep = match.group("kind"), match.group("sep")
        a_mer, b_mer = match.group("mera"), match.group("merb")
        loose = kind is None and sep != "-"
        marked = a_mer or b_mer or match.group("ma") or match.group("mb")
        named = match.group("noona") or match.group("noonb")
        # "thursday 1-2" is a slot; a bare "1-2" elsewhere may be a score or a count.
        dated = kind is None and sep == "-" and self.after_day(match.start())
        if loose or (kind is None and not marked and not named and not dated):
            return False
        if sep == "and" and kind in (None, "from"):
            return False
        end = _piece_minutes(match, "b", None, self.facts.evening)
        start = _piece_minutes(match, "a", b_mer if not a_mer else None, self.facts.evening)
        if not a_mer and b_mer and start >= end:
            # Section 5 reads the bare first hour on its own ("from 4 to 2pm" is 16:00-14:00).
            start = _piece_minutes(match, "a", None, self.facts.evening)
        if start >= end and not b_mer and end < 12 * 60 and end + 12 * 60 > start:
            end += 12 * 60
        if start >= end:
            raise _fail("That time range ends before it starts.")
        self.set_zone(match)
        if kind in ("between", "btw", "btwn"):
            self.facts.ranges.append((start, end))
        else:
            self.facts.slots.append((start, end))
        return None

    def on_bound(self, match: re.Match[str]) -> bool | None:
        marked = match.group("mera") or match.group("ma") or match.group("noona")
        if not marked and match.group("ha") and int(match.group("ha")) > 12:
            return False
        minutes = _piece_minutes(match, "a", None, self.facts.evening)
        self.set_zone(match)
        if match.group("lo"):
            self.facts.lower.append(minutes)
        else:
            self.facts.upper.append(minutes if minutes else 24 * 60)
        return None

    def on_single_time(self, match: re.Match[str]) -> bool | None:
        g = match.group
        pre = (g("pre") or "").strip()
        evening = self.facts.evening
        if g("half"):
            hour = _hour_value(g("qh"))
            hour = _bare_hour(hour, evening) // 60
            kind = g("half").split()
            if kind[0] == "half":
                minutes = hour * 60 + 30
            elif kind[1] == "past":
                minutes = hour * 60 + 15
            else:
                minutes = hour * 60 - 15
        elif g("noon"):
            minutes = 12 * 60
        elif g("midn"):
            minutes = 24 * 60
        elif g("h"):
            if g("sep") == "." and not (g("mer") or pre):
                return False
            minutes = _clock(int(g("h")), int(g("m")), g("mer"), g("h").startswith("0"), evening)
        elif g("h2"):
            minutes = _clock(int(g("h2")), 0, g("mer2"), g("h2").startswith("0"), evening)
        elif g("h3"):
            digits = g("h3")
            if not (digits.startswith("0") or pre or g("mer3") or self.after_day(match.start())):
                return False
            hour, minute = int(digits[:-2]), int(digits[-2:])
            minutes = _clock(hour, minute, g("mer3"), digits.startswith("0"), evening)
        elif g("h4"):
            minutes = _clock(int(g("h4")), int(g("m4") or 0), None, True, evening)
        else:
            dated = self.after_day(match.start()) and not _COUNTED.match(self.low, match.end())
            if not (pre or g("oc") or dated):
                return False
            if pre in ("about",) and not g("oc"):
                return False
            hour = _hour_value(g("h5"))
            if hour > 23:
                return False
            minutes = _clock(hour, 0, None, g("h5").startswith("0"), evening)
        self.set_zone(match)
        self.facts.times.append(_Clock(minutes))
        return None

    def on_zone(self, match: re.Match[str]) -> None:
        self.set_zone(match)

    def on_bad_time(self, match: re.Match[str]) -> None:
        if match.group(1):
            hour, minute = int(match.group(1)), int(match.group(2))
            if hour > 24 or minute > 59:
                raise _fail(f"{match.group(0)} is not a time of day.")
        elif int(match.group(3)) > 12 or int(match.group(3)) == 0:
            raise _fail(f"{match.group(0)} is not a time of day.")

    # -- helpers ---------------------------------------------------------------------------

    def holds(self, word: str) -> bool:
        return self.digit if word == _DIGIT else word in self.low

    def narrated(self, start: int, end: int) -> bool:
        """Whether a past-tense verb stands in ``low[start:end]``; ``end`` ends a word."""
        # Matches come left to right, so one sentence is read once, not once per match.
        seen_start, seen_end, found = self.narration
        if seen_start == start and seen_end <= end:
            found = found or _PAST_NARRATION.search(self.low, seen_end, end) is not None
        else:
            found = _PAST_NARRATION.search(self.low, start, end) is not None
        self.narration = (start, end, found)
        return found

    def set_zone(self, match: re.Match[str]) -> None:
        zone = match.groupdict().get("zone")
        if zone:
            name = re.sub(r"^in\s+", "", " ".join(zone.split()))
            self.facts.zone = ZONES.get(name, self.facts.zone)

    def names_a_topic(self, match: re.Match[str]) -> bool:
        """A date between an article and a noun ("the Nov 30 outage") describes the topic."""
        if not _DETERMINER_BEFORE.search(self.low, max(0, match.start() - 8), match.start()):
            return False
        following = _ATTRIBUTIVE_NEXT.match(self.low, match.end())
        return bool(following and following.group(1) not in _NOT_ATTRIBUTIVE)

    def after_day(self, position: int) -> bool:
        index = position - 1
        while index >= 0 and self.low[index] == " ":
            index -= 1
        return index >= 0 and self.mask[index] == _USED

    def checked_year(self, year: int) -> int:
        if year < self.today.year:
            raise _fail(f"{year} is in the past.")
        if year > self.today.year + _MAX_YEARS_AHEAD:
            raise _fail(f"{year} is too far ahead.")
        return year

    def month_day(self, month: int, day: int, year: int | None) -> date:
        if year is not None:
            resolved = _valid_date(self.checked_year(year), month, day)
            if resolved < self.today:
                raise _fail("That date is in the past.")
            return resolved
        this_year = self.today.year
        if (month, day) < (self.today.month, self.today.day):
            this_year += 1
        return _valid_date(this_year, month, day)

    def resolve_day(self, match: re.Match[str], s: str) -> date:
        g = match.group
        today = self.today
        one = timedelta(days=1)
        day: date
        if g(f"dat{s}"):
            return today + 2 * one
        if g(f"tom{s}"):
            return today + one
        if g(f"tod{s}"):
            return today
        if g(f"iso{s}"):
            year = self.checked_year(int(g(f"isoy{s}")))
            day = _valid_date(year, int(g(f"isom{s}")), int(g(f"isod{s}")))
            if day < today:
                raise _fail("That date is in the past.")
        elif g(f"mname{s}") or g(f"dmname{s}"):
            name = g(f"mname{s}") or g(f"dmname{s}")
            number = int(g(f"mday{s}") or g(f"dmday{s}"))
            year_text = g(f"myear{s}") or g(f"dmyear{s}")
            month, number = _read_month_day(name, number)
            day = self.month_day(month, number, int(year_text) if year_text else None)
        elif g(f"sa{s}"):
            first, second = int(g(f"sa{s}")), int(g(f"sb{s}"))
            month, number = (second, first) if first > 12 else (first, second)
            year_text = g(f"sy{s}")
            year = None
            if year_text:
                year = int(year_text) + (2000 if len(year_text) == 2 else 0)
            day = self.month_day(month, number, year)
        elif g(f"da{s}"):
            year_text = g(f"dy{s}")
            year = None
            if year_text:
                year = int(year_text) + (2000 if len(year_text) == 2 else 0)
            day = self.month_day(int(g(f"db{s}")), int(g(f"da{s}")), year)
        elif g(f"nth{s}"):
            number = int(g(f"nth{s}"))
            month_start = today.replace(day=1)
            if number < today.day:
                month_start = _add_months(month_start, 1)
            day = _valid_date(month_start.year, month_start.month, number)
        else:
            number = weekday_number(g(f"wd{s}"))
            modifier = g(f"wmod{s}")
            suffix = g(f"wsfx{s}")
            monday = today - timedelta(days=today.weekday())
            if modifier == "next" or (suffix and "next" in suffix):
                return monday + timedelta(days=7 + number)
            if suffix:
                day = monday + timedelta(days=number)
                if day < today:
                    raise _fail("That day of this week is already over.")
                return day
            if modifier == "this" and today.weekday() == number:
                return today
            return _bare_weekday(today, number)
        weekday = g(f"dwd{s}")
        if weekday and weekday_number(weekday) != day.weekday():
            raise _fail(f"{day:%B} {day.day} is a {day:%A}, not a {weekday.capitalize()}.")
        return day


def _part_kind(modifier: str | None) -> str:
    return "this" if modifier == "this" else "bare"


def _has_day(match: re.Match[str], s: str) -> bool:
    names = ("dat", "tom", "tod", "iso", "mname", "dmname", "sa", "da", "nth", "wd")
    return any(match.group(name + s) for name in names)


def _bare_weekday(today: date, number: int) -> date:
    return today + timedelta(days=(number - today.weekday() - 1) % 7 + 1)


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _valid_date(year: int, month: int, day: int) -> date:
    if not 1 <= month <= 12:
        raise _fail(f"There is no month {month}.")
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise _fail(f"{calendar.month_name[month]} {day}, {year} does not exist.")
    return date(year, month, day)


@lru_cache(maxsize=2048)
def _dateparser_month_day(phrase: str) -> tuple[int, int] | None:
    """Month and day of a month-name phrase as dateparser reads it (2000 is a leap year)."""
    parsed = dateparser.parse(
        phrase,
        languages=["en"],
        settings={
            "RELATIVE_BASE": datetime(2000, 1, 1),  # noqa: DTZ001 - only month and day are read
            "REQUIRE_PARTS": ["day", "month"],
            "PREFER_DATES_FROM": "current_period",
            "TIMEZONE": "UTC",
            "RETURN_AS_TIMEZONE_AWARE": False,
        },
    )
    if parsed is None:
        return None
    return parsed.month, parsed.day


def _read_month_day(name: str, number: int) -> tuple[int, int]:
    month = month_number(name)
    if number > 31:
        raise _fail(f"{name.capitalize()} {number} is not a date.")
    read = _dateparser_month_day(f"{calendar.month_name[month]} {number}")
    # dateparser refuses impossible days (April 31); our own check then names the problem.
    return read if read is not None else (month, number)


def _hour_value(word: str) -> int:
    return int(word) if word.isdigit() else _HOUR_WORDS[word]


def _bare_hour(hour: int, evening: bool) -> int:
    """Minutes after midnight for an hour without am/pm, in business context (section 5)."""
    if hour == 12 or hour == 0 or hour >= 13:
        return hour * 60
    if evening or hour <= 6:
        return (hour + 12) * 60
    return hour * 60


def _clock(hour: int, minute: int, meridiem: str | None, literal: bool, evening: bool) -> int:
    if minute > 59:
        raise _fail(f"{hour}:{minute:02d} is not a time of day.")
    if meridiem:
        if hour == 0 or hour > 12:
            raise _fail(f"{hour}{meridiem} is not a time of day.")
        if meridiem.startswith("a"):
            return (0 if hour == 12 else hour) * 60 + minute
        return (hour if hour == 12 else hour + 12) * 60 + minute
    if hour > 24 or (hour == 24 and minute):
        raise _fail(f"{hour}:{minute:02d} is not a time of day.")
    if literal or hour >= 13 or hour == 0:
        return hour * 60 + minute
    return _bare_hour(hour, evening) + minute


def _piece_minutes(match: re.Match[str], s: str, meridiem: str | None, evening: bool) -> int:
    g = match.group
    if g(f"noon{s}"):
        return 12 * 60
    if g(f"midn{s}"):
        return 24 * 60
    text = g(f"h{s}")
    return _clock(
        int(text), int(g(f"m{s}") or 0), g(f"mer{s}") or meridiem, text.startswith("0"), evening
    )


# --- resolving facts into a window ----------------------------------------------------------


@dataclass
class _Window:
    start: datetime
    end: datetime
    exact: datetime | None = None
    duration: int | None = None


def _resolve(facts: _Facts, now: datetime, tz: str, today: date) -> _Window:
    zone = facts.zone or tz
    one = timedelta(days=1)

    def at(day: date, minutes: int) -> datetime:
        return wall_to_instant(datetime.combine(day, time()) + timedelta(minutes=minutes), zone)

    def local_day(instant: datetime) -> date:
        return instant.astimezone(zone_of(zone)).date()

    def clipped(window: _Window) -> _Window:
        if window.end <= now:
            raise _fail("That time is already in the past.")
        if window.start < now:
            window.start = now
        return window

    if facts.relative is not None:
        exact = now + facts.relative
        exact_day = local_day(exact)
        return clipped(_Window(at(exact_day, 0), at(exact_day + one, 0), exact))
    if facts.within is not None:
        return _Window(now, now + facts.within)
    if facts.next_days is not None:
        return _Window(
            now, wall_to_instant(datetime.combine(today, time()) + (facts.next_days + 1) * one, tz)
        )

    spans = list(facts.spans)
    if not spans and facts.deferred_spans:
        spans = [span for span, _, _ in facts.deferred_spans]
    span = _combine_spans(spans)
    if facts.past and span is None:
        raise _fail("That day is already in the past.")

    if span is not None and span.single is None:
        if span.end_time is not None:
            return clipped(_Window(at(span.start, 0), at(span.end, span.end_time.hour * 60)))
        return clipped(_Window(at(span.start, 0), at(span.end, 0)))

    day: date | None = span.single if span is not None else None
    low, high = 0, 24 * 60
    intraday = False
    for start, end, _ in facts.parts[:1]:
        low, high, intraday = start, end, True
    if len(facts.parts) > 1:
        low = min(p[0] for p in facts.parts)
        high = max(p[1] for p in facts.parts)
    for start, end in facts.ranges:
        low, high, intraday = max(low, start), min(high, end), True
    for bound in facts.lower:
        low, intraday = max(low, bound), True
    for bound in facts.upper:
        high, intraday = min(high, bound), True
    if high <= low:
        raise _fail("Those times contradict each other.")

    clock: int | None = None
    duration: int | None = None
    if facts.slots:
        clock, end = facts.slots[0]
        duration = end - clock
        if facts.duration is not None:
            clock, low, high, intraday = None, max(low, facts.slots[0][0]), min(high, end), True
            duration = None
    elif facts.times:
        clock = facts.times[0].minutes

    if day is None:
        if not intraday and clock is None:
            return clipped(_Window(now, at(today + 7 * one, 0)))
        this_part = any(kind in ("this", "tonight") for _, _, kind in facts.parts)
        if this_part or (facts.lower and clock is None):
            day = today
        elif clock is not None:
            day = today if at(today, clock) > now else today + one
        else:
            day = today if at(today, high) > now else today + one

    if clock is None:
        return clipped(_Window(at(day, low), at(day, high)))
    exact = at(day, clock)
    if exact < now:
        raise _fail("That time has already passed.")
    if intraday and low <= clock < high:
        window = _Window(at(day, low), at(day, high), exact, duration)
    else:
        start_day = local_day(exact)
        window = _Window(at(start_day, 0), at(start_day + one, 0), exact, duration)
    return clipped(window)


def _combine_spans(spans: list[_Span]) -> _Span | None:
    if not spans:
        return None
    result = spans[0]
    for other in spans[1:]:
        if other.end_time is not None or result.end_time is not None:
            continue
        start, end = max(result.start, other.start), min(result.end, other.end)
        if start < end:
            result = _Span(start, end)
    return result


# --- the title ----------------------------------------------------------------------------------

_CLAUSE_SPLIT = re.compile(r"[.!?;:]+(?=\s|$|\x00)|,|\s-\s|[()\[\]\n]")
_INTRODUCER_RE = re.compile(rf"(?<![\w'])(?:{TOPIC_INTRODUCER})(?![\w'])\s*", re.IGNORECASE)
_EDGE_JUNK = " \t,.;:!?-|&+=~#>\"'()[]{}"
_FRAMING_RE = re.compile(
    r"\b(?:can|could|would|shall|should|let'?s|let us|please|pls|book|schedule|set up|find|"
    r"grab|need|want|arrange|lock in|anyone free)\b",
    re.IGNORECASE,
)
_LEADING_GENERIC_FOR = re.compile(
    r"^(?:(?:a|an|some|quick|short|brief)\s+)*(?:meeting|call|chat|time|slot|sync|minutes?)\s+"
    r"(?:for|to)\s+",
    re.IGNORECASE,
)
_USED_RUN = re.compile(rb"\x01+")
# _LEADING_GENERIC_FOR cannot match a chunk without this inside, nor any part of that chunk.
_GENERIC_FOR_HINT = re.compile(
    r"(?:meeting|call|chat|time|slot|sync|minutes?)\s+(?:for|to)\s", re.IGNORECASE
)
_ARTICLES = re.compile(r"^(?:(?:a|an|the|quick|short|brief)\s+)+", re.IGNORECASE)


def _strip_edges(chunk: str) -> str:
    # Every pass takes one filler off each end, so no pass may scan the whole chunk: the
    # fillers are looked up at the two ends only.
    generic_for = _GENERIC_FOR_HINT.search(chunk) is not None
    previous = None
    while chunk != previous:
        previous = chunk
        chunk = chunk.strip(_EDGE_JUNK)
        chunk = chunk[leading_filler(chunk) :]
        end = trailing_filler(chunk)
        if end:
            chunk = chunk[: end[0]] + chunk[end[1] :]
        if generic_for:
            chunk = _LEADING_GENERIC_FOR.sub("", chunk, count=1)
        chunk = CONTEXT_OPENERS.sub("", chunk, count=1)
    return " ".join(chunk.split())


def _is_generic(title: str) -> bool:
    bare = _ARTICLES.sub("", title.lower()).strip()
    return not bare or bare in GENERIC_TITLES or not any(c.isalnum() for c in bare)


def _title(message: _Message, facts: _Facts) -> str | None:
    if message.quoted:
        return message.quoted
    pieces: list[str] = []
    last = 0
    for run in _USED_RUN.finditer(message.mask):
        pieces += (message.text[last : run.start()], _BREAK * (run.end() - run.start()))
        last = run.end()
    text = "".join(pieces) + message.text[last:]
    best: tuple[int, int, str] | None = None
    for index, clause in enumerate(_CLAUSE_SPLIT.split(text)):
        if not clause.strip(_EDGE_JUNK + _BREAK):
            continue
        candidate = _clause_title(clause)
        if candidate is None or _is_generic(candidate):
            continue
        score = 0
        if MEETING_NOUNS.search(candidate):
            score += 2
        if _BREAK in clause:
            score += 2
        if _FRAMING_RE.search(clause) or CONTEXT_OPENERS.search(clause.strip(_EDGE_JUNK + _BREAK)):
            score += 1
        if best is None or score > best[0]:
            best = (score, index, candidate)
    return best[2] if best else None


# A run of used characters gives one split, not one empty chunk per character.
_BREAKS = re.compile(f"{_BREAK}+")


@lru_cache(maxsize=1024)  # long junk repeats one clause many times
def _clause_title(clause: str) -> str | None:
    introducer = _INTRODUCER_RE.search(clause)
    if introducer:
        after = clause[introducer.end() :]
        for chunk in _BREAKS.split(after):
            cleaned = _strip_edges(chunk)
            if cleaned:
                return cleaned
    fallback = None
    for chunk in _BREAKS.split(clause):
        cleaned = _strip_edges(chunk)
        if not cleaned:
            continue
        if not _is_generic(cleaned):
            return cleaned
        fallback = fallback or cleaned
    return fallback


# --- the entry point ----------------------------------------------------------------------------


def _fixed(instant: datetime) -> datetime:
    """The same instant with a fixed UTC offset, so equality never trips over ``fold``."""
    offset = instant.utcoffset() or timedelta(0)
    return instant.astimezone(timezone(offset))


#: Letters that case-insensitive matching equates with ASCII ones but that lowercase to
#: something else (long s, Kelvin sign, dotted/dotless i): read them as the ASCII letter.
_LOOKALIKES = str.maketrans({"ſ": "s", "\u212a": "k", "ı": "i", "İ": "I"})


def parse_request(text: str, now: datetime, tz: str) -> MeetingRequest:
    """Read one chat message as a meeting request, relative to ``now`` in the zone ``tz``.

    Raises ``RequestError`` (with a message and an example) for text that is too long, an
    unknown zone, a naive ``now``, and the impossible or past requests of section 9.
    """
    if len(text) > MAX_LENGTH:
        raise _fail(
            f"That message is too long ({len(text)} characters; the limit is {MAX_LENGTH})."
        )
    try:
        zone = zone_of(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise _fail(f"I don't know the time zone {tz!r}.") from error
    if now.tzinfo is None or now.utcoffset() is None:
        raise _fail("The reference time has no time zone.")
    local_now = now.astimezone(zone)
    today = local_now.date()
    message = _clean(text.translate(_LOOKALIKES))
    facts = _Scanner(message, today).run()
    window = _resolve(facts, now, tz, today)
    if window.end <= window.start:
        # Constraints that leave nothing between them (and now): say so, never crash.
        raise _fail("Nothing is left of that time range: it is empty or already over.")
    if facts.duration is not None:
        duration: int | None = facts.duration
    else:
        duration = window.duration
    return MeetingRequest(
        window_start=_fixed(window.start),
        window_end=_fixed(window.end),
        exact_start=_fixed(window.exact) if window.exact else None,
        duration_minutes=duration,
        attendees=tuple(message.attendees),
        title=_title(message, facts),
        time_zone=tz,
        recurrence=_series(facts, window.start.astimezone(zone).date()),
    )


@dataclass(frozen=True, slots=True)
class When:
    """What a text says about time, before it is resolved into a window.

    ``named``: it names some day, period, part of day or time. ``clock``: the one time of day it
    names when that is all it names (``3pm``, ``at 3``, ``15:00``; no day, part or range).
    """

    named: bool
    clock: time | None


def read_when(text: str, now: datetime, tz: str) -> When:
    """Whether ``text`` names a time at all, and the bare time of day it names, if only that.

    Read by the same rules as ``parse_request`` (bare hours in business context, section 5);
    raises ``RequestError`` where that would.
    """
    local_now = now.astimezone(zone_of(tz))
    facts = _Scanner(_clean(text[:MAX_LENGTH].translate(_LOOKALIKES)), local_now.date()).run()
    days = (
        facts.spans
        or facts.deferred_spans
        or facts.explicit_today
        or facts.past
        or facts.relative is not None
        or facts.within is not None
        or facts.next_days is not None
    )
    intraday = facts.parts or facts.ranges or facts.slots or facts.lower or facts.upper
    if not (days or intraday or facts.times):
        return When(named=False, clock=None)
    clock = None
    if facts.times and not days and not intraday:
        minutes = facts.times[0].minutes % (24 * 60)
        clock = time(minutes // 60, minutes % 60)
    return When(named=True, clock=clock)


def _series(facts: _Facts, first_day: date) -> tuple[str, ...]:
    """One RRULE from what was said: "weekly" and "on tuesdays" together are one rule, and a
    length ("for 2 weeks") becomes the COUNT of occurrences from the first day searched."""
    if not facts.recurrence:
        return ()
    parts: dict[str, str] = {}
    days: list[str] = []
    for line in dict.fromkeys(facts.recurrence):
        rule = dict(item.split("=", 1) for item in line.removeprefix("RRULE:").split(";"))
        days += [d for d in rule.pop("BYDAY", "").split(",") if d and d not in days]
        interval = max(int(parts.get("INTERVAL", "1")), int(rule.pop("INTERVAL", "1")))
        freq = rule.pop("FREQ")
        # A named weekday makes the series weekly ("daily ... on tuesdays" still is).
        parts["FREQ"] = parts.get("FREQ", freq) if freq != "WEEKLY" else "WEEKLY"
        if interval > 1:
            parts["INTERVAL"] = str(interval)
    if days and parts["FREQ"] == "DAILY" and len(days) < 5:
        parts["FREQ"] = "WEEKLY"
    if days:
        order = {name: index for index, name in enumerate(_DAY_NAMES)}
        parts["BYDAY"] = ",".join(sorted(days, key=order.__getitem__))
    if facts.recur_count is not None:
        parts["COUNT"] = str(facts.recur_count)
    elif facts.recur_days is not None:
        parts["COUNT"] = str(_count_within(parts, first_day, facts.recur_days))
    keys = ("FREQ", "INTERVAL", "BYDAY", "COUNT")
    return ("RRULE:" + ";".join(f"{key}={parts[key]}" for key in keys if key in parts),)


def _count_within(parts: dict[str, str], first_day: date, days: int) -> int:
    """How many times the rule meets in ``days`` days from ``first_day`` (at least once)."""
    rule = ";".join(f"{key}={value}" for key, value in parts.items())
    start = datetime.combine(first_day, time(12))
    end = start + timedelta(days=days)
    meetings = rrulestr(rule, dtstart=start).between(start, end, inc=True)
    return max(1, sum(1 for moment in meetings if moment < end))
