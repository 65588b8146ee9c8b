"""Settings: everything Slotbot reads from the environment, read once into a frozen value.

A ``.env`` file in the working directory is read first; real environment variables win.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from platformdirs import user_data_dir

__all__ = ["ConfigError", "Settings", "read_dotenv"]


class ConfigError(ValueError):
    """A setting has a value Slotbot cannot use; the message names the variable."""


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=value`` lines, ``#`` comments, quotes, ``export``."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if key:
            values[key] = value
    return values


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _zone(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{name} must be an IANA time zone like Europe/Berlin, got {value!r}"
        ) from None
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Slotbot's configuration; see README.md, "Configuration", for each variable."""

    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    database_url: str | None = None
    data_dir: Path = field(default_factory=lambda: Path(user_data_dir("slotbot", appauthor=False)))
    host: str = "0.0.0.0"
    port: int = 3000
    default_time_zone: str = "UTC"
    default_duration_minutes: int = 30
    offer_ttl_minutes: int = 60 * 24
    log_level: str = "INFO"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
    ) -> Settings:
        """Read the settings from ``environ`` (default: ``os.environ``) over a ``.env`` file."""
        env: dict[str, str] = read_dotenv(dotenv) if dotenv else {}
        env.update(os.environ if environ is None else environ)

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        api_url = text("SLACK_API_URL") or "https://slack.com/api/"
        if not api_url.endswith("/"):
            api_url += "/"
        data_dir = text("SLOTBOT_DATA_DIR")
        return cls(
            slack_bot_token=text("SLACK_BOT_TOKEN"),
            slack_signing_secret=text("SLACK_SIGNING_SECRET"),
            slack_app_token=text("SLACK_APP_TOKEN"),
            slack_api_url=api_url,
            database_url=text("DATABASE_URL"),
            data_dir=Path(data_dir)
            if data_dir
            else Path(user_data_dir("slotbot", appauthor=False)),
            host=text("HOST") or "0.0.0.0",
            port=_int(env, "PORT", 3000, 0, 65535),
            default_time_zone=_zone(env, "SLOTBOT_DEFAULT_TZ", "UTC"),
            default_duration_minutes=_int(env, "SLOTBOT_DEFAULT_DURATION", 30, 5, 8 * 60),
            offer_ttl_minutes=_int(env, "SLOTBOT_OFFER_TTL_MINUTES", 60 * 24, 1, 60 * 24 * 30),
            log_level=(text("LOG_LEVEL") or "INFO").upper(),
        )

    @property
    def mode(self) -> str:
        """``socket``, ``http`` or ``local``: what plain ``slotbot`` should start."""
        if self.slack_app_token and self.slack_bot_token:
            return "socket"
        if self.slack_signing_secret and self.slack_bot_token:
            return "http"
        return "local"
