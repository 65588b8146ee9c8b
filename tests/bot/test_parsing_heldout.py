"""The request parser against an independent held-out corpus written from the rules alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.bot.test_parsing import assert_row_parses_as_expected

CORPUS = Path(__file__).parent.parent / "data" / "requests_heldout.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]


@pytest.mark.parametrize(
    "row", ROWS, ids=[f"{i:03d}-{row['text'][:40]}" for i, row in enumerate(ROWS)]
)
def test_heldout_request(row: dict[str, Any]) -> None:
    """Each held-out request parses to its hand-computed fields (instants, sets, lenient title)."""
    assert_row_parses_as_expected(row)


def test_heldout_corpus_is_large_and_varied() -> None:
    """The held-out corpus holds at least 200 requests across many zones, with errors."""
    assert len(ROWS) >= 200
    assert len({row["tz"] for row in ROWS}) >= 10
    assert sum(1 for row in ROWS if row["expected"].get("error")) >= 20
