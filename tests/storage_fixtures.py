"""Storage fixtures: every store test runs on a fresh SQLite file and a fresh PostgreSQL database.

PostgreSQL comes from ``SLOTBOT_TEST_POSTGRES_URL`` (default: postgres@127.0.0.1:5432/test);
without a reachable server its parameter is skipped, unless ``CI`` is set, where it fails.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from bot.store import Store, database_url_from

POSTGRES_URL = os.environ.get(
    "SLOTBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


async def _admin_connection() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        message = f"PostgreSQL at {POSTGRES_URL} is not reachable ({error!r})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(f"{message}; set SLOTBOT_TEST_POSTGRES_URL to run the PostgreSQL tests")


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The async URL of an empty database of its own: a SQLite file or a new PostgreSQL db."""
    if request.param == "sqlite":
        yield database_url_from(f"sqlite:///{tmp_path / 'db' / 'slotbot.db'}", tmp_path)
        return
    admin = await _admin_connection()
    name = f"slotbot_test_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(POSTGRES_URL).set(database=name)
        yield database_url_from(url.render_as_string(hide_password=False), tmp_path)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated ``Store`` on a database no other test sees."""
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()
