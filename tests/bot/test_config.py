"""Settings come from the environment over a .env file, with clear errors for bad values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, Settings, read_dotenv


def test_defaults_without_any_configuration(tmp_path: Path) -> None:
    """No variables: local mode, port 3000 on all interfaces, Slack's public API URL."""
    settings = Settings.from_env({}, dotenv=tmp_path / "missing.env")
    assert settings.mode == "local"
    assert (settings.host, settings.port) == ("0.0.0.0", 3000)
    assert settings.slack_api_url == "https://slack.com/api/"


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    """A .env file supplies values; real environment variables override them."""
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# Slack\nexport SLACK_BOT_TOKEN='xoxb-from-file'\nSLACK_SIGNING_SECRET=\"s3cret\"\n"
        "PORT=8080 # comment\nSLACK_API_URL=http://127.0.0.1:9/api\n"
    )
    settings = Settings.from_env({"PORT": "9090"}, dotenv=dotenv)
    assert settings.slack_bot_token == "xoxb-from-file"
    assert settings.slack_signing_secret == "s3cret"
    assert settings.port == 9090
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.mode == "http"
    assert read_dotenv(tmp_path / "absent") == {}


def test_socket_mode_is_preferred_when_an_app_token_is_set() -> None:
    """With SLACK_APP_TOKEN (and a bot token), plain `slotbot` picks Socket Mode."""
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "SLACK_SIGNING_SECRET": "s"}
    assert Settings.from_env(env, dotenv=None).mode == "socket"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"SLOTBOT_DEFAULT_TZ": "Mars/Base"}, "SLOTBOT_DEFAULT_TZ"),
        ({"SLOTBOT_DEFAULT_DURATION": "0"}, "SLOTBOT_DEFAULT_DURATION"),
        ({"SLOTBOT_RECONCILE_SECONDS": "-1"}, "SLOTBOT_RECONCILE_SECONDS"),
        ({"SLOTBOT_DB_UPKEEP_SECONDS": "-1"}, "SLOTBOT_DB_UPKEEP_SECONDS"),
        ({"SLOTBOT_DB_UPKEEP_SECONDS": "often"}, "SLOTBOT_DB_UPKEEP_SECONDS"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    """A value Slotbot cannot use raises ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env, dotenv=None)


def test_background_loop_intervals_default_and_can_be_turned_off() -> None:
    """The reconcile runs every 30 s and database upkeep every 10 s unless told; 0 is never."""
    defaults = Settings.from_env({}, dotenv=None)
    assert (defaults.reconcile_seconds, defaults.db_upkeep_seconds) == (30, 3)
    off = Settings.from_env(
        {"SLOTBOT_RECONCILE_SECONDS": "0", "SLOTBOT_DB_UPKEEP_SECONDS": " 0 "}, dotenv=None
    )
    assert (off.reconcile_seconds, off.db_upkeep_seconds) == (0, 0)
    assert (
        Settings.from_env({"SLOTBOT_DB_UPKEEP_SECONDS": "60"}, dotenv=None).db_upkeep_seconds == 60
    )


def _google_env(tmp_path: Path, **env: str) -> dict[str, str]:
    key = tmp_path / "key.json"
    key.write_text("{}")
    names = {"KEY": str(key)}
    return {name: value.format(**names) for name, value in env.items()}


def test_no_google_variables_means_the_local_calendar(tmp_path: Path) -> None:
    """Without GOOGLE_* variables Slotbot keeps its own calendar."""
    settings = Settings.from_env({}, dotenv=None)
    assert settings.google_mode is None
    assert settings.google_api_url == "https://www.googleapis.com/"
    assert settings.google_send_updates == "none" and settings.google_meet is False


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({"GOOGLE_SERVICE_ACCOUNT_FILE": "{KEY}", "GOOGLE_DELEGATION": "true"}, "delegation"),
        ({"GOOGLE_SERVICE_ACCOUNT_FILE": "{KEY}", "GOOGLE_CALENDAR_ID": "c@group"}, "shared"),
        (
            {
                "GOOGLE_OAUTH_CLIENT_FILE": "{KEY}",
                "SLOTBOT_SECRET_KEY": "k" * 32,
                "SLOTBOT_PUBLIC_URL": "https://slotbot.example.com/",
            },
            "oauth",
        ),
    ],
)
def test_each_google_mode_follows_from_its_variables(
    tmp_path: Path, env: dict[str, str], mode: str
) -> None:
    """Key file + delegation, key file + calendar id, or an OAuth client file pick the mode."""
    settings = Settings.from_env(
        {**_google_env(tmp_path, **env), "GOOGLE_MEET": "1", "GOOGLE_SEND_UPDATES": "all"},
        dotenv=None,
    )
    assert settings.google_mode == mode
    assert settings.google_meet is True and settings.google_send_updates == "all"
    if mode == "oauth":
        assert settings.public_url == "https://slotbot.example.com"
        assert "k" * 32 not in repr(settings), "the secret key never appears in a repr"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"GOOGLE_DELEGATION": "1"}, "GOOGLE_DELEGATION needs GOOGLE_SERVICE_ACCOUNT_FILE"),
        ({"GOOGLE_SERVICE_ACCOUNT_FILE": "{KEY}"}, "needs GOOGLE_DELEGATION=1"),
        ({"GOOGLE_CALENDAR_ID": "c@group"}, "GOOGLE_CALENDAR_ID"),
        (
            {
                "GOOGLE_SERVICE_ACCOUNT_FILE": "{KEY}",
                "GOOGLE_DELEGATION": "1",
                "GOOGLE_CALENDAR_ID": "c@group",
            },
            "unset GOOGLE_CALENDAR_ID",
        ),
        (
            {"GOOGLE_SERVICE_ACCOUNT_FILE": "{KEY}", "GOOGLE_OAUTH_CLIENT_FILE": "{KEY}"},
            "not both",
        ),
        (
            {"GOOGLE_OAUTH_CLIENT_FILE": "{KEY}", "SLOTBOT_PUBLIC_URL": "https://x.example"},
            "needs SLOTBOT_SECRET_KEY",
        ),
        (
            {"GOOGLE_OAUTH_CLIENT_FILE": "{KEY}", "SLOTBOT_SECRET_KEY": "k" * 40},
            "needs SLOTBOT_PUBLIC_URL",
        ),
        ({"SLOTBOT_SECRET_KEY": "short"}, "at least 32"),
        ({"SLOTBOT_PUBLIC_URL": "slotbot.example.com"}, "SLOTBOT_PUBLIC_URL must be"),
        ({"GOOGLE_API_URL": "ftp://x"}, "GOOGLE_API_URL must be"),
        ({"GOOGLE_SERVICE_ACCOUNT_FILE": "/nonexistent/key.json"}, "not a readable file"),
        ({"GOOGLE_DELEGATION": "maybe"}, "GOOGLE_DELEGATION must be"),
        ({"GOOGLE_SEND_UPDATES": "everyone"}, "GOOGLE_SEND_UPDATES must be"),
    ],
)
def test_google_settings_that_cannot_work_are_refused_clearly(
    tmp_path: Path, env: dict[str, str], words: str
) -> None:
    """Impossible or incomplete Google combinations raise ConfigError saying what to change."""
    with pytest.raises(ConfigError, match=re.escape(words)):
        Settings.from_env(_google_env(tmp_path, **env), dotenv=None)


# --- installed in several workspaces (Slack OAuth) -------------------------------------------

_OAUTH = {
    "SLACK_CLIENT_ID": "1111.2222",
    "SLACK_CLIENT_SECRET": "client-secret",
    "SLACK_SIGNING_SECRET": "signing-secret",
    "SLOTBOT_SECRET_KEY": "k" * 32,
}


def test_oauth_mode_defaults_to_the_manifest_scopes_and_bolt_paths() -> None:
    """Client id and secret alone: HTTP mode, the manifest's bot scopes, /slack/install paths."""
    settings = Settings.from_env(_OAUTH, dotenv=None)
    assert settings.slack_oauth and settings.mode == "http"
    manifest = yaml.safe_load((Path(__file__).parents[2] / "manifest.yml").read_text())
    assert list(settings.slack_scopes) == manifest["oauth_config"]["scopes"]["bot"]
    assert settings.slack_install_path == "/slack/install"
    assert settings.slack_redirect_path == "/slack/oauth_redirect"
    assert settings.slack_redirect_uri is None
    assert settings.slack_authorize_url == "https://slack.com/oauth/v2/authorize"
    assert "client-secret" not in repr(settings)


def test_oauth_urls_follow_the_public_url_and_the_api_url() -> None:
    """The redirect URL is SLOTBOT_PUBLIC_URL + path; the consent page sits beside SLACK_API_URL."""
    env = {
        **_OAUTH,
        "SLOTBOT_PUBLIC_URL": "https://slotbot.example.com/",
        "SLACK_REDIRECT_PATH": "/oauth/back",
        "SLACK_API_URL": "http://127.0.0.1:9000/api",
        "SLACK_SCOPES": "commands, chat:write chat:write",
    }
    settings = Settings.from_env(env, dotenv=None)
    assert settings.slack_redirect_uri == "https://slotbot.example.com/oauth/back"
    assert settings.slack_authorize_url == "http://127.0.0.1:9000/oauth/v2/authorize"
    assert settings.slack_scopes == ("commands", "chat:write")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "either SLACK_BOT_TOKEN"),
        ({"SLACK_APP_TOKEN": "xapp-1"}, "SLACK_APP_TOKEN"),
        ({"SLACK_CLIENT_SECRET": ""}, "SLACK_CLIENT_SECRET is not set"),
        ({"SLACK_CLIENT_ID": ""}, "SLACK_CLIENT_ID is not set"),
        ({"SLOTBOT_SECRET_KEY": ""}, "needs SLOTBOT_SECRET_KEY"),
        ({"SLACK_SIGNING_SECRET": ""}, "needs SLACK_SIGNING_SECRET"),
        ({"SLACK_SCOPES": "chat:write,Bad Scope!"}, "SLACK_SCOPES"),
        ({"SLACK_INSTALL_PATH": "install"}, "SLACK_INSTALL_PATH"),
        ({"SLACK_REDIRECT_PATH": "/slack/events"}, "must differ"),
        ({"SLACK_REDIRECT_PATH": "/slack/install"}, "must differ"),
    ],
)
def test_contradictory_or_incomplete_oauth_settings_are_refused(
    env: dict[str, str], message: str
) -> None:
    """One workspace (a bot token) or many (client id), never both; OAuth needs its secrets."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env({**_OAUTH, **env}, dotenv=None)


def test_single_workspace_token_mode_is_unchanged() -> None:
    """A bot token and signing secret without a client id stay in one-workspace HTTP mode."""
    settings = Settings.from_env(
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, dotenv=None
    )
    assert not settings.slack_oauth and settings.mode == "http"
