"""The request parser against an independent held-out corpus written from the rules alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.errors import RequestError
from bot.scheduling.parsing import parse_request
from tests.bot.test_parsing import _instant, _title_key

CORPUS = Path(__file__).parent.parent / "data" / "requests_heldout.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]


@pytest.mark.parametrize(
    "row", ROWS, ids=[f"{i:03d}-{row['text'][:40]}" for i, row in enumerate(ROWS)]
)
def test_heldout_request(row: dict[str, Any]) -> None:
    """Each held-out request parses to its hand-computed fields (instants, sets, lenient title)."""
    now = datetime.fromisoformat(row["now"])
    expected = row["expected"]
    if expected.get("error"):
        with pytest.raises(RequestError):
            parse_request(row["text"], now, row["tz"])
        return
    got = parse_request(row["text"], now, row["tz"])
    exact = got.exact_start.astimezone(UTC) if got.exact_start else None
    assert {
        "window_start": got.window_start.astimezone(UTC),
        "window_end": got.window_end.astimezone(UTC),
        "exact_start": exact,
        "duration_minutes": got.duration_minutes,
        "attendees": set(got.attendees),
        "title": _title_key(got.title),
    } == {
        "window_start": _instant(expected["window_start"]),
        "window_end": _instant(expected["window_end"]),
        "exact_start": _instant(expected["exact_start"]),
        "duration_minutes": expected["duration_minutes"],
        "attendees": set(expected["attendees"]),
        "title": _title_key(expected["title"]),
    }


def test_heldout_corpus_is_large_and_varied() -> None:
    """The held-out corpus holds at least 200 requests across many zones, with errors."""
    assert len(ROWS) >= 200
    assert len({row["tz"] for row in ROWS}) >= 10
    assert sum(1 for row in ROWS if row["expected"].get("error")) >= 20
