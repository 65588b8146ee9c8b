"""Vocabulary tables for the request parser: weekdays, months, zones, numbers and filler words."""

from __future__ import annotations

import re

WEEKDAY_PATTERN = (
    r"(?:mon(?:day)?|mondy|"
    r"tue(?:s(?:day)?)?|tuesdy|tuseday|teusday|tusday|"
    r"wed(?:s|nesday|nsday|ensday|nes)?|wensday|wendsday|wednsday|"
    r"thu(?:r(?:s(?:day)?)?)?|thursay|thrusday|thurday|"
    r"fri(?:day)?|fridy|firday|"
    r"sat(?:urday)?|saterday|"
    r"sun(?:day)?|sundy)"
)


def weekday_number(word: str) -> int:
    """Monday = 0 for any weekday spelling the pattern above accepts."""
    head = word[:2]
    return {"mo": 0, "tu": 1, "te": 1, "we": 2, "th": 3, "fr": 4, "fi": 4, "sa": 5, "su": 6}[head]


MONTH_PATTERN = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)

MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip


def month_number(word: str) -> int:
    """January = 1 for any month spelling the pattern above accepts."""
    return MONTHS[word[:3]]


NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "couple": 2, "couple of": 2, "a couple": 2, "a couple of": 2, "few": 3, "a few": 3,
}  # fmt: skip

NUMBER_PATTERN = r"(?:\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"


def count_of(word: str) -> int:
    """The number a digit string or an English number word stands for."""
    word = " ".join(word.split())
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS[word]


# Abbreviations and names that stand for a region (its offset on the date applies).
ZONES = {
    "pt": "America/Los_Angeles", "pst": "America/Los_Angeles", "pdt": "America/Los_Angeles",
    "pacific": "America/Los_Angeles", "pacific time": "America/Los_Angeles",
    "et": "America/New_York", "est": "America/New_York", "edt": "America/New_York",
    "eastern": "America/New_York", "eastern time": "America/New_York",
    "ct": "America/Chicago", "cst": "America/Chicago", "cdt": "America/Chicago",
    "central": "America/Chicago", "central time": "America/Chicago",
    "mt": "America/Denver", "mst": "America/Denver", "mdt": "America/Denver",
    "mountain": "America/Denver", "mountain time": "America/Denver",
    "cet": "Europe/Berlin", "cest": "Europe/Berlin", "berlin time": "Europe/Berlin",
    "paris time": "Europe/Paris",
    "bst": "Europe/London", "london time": "Europe/London", "uk time": "Europe/London",
    "ist": "Asia/Kolkata", "india time": "Asia/Kolkata",
    "jst": "Asia/Tokyo", "tokyo time": "Asia/Tokyo", "japan time": "Asia/Tokyo",
    "aest": "Australia/Sydney", "aedt": "Australia/Sydney", "sydney time": "Australia/Sydney",
    "brt": "America/Sao_Paulo",
    "new york time": "America/New_York", "ny time": "America/New_York",
    "sf time": "America/Los_Angeles",
    "gmt": "UTC", "utc": "UTC", "zulu": "UTC",
}  # fmt: skip

# Zone words that need a time right before them (a bare "et" or "ist" is too common).
ZONE_AFTER_TIME = (
    r"(?:pst|pdt|pt|est|edt|et|cst|cdt|ct|mst|mdt|mt|cest|cet|bst|ist|jst|aest|aedt|brt|gmt|utc"
    r"|pacific|eastern|central|mountain)"
)
# Zone names that stand on their own.
ZONE_NAMED = (
    r"(?:(?:pacific|eastern|central|mountain|london|uk|berlin|paris|india|tokyo|japan|sydney|"
    r"new york|ny|sf)\s+time|gmt|utc)"
)

# Words and phrases that frame a request rather than name the meeting, longest first.
FILLER_PHRASES = sorted(
    [
        "/schedule",
        "schedule",
        "can you",
        "could you",
        "could u",
        "can u",
        "would you",
        "can we do",
        "can we have",
        "can we get",
        "can we",
        "could we",
        "shall we",
        "should we",
        "let's do",
        "let's",
        "lets",
        "let us",
        "please",
        "pls",
        "plz",
        "thx",
        "thanks",
        "thank you",
        "ty",
        "find",
        "book",
        "set up",
        "setup",
        "arrange",
        "organize",
        "organise",
        "grab",
        "lock in",
        "put in",
        "need",
        "i need",
        "we need",
        "i'd like",
        "i would like",
        "we'd like",
        "would like",
        "want to",
        "wanna",
        "i want",
        "to have",
        "have",
        "get",
        "do",
        "sometime",
        "some time for",
        "any time",
        "anytime",
        "works",
        "is fine",
        "are fine",
        "fine",
        "if possible",
        "if free",
        "if you're free",
        "maybe",
        "again",
        "still",
        "it is",
        "ok",
        "okay",
        "lol",
        "um",
        "uh",
        "like",
        "hey",
        "hi",
        "hello",
        "yo",
        "cc",
        "loop in",
        "plus",
        "everyone in",
        "anyone free for",
        "anyone free",
        "free for",
        "w/",
        "w/o",
        "with",
        "and",
        "or",
        "for",
        "on",
        "at",
        "me",
        "us",
        "we",
        "i",
        "you",
        "a",
        "an",
        "the",
        "some",
        "to",
        "in",
        "of",
        "quick",
        "short",
        "brief",
        "is",
        "are",
        "be",
        "there",
        "our",
        "my",
        "all",
        "hello all",
        "ping",
        "pencil in",
        "slot in",
        "squeeze in",
        "fit in",
        "invite",
        "add",
    ],
    key=len,
    reverse=True,
)
FILLER_RE = re.compile(
    r"^(?:" + "|".join(re.escape(p) for p in FILLER_PHRASES) + r")(?![\w'\-])", re.IGNORECASE
)
FILLER_END_RE = re.compile(
    r"(?<![\w'\-])(?:" + "|".join(re.escape(p) for p in FILLER_PHRASES) + r")$", re.IGNORECASE
)

# Case-sensitive twins for lowercased text free of the few characters IGNORECASE folds onto an
# ASCII letter without lowercasing to it; the end one reads the tail backwards, so both try
# their phrases at one position only instead of scanning.
_LONGEST_FILLER = max(len(p) for p in FILLER_PHRASES)
_FILLER_HEAD = re.compile(r"(?:" + "|".join(re.escape(p) for p in FILLER_PHRASES) + r")(?![\w'\-])")
_FILLER_TAIL_REVERSED = re.compile(
    r"(?:" + "|".join(re.escape(p[::-1]) for p in FILLER_PHRASES) + r")(?![\w'\-])"
)
_FOLDS = re.compile("[\u0130\u0131\u017f\u212a]")


def leading_filler(chunk: str) -> int:
    """Length of the filler ``FILLER_RE`` finds at the start of ``chunk`` (0 if none)."""
    head = chunk[: _LONGEST_FILLER + 1]
    folded = _FOLDS.search(head)
    match = FILLER_RE.match(chunk) if folded else _FILLER_HEAD.match(head.lower())
    return match.end() if match else 0


def trailing_filler(chunk: str) -> tuple[int, int] | None:
    """Span of the filler ``FILLER_END_RE`` finds at the end of ``chunk``, if any."""
    # "$" also stands before a final newline, and no filler holds one.
    end = len(chunk) - 1 if chunk.endswith("\n") else len(chunk)
    start = max(0, end - _LONGEST_FILLER - 1)
    if _FOLDS.search(chunk, start, end):
        found = FILLER_END_RE.search(chunk, start)
        return found.span() if found else None
    match = _FILLER_TAIL_REVERSED.match(chunk[start:end][::-1].lower())
    return (end - match.end(), end) if match else None


# Section 8 names the generic remainders; pronouns and bare units are not titles either.
# Nouns such as "catch up" or "session" do name a meeting and stay as titles.
GENERIC_TITLES = frozenset(
    {"meeting", "call", "chat", "meet", "time", "slot", "some time", "sometime", "it", "this",
     "that", "one", "something", "them", "him", "her", "a time", "times", "min", "mins"}
)  # fmt: skip

TOPIC_INTRODUCER = (
    r"(?:about|regarding|re:|re|topic:|subject:|to discuss|to talk about|to talk through|"
    r"to go over|to go through|to review|on the topic of|discussing)"
)

# Nouns that name a kind of meeting; used to pick the clause that names the meeting.
MEETING_NOUNS = re.compile(
    r"\b(?:review|sync|retro|retrospective|standup|stand-up|1:1|one-on-one|demo|interview|"
    r"kickoff|kick-off|planning|lunch|coffee|chat|debrief|crit|workshop|session|discussion|"
    r"catch up|catch-up|onboarding|offsite|postmortem|post-mortem|brainstorm|meeting|call|"
    r"huddle|check-in|checkin|walkthrough|training|intro|prep|recap|sprint|grooming|"
    r"roadmap|sync-up|dinner|breakfast|drinks|presentation|pairing|office hours)\b",
    re.IGNORECASE,
)

# Openers of a context sentence ("Notes for the vendor review:") rather than a title.
CONTEXT_OPENERS = re.compile(
    r"^(?:notes?|agenda|context|fyi|background|details|info)\s+(?:for|on|about|re)\s+",
    re.IGNORECASE,
)
