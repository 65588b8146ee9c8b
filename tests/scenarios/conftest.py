"""The scenario tests' shared fixture: the bot over signed HTTP, on SQLite, or on each database
(SQLite and PostgreSQL) for a scenario marked ``on_each_database`` (from the harness)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.scenarios.harness import Harness, start_harness, stop_harness


@pytest.fixture
async def bot(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """The bot on SQLite, or on each database for scenarios marked ``on_each_database``."""
    database_url = None
    if "database_url" in request.fixturenames:
        database_url = request.getfixturevalue("database_url")
    harness = await start_harness(tmp_path, database_url=database_url)
    yield harness
    await stop_harness(harness)
