"""Shared fixtures: no proxies (tests talk only to loopback), and the storage fixtures."""

from __future__ import annotations

import pytest

from tests.storage_fixtures import database_url, store  # noqa: F401  (shared DB fixtures)

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk reads HTTP(S)_PROXY and ignores NO_PROXY, so loopback calls need them gone."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
