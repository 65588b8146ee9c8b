"""Volume fuzzing: 100,000 generated requests into the parser, 60,000 mutated payloads into the
payload readers. Nothing but RequestError / PayloadError may escape, and nothing may hang.

A seeded generator (hypothesis is far too slow at this volume) mixes the request vocabulary of
``bot/scheduling/phrases.py`` with numbers, punctuation, mentions, Slack escapes, Unicode
lookalikes, combining marks, RTL marks, emoji, NUL and random bytes decoded. Each chunk runs
under a generous ``SIGALRM`` deadline that fails the test instead of hanging the suite. A
failure names the chunk's seed and the input, so ``generate_texts(seed)`` reproduces it.
"""

from __future__ import annotations

import math
import random
import re
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from types import FrameType
from typing import Any

import pytest

from bot.errors import RequestError
from bot.models import MeetingRequest
from bot.scheduling import phrases
from bot.scheduling.parsing import parse_request
from handlers.payloads import (
    Click,
    CommandRequest,
    MessageRequest,
    PayloadError,
    read_click,
    read_command,
    read_message,
)
from playground import slack_requests as sr

pytestmark = pytest.mark.slow

PARSER_CHUNKS, PARSER_CHUNK = 10, 10_000
PAYLOAD_CHUNKS, PAYLOAD_CHUNK = 4, 15_000
#: Far above a chunk's real run time (about 3 s for the parser, under 1 s for payloads).
CHUNK_DEADLINE_SECONDS = 60


# --- the vocabulary -------------------------------------------------------------------------


def _words_of(pattern: str) -> list[str]:
    """The plain words a vocabulary regex spells out (its alternatives, minus the syntax)."""
    return sorted({w for w in re.findall(r"[a-z][a-z'\-]*", pattern) if len(w) > 1})


WORDS = sorted(
    {
        *_words_of(phrases.WEEKDAY_PATTERN),
        *_words_of(phrases.MONTH_PATTERN),
        *phrases.MONTHS,
        *phrases.NUMBER_WORDS,
        *phrases.ZONES,
        *phrases.FILLER_PHRASES,
        *phrases.GENERIC_TITLES,
        *_words_of(phrases.TOPIC_INTRODUCER),
        *_words_of(phrases.MEETING_NOUNS.pattern),
        *_words_of(phrases.CONTEXT_OPENERS.pattern),
        *_words_of(
            "today tomorrow tonight yesterday next this last coming following week weekend month "
            "year morning afternoon evening night noon midnight eod eow cob am pm at from to "
            "until till between and by before after around about ago in within every daily "
            "weekly biweekly monthly hours hour hrs hr minutes minute mins min days day half "
            "quarter past early late mid end start first second third last-week asap now later"
        ),
        "h",
        "m",
        "a.m.",
        "p.m.",
    }
)
PUNCTUATION = [*",.;:-–—/()[]{}?!~\"'`*_@#&<>|…+=%$^\\", "...", "--", " - ", ", ", ". "]
MENTIONS = [
    "<@U0ANA0001>",
    "<@U0BEN0002|ben>",
    "<@W0123ABCD>",
    "<@U000B0T01>",
    "<#C0GENERAL|general>",
    "<!here>",
    "<!channel>",
    "<!everyone>",
    "<!subteam^S0123|@team>",
    "<!date^1796036400^{date_short} at {time}|Dec 3>",
    "<https://example.com|a link>",
    "<mailto:ana@example.com|ana>",
    "@ana",
    "@ben.brown",
    "<@",
    "<@U",
    "<@U0ANA0001",
    "<@>",
    "<>",
    ">",
    "<<@U0ANA0001>>",
    "<@U0ANA0001|<@U0BEN0002>>",
]
ESCAPES = ["&amp;", "&lt;", "&gt;", "&lt;@U0ANA0001&gt;", "&amp;lt;", "&#39;", "&quot;", "&"]
UNICODE = [
    "ſ",  # long s: IGNORECASE equates it with s
    "\u212a",  # Kelvin sign K
    "ı",  # dotless i
    "İ",  # dotted capital I (lowercases to two code points)
    "ß",
    "ﬀ",
    "\u0301",  # combining acute
    "\u0308",  # combining diaeresis
    "\u20dd",  # combining enclosing circle
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u2066",  # left-to-right isolate
    "مرحبا",
    "שלום",
    "١٢",  # Arabic-Indic digits
    "１２：３０",  # fullwidth
    "²",
    "Ⅻ",
    "½",
    "👍",
    "🏳️‍🌈",
    "👩🏽‍💻",
    "📅",
    ":calendar:",
    "\x00",
    "\ufeff",
    "\u200b",
    "\u00a0",
    "\u2028",
    "\r\n",
    "\t",
    "\n",
    "\ud800",  # a lone surrogate: not valid UTF-8, still a Python str
    "\U0010ffff",
    "Ω",
    "ǅ",
]
LOOKALIKE = {"s": "ſ", "k": "\u212a", "i": "ı", "I": "İ", "K": "\u212a", "S": "ſ"}
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "America/St_Johns",
    "Etc/GMT+12",
    "Europe/London",
]
BAD_ZONES = ["Mars/Olympus_Mons", "", "../../etc/passwd", "Europe/Berlin\x00", "utc+5"]


# --- generators -----------------------------------------------------------------------------


def _number(rng: random.Random) -> str:
    hour, minute = rng.randrange(-2, 30), rng.choice([0, 15, 30, 45, 59, 60, 99])
    return rng.choice(
        [
            str(rng.randrange(0, 100)),
            str(rng.randrange(0, 10 ** rng.randrange(1, 25))),
            f"{hour}{rng.choice(['am', 'pm', 'a', 'p', 'h', ' am', 'PM', ''])}",
            f"{hour}:{minute:02d}",
            f"{hour}.{minute:02d}",
            f"{hour:02d}{minute:02d}",
            f"{rng.randrange(0, 40)}/{rng.randrange(0, 14)}",
            f"{rng.randrange(0, 40)}.{rng.randrange(0, 14)}.",
            f"{rng.randrange(1900, 2200)}-{rng.randrange(0, 14):02d}-{rng.randrange(0, 40):02d}",
            f"{rng.randrange(0, 40)}{rng.choice(['st', 'nd', 'rd', 'th'])}",
            f"{rng.randrange(1, 10)}h{rng.randrange(0, 90)}",
            f"{rng.uniform(-5, 500):.{rng.randrange(0, 4)}f}",
            f"-{rng.randrange(0, 100)}",
            f"{rng.randrange(0, 100)}{rng.choice(['m', 'min', 'mins', 'h', 'hr', 'd', 'w'])}",
        ]
    )


def _random_bytes(rng: random.Random) -> str:
    data = rng.randbytes(rng.randrange(1, 24))
    encoding, errors = rng.choice(
        [("utf-8", "replace"), ("utf-8", "ignore"), ("utf-8", "surrogateescape"), ("latin-1", "")]
    )
    return data.decode(encoding, errors or "strict")


def _token(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        word = rng.choice(WORDS)
    elif roll < 0.62:
        word = _number(rng)
    elif roll < 0.72:
        word = rng.choice(PUNCTUATION)
    elif roll < 0.8:
        word = rng.choice(MENTIONS)
    elif roll < 0.84:
        word = rng.choice(ESCAPES)
    elif roll < 0.95:
        word = rng.choice(UNICODE)
    else:
        word = _random_bytes(rng)
    if rng.random() < 0.1:
        word = word.upper() if rng.random() < 0.5 else word.title()
    if rng.random() < 0.08:
        word = "".join(LOOKALIKE.get(c, c) if rng.random() < 0.5 else c for c in word)
    if rng.random() < 0.04 and word:
        at = rng.randrange(len(word) + 1)
        word = word[:at] + rng.choice(["\u0301", "\u0308", "\u0327"]) + word[at:]
    return word


def _text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.001:  # near and over the 4,000-character limit: the slowest inputs
        size = rng.randrange(3500, 4200)
        text = ""
        while len(text) < size:
            text += _token(rng) + " "
        return text[:size]
    if roll < 0.01:
        return _random_bytes(rng) * rng.randrange(1, 20)
    count = rng.choice([0, 1, 2, 3, 5, 8, 12, 20, 40])
    separators = [" ", " ", " ", "", "  ", "\n", ", "]
    return "".join(_token(rng) + rng.choice(separators) for _ in range(count))


def generate_texts(seed: int, count: int) -> Iterator[tuple[str, datetime, str]]:
    """``count`` (text, now, zone) triples from ``seed``: the same seed, the same triples."""
    rng = random.Random(seed)
    start, span = datetime(1971, 1, 1, tzinfo=UTC), timedelta(days=365 * 128)
    for _ in range(count):
        now = start + span * rng.random()
        now = now.astimezone(timezone(timedelta(minutes=15 * rng.randrange(-48, 57))))
        zone = rng.choice(BAD_ZONES) if rng.random() < 0.01 else rng.choice(ZONES)
        yield _text(rng), now, zone


class Hang(BaseException):
    """A chunk ran past its deadline: something loops or backtracks without end."""


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Raise ``Hang`` (failing the test) if the block runs longer than ``seconds``."""

    def expire(_signal: int, _frame: FrameType | None) -> None:
        raise Hang(f"{what} still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_request(got: MeetingRequest, now: datetime, zone: str) -> None:
    """The invariants every parsed request keeps."""
    assert got.window_start.utcoffset() is not None
    assert got.window_end.utcoffset() is not None
    assert got.window_end > got.window_start
    if got.exact_start is not None:
        assert got.exact_start.utcoffset() is not None
        assert got.exact_start >= now
    assert got.duration_minutes is None or got.duration_minutes > 0
    assert got.time_zone == zone
    assert all(isinstance(a, str) and a for a in got.attendees)


def test_a_long_duration_in_a_part_of_day_with_a_junk_date_is_a_request_error() -> None:
    """'afternoon 4h33 2022-04-08a' is refused with a RequestError, not a ValueError."""
    now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    with pytest.raises(RequestError):
        parse_request("afternoon 4h33 2022-04-08a", now, "UTC")


@pytest.mark.parametrize("chunk", range(PARSER_CHUNKS))
def test_parser_survives_generated_requests(chunk: int) -> None:
    """10,000 generated requests per chunk: a sane request or a RequestError, never a hang."""
    seed = 20261126 + chunk
    parsed = refused = 0
    with deadline(CHUNK_DEADLINE_SECONDS, f"parser chunk seed={seed}"):
        for text, now, zone in generate_texts(seed, PARSER_CHUNK):
            try:
                got = parse_request(text, now, zone)
            except RequestError as error:
                assert error.user_message, f"seed={seed} {text!r}: a RequestError without a message"
                refused += 1
                continue
            except Exception as error:
                raise AssertionError(f"seed={seed} now={now} tz={zone} {text!r}") from error
            try:
                check_request(got, now, zone)
            except AssertionError as error:
                raise AssertionError(f"seed={seed} now={now} tz={zone} {text!r}: {got}") from error
            parsed += 1
    assert parsed + refused == PARSER_CHUNK
    # A generator that only ever produced refusals (or only successes) would prove little.
    assert parsed > PARSER_CHUNK // 10 and refused > PARSER_CHUNK // 100, (parsed, refused)


# --- payloads -------------------------------------------------------------------------------

RESPONSE_URL = "http://127.0.0.1:9/response/abc"
BOT = sr.DEFAULT_WORKSPACE.bot_user_id


def _real_payloads(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """Payloads of the shapes Slack sends, with generated text in them."""
    text = _text(rng)
    click = sr.block_actions(
        [sr.button_action("book_slot", f"off{rng.randrange(99)}:{rng.randrange(9)}")],
        user_id="U0ANA0001",
        channel_id="C0GENERAL",
        response_url=RESPONSE_URL,
        message={"ts": "1764489600.000100", "thread_ts": "1764489500.000100", "text": text},
    )
    ephemeral = sr.block_actions(
        [sr.button_action("more_times", text)],
        user_id="U0ANA0001",
        channel_id="C0GENERAL",
        response_url=RESPONSE_URL,
        message_ts="1764489600.000100",
    )
    ana = "U0ANA0001"
    return [
        (
            "command",
            sr.slash_command(text, user_id=ana, channel_id="C0", response_url=RESPONSE_URL),
        ),
        ("message", sr.im_message_event(text, user=ana, channel="D0ANA", ts="17.1")),
        ("message", sr.app_mention_event(f"<@{BOT}> {text}", user=ana, channel="C0", ts="17.2")),
        ("click", click),
        ("click", ephemeral),
    ]


def _junk(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 2 and roll < 0.12:
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(0, 3))]
    if depth < 2 and roll < 0.24:
        return {rng.choice(KEYS): _junk(rng, depth + 1) for _ in range(rng.randrange(0, 3))}
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            2**70,
            math.nan,
            math.inf,
            1.5,
            "",
            " ",
            _token(rng),
            _text(rng),
            "directmessage",
            "app_mention",
            "U0ANA0001",
            "T000TEAM1",
        ]
    )


KEYS = [
    "team_id", "user_id", "channel_id", "channel_name", "text", "type", "subtype", "bot_id",
    "user", "channel", "ts", "thread_ts", "team", "id", "actions", "action_id", "value",
    "container", "message", "message_ts", "is_ephemeral", "response_url", "view", "event",
]  # fmt: skip


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """``value`` with a few keys dropped, replaced by junk or added, at any depth."""
    if isinstance(value, list):
        if rng.random() < 0.2:
            return _junk(rng)
        if value and rng.random() < 0.3:
            return [_mutate(rng, item, depth + 1) for item in value]
        return value if rng.random() < 0.7 else []
    if not isinstance(value, Mapping) or depth > 3:
        return _junk(rng) if rng.random() < 0.5 else value
    mutated = dict(value)
    for _ in range(rng.randrange(1, 4)):
        action = rng.random()
        key = rng.choice(list(mutated) or KEYS)
        if action < 0.25:
            mutated.pop(key, None)
        elif action < 0.55:
            mutated[key] = _junk(rng)
        elif action < 0.85:
            mutated[key] = _mutate(rng, mutated.get(key), depth + 1)
        else:
            mutated[rng.choice(KEYS)] = _junk(rng)
    return mutated


def _read(kind: str, payload: Any, rng: random.Random) -> Any:
    if kind == "command":
        return read_command(payload)
    if kind == "click":
        return read_click(payload)
    team = rng.choice([None, "T000TEAM1", "", _token(rng)])
    bot = rng.choice([None, BOT, "", _token(rng), ".*", "(", "U0ANA0001"])
    return read_message(payload, team, bot)


def _check_read(got: Any) -> None:
    """What a reader returned is typed as promised: non-empty ids, string text."""
    if got is None:
        return
    assert isinstance(got, CommandRequest | MessageRequest | Click)
    assert isinstance(got.team_id, str) and got.team_id
    assert isinstance(got.user_id, str) and got.user_id
    if isinstance(got, MessageRequest):
        assert got.channel_id and got.ts
    if isinstance(got, Click):
        assert isinstance(got.action_id, str) and got.action_id
        assert isinstance(got.value, str)
    else:
        assert isinstance(got.text, str)


@pytest.mark.parametrize("chunk", range(PAYLOAD_CHUNKS))
def test_payload_readers_survive_mutated_payloads(chunk: int) -> None:
    """15,000 mutated real-shaped payloads per chunk: typed values, None or PayloadError."""
    seed = 5_000_000 + chunk
    rng = random.Random(seed)
    outcomes = {"read": 0, "refused": 0}
    with deadline(CHUNK_DEADLINE_SECONDS, f"payload chunk seed={seed}"):
        done = 0
        while done < PAYLOAD_CHUNK:
            for kind, real in _real_payloads(rng):
                payload = _mutate(rng, real) if rng.random() < 0.95 else _junk(rng)
                if not isinstance(payload, Mapping):
                    payload = {"payload": payload}
                try:
                    got = _read(kind, payload, rng)
                except PayloadError:
                    outcomes["refused"] += 1
                except Exception as error:
                    raise AssertionError(f"seed={seed} {kind}: {payload!r}") from error
                else:
                    _check_read(got)
                    outcomes["read"] += 1
                done += 1
    assert sum(outcomes.values()) >= PAYLOAD_CHUNK
    assert outcomes["read"] > PAYLOAD_CHUNK // 10 and outcomes["refused"] > PAYLOAD_CHUNK // 10
