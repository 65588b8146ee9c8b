"""Settings come from the environment over a .env file, with clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    """A value Slotbot cannot use raises ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env, dotenv=None)
