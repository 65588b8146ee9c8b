"""Prints the parser's accuracy on the corpus, a plain-dateparser baseline, and latencies."""

from __future__ import annotations

import json
import platform
import re
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

import dateparser
from dateparser.search import search_dates

from bot.errors import RequestError
from bot.models import zone_of
from bot.scheduling.parsing import parse_request

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
CORPUS = DATA / "requests.jsonl"
HELDOUT = DATA / "requests_heldout.jsonl"
FIELDS = ("window_start", "window_end", "exact_start", "duration", "attendees", "title")


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def _title_key(title: str | None) -> str | None:
    if title is None:
        return None
    text = " ".join(title.replace("&amp;", "&").lower().split()).strip(" .,;:!?\"'()")
    return re.sub(r"^(?:(?:a|an|the|quick|short|brief)\s+)+", "", text)


def _score_ours(row: dict[str, Any]) -> dict[str, bool]:
    expected = row["expected"]
    try:
        got = parse_request(row["text"], datetime.fromisoformat(row["now"]), row["tz"])
    except RequestError:
        return dict.fromkeys(FIELDS, bool(expected.get("error")))
    if expected.get("error"):
        return dict.fromkeys(FIELDS, False)
    exact = got.exact_start.astimezone(UTC) if got.exact_start else None
    return {
        "window_start": got.window_start.astimezone(UTC) == _instant(expected["window_start"]),
        "window_end": got.window_end.astimezone(UTC) == _instant(expected["window_end"]),
        "exact_start": exact == _instant(expected["exact_start"]),
        "duration": got.duration_minutes == expected["duration_minutes"],
        "attendees": set(got.attendees) == set(expected["attendees"]),
        "title": _title_key(got.title) == _title_key(expected["title"]),
    }


def _score_dateparser(row: dict[str, Any]) -> dict[str, bool]:
    """A naive use: the first date search_dates finds is the start; its day is the window."""
    expected = row["expected"]
    now = datetime.fromisoformat(row["now"])
    zone = zone_of(row["tz"])
    settings = {
        "RELATIVE_BASE": now.astimezone(zone).replace(tzinfo=None),
        "TIMEZONE": row["tz"],
        "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "future",
    }
    found = search_dates(row["text"], languages=["en"], settings=settings)  # type: ignore[arg-type]
    if expected.get("error"):
        return dict.fromkeys(("window_start", "window_end", "exact_start"), found is None)
    if not found:
        start = now
        end = datetime.combine(now.astimezone(zone).date() + timedelta(days=7), datetime.min.time())
        end = end.replace(tzinfo=zone)
        exact = None
    else:
        value = found[0][1]
        has_time = bool(re.search(r"\d|noon|midnight", found[0][0]))
        exact = value if has_time else None
        day = value.astimezone(zone).date()
        start = max(now, datetime.combine(day, datetime.min.time()).replace(tzinfo=zone))
        end = datetime.combine(day + timedelta(days=1), datetime.min.time()).replace(tzinfo=zone)
    return {
        "window_start": start.astimezone(UTC) == _instant(expected["window_start"]),
        "window_end": end.astimezone(UTC) == _instant(expected["window_end"]),
        "exact_start": (exact.astimezone(UTC) if exact else None)
        == _instant(expected["exact_start"]),
    }


def _report(name: str, scores: list[dict[str, bool]]) -> None:
    total = len(scores)
    fields = list(scores[0])
    all_right = sum(all(s.values()) for s in scores)
    print(f"{name}: all fields right {all_right}/{total} = {all_right / total:.1%}")
    for key in fields:
        right = sum(s[key] for s in scores)
        print(f"    {key:<13} {right / total:.1%}")


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _time(call: Any) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def _attempt(text: str, now: datetime, tz: str) -> None:
    with contextlib.suppress(RequestError):
        parse_request(text, now, tz)


def main() -> None:
    warnings.simplefilter("ignore")
    rows = _load(CORPUS)
    heldout = _load(HELDOUT)
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(f"corpus: {len(rows)} requests ({CORPUS.name})")
    _report("slotbot parser", [_score_ours(row) for row in rows])
    dateparser.parse("tomorrow", languages=["en"])  # load its language data before timing
    _report("plain dateparser (search_dates)", [_score_dateparser(row) for row in rows])
    print(f"held-out corpus: {len(heldout)} requests ({HELDOUT.name}), written from the rules only")
    _report("slotbot parser, held-out", [_score_ours(row) for row in heldout])
    _report("plain dateparser, held-out", [_score_dateparser(row) for row in heldout])

    prepared = [(r["text"], datetime.fromisoformat(r["now"]), r["tz"]) for r in rows]
    for args in prepared:  # warm-up: caches, compiled regexes, zone files
        _attempt(*args)
    samples = sorted(_time(lambda a=args: _attempt(*a)) for _ in range(5) for args in prepared)
    p50 = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    print(
        f"latency per request after warm-up: p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
        f"max {samples[-1]:.3f} ms ({len(samples)} calls)"
    )

    now = datetime(2026, 11, 26, 18, 15, tzinfo=UTC)
    garbage = [
        "x" * 4000, "9" * 4000, ("tomorrow at 3pm " * 250)[:4000], "<@U1>" * 800,
        ("1/2 " * 1000)[:4000], ("between 1 and " * 300)[:4000], "\u0000\ufffd" * 2000,
        "a" * 10_240, ("next tuesday at 3 " * 600)[:10_240], "🙂" * 3999,
    ]  # fmt: skip
    # Inputs that were slowest before the parser stopped rescanning (see test_parsing_fuzz).
    adversarial = [
        "a " * 2000, "in " * 1333, "the " * 1000, "_a_ " * 1000, "a\n" * 2000, "a, " * 1333,
        "2 days ago " * 363, "1-2 " * 1000, "from 1 to " * 400, "1 " * 2000,
        ("the next few days in 2 hours between 3 and 4pm by friday EOD " * 70)[:4000],
    ]  # fmt: skip
    # One call each, as a user would send it; every input is new to the parser's caches.
    times = [
        (_time(lambda t=text: _attempt(t, now, "UTC")), text) for text in garbage + adversarial
    ]
    worst, text = max(times)
    print(
        f"worst time on garbage / adversarial / 4 kB / 10 kB input: {worst:.1f} ms "
        f"({len(times)} inputs; worst {text[:24]!r}..., {len(text)} chars)"
    )


if __name__ == "__main__":
    main()
