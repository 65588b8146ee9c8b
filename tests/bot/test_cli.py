"""The ``slotbot`` command: ``parse`` streams answers line by line; no Slack config explains."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.__main__ import main, parse_line

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


def test_no_slack_configuration_explains_and_runs_locally(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Plain `slotbot` without tokens says what to set, then answers requests locally."""
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLOTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("sync with @ana next week\n"))
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "SLACK_BOT_TOKEN" in out and "SLACK_APP_TOKEN" in out and "manifest.yml" in out
    assert "sync · 30 min · with Ana" in out
    assert (tmp_path / "slotbot.db").exists()


def test_serve_without_a_signing_secret_refuses(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`slotbot serve` names the missing variable rather than running unverified."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["serve"]) == 2
    assert "SLACK_SIGNING_SECRET" in capsys.readouterr().err
