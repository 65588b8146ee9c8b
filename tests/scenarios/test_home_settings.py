"""End to end through Slack's wire: ``/schedule list`` and "my meetings" in a DM, the Home tab
with its settings modal (opened with a trigger id, submitted as a view_submission), and
settings that change the very next offer."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.models import BookingState, WorkingHours
from handlers import ids
from playground import slack_requests
from tests.handlers.test_settings_blocks import submitted_values
from tests.scenarios.harness import (
    ANA,
    BEN,
    EVE,
    SECRET,
    Harness,
    Offer,
    offer_from_ephemeral,
    offer_in,
    start_harness,
    stop_harness,
)
from tests.scenarios.test_lifecycle import BOOKED_AT, book_meeting, booking_of, click_and_wait

BERLIN = ZoneInfo("Europe/Berlin")
SLOT_START = re.compile(r"^<!date\^(\d+)\^")


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await start_harness(tmp_path)
    yield harness
    await stop_harness(harness)


async def open_home(bot: Harness, user: str = ANA.id) -> dict[str, Any]:
    """Open the Home tab as ``user``; the view published for them."""
    published = len(bot.slack.calls("views.publish"))
    opened = slack_requests.app_home_opened_event(user=user, channel="D0HOME001")
    response = await bot.post(
        slack_requests.signed_event(slack_requests.event_callback(opened), secret=SECRET)
    )
    assert response.status == 200
    await bot.wait_for("views.publish", count=published + 1)
    view = bot.slack.home_view(user)
    assert view is not None
    return view


def button(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any]:
    for block in blocks:
        for element in [block.get("accessory"), *(block.get("elements") or [])]:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return element
    raise AssertionError(f"no {action_id} button")


async def click_in_view(bot: Harness, view: dict[str, Any], pressed: dict[str, Any]) -> None:
    """Click ``pressed`` in a Home view, with a fresh trigger id as Slack sends."""
    action = slack_requests.button_action(pressed["action_id"], pressed["value"])
    payload = slack_requests.block_actions(
        [action],
        user_id=ANA.id,
        channel_id=None,
        response_url=None,
        view=view,
        trigger_id=bot.slack.mint_trigger_id(),
    )
    response = await bot.post(slack_requests.signed_interaction(payload, secret=SECRET))
    assert response.status == 200


async def open_settings(bot: Harness) -> dict[str, Any]:
    """Home → Edit settings: the modal Slack opened."""
    home = await open_home(bot)
    opened = len(bot.slack.calls("views.open"))
    await click_in_view(bot, home, button(home["blocks"], ids.EDIT_SETTINGS))
    await bot.wait_for("views.open", count=opened + 1)
    view_id = bot.slack.calls("views.open")[-1].response["view"]["id"]
    return bot.slack.view(view_id)


async def submit(bot: Harness, view: dict[str, Any], values: dict[str, Any]) -> tuple[int, str]:
    """A view_submission of ``view`` with ``values``, shaped as Slack documents it."""
    payload = {
        "type": "view_submission",
        "team": {"id": bot.slack.team_id, "domain": "slotbot-dev"},
        "user": {"id": ANA.id, "username": "ana", "name": "ana", "team_id": bot.slack.team_id},
        "api_app_id": "A000APP01",
        "token": "verification-token",
        "trigger_id": bot.slack.mint_trigger_id(),
        "view": {**view, "state": {"values": values}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    request = slack_requests.signed_interaction(payload, secret=SECRET)
    async with bot.session.post(bot.url, data=request.body, headers=request.headers) as r:
        return r.status, await r.text()


def slot_starts(offer: Offer) -> list[datetime]:
    """The start of every slot row (a section with a Book button), in Berlin."""
    starts = []
    for block in offer.blocks:
        if str((block.get("accessory") or {}).get("action_id", "")).startswith(ids.BOOK_SLOT):
            found = SLOT_START.match(block["text"]["text"])
            assert found
            starts.append(datetime.fromtimestamp(int(found[1]), BERLIN))
    return starts


async def test_settings_change_the_very_next_offer(bot: Harness) -> None:
    """Ana sets her hours to 13:00–15:00 in the modal: her next offer only has slots there."""
    await bot.command(f"sync with <@{EVE.id}> 30m this week")
    await bot.settle()
    before = slot_starts(offer_from_ephemeral(bot))
    assert before and any(s.time() < time(13) for s in before), "the defaults reach earlier"

    modal = await open_settings(bot)
    assert modal["callback_id"] == ids.SETTINGS_VIEW
    changes = {f"hours_{d}": "13:00-15:00" for d in range(5)}
    published = len(bot.slack.calls("views.publish"))
    status, body = await submit(bot, modal, submitted_values(modal, **changes))
    assert status == 200 and body in ("", "{}"), body
    await bot.wait_for("views.publish", count=published + 1)
    saved = await bot.slotbot.store.get_settings(bot.slack.team_id, ANA.id)
    assert saved.working_hours == WorkingHours.uniform(time(13), time(15))
    assert "Mon 13:00–15:00" in str(bot.slack.home_view(ANA.id))

    await bot.command(f"sync with <@{EVE.id}> 30m this week")
    await bot.settle()
    after = slot_starts(offer_from_ephemeral(bot))
    assert after
    for start in after:
        assert time(13) <= start.time() <= time(14, 30), start  # a 30-minute slot ends by 15:00


async def test_an_invalid_form_answers_errors_in_the_modal_and_saves_nothing(
    bot: Harness,
) -> None:
    """End before start and an unknown zone: response_action errors on those fields."""
    modal = await open_settings(bot)
    values = submitted_values(modal, hours_0="15:00-13:00", time_zone="Mars/Base")
    status, body = await submit(bot, modal, values)
    assert status == 200
    answer = json.loads(body)
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"hours_0", "time_zone"}
    saved = await bot.slotbot.store.get_settings(bot.slack.team_id, ANA.id)
    assert saved.working_hours == WorkingHours()


async def test_schedule_list_shows_own_meetings_and_reschedules_from_the_list(
    bot: Harness,
) -> None:
    """/schedule list: the booking with its time and people; Reschedule there turns the list
    into the offer, and a pick moves the meeting."""
    booked = await book_meeting(bot)
    status, _ = await bot.command("list")
    assert status == 200
    await bot.settle()
    listing = offer_from_ephemeral(bot)
    assert listing.message.ts != booked.confirmation.message.ts
    assert f"<!date^{int(BOOKED_AT.timestamp())}^" in listing.text()
    assert f"<@{BEN.id}>" in listing.text() and "design review" in listing.text()
    [reschedule] = listing.buttons(ids.RESCHEDULE)
    assert reschedule["value"] == booked.key and listing.buttons(ids.CANCEL_BOOKING)

    await click_and_wait(bot, listing, reschedule)
    offer = offer_from_ephemeral(bot)
    assert offer.message.ts == listing.message.ts, "the offer took the list's place"
    await click_and_wait(bot, offer, offer.buttons("book_slot")[0])
    moved = await booking_of(bot, booked.key)
    assert moved.sequence == 1 and moved.slot.start != BOOKED_AT


async def test_an_attendees_list_has_no_buttons(bot: Harness) -> None:
    """Ben attends Ana's meeting: he sees it listed, without Reschedule or Cancel."""
    await book_meeting(bot)
    await bot.command("list", user=BEN)
    await bot.settle()
    listing = offer_from_ephemeral(bot, BEN)
    assert "design review" in listing.text() and listing.buttons() == []


async def test_my_meetings_in_a_dm_lists_them_as_a_message(bot: Harness) -> None:
    """Saying 'my meetings' in a DM gets the list as a normal message in the DM."""
    await book_meeting(bot)
    im = bot.slack.open_im(ANA.id).id
    event = slack_requests.im_message_event(
        "my meetings", user=ANA.id, channel=im, ts="1764489600.000200"
    )
    await bot.post(slack_requests.signed_event(slack_requests.event_callback(event), secret=SECRET))
    await bot.wait_for("chat.postMessage")
    await bot.settle()
    listing = offer_in(bot, im)
    assert listing.message.ephemeral_to is None
    assert f"<!date^{int(BOOKED_AT.timestamp())}^" in listing.text()
    assert listing.buttons(ids.RESCHEDULE)


async def test_cancel_from_home_asks_in_the_dm_and_cancels(bot: Harness) -> None:
    """Home → Cancel meeting: the confirm step arrives in the DM; confirming cancels it."""
    booked = await book_meeting(bot)
    home = await open_home(bot)
    await click_in_view(bot, home, button(home["blocks"], ids.HOME_CANCEL_BOOKING))
    await bot.wait_for("chat.postMessage")
    await bot.settle()
    im = bot.slack.im_channel(ANA.id)
    assert im is not None
    prompt = offer_in(bot, im)
    [confirm] = prompt.buttons(ids.CONFIRM_CANCEL)
    assert confirm["value"] == booked.key
    # The prompt is a normal DM message, so the confirm click updates it in place.
    assert await bot.click(prompt, confirm) == 200
    await bot.wait_for("chat.update")
    await bot.settle()
    assert "was cancelled" in str(bot.slack.message(im, prompt.message.ts).blocks)
    assert (await booking_of(bot, booked.key)).state == BookingState.CANCELLED
