"""The ``slotbot`` command: ``parse`` streams answers line by line; without Slack configuration
it explains what to set and serves the playground; ``try`` is the terminal conversation."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.__main__ import choose_mode, main, parse_line
from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_parse_line_gives_the_documented_shape() -> None:
    """One request line becomes window, exact start, duration, attendees and title."""
    answer = parse_line(
        json.dumps(
            {
                "text": "design review with <@U024BE7LH> 45m next tuesday afternoon",
                "now": "2026-11-26T10:00:00-08:00",
                "tz": "America/Los_Angeles",
            }
        )
    )
    assert answer == {
        "window_start": "2026-12-01T12:00:00-08:00",
        "window_end": "2026-12-01T17:00:00-08:00",
        "exact_start": None,
        "duration_minutes": 45,
        "attendees": ["U024BE7LH"],
        "title": "design review",
    }


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", '"text"'),
        ('{"text": "call tomorrow", "tz": "Mars/Base"}', "Mars/Base"),
        ('{"text": "call tomorrow", "now": "yesterday-ish"}', "ISO 8601"),
        ('{"text": "sync yesterday", "now": "2026-11-26T10:00:00Z"}', "past"),
    ],
)
def test_parse_line_answers_bad_input_with_an_error(line: str, fragment: str) -> None:
    """Bad lines get {"error": ...} that says what was wrong, never an exception."""
    answer = parse_line(line)
    assert set(answer) == {"error"}
    assert fragment.lower() in answer["error"].lower()


def test_parse_streams_one_answer_per_line_as_it_arrives() -> None:
    """The process answers each line before the next is written, so it can serve many requests."""
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    with subprocess.Popen(
        [sys.executable, "-m", "bot", "parse"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        for text, title in (("budget chat tomorrow at 3", "budget chat"), ("1:1 friday", "1:1")):
            line = {"text": text, "now": "2026-11-26T10:00:00+01:00", "tz": "Europe/Berlin"}
            process.stdin.write(json.dumps(line) + "\n")
            process.stdin.flush()
            answer = json.loads(process.stdout.readline())  # blocks until this line is answered
            assert answer["title"] == title
        process.stdin.write("\n{broken\n")
        process.stdin.close()
        assert "error" in json.loads(process.stdout.readline())
        assert process.wait(timeout=30) == 0


@pytest.mark.parametrize(
    ("command", "env", "mode"),
    [
        (None, {}, "playground"),
        (None, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, "socket"),
        (None, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, "serve"),
        (None, {"SLACK_BOT_TOKEN": "xoxb-1"}, "playground"),
        ("try", {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, "try"),
        ("playground", {}, "playground"),
    ],
)
def test_plain_slotbot_picks_the_mode_from_the_slack_settings(
    command: str | None, env: dict[str, str], mode: str
) -> None:
    """No usable Slack settings → the playground; tokens pick socket or HTTP; a command wins."""
    assert choose_mode(command, Settings.from_env(env, dotenv=None)) == mode


def test_slotbot_try_answers_requests_in_the_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`slotbot try` is the terminal conversation with the demo colleagues, on SQLite."""
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLOTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("sync with @ana next week\n"))
    assert main(["try"]) == 0
    out = capsys.readouterr().out
    assert "sync · 30 min · with Ana" in out
    assert "manifest.yml" not in out, "the Slack set-up help belongs to plain `slotbot`"
    assert (tmp_path / "slotbot.db").exists()


async def test_plain_slotbot_without_tokens_serves_the_playground(tmp_path: Path) -> None:
    """`slotbot` with no Slack tokens explains what to set, then serves the playground page,
    on the base install: PostgreSQL's driver (the postgres extra) is hidden from it. So are
    Google's client libraries, which a Slotbot on its own calendar never loads (they take
    about 0.3 s to import)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if "PROXY" not in k.upper() and not k.startswith(("SLACK_", "SLOTBOT_"))
    }
    env.update(PYTHONPATH=str(ROOT), PORT="0", SLOTBOT_DATA_DIR=str(tmp_path / "data"))
    hidden = ("asyncpg", "googleapiclient", "google_auth_oauthlib", "google.oauth2", "httplib2")
    base_install = (
        f"import runpy, sys; sys.modules.update(dict.fromkeys({hidden!r})); "
        "runpy.run_module('bot', run_name='__main__', alter_sys=True)"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", base_install, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        async with asyncio.timeout(60):
            while not lines or "Slotbot playground: open" not in lines[-1]:
                line = (await process.stdout.readline()).decode()
                assert line, "slotbot exited before serving:\n" + "".join(lines)
                lines.append(line)
            url = re.search(r"http://127\.0\.0\.1:\d+/", lines[-1])
            assert url is not None, lines[-1]
            async with (
                aiohttp.ClientSession() as session,
                session.get(url.group(0) + "api/state") as response,
            ):
                state = await response.json()
        out = "".join(lines)
        assert "SLACK_BOT_TOKEN" in out and "SLACK_APP_TOKEN" in out and "manifest.yml" in out
        assert [c["name"] for c in state["channels"]] == ["general", "Slotbot"]
        assert {p["handle"] for p in state["people"]} >= {"ana", "ben", "chen", "dev"}
        assert (tmp_path / "data" / "playground.db").exists()
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            code = await process.wait()
    assert code == 0, "Ctrl+C stops the playground cleanly"


def test_serve_without_a_signing_secret_refuses(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`slotbot serve` names the missing variable rather than running unverified."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["serve"]) == 2
    assert "SLACK_SIGNING_SECRET" in capsys.readouterr().err


def test_serve_in_many_workspaces_needs_no_bot_token() -> None:
    """With SLACK_CLIENT_ID, `serve` takes its tokens from installations, not the environment."""
    from bot.__main__ import _missing
    from bot.config import Settings

    oauth = Settings.from_env(
        {
            "SLACK_CLIENT_ID": "1.2",
            "SLACK_CLIENT_SECRET": "shh",
            "SLACK_SIGNING_SECRET": "sig",
            "SLOTBOT_SECRET_KEY": "k" * 32,
        },
        dotenv=None,
    )
    assert _missing(oauth, "serve") is None
    single = Settings.from_env({"SLACK_SIGNING_SECRET": "sig"}, dotenv=None)
    assert "SLACK_BOT_TOKEN" in (_missing(single, "serve") or "")
