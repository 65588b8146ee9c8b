"""The playground's JSON API end to end over HTTP: the page's requests in, Slotbot's real handlers
behind its signed endpoint, the loopback Slack in between, SQLite and the local calendar under."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from icalendar import Calendar

from bot.config import Settings
from playground.server import Playground, open_playground
from tests.ical_check import libical_report

# Monday 30 November 2026, 08:00 UTC.
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")

JSON = dict[str, Any]


@dataclass
class Page:
    """What the browser page does, over HTTP."""

    playground: Playground
    server: TestServer
    session: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def state(self, **query: str) -> JSON:
        async with self.session.get(self.url("/api/state"), params=query) as response:
            assert response.status == 200
            data: JSON = await response.json()
            return data

    async def send(self, channel: str, text: str) -> JSON:
        async with self.session.post(
            self.url("/api/send"), json={"channel": channel, "text": text}
        ) as response:
            assert response.status == 200
            data: JSON = await response.json()
            return data

    async def click(self, message: JSON, button: JSON) -> JSON:
        body = {
            "channel": message["channel"],
            "ts": message["ts"],
            "action_id": button["action_id"],
            "value": button["value"],
        }
        async with self.session.post(self.url("/api/click"), json=body) as response:
            assert response.status == 200
            data: JSON = await response.json()
            return data

    async def wait_for(self, found: Callable[[JSON], Any], within: float = 10.0) -> Any:
        """Poll /api/state as the page does until ``found(state)`` is truthy; return it."""
        async with asyncio.timeout(within):
            while True:
                result = found(await self.state())
                if result:
                    return result
                await asyncio.sleep(0.05)

    async def general(self) -> str:
        channels = (await self.state())["channels"]
        return str(next(c["id"] for c in channels if c["name"] == "general"))

    async def direct(self) -> str:
        channels = (await self.state())["channels"]
        return str(next(c["id"] for c in channels if c["kind"] == "im"))


def buttons(message: JSON, prefix: str = "") -> list[JSON]:
    found = []
    for block in message["blocks"]:
        for element in [block.get("accessory"), *(block.get("elements") or [])]:
            if (
                isinstance(element, dict)
                and element.get("type") == "button"
                and element["action_id"].startswith(prefix)
            ):
                found.append(element)
    return found


def offers(state: JSON, channel: str | None = None) -> list[JSON]:
    return [
        m for m in state["messages"] if buttons(m, "book_slot") and channel in (None, m["channel"])
    ]


def date_token(moment: datetime) -> str:
    return f"<!date^{int(moment.timestamp())}^"


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    settings = Settings.from_env(
        {"SLOTBOT_DATA_DIR": str(tmp_path), "SLOTBOT_DEFAULT_TZ": "Europe/Berlin"}, dotenv=None
    )
    playground = await open_playground(settings, clock=lambda: NOW)
    server = TestServer(playground.web_app(), host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    try:
        yield Page(playground, server, session)
    finally:
        await session.close()
        await server.close()
        await playground.close()


async def test_request_offer_book_ics_and_calendar(page: Page) -> None:
    """/schedule → an ephemeral offer; Book → confirmation, a valid .ics, and the grid shows it."""
    general = await page.general()
    sent = await page.send(general, "/schedule sync with @ana tomorrow afternoon")
    assert sent == {"ok": True, "delivered": "slash_command", "status": 200}

    [offer] = await page.wait_for(offers)
    assert offer["channel"] == general and offer["ephemeral"] is True and offer["bot"] is True
    # Tomorrow afternoon in Berlin (you and Ana both there): 12:00 is the first free start.
    first = datetime(2026, 12, 1, 12, 0, tzinfo=BERLIN)
    slots = buttons(offer, "book_slot")
    assert date_token(first) in json.dumps(offer["blocks"]) and "sync" in json.dumps(offer)
    state = await page.state()
    echo = [m for m in state["messages"] if m.get("echo")]
    assert [m["text"] for m in echo] == ["/schedule sync with @ana tomorrow afternoon"]

    assert (await page.click(offer, slots[0]))["ok"] is True
    files = await page.wait_for(lambda s: s["files"])
    [upload] = files.values()
    assert upload["name"].endswith(".ics")
    state = await page.state()
    [confirmation] = [m for m in state["messages"] if m["ts"] == offer["ts"] and not m.get("echo")]
    assert "is booked" in json.dumps(confirmation["blocks"]), "the offer became the confirmation"
    assert buttons(confirmation, "reschedule") and buttons(confirmation, "cancel_booking")
    [carrier] = [m for m in state["messages"] if m["files"]]
    assert carrier["channel"] == general and carrier["ephemeral"] is False

    async with page.session.get(page.url(upload["url"])) as response:
        assert response.status == 200
        assert response.content_type == "text/calendar"
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert upload["name"] in response.headers["Content-Disposition"]
        ics = await response.read()
    event = Calendar.from_ical(ics).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == "sync"
    assert event.decoded("DTSTART") == first
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=30)
    attendees = [str(a).lower() for a in event.get("ATTENDEE", [])]
    assert "mailto:ana@example.com" in attendees
    assert libical_report(ics)["errors"] == []

    async with page.session.get(page.url("/api/calendars"), params={"week": "2026-12-02"}) as r:
        assert r.status == 200
        grid = await r.json()
    assert grid["week"] == "2026-11-30" and len(grid["days"]) == 7
    people = {p["handle"]: p for p in grid["people"]}
    for handle in ("sam", "ana"):
        [booking] = [e for e in people[handle]["events"] if e["kind"] == "booking"]
        assert booking["title"] == "sync"
        assert datetime.fromisoformat(booking["start"]) == first
        assert booking["pieces"] == [{"day": 1, "from": 12 * 60, "to": 12 * 60 + 30}]
    assert not [e for e in people["ben"]["events"] if e["kind"] == "booking"]
    # Ana's seeded team meetings are busy time, 10:00–11:00 in her own zone, on weekdays.
    busy = [e for e in people["ana"]["events"] if e["kind"] == "busy"]
    assert len(busy) == 5 and {p["from"] for e in busy for p in e["pieces"]} == {600}


async def test_calendar_grid_lays_out_each_person_in_their_own_zone(page: Page) -> None:
    """One booking sits at each person's local wall time, cut at their midnights."""
    direct = await page.direct()
    await page.send(direct, "sync with @dev tomorrow at 9am")
    [offer] = await page.wait_for(lambda s: offers(s, direct))
    await page.click(offer, buttons(offer, "book_slot")[0])
    await page.wait_for(lambda s: s["files"])
    async with page.session.get(page.url("/api/calendars")) as response:
        grid = await response.json()
    people = {p["handle"]: p for p in grid["people"]}
    # 09:00 Berlin on Tuesday is 13:30 in Kolkata: same day, different rows.
    [mine] = [e for e in people["sam"]["events"] if e["kind"] == "booking"]
    [devs] = [e for e in people["dev"]["events"] if e["kind"] == "booking"]
    assert mine["pieces"] == [{"day": 1, "from": 9 * 60, "to": 9 * 60 + 30}]
    assert devs["pieces"] == [{"day": 1, "from": 13 * 60 + 30, "to": 14 * 60}]
    assert people["dev"]["tz"] == "Asia/Kolkata" and people["dev"]["place"] == "Kolkata"
    working = people["chen"]["working"]
    assert working[0] == [[9 * 60, 17 * 60]] and working[5] == [], "Monday to Friday, 9 to 5"


async def test_direct_message_uses_the_browser_zone(page: Page) -> None:
    """A DM becomes a message.im event; the viewer's zone is the browser's, via users.info."""
    await page.state(tz="America/Los_Angeles")
    direct = await page.direct()
    sent = await page.send(direct, "1:1 with @ben tomorrow at 10am")
    assert sent["delivered"] == "message" and sent["ok"] is True
    [offer] = await page.wait_for(lambda s: offers(s, direct))
    assert offer["ephemeral"] is False, "in a DM the offer is a normal message"
    # 10am for the viewer, now in Los Angeles: 18:00 UTC (Ben's 13:00 is busy, so not Ben's 10).
    start = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    assert date_token(start) in json.dumps(offer["blocks"])
    state = await page.state()
    [mine] = [m for m in state["messages"] if m["user"] == state["you"] and m["channel"] == direct]
    assert mine["text"] == "1:1 with <@U0BEN> tomorrow at 10am", "linked as Slack's client does"
    you = next(p for p in state["people"] if p["you"])
    assert you["tz"] == "America/Los_Angeles"


async def test_mention_in_general_answers_in_a_thread_only_you_see(page: Page) -> None:
    """'@slotbot …' in #general is an app_mention; the offer is an ephemeral reply in its thread."""
    general = await page.general()
    sent = await page.send(general, "@slotbot sync with @dev next week")
    assert sent["delivered"] == "app_mention"
    [offer] = await page.wait_for(lambda s: offers(s, general))
    state = await page.state()
    [asked] = [m for m in state["messages"] if m["user"] == state["you"]]
    assert asked["text"].startswith(f"<@{state['bot']}> sync with <@U0DEV>")
    assert offer["thread_ts"] == asked["ts"] and offer["ephemeral"] is True


async def test_plain_channel_message_reaches_nobody(page: Page) -> None:
    """A message in #general without a mention stays a message: Slotbot gets no event."""
    general = await page.general()
    before = len(page.playground.slack.calls())
    assert await page.send(general, "hello & <everyone>") == {"ok": True, "delivered": "message"}
    state = await page.state()
    [said] = [m for m in state["messages"] if m["channel"] == general]
    assert said["text"] == "hello &amp; &lt;everyone&gt;", "escaped as Slack escapes user text"
    assert len(page.playground.slack.calls()) == before


async def test_unknown_slash_command_is_answered_by_slackbot(page: Page) -> None:
    """Only /schedule is installed: another command gets Slackbot's note, Slotbot hears nothing."""
    general = await page.general()
    answer = await page.send(general, "/remind me later")
    assert answer == {"ok": False, "error": "unknown_command"}
    state = await page.state()
    [note] = [m for m in state["messages"] if m["user"] == "USLACKBOT"]
    assert "`/remind` is not a valid command" in note["text"] and note["ephemeral"] is True
    assert page.playground.slack.calls() == []


async def test_reschedule_then_cancel_from_the_confirmation(page: Page) -> None:
    """Reschedule → pick moves the meeting (a second .ics), then Cancel meeting → confirm
    cancels it (a third .ics, METHOD:CANCEL); the confirmation changes in place each time."""
    general = await page.general()
    await page.send(general, "/schedule sync with @ana tomorrow afternoon")
    [offer] = await page.wait_for(offers)
    await page.click(offer, buttons(offer, "book_slot")[0])
    await page.wait_for(lambda s: s["files"])

    def at_offer(state: JSON) -> JSON:
        [message] = [m for m in state["messages"] if m["ts"] == offer["ts"] and not m.get("echo")]
        return message

    def showing(*words: str) -> Callable[[JSON], Any]:
        def found(state: JSON) -> JSON | None:
            message = at_offer(state)
            return message if all(w in json.dumps(message) for w in words) else None

        return found

    confirmation = at_offer(await page.state())
    await page.click(confirmation, buttons(confirmation, "reschedule")[0])
    moving = await page.wait_for(showing("book_slot", "Keep the current time"))
    await page.click(moving, buttons(moving, "book_slot")[0])
    moved = await page.wait_for(showing("moved", "~<!date^"))
    assert len(await page.wait_for(lambda s: len(s["files"]) >= 2 and s["files"])) == 2

    await page.click(moved, buttons(moved, "cancel_booking")[0])
    prompt = await page.wait_for(showing("confirm_cancel", "keep_booking"))
    await page.click(prompt, buttons(prompt, "confirm_cancel")[0])
    await page.wait_for(showing("was cancelled"))
    files = await page.wait_for(lambda s: len(s["files"]) >= 3 and s["files"])
    methods = []
    for upload in files.values():
        async with page.session.get(page.url(upload["url"])) as response:
            methods.append(str(Calendar.from_ical(await response.read())["METHOD"]))
    assert sorted(methods) == ["CANCEL", "REQUEST", "REQUEST"]


async def test_state_polling_reports_unchanged(page: Page) -> None:
    """?since=<version> answers 'unchanged' until something happens, then the full state."""
    first = await page.state()
    assert await page.state(since=str(first["version"])) == {
        "version": first["version"],
        "unchanged": True,
    }
    await page.send(first["channels"][1]["id"], "hi")
    await page.wait_for(lambda s: s["version"] > first["version"] and len(s["messages"]) >= 2)
    later = await page.state(since=str(first["version"]))
    assert "messages" in later and later["version"] > first["version"]


async def test_page_and_static_files_are_served(page: Page) -> None:
    """/ is the page; its script and style come from /static, nothing from the internet."""
    async with page.session.get(page.url("/")) as response:
        assert response.status == 200
        html = await response.text()
    assert '<script src="/static/app.js">' in html and "/static/style.css" in html
    assert "http://" not in html and "https://" not in html
    for name in ("app.js", "style.css"):
        async with page.session.get(page.url(f"/static/{name}")) as response:
            assert response.status == 200
            text = await response.text()
        assert "https://" not in text and "http://" not in text


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/send", {"channel": 1}, 400),
        ("POST", "/api/send", {"channel": "C404", "text": "hi"}, 404),
        ("POST", "/api/click", {"channel": "C1", "ts": "1.0"}, 400),
        ("POST", "/api/click", {"channel": "C1", "ts": "1.0", "action_id": "x", "value": "y"}, 404),
        ("GET", "/api/calendars?week=next", None, 400),
        ("GET", "/api/calendars?week=2026-02-30", None, 400),
        ("GET", "/files/F404", None, 404),
    ],
)
async def test_bad_requests_are_refused(
    page: Page, method: str, path: str, body: JSON | None, status: int
) -> None:
    """Malformed or unknown requests get 400/404, never a crash."""
    async with page.session.request(method, page.url(path), json=body) as response:
        assert response.status == status
