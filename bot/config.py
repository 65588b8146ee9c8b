"""Settings: everything Slotbot reads from the environment, read once into a frozen value.

A ``.env`` file in the working directory is read first; real environment variables win.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from platformdirs import user_data_dir

__all__ = [
    "DEFAULT_SLACK_SCOPES",
    "ConfigError",
    "GoogleMode",
    "SendUpdates",
    "Settings",
    "read_dotenv",
]


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


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_SEND_UPDATES = ("none", "all", "externalOnly")
#: Fernet and HMAC keys are derived from SLOTBOT_SECRET_KEY; shorter secrets are guessable.
MIN_SECRET_KEY_LENGTH = 32
DEFAULT_GOOGLE_API_URL = "https://www.googleapis.com/"

#: The bot scopes of manifest.yml; an OAuth install asks for these unless SLACK_SCOPES says else.
DEFAULT_SLACK_SCOPES = (
    "commands",
    "chat:write",
    "files:write",
    "files:read",
    "im:write",
    "im:history",
    "app_mentions:read",
    "users:read",
    "users:read.email",
)
_SCOPE = re.compile(r"[a-z][a-z0-9_.:-]*")

GoogleMode = Literal["delegation", "shared", "oauth"]
SendUpdates = Literal["none", "all", "externalOnly"]


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name} must be 1/true or 0/false, got {env.get(name)!r}")


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ConfigError(f"{name} names {raw!r}, which is not a readable file")
    return path


def _url(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    raw = env.get(name, "").strip() or default
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{name} must be an http(s) URL like https://host.example.com/, got {raw!r}"
        )
    return raw


def _send_updates(env: Mapping[str, str]) -> SendUpdates:
    raw = env.get("GOOGLE_SEND_UPDATES", "").strip() or "none"
    for choice in _SEND_UPDATES:
        if raw.lower() == choice.lower():
            return choice  # type: ignore[return-value]  # one of the literal choices
    raise ConfigError(f"GOOGLE_SEND_UPDATES must be none, all or externalOnly, got {raw!r}")


def _check_google(settings: Settings) -> None:
    """Refuse combinations that cannot work, naming what to set or unset."""
    key_file, client_file = settings.google_service_account_file, settings.google_oauth_client_file
    if key_file and client_file:
        raise ConfigError(
            "Set either GOOGLE_SERVICE_ACCOUNT_FILE (a service account) or "
            "GOOGLE_OAUTH_CLIENT_FILE "
            "(each person connects their own account), not both"
        )
    if settings.google_delegation and not key_file:
        raise ConfigError(
            "GOOGLE_DELEGATION needs GOOGLE_SERVICE_ACCOUNT_FILE (the service account key)"
        )
    if settings.google_calendar_id and not key_file:
        raise ConfigError(
            "GOOGLE_CALENDAR_ID (the shared calendar) needs GOOGLE_SERVICE_ACCOUNT_FILE, the key "
            "of the service account the calendar is shared with"
        )
    if settings.google_delegation and settings.google_calendar_id:
        raise ConfigError(
            "With GOOGLE_DELEGATION=1 events go on each organizer's own calendar; unset "
            "GOOGLE_CALENDAR_ID, or unset GOOGLE_DELEGATION to use the shared calendar"
        )
    if key_file and not (settings.google_delegation or settings.google_calendar_id):
        raise ConfigError(
            "GOOGLE_SERVICE_ACCOUNT_FILE needs GOOGLE_DELEGATION=1 (Workspace domain-wide "
            "delegation) or GOOGLE_CALENDAR_ID (a calendar shared with the service account)"
        )
    if client_file:
        if not settings.secret_key:
            raise ConfigError(
                "GOOGLE_OAUTH_CLIENT_FILE needs SLOTBOT_SECRET_KEY: people's Google tokens are "
                "stored encrypted with it (make one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        if not settings.public_url:
            raise ConfigError(
                "GOOGLE_OAUTH_CLIENT_FILE needs SLOTBOT_PUBLIC_URL, the https:// address where "
                "people's browsers reach Slotbot (for /google/oauth/callback)"
            )
    if settings.secret_key is not None and len(settings.secret_key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"SLOTBOT_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters of random text"
        )


def _scopes(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("SLACK_SCOPES", "").strip()
    if not raw:
        return DEFAULT_SLACK_SCOPES
    scopes = tuple(dict.fromkeys(s for s in re.split(r"[\s,]+", raw) if s))
    bad = [s for s in scopes if not _SCOPE.fullmatch(s)]
    if bad:
        raise ConfigError(
            f"SLACK_SCOPES must be Slack scope names separated by commas, like "
            f"chat:write,commands; {bad[0]!r} is not one"
        )
    return scopes


def _path(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not value.startswith("/") or "?" in value or "#" in value or " " in value:
        raise ConfigError(f"{name} must be a URL path like {default}, got {value!r}")
    return value


def _webhook_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("SLOTBOT_WEBHOOK_URLS", "").strip()
    urls = tuple(dict.fromkeys(u for u in re.split(r"[\s,]+", raw) if u))
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                "SLOTBOT_WEBHOOK_URLS must be http(s) URLs separated by commas or spaces, like "
                f"https://hooks.example.com/slotbot; {url!r} is not one"
            )
    return urls


def _check_webhooks(settings: Settings) -> None:
    """Webhooks are signed: URLs without the secret to sign them with are refused."""
    if settings.webhook_urls and not settings.webhook_secret:
        raise ConfigError(
            "SLOTBOT_WEBHOOK_URLS needs SLOTBOT_WEBHOOK_SECRET, the key every webhook is signed "
            "with (make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )


def _check_slack(settings: Settings) -> None:
    """Refuse Slack credentials that contradict each other: one workspace or many, not both."""
    client_id, client_secret = settings.slack_client_id, settings.slack_client_secret
    if not client_id and not client_secret:
        return
    if not (client_id and client_secret):
        missing = "SLACK_CLIENT_SECRET" if client_id else "SLACK_CLIENT_ID"
        raise ConfigError(
            f"Installing in several workspaces needs both SLACK_CLIENT_ID and "
            f"SLACK_CLIENT_SECRET; {missing} is not set"
        )
    if settings.slack_bot_token:
        raise ConfigError(
            "Set either SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
            "SLACK_CLIENT_SECRET (installed in several workspaces through /slack/install), "
            "not both: in the second case each workspace's token comes from its install"
        )
    if settings.slack_app_token:
        raise ConfigError(
            "SLACK_APP_TOKEN (Socket Mode) serves one workspace; installing in several "
            "workspaces needs HTTP mode. Unset SLACK_APP_TOKEN or SLACK_CLIENT_ID"
        )
    if not settings.slack_signing_secret:
        raise ConfigError(
            "SLACK_CLIENT_ID needs SLACK_SIGNING_SECRET to verify Slack's requests "
            "(Basic Information → App Credentials)"
        )
    if not settings.secret_key:
        raise ConfigError(
            "SLACK_CLIENT_ID needs SLOTBOT_SECRET_KEY: each workspace's Slack token is "
            "stored encrypted with it (make one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )
    paths = {settings.slack_install_path, settings.slack_redirect_path, "/slack/events"}
    if len(paths) < 3 or paths & {"/healthz"}:
        raise ConfigError(
            "SLACK_INSTALL_PATH and SLACK_REDIRECT_PATH must differ from each other and from "
            "/slack/events and /healthz"
        )


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
    reconcile_seconds: int = 30  # how often half-done bookings are finished; 0 = never
    db_upkeep_seconds: int = 3  # how often tables are analyzed/vacuumed if need be; 0 = never
    delivery_lease_seconds: int = 60  # how long one deliverer may hold a booking's delivery
    log_level: str = "INFO"
    google_service_account_file: Path | None = None
    google_delegation: bool = False
    google_calendar_id: str | None = None
    google_oauth_client_file: Path | None = None
    google_api_url: str = DEFAULT_GOOGLE_API_URL
    google_meet: bool = False
    google_send_updates: SendUpdates = "none"
    secret_key: str | None = field(default=None, repr=False)
    public_url: str | None = None
    slack_client_id: str | None = None
    slack_client_secret: str | None = field(default=None, repr=False)
    slack_scopes: tuple[str, ...] = DEFAULT_SLACK_SCOPES
    slack_install_path: str = "/slack/install"
    slack_redirect_path: str = "/slack/oauth_redirect"
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_google(self)
        _check_slack(self)
        _check_webhooks(self)

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
        google_api_url = _url(env, "GOOGLE_API_URL", DEFAULT_GOOGLE_API_URL) or ""
        if not google_api_url.endswith("/"):
            google_api_url += "/"
        public_url = _url(env, "SLOTBOT_PUBLIC_URL", None)
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
            reconcile_seconds=_int(env, "SLOTBOT_RECONCILE_SECONDS", 30, 0, 24 * 3600),
            db_upkeep_seconds=_int(env, "SLOTBOT_DB_UPKEEP_SECONDS", 3, 0, 24 * 3600),
            delivery_lease_seconds=_int(env, "SLOTBOT_DELIVERY_LEASE_SECONDS", 60, 1, 3600),
            log_level=(text("LOG_LEVEL") or "INFO").upper(),
            google_service_account_file=_file(env, "GOOGLE_SERVICE_ACCOUNT_FILE"),
            google_delegation=_flag(env, "GOOGLE_DELEGATION"),
            google_calendar_id=text("GOOGLE_CALENDAR_ID"),
            google_oauth_client_file=_file(env, "GOOGLE_OAUTH_CLIENT_FILE"),
            google_api_url=google_api_url,
            google_meet=_flag(env, "GOOGLE_MEET"),
            google_send_updates=_send_updates(env),
            secret_key=text("SLOTBOT_SECRET_KEY"),
            public_url=public_url.rstrip("/") if public_url else None,
            slack_client_id=text("SLACK_CLIENT_ID"),
            slack_client_secret=text("SLACK_CLIENT_SECRET"),
            slack_scopes=_scopes(env),
            slack_install_path=_path(env, "SLACK_INSTALL_PATH", "/slack/install"),
            slack_redirect_path=_path(env, "SLACK_REDIRECT_PATH", "/slack/oauth_redirect"),
            webhook_urls=_webhook_urls(env),
            webhook_secret=text("SLOTBOT_WEBHOOK_SECRET"),
        )

    @property
    def slack_oauth(self) -> bool:
        """Whether Slotbot is installed per workspace through OAuth (not one bot token)."""
        return self.slack_client_id is not None

    @property
    def slack_redirect_uri(self) -> str | None:
        """The OAuth redirect URL, when SLOTBOT_PUBLIC_URL says where Slotbot is reached.

        None lets Slack use the one redirect URL configured for the app.
        """
        if self.public_url is None:
            return None
        return self.public_url + self.slack_redirect_path

    @property
    def slack_authorize_url(self) -> str:
        """Slack's consent page, beside its Web API (``…/api/`` → ``…/oauth/v2/authorize``)."""
        return urljoin(self.slack_api_url, "../oauth/v2/authorize")

    @property
    def google_mode(self) -> GoogleMode | None:
        """How Slotbot reaches Google Calendar, or None for the local calendar."""
        if self.google_service_account_file is not None:
            return "delegation" if self.google_delegation else "shared"
        if self.google_oauth_client_file is not None:
            return "oauth"
        return None

    @property
    def mode(self) -> str:
        """``socket``, ``http`` or ``local``: what plain ``slotbot`` should start."""
        if self.slack_app_token and self.slack_bot_token:
            return "socket"
        if self.slack_signing_secret and (self.slack_bot_token or self.slack_oauth):
            return "http"
        return "local"
