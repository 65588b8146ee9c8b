"""The loopback Slack emulator, proven with slack_sdk's real async clients and a real Bolt app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import Clock as SignatureClock
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from playground import slack_requests
from playground.slack_api import (
    MESSAGE_BLOCK_LIMIT,
    RESPONSE_URL,
    UPLOAD_URL,
    VIEW_BLOCK_LIMIT,
    SlackEmulator,
    SlackUser,
)

ANA = SlackUser(
    "U0ANA0001", "ana", real_name="Ana Lima", email="ana@example.com", tz="Europe/Berlin"
)
BO = SlackUser(
    "U0BO00002", "bo", real_name="Bo Chen", email="bo@example.com", tz="America/New_York"
)
CY = SlackUser("U0CY00003", "cy", real_name="Cy Diaz", email="cy@example.com", tz="Asia/Kolkata")
NOON = datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()
SECRET = "signing-secret-for-tests"
ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Slotbot//EN\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:booking-1@slotbot\r\nDTSTART:20261201T140000Z\r\n"
    "DTEND:20261201T144500Z\r\nSUMMARY:Design review\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


class Clock:
    """A settable clock for the emulator (ts values, schedule checks, response_url expiry)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOON)


@pytest.fixture
async def slack(clock: Clock) -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(users=[ANA, BO, CY], clock=clock) as emulator:
        yield emulator


@pytest.fixture
def client(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=slack.token, base_url=slack.url)


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def button(action_id: str, text: str = "Pick", value: str = "v") -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
    }


async def open_im(client: AsyncWebClient, user: SlackUser) -> str:
    response = await client.conversations_open(users=user.id)
    return str(response["channel"]["id"])


# --- identity and directory -----------------------------------------------------------------


async def test_auth_test_names_the_bot(slack: SlackEmulator, client: AsyncWebClient) -> None:
    """auth.test answers the bot's user, bot and team ids for the configured token."""
    response = await client.auth_test()
    assert response["user_id"] == slack.bot_user_id
    assert response["bot_id"] == slack.bot_id
    assert response["team_id"] == slack.team_id


async def test_wrong_token_is_invalid_auth(slack: SlackEmulator) -> None:
    """A bearer token other than the configured one is refused with invalid_auth."""
    with pytest.raises(SlackApiError) as caught:
        await AsyncWebClient(token="xoxb-wrong", base_url=slack.url).auth_test()
    assert caught.value.response["error"] == "invalid_auth"
    assert not slack.calls("auth.test")[0].ok


async def test_missing_token_is_not_authed(slack: SlackEmulator) -> None:
    """A call without any token is refused with not_authed."""
    with pytest.raises(SlackApiError) as caught:
        await AsyncWebClient(base_url=slack.url).auth_test()
    assert caught.value.response["error"] == "not_authed"


async def test_token_in_a_form_body_is_accepted(slack: SlackEmulator) -> None:
    """A token sent as a form field instead of a header is checked the same way."""
    response = await AsyncWebClient(base_url=slack.url).api_call(
        "auth.test", data={"token": slack.token}
    )
    assert response["ok"] is True
    assert slack.calls("auth.test")[0].encoding == "form"


async def test_users_info_gives_zone_offset_and_email(client: AsyncWebClient) -> None:
    """users.info carries tz, the current tz_offset, profile email and real_name."""
    ana = (await client.users_info(user=ANA.id))["user"]
    bo = (await client.users_info(user=BO.id))["user"]
    assert (ana["tz"], ana["tz_offset"], ana["is_bot"]) == ("Europe/Berlin", 3600, False)
    assert ana["profile"]["email"] == "ana@example.com"
    assert ana["real_name"] == "Ana Lima"
    assert (bo["tz"], bo["tz_offset"]) == ("America/New_York", -5 * 3600)


async def test_users_info_offset_follows_daylight_saving(
    slack: SlackEmulator, client: AsyncWebClient, clock: Clock
) -> None:
    """tz_offset is the offset at the emulator's clock, so July in Berlin is +2 h."""
    clock.now = datetime(2026, 7, 1, 12, tzinfo=UTC).timestamp()
    ana = (await client.users_info(user=ANA.id))["user"]
    assert ana["tz_offset"] == 7200


async def test_users_info_marks_the_bot_and_refuses_strangers(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """The bot user is is_bot; an unknown id answers user_not_found."""
    bot = (await client.users_info(user=slack.bot_user_id))["user"]
    assert bot["is_bot"] is True
    with pytest.raises(SlackApiError) as caught:
        await client.users_info(user="U0NOBODY0")
    assert caught.value.response["error"] == "user_not_found"


async def test_users_list_pages_through_everyone_once(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """users.list with a limit returns every member exactly once across cursor pages."""
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        response = await client.users_list(limit=2, cursor=cursor)
        seen += [m["id"] for m in response["members"]]
        pages += 1
        cursor = response["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted([ANA.id, BO.id, CY.id, slack.bot_user_id])
    assert pages == 2


async def test_users_list_refuses_a_bad_cursor(client: AsyncWebClient) -> None:
    """A cursor that names no member answers invalid_cursor."""
    with pytest.raises(SlackApiError) as caught:
        await client.users_list(cursor="bm9ib2R5")
    assert caught.value.response["error"] == "invalid_cursor"


# --- conversations and messages -------------------------------------------------------------


async def test_conversations_open_gives_one_im_per_user(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """Opening an IM twice gives the same D… id, the second time flagged already_open."""
    first = await client.conversations_open(users=ANA.id)
    second = await client.conversations_open(users=ANA.id, return_im=True)
    assert first["channel"]["id"].startswith("D")
    assert second["channel"]["id"] == first["channel"]["id"]
    assert second["already_open"] is True and second["channel"]["user"] == ANA.id
    assert slack.im_channel(ANA.id) == first["channel"]["id"]


async def test_conversations_open_group_and_errors(client: AsyncWebClient) -> None:
    """Several users give a G… group DM; no users or an unknown one are refused."""
    group = await client.conversations_open(users=[ANA.id, BO.id])
    assert group["channel"]["id"].startswith("G")
    for users, error in (("", "users_list_not_supplied"), ("U0NOBODY0", "user_not_found")):
        with pytest.raises(SlackApiError) as caught:
            await client.conversations_open(users=users)
        assert caught.value.response["error"] == error


async def test_post_message_lands_in_the_conversation(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """chat.postMessage answers a ts and channel and the message is readable in order."""
    channel = await open_im(client, ANA)
    first = await client.chat_postMessage(channel=channel, text="one")
    second = await client.chat_postMessage(channel=channel, text="two", blocks=[section("two")])
    assert first["ts"] < second["ts"]
    assert second["message"]["blocks"] == [section("two")]
    assert [m.text for m in slack.messages_in(channel)] == ["one", "two"]
    assert slack.calls("chat.postMessage")[1].encoding == "json"


async def test_post_message_to_a_user_id_goes_to_the_im(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """Posting to a U… id delivers into the bot's IM with that user, as Slack does."""
    response = await client.chat_postMessage(channel=BO.id, text="hello")
    assert response["channel"] == slack.im_channel(BO.id)
    assert [m.text for m in slack.messages_in(response["channel"])] == ["hello"]


async def test_post_message_ts_is_slack_shaped(client: AsyncWebClient) -> None:
    """A ts is seconds from the clock, a dot and six digits, unique per message."""
    channel = await open_im(client, ANA)
    stamps = [(await client.chat_postMessage(channel=channel, text=str(i)))["ts"] for i in range(3)]
    assert all(s.startswith(f"{int(NOON)}.") and len(s.split(".")[1]) == 6 for s in stamps)
    assert len(set(stamps)) == 3


async def test_thread_replies_are_kept_apart(slack: SlackEmulator, client: AsyncWebClient) -> None:
    """Replies with thread_ts sit in the thread, not the channel's top level."""
    channel = await open_im(client, ANA)
    parent = await client.chat_postMessage(channel=channel, text="parent")
    await client.chat_postMessage(channel=channel, text="reply", thread_ts=parent["ts"])
    assert [m.text for m in slack.messages_in(channel)] == ["parent"]
    assert [m.text for m in slack.replies(channel, parent["ts"])] == ["reply"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channel": "C0NOWHERE", "text": "x"}, "channel_not_found"),
        ({"channel": "general", "text": "x", "thread_ts": "1.000001"}, "thread_not_found"),
        ({"channel": "general", "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": "closed", "text": "x"}, "not_in_channel"),
    ],
)
async def test_post_message_errors_use_slack_names(
    slack: SlackEmulator, client: AsyncWebClient, kwargs: dict[str, Any], error: str
) -> None:
    """Bad chat.postMessage calls answer Slack's own error names."""
    slack.add_channel("general")
    slack.add_channel("closed", bot_is_member=False)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(**kwargs)
    assert caught.value.response["error"] == error


async def test_post_message_without_content_is_no_text(client: AsyncWebClient) -> None:
    """A message with neither text nor blocks answers no_text."""
    channel = await open_im(client, ANA)
    with pytest.raises(SlackApiError) as caught:
        await client.api_call("chat.postMessage", json={"channel": channel})
    assert caught.value.response["error"] == "no_text"


async def test_form_encoded_blocks_are_decoded(slack: SlackEmulator) -> None:
    """blocks sent JSON-encoded inside a form body are recorded and stored as structures."""
    client = AsyncWebClient(token=slack.token, base_url=slack.url)
    channel = await open_im(client, ANA)
    await client.api_call(
        "chat.postMessage",
        data={"channel": channel, "text": "t", "blocks": json.dumps([section("form")])},
    )
    call = slack.calls("chat.postMessage")[0]
    assert call.encoding == "form"
    assert call.params["blocks"] == [section("form")]
    assert slack.messages_in(channel)[0].blocks == [section("form")]


async def test_post_ephemeral_is_seen_only_by_its_user(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """chat.postEphemeral answers message_ts and keeps the message out of the shared view."""
    general = slack.add_channel("general", members=[ANA.id, BO.id, slack.bot_user_id])
    response = await client.chat_postEphemeral(channel=general.id, user=ANA.id, text="psst")
    assert slack.messages_in(general.id) == []
    [ephemeral] = slack.ephemeral_messages(user=ANA.id)
    assert (ephemeral.ts, ephemeral.text) == (response["message_ts"], "psst")
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postEphemeral(channel=general.id, user=CY.id, text="psst")
    assert caught.value.response["error"] == "user_not_in_channel"


async def test_chat_update_replaces_and_keeps_omitted_blocks(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """chat.update replaces text, keeps blocks it was not given, and marks the edit."""
    channel = await open_im(client, ANA)
    posted = await client.chat_postMessage(channel=channel, text="old", blocks=[section("b")])
    updated = await client.chat_update(channel=channel, ts=posted["ts"], text="new")
    assert updated["ts"] == posted["ts"] and updated["text"] == "new"
    [message] = slack.messages_in(channel)
    assert (message.text, message.blocks, message.edited) == ("new", [section("b")], True)


async def test_chat_update_refuses_unknown_and_ephemeral_messages(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """chat.update of an unknown ts or of an ephemeral message answers message_not_found."""
    channel = await open_im(client, ANA)
    ephemeral = await client.chat_postEphemeral(channel=channel, user=ANA.id, text="e")
    for ts in ("1.000001", ephemeral["message_ts"]):
        with pytest.raises(SlackApiError) as caught:
            await client.chat_update(channel=channel, ts=ts, text="x")
        assert caught.value.response["error"] == "message_not_found"


async def test_chat_update_cannot_touch_a_persons_message(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """The bot cannot edit what a person wrote: cant_update_message."""
    channel = await open_im(client, ANA)
    theirs = slack.post_as_user(channel, ANA.id, "my words")
    with pytest.raises(SlackApiError) as caught:
        await client.chat_update(channel=channel, ts=theirs.ts, text="yours now")
    assert caught.value.response["error"] == "cant_update_message"


async def test_chat_delete_removes_the_message(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """chat.delete takes the message out of the conversation; a second delete fails."""
    channel = await open_im(client, ANA)
    posted = await client.chat_postMessage(channel=channel, text="gone soon")
    await client.chat_delete(channel=channel, ts=posted["ts"])
    assert slack.messages_in(channel) == []
    with pytest.raises(SlackApiError) as caught:
        await client.chat_delete(channel=channel, ts=posted["ts"])
    assert caught.value.response["error"] == "message_not_found"


async def test_permalink_points_at_the_message(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """chat.getPermalink builds Slack's archive link, with thread_ts for a reply."""
    channel = await open_im(client, ANA)
    parent = await client.chat_postMessage(channel=channel, text="p")
    reply = await client.chat_postMessage(channel=channel, text="r", thread_ts=parent["ts"])
    link = (await client.chat_getPermalink(channel=channel, message_ts=parent["ts"]))["permalink"]
    assert link == (
        f"https://slotbot-dev.slack.com/archives/{channel}/p{parent['ts'].replace('.', '')}"
    )
    reply_link = await client.chat_getPermalink(channel=channel, message_ts=reply["ts"])
    assert reply_link["permalink"].endswith(f"?thread_ts={parent['ts']}&cid={channel}")


async def test_scheduled_messages_list_delete_and_deliver(
    slack: SlackEmulator, client: AsyncWebClient, clock: Clock
) -> None:
    """Scheduled messages are listed, deletable, and delivered once their time comes."""
    channel = await open_im(client, ANA)
    keep = await client.chat_scheduleMessage(channel=channel, post_at=int(NOON) + 600, text="soon")
    drop = await client.chat_scheduleMessage(channel=channel, post_at=int(NOON) + 900, text="drop")
    assert keep["scheduled_message_id"].startswith("Q")
    listed = await client.chat_scheduledMessages_list(channel=channel)
    assert [s["text"] for s in listed["scheduled_messages"]] == ["soon", "drop"]
    await client.chat_deleteScheduledMessage(
        channel=channel, scheduled_message_id=drop["scheduled_message_id"]
    )
    clock.now = NOON + 3600
    assert [m.text for m in slack.deliver_due()] == ["soon"]
    assert [m.text for m in slack.messages_in(channel)] == ["soon"]
    assert slack.scheduled_messages() == []


async def test_scheduled_messages_list_pages_and_filters_by_time(client: AsyncWebClient) -> None:
    """list takes oldest/latest (Unix seconds) and pages with limit and next_cursor."""
    channel = await open_im(client, ANA)
    for minutes in (10, 20, 30, 40):
        await client.chat_scheduleMessage(
            channel=channel, post_at=int(NOON) + minutes * 60, text=f"at {minutes}"
        )
    texts: list[str] = []
    cursor = None
    while True:
        page = await client.chat_scheduledMessages_list(
            channel=channel,
            oldest=str(int(NOON) + 15 * 60),
            latest=str(int(NOON) + 45 * 60),
            limit=2,
            cursor=cursor,
        )
        texts += [s["text"] for s in page["scheduled_messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert texts == ["at 20", "at 30", "at 40"]
    bad = client.chat_scheduledMessages_list(channel=channel, cursor="not base64!")
    with pytest.raises(SlackApiError) as caught:
        await bad
    assert caught.value.response["error"] == "invalid_cursor"


async def test_scheduled_messages_arrive_by_themselves_when_asked_to(clock: Clock) -> None:
    """With ``deliver_scheduled_every`` the emulator posts a due message on its own, as Slack
    does (the playground shows reminders arriving)."""
    async with SlackEmulator(users=[ANA], clock=clock, deliver_scheduled_every=0.01) as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.url)
        channel = await open_im(client, ANA)
        await client.chat_scheduleMessage(channel=channel, post_at=int(NOON) + 60, text="hi")
        clock.now = NOON + 61
        for _ in range(500):  # polls the emulator's own loop; not a timing assertion
            if slack.messages_in(channel):
                break
            await asyncio.sleep(0.01)
        assert [m.text for m in slack.messages_in(channel)] == ["hi"]
        assert slack.scheduled_messages() == []


@pytest.mark.parametrize(
    ("offset", "error"), [(-60, "time_in_past"), (121 * 24 * 3600, "time_too_far")]
)
async def test_schedule_message_refuses_bad_times(
    client: AsyncWebClient, offset: int, error: str
) -> None:
    """post_at in the past or beyond 120 days is refused with Slack's error names."""
    channel = await open_im(client, ANA)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_scheduleMessage(channel=channel, post_at=int(NOON) + offset, text="x")
    assert caught.value.response["error"] == error


async def test_delete_unknown_scheduled_message(client: AsyncWebClient) -> None:
    """Deleting a scheduled message that does not exist answers invalid_scheduled_message_id."""
    channel = await open_im(client, ANA)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_deleteScheduledMessage(channel=channel, scheduled_message_id="Q0NONE")
    assert caught.value.response["error"] == "invalid_scheduled_message_id"


# --- views ----------------------------------------------------------------------------------


def modal(title: str = "Schedule", **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title},
        "blocks": [section("Pick a time")],
        **extra,
    }


async def test_views_open_then_update_by_id_and_external_id(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """A modal opens with an id and hash and can be updated by view_id or external_id."""
    opened = (await client.views_open(trigger_id="1.2.abc", view=modal(external_id="offer-1")))[
        "view"
    ]
    assert opened["id"].startswith("V") and opened["hash"]
    await client.views_update(view_id=opened["id"], view=modal("Again"), hash=opened["hash"])
    assert slack.view(opened["id"])["title"]["text"] == "Again"
    await client.views_update(external_id="offer-1", view=modal("Third", external_id="offer-1"))
    assert slack.view(opened["id"])["title"]["text"] == "Third"


async def test_views_update_with_a_stale_hash_conflicts(client: AsyncWebClient) -> None:
    """views.update with an outdated hash answers hash_conflict; an unknown view not_found."""
    opened = (await client.views_open(trigger_id="1.2.abc", view=modal()))["view"]
    await client.views_update(view_id=opened["id"], view=modal("New"))
    for kwargs, error in (
        ({"view_id": opened["id"], "hash": opened["hash"]}, "hash_conflict"),
        ({"view_id": "V0NOWHERE"}, "not_found"),
    ):
        with pytest.raises(SlackApiError) as caught:
            await client.views_update(view=modal("x"), **kwargs)
        assert caught.value.response["error"] == error


async def test_trigger_id_is_single_use(client: AsyncWebClient) -> None:
    """A trigger_id opens one modal; reusing it answers expired_trigger_id."""
    await client.views_open(trigger_id="1.2.once", view=modal())
    with pytest.raises(SlackApiError) as caught:
        await client.views_open(trigger_id="1.2.once", view=modal())
    assert caught.value.response["error"] == "expired_trigger_id"


async def test_views_publish_keeps_one_home_per_user(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """views.publish stores the Home tab per user and keeps its id across publishes."""
    home = {"type": "home", "blocks": [section("Upcoming")]}
    first = (await client.views_publish(user_id=ANA.id, view=home))["view"]
    second = (await client.views_publish(user_id=ANA.id, view={**home, "blocks": []}))["view"]
    assert first["id"] == second["id"]
    assert slack.home_view(ANA.id) == second
    assert slack.home_view(BO.id) is None


# --- Block Kit limits -----------------------------------------------------------------------


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


TOO_BIG_BLOCKS: dict[str, list[dict[str, Any]]] = {
    "51 blocks": [section(str(i)) for i in range(MESSAGE_BLOCK_LIMIT + 1)],
    "section text 3001": [section("x" * 3001)],
    "11 fields": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
    "button text 76": [actions(button("a", text="x" * 76))],
    "button value 2001": [actions(button("a", value="x" * 2001))],
    "action_id 256": [actions(button("a" * 256))],
    "action_id twice in a block": [actions(button("same"), button("same"))],
    "26 elements": [actions(*(button(f"a{i}") for i in range(26)))],
    "header 151": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
    "context 11": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
    "block_id twice": [section("a", block_id="b"), section("b", block_id="b")],
    "empty text": [section("")],
    "unknown type": [{"type": "carousel"}],
}

AT_THE_LIMITS: list[dict[str, Any]] = [
    section("x" * 3000, accessory=button("acc", text="y" * 75, value="v" * 2000)),
    {"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 10},
    {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 10},
    actions(*(button(f"a{i}") for i in range(24)), button("b" * 255)),
    # The same action_id in another block is allowed: Slack scopes uniqueness to a block.
    actions(button("a0")),
    *[{"type": "divider"}] * 44,
]


@pytest.mark.parametrize("blocks", TOO_BIG_BLOCKS.values(), ids=TOO_BIG_BLOCKS.keys())
async def test_messages_over_block_kit_limits_are_invalid_blocks(
    slack: SlackEmulator, client: AsyncWebClient, blocks: list[dict[str, Any]]
) -> None:
    """Blocks beyond Slack's limits answer invalid_blocks with a json-pointer message."""
    channel = await open_im(client, ANA)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel=channel, text="t", blocks=blocks)
    assert caught.value.response["error"] == "invalid_blocks"
    assert "json-pointer:/blocks" in caught.value.response["response_metadata"]["messages"][0]
    assert slack.messages_in(channel) == []


async def test_blocks_exactly_at_the_limits_are_accepted(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """Fifty blocks, each at its own limit, post fine."""
    assert len(AT_THE_LIMITS) == MESSAGE_BLOCK_LIMIT
    channel = await open_im(client, ANA)
    await client.chat_postMessage(channel=channel, text="t", blocks=AT_THE_LIMITS)
    assert slack.messages_in(channel)[0].blocks == AT_THE_LIMITS


async def test_block_limits_apply_to_update_and_ephemeral(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """chat.update and chat.postEphemeral enforce the same limits as chat.postMessage."""
    channel = await open_im(client, ANA)
    posted = await client.chat_postMessage(channel=channel, text="t")
    too_long = [section("x" * 3001)]
    with pytest.raises(SlackApiError) as caught:
        await client.chat_update(channel=channel, ts=posted["ts"], text="t", blocks=too_long)
    assert caught.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postEphemeral(channel=channel, user=ANA.id, text="t", blocks=too_long)
    assert caught.value.response["error"] == "invalid_blocks"
    assert slack.message(channel, posted["ts"]).text == "t"
    assert slack.ephemeral_messages() == []


async def test_views_allow_a_hundred_blocks_not_more(client: AsyncWebClient) -> None:
    """A Home tab takes 100 blocks; 101 is refused with invalid_arguments, as Slack does."""
    blocks = [section(str(i)) for i in range(VIEW_BLOCK_LIMIT)]
    await client.views_publish(user_id=ANA.id, view={"type": "home", "blocks": blocks})
    with pytest.raises(SlackApiError) as caught:
        await client.views_publish(
            user_id=ANA.id, view={"type": "home", "blocks": [*blocks, section("one more")]}
        )
    assert caught.value.response["error"] == "invalid_arguments"
    assert "json-pointer:/view/blocks" in caught.value.response["response_metadata"]["messages"][0]


async def test_modal_title_limit_is_enforced(client: AsyncWebClient) -> None:
    """A modal title longer than 24 characters is refused."""
    with pytest.raises(SlackApiError) as caught:
        await client.views_open(trigger_id="1.2.t", view=modal("x" * 25))
    assert caught.value.response["error"] == "invalid_arguments"


# --- files ----------------------------------------------------------------------------------


async def test_files_upload_v2_puts_the_ics_in_the_channel(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """files_upload_v2 runs the three-step flow and shares the exact bytes into the IM."""
    channel = await open_im(client, ANA)
    response = await client.files_upload_v2(
        channel=channel, content=ICS, filename="invite.ics", title="Design review"
    )
    [uploaded] = slack.uploaded_files()
    assert uploaded.content == ICS.encode()
    assert (uploaded.filename, uploaded.title, uploaded.channel) == (
        "invite.ics",
        "Design review",
        channel,
    )
    assert response["file"]["id"] == uploaded.id and uploaded.id.startswith("F")
    assert [c.method for c in slack.calls()[-3:]] == [
        "files.getUploadURLExternal",
        UPLOAD_URL,
        "files.completeUploadExternal",
    ]
    [message] = slack.messages_in(channel)
    assert message.files == (uploaded.id,)


async def test_files_upload_v2_into_a_thread_with_a_comment(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """An upload with thread_ts and initial_comment becomes a reply carrying the comment."""
    channel = await open_im(client, ANA)
    parent = await client.chat_postMessage(channel=channel, text="Booked!")
    await client.files_upload_v2(
        channel=channel,
        thread_ts=parent["ts"],
        initial_comment="Your invite",
        content=ICS,
        filename="invite.ics",
    )
    [uploaded] = slack.uploaded_files()
    assert uploaded.thread_ts == parent["ts"]
    [reply] = slack.replies(channel, parent["ts"])
    assert (reply.text, reply.files) == ("Your invite", (uploaded.id,))
    complete = slack.calls("files.completeUploadExternal")[0].params
    assert complete["files"] == [{"id": uploaded.id, "title": "invite.ics"}]
    assert complete["thread_ts"] == parent["ts"]


async def test_files_info_describes_the_share_and_serves_the_bytes(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """files.info gives mimetype, size and the IM share; url_private serves the bytes."""
    channel = await open_im(client, ANA)
    file_id = (await client.files_upload_v2(channel=channel, content=ICS, filename="i.ics"))[
        "file"
    ]["id"]
    info = (await client.files_info(file=file_id))["file"]
    assert (info["mimetype"], info["size"], info["ims"]) == ("text/calendar", len(ICS), [channel])
    assert channel in info["shares"]["private"]
    headers = {"Authorization": f"Bearer {slack.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(info["url_private"], headers=headers) as response,
    ):
        assert await response.read() == ICS.encode()


async def test_upload_url_is_called_without_a_token_as_query_for_the_rest(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """slack_sdk sends the upload steps as query parameters and the bytes raw; all recorded."""
    await client.files_upload_v2(channel=await open_im(client, ANA), content=ICS, filename="a.ics")
    get_url, upload, complete = (
        slack.calls("files.getUploadURLExternal")[0],
        slack.calls(UPLOAD_URL)[0],
        slack.calls("files.completeUploadExternal")[0],
    )
    assert (get_url.encoding, upload.encoding, complete.encoding) == ("query", "bytes", "query")
    assert get_url.params["length"] == str(len(ICS))
    assert upload.body == ICS.encode()


async def test_files_info_of_an_unknown_file(client: AsyncWebClient) -> None:
    """files.info of an id never completed answers file_not_found."""
    with pytest.raises(SlackApiError) as caught:
        await client.files_info(file="F0NOTHING")
    assert caught.value.response["error"] == "file_not_found"


# --- response_url ---------------------------------------------------------------------------


async def test_response_url_defaults_to_an_ephemeral_reply(slack: SlackEmulator) -> None:
    """A plain response_url post becomes an ephemeral message to the invoking user."""
    channel = slack.open_im(ANA.id).id
    url = slack.mint_response_url(channel=channel, user=ANA.id)
    response = await AsyncWebhookClient(url).send(text="Working on it…")
    assert response.status_code == 200
    [ephemeral] = slack.ephemeral_messages(channel=channel, user=ANA.id)
    assert ephemeral.text == "Working on it…"
    assert slack.calls(RESPONSE_URL)[0].params["text"] == "Working on it…"


async def test_response_url_in_channel_reply_is_public(slack: SlackEmulator) -> None:
    """response_type in_channel posts a message everyone in the conversation sees."""
    channel = slack.open_im(ANA.id).id
    url = slack.mint_response_url(channel=channel, user=ANA.id)
    await AsyncWebhookClient(url).send(text="Booked", response_type="in_channel")
    assert [m.text for m in slack.messages_in(channel)] == ["Booked"]


async def test_response_url_replaces_and_deletes_the_original(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """replace_original rewrites the clicked message; delete_original removes it."""
    channel = await open_im(client, ANA)
    posted = await client.chat_postMessage(channel=channel, text="pick a slot")
    url = slack.mint_response_url(channel=channel, user=ANA.id, message_ts=posted["ts"])
    webhook = AsyncWebhookClient(url)
    await webhook.send(text="You picked 14:00", blocks=[section("done")], replace_original=True)
    [message] = slack.messages_in(channel)
    assert (message.ts, message.text, message.blocks) == (
        posted["ts"],
        "You picked 14:00",
        [section("done")],
    )
    await webhook.send(delete_original=True)
    assert slack.messages_in(channel) == []


async def test_response_url_replaces_an_ephemeral_original(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """An ephemeral message can only change through its response_url, and it does."""
    channel = await open_im(client, ANA)
    posted = await client.chat_postEphemeral(channel=channel, user=ANA.id, text="choose")
    url = slack.mint_response_url(channel=channel, user=ANA.id, message_ts=posted["message_ts"])
    await AsyncWebhookClient(url).send(text="chosen", replace_original=True)
    [ephemeral] = slack.ephemeral_messages(user=ANA.id)
    assert ephemeral.text == "chosen"


async def test_response_url_wears_out_after_five_uses(slack: SlackEmulator) -> None:
    """A response_url takes five posts; the sixth is a 404 used_url."""
    url = slack.mint_response_url(channel=slack.open_im(ANA.id).id, user=ANA.id)
    webhook = AsyncWebhookClient(url)
    statuses = [(await webhook.send(text=str(i))).status_code for i in range(6)]
    assert statuses == [200] * 5 + [404]
    assert slack.calls(RESPONSE_URL)[-1].response["error"] == "used_url"  # type: ignore[index]


async def test_response_url_expires_after_thirty_minutes(
    slack: SlackEmulator, clock: Clock
) -> None:
    """After 30 minutes on the emulator's clock a response_url answers expired_url."""
    url = slack.mint_response_url(channel=slack.open_im(ANA.id).id, user=ANA.id)
    clock.now += 31 * 60
    response = await AsyncWebhookClient(url).send(text="late")
    assert response.status_code == 404 and "expired_url" in response.body


async def test_response_url_checks_blocks(slack: SlackEmulator) -> None:
    """Too many blocks through a response_url are refused with invalid_blocks (HTTP 400)."""
    url = slack.mint_response_url(channel=slack.open_im(ANA.id).id, user=ANA.id)
    blocks = [section(str(i)) for i in range(MESSAGE_BLOCK_LIMIT + 1)]
    response = await AsyncWebhookClient(url).send(text="t", blocks=blocks)
    assert response.status_code == 400 and "invalid_blocks" in response.body
    assert slack.ephemeral_messages() == []


# --- faults and waiting ---------------------------------------------------------------------


async def test_fail_next_with_an_error_name(slack: SlackEmulator, client: AsyncWebClient) -> None:
    """fail_next(error=...) fails exactly the next n calls with that error, then recovers."""
    channel = await open_im(client, ANA)
    slack.fail_next("chat.postMessage", 2, error="fatal_error")
    for _ in range(2):
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel=channel, text="x")
        assert caught.value.response["error"] == "fatal_error"
    await client.chat_postMessage(channel=channel, text="x")
    assert [c.ok for c in slack.calls("chat.postMessage")] == [False, False, True]
    assert len(slack.messages_in(channel)) == 1


async def test_fail_next_with_a_server_error(slack: SlackEmulator, client: AsyncWebClient) -> None:
    """fail_next(status=500) answers HTTP 500 once."""
    slack.fail_next("users.info")
    with pytest.raises(SlackApiError) as caught:
        await client.users_info(user=ANA.id)
    assert caught.value.response.status_code == 500
    assert (await client.users_info(user=ANA.id))["user"]["id"] == ANA.id


async def test_rate_limit_holds_until_retry_after_has_passed(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """After a 429, an immediate second try is still 429 with Retry-After, like Slack."""
    channel = await open_im(client, ANA)
    slack.fail_next("chat.postMessage", status=429, retry_after=30)
    for _ in range(2):
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel=channel, text="x")
        assert caught.value.response.status_code == 429
        assert caught.value.response.headers["Retry-After"] in ("29", "30")
    assert slack.messages_in(channel) == []


@pytest.mark.slow
async def test_rate_limit_retry_handler_honours_retry_after(slack: SlackEmulator) -> None:
    """slack_sdk's rate-limit retry handler waits out Retry-After and the retry succeeds."""
    client = AsyncWebClient(
        token=slack.token,
        base_url=slack.url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    channel = await open_im(client, ANA)
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    response = await client.chat_postMessage(channel=channel, text="patient")
    assert response["ok"] is True
    # Had the client not waited, the emulator would have answered 429 a second time.
    assert [c.status for c in slack.calls("chat.postMessage")] == [429, 200]


async def test_a_failed_upload_leaves_the_file_incomplete(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """A 500 from the upload URL makes files_upload_v2 fail before completing the file."""
    slack.fail_next(UPLOAD_URL, status=500)
    with pytest.raises(SlackRequestError):
        await client.files_upload_v2(
            channel=await open_im(client, ANA), content=ICS, filename="a.ics"
        )
    assert slack.uploaded_files() == []
    assert slack.calls("files.completeUploadExternal") == []


async def test_latency_delays_only_the_chosen_method(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """A per-method latency keeps that call pending while other methods answer."""
    slack.method_latency["users.info"] = 30
    slow = asyncio.create_task(client.users_info(user=ANA.id))
    await client.auth_test()
    await asyncio.sleep(0)
    assert not slow.done()
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow


async def test_wait_for_sees_a_call_made_in_the_background(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    """wait_for returns once a concurrently running task has made the call."""
    channel = await open_im(client, ANA)
    task = asyncio.create_task(client.chat_postMessage(channel=channel, text="later"))
    [call] = await slack.wait_for("chat.postMessage")
    await task
    assert call.params["text"] == "later"


async def test_wait_for_times_out_when_nothing_comes(slack: SlackEmulator) -> None:
    """wait_for raises TimeoutError when the call never happens."""
    with pytest.raises(TimeoutError):
        await slack.wait_for("chat.update", within=0.05)


# --- signed requests into a real Bolt app ---------------------------------------------------


def test_sign_matches_slack_sdks_verifier() -> None:
    """sign() produces headers slack_sdk's SignatureVerifier accepts, and only for that body."""
    body = b"command=%2Fschedule&text=hi"
    headers = slack_requests.sign(body, SECRET, 1_795_000_000)
    verifier = SignatureVerifier(SECRET, clock=_FixedClock(1_795_000_000))
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b"x", headers)
    assert not SignatureVerifier("other", clock=_FixedClock(1_795_000_000)).is_valid_request(
        body, headers
    )


class _FixedClock(SignatureClock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


@pytest.fixture
def bolt(slack: SlackEmulator) -> AsyncApp:
    client = AsyncWebClient(token=slack.token, base_url=slack.url)
    return AsyncApp(token=slack.token, signing_secret=SECRET, client=client)


async def dispatch(app: AsyncApp, request: slack_requests.SignedRequest) -> Any:
    return await app.async_dispatch(
        AsyncBoltRequest(body=request.body.decode(), headers=dict[str, Any](request.headers))
    )


async def test_bolt_accepts_a_signed_slash_command(slack: SlackEmulator, bolt: AsyncApp) -> None:
    """A signed /schedule reaches a Bolt listener, which answers through the response_url."""
    channel = slack.open_im(ANA.id).id

    @bolt.command("/schedule")
    async def schedule(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        await respond(text=f"Finding times for: {command['text']}")

    fields = slack_requests.slash_command(
        "design review with @bo 45m",
        user_id=ANA.id,
        channel_id=channel,
        response_url=slack.mint_response_url(channel=channel, user=ANA.id),
    )
    response = await dispatch(bolt, slack_requests.signed_slash_command(fields, secret=SECRET))
    assert response.status == 200
    await slack.wait_for(RESPONSE_URL)
    [ephemeral] = slack.ephemeral_messages(user=ANA.id)
    assert ephemeral.text == "Finding times for: design review with @bo 45m"


async def test_bolt_refuses_a_wrongly_signed_request(slack: SlackEmulator, bolt: AsyncApp) -> None:
    """A request signed with another secret is rejected with 401 before any listener runs."""
    fields = slack_requests.slash_command(
        "x", user_id=ANA.id, channel_id="D1", response_url="http://127.0.0.1:9/none"
    )
    request = slack_requests.signed_slash_command(fields, secret="not-the-secret")
    assert (await dispatch(bolt, request)).status == 401


async def test_bolt_routes_a_block_action_and_updates_the_message(
    slack: SlackEmulator, client: AsyncWebClient, bolt: AsyncApp
) -> None:
    """A signed button click carries message and container; the listener's chat.update lands."""
    channel = await open_im(client, ANA)
    posted = await client.chat_postMessage(
        channel=channel, text="slots", blocks=[actions(button("pick_slot", value="offer-1:0"))]
    )

    @bolt.action("pick_slot")
    async def pick(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        container = body["container"]
        await client.chat_update(
            channel=container["channel_id"],
            ts=container["message_ts"],
            text=f"Picked {body['actions'][0]['value']}",
            blocks=[],
        )

    payload = slack_requests.block_actions(
        [slack_requests.button_action("pick_slot", "offer-1:0")],
        user_id=ANA.id,
        channel_id=channel,
        message=posted["message"],
        response_url=slack.mint_response_url(channel=channel, user=ANA.id, message_ts=posted["ts"]),
    )
    assert (
        await dispatch(bolt, slack_requests.signed_interaction(payload, secret=SECRET))
    ).status == 200
    await slack.wait_for("chat.update")
    assert slack.message(channel, posted["ts"]).text == "Picked offer-1:0"


def test_block_actions_from_an_ephemeral_message_has_no_message() -> None:
    """A click in an ephemeral message carries container.is_ephemeral and no message."""
    payload = slack_requests.block_actions(
        [slack_requests.button_action("pick_slot", "v")],
        user_id=ANA.id,
        channel_id="D0000000001",
        message_ts="1795701600.000100",
        response_url="http://127.0.0.1/response/x",
    )
    assert "message" not in payload
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1795701600.000100",
        "channel_id": "D0000000001",
        "is_ephemeral": True,
    }


async def test_bolt_receives_im_and_mention_events(slack: SlackEmulator, bolt: AsyncApp) -> None:
    """Signed message.im and app_mention callbacks reach their listeners, which say() back."""
    channel = slack.open_im(ANA.id).id
    general = slack.add_channel("general")

    @bolt.event("message")
    async def on_message(event: dict[str, Any], say: Any) -> None:
        await say(f"dm:{event['text']}:{event['channel_type']}")

    @bolt.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any) -> None:
        await say(f"mention:{event['text']}")

    said = slack.post_as_user(channel, ANA.id, "lunch tomorrow?")
    im = slack_requests.event_callback(
        slack_requests.im_message_event(said.text, user=ANA.id, channel=channel, ts=said.ts)
    )
    mention = slack_requests.event_callback(
        slack_requests.app_mention_event(
            f"<@{slack.bot_user_id}> hi", user=BO.id, channel=general.id, ts="1795701600.000200"
        )
    )
    for payload in (im, mention):
        response = await dispatch(bolt, slack_requests.signed_event(payload, secret=SECRET))
        assert response.status == 200
    await slack.wait_for("chat.postMessage", count=2)
    assert [m.text for m in slack.messages_in(channel)] == [
        "lunch tomorrow?",
        "dm:lunch tomorrow?:im",
    ]
    assert [m.text for m in slack.messages_in(general.id)] == [f"mention:<@{slack.bot_user_id}> hi"]
    assert im["event_id"] != mention["event_id"]


async def test_bolt_answers_url_verification(bolt: AsyncApp) -> None:
    """A signed url_verification handshake is answered with its challenge."""
    request = slack_requests.signed_event(slack_requests.url_verification("c-123"), secret=SECRET)
    response = await dispatch(bolt, request)
    assert response.status == 200 and "c-123" in response.body


# --- Socket Mode, proven with slack_sdk's own aiohttp SocketModeClient -----------------------


class SocketApp:
    """A bare Socket Mode app on slack_sdk's client: records every frame; acks unless told not."""

    def __init__(self, slack: SlackEmulator) -> None:
        self.frames: list[dict[str, Any]] = []
        self.requests: list[SocketModeRequest] = []
        self.acking = True
        self.answer: dict[str, Any] | None = None
        self._changed = asyncio.Event()
        self.client = SocketModeClient(
            app_token=slack.app_token, web_client=AsyncWebClient(base_url=slack.url)
        )
        self.client.message_listeners.append(self._heard)
        self.client.socket_mode_request_listeners.append(self._handle)

    async def _heard(self, client: Any, message: dict[str, Any], raw: str | None) -> None:
        self.frames.append(message)
        self._changed.set()

    async def _handle(self, client: Any, request: SocketModeRequest) -> None:
        self.requests.append(request)
        self._changed.set()
        if self.acking:
            await client.send_socket_mode_response(
                SocketModeResponse(envelope_id=request.envelope_id, payload=self.answer)
            )

    def hellos(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == "hello"]

    async def until(self, condition: Callable[[], object], within: float = 5.0) -> None:
        """Wait until the client's background reader has made ``condition`` true."""
        async with asyncio.timeout(within):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def socket_app(slack: SlackEmulator) -> AsyncIterator[SocketApp]:
    app = SocketApp(slack)
    await app.client.connect()
    await slack.wait_for_socket()
    yield app
    await app.client.close()


async def test_apps_connections_open_wants_the_app_level_token(slack: SlackEmulator) -> None:
    """Only the xapp- token opens a connection; the bot token is the wrong type, others invalid."""
    opened = await AsyncWebClient(base_url=slack.url).apps_connections_open(
        app_token=slack.app_token
    )
    assert str(opened["url"]).startswith(slack.url.replace("http://", "ws://").removesuffix("api/"))
    assert "/link/?ticket=" in opened["url"]
    for token, error in ((slack.token, "not_allowed_token_type"), ("xapp-1-nope", "invalid_auth")):
        with pytest.raises(SlackApiError) as refused:
            await AsyncWebClient(base_url=slack.url).apps_connections_open(app_token=token)
        assert refused.value.response["error"] == error
    with pytest.raises(SlackApiError) as wrong_type:
        await AsyncWebClient(token=slack.app_token, base_url=slack.url).auth_test()
    assert wrong_type.value.response["error"] == "not_allowed_token_type"


async def test_a_ticket_opens_one_websocket_only(slack: SlackEmulator) -> None:
    """The URL from apps.connections.open connects once; reusing it or guessing one is refused."""
    opened = await AsyncWebClient(base_url=slack.url).apps_connections_open(
        app_token=slack.app_token
    )
    url = str(opened["url"])
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as socket:
        hello = await socket.receive_json()
        assert hello["type"] == "hello" and hello["num_connections"] == 1
        for bad in (url, url.replace("ticket=", "ticket=0")):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(bad)
            assert refused.value.status == 401


async def test_socket_mode_client_connects_and_hears_hello(
    slack: SlackEmulator, socket_app: SocketApp
) -> None:
    """slack_sdk's client opens a connection and gets Slack's hello with the app id."""
    await socket_app.until(socket_app.hellos)
    [hello] = socket_app.hellos()
    assert hello["num_connections"] == 1
    assert hello["connection_info"] == {"app_id": slack.app_id}
    [connection] = slack.socket_connections
    assert connection.open
    assert [c.ok for c in slack.calls("apps.connections.open")] == [True]


async def test_envelopes_reach_the_client_and_acks_are_recorded(
    slack: SlackEmulator, socket_app: SocketApp
) -> None:
    """An events_api envelope arrives as a SocketModeRequest; its bare ack is recorded."""
    event = slack_requests.event_callback(
        slack_requests.im_message_event("hi", user=ANA.id, channel="D0001", ts="1795701600.1")
    )
    envelope_id = await slack.socket_push("events_api", event)
    ack = await slack.wait_for_ack(envelope_id)
    assert ack.payload is None and ack.error is None
    assert ack.connection == slack.socket_connections[0].id
    [request] = socket_app.requests
    assert (request.type, request.envelope_id) == ("events_api", envelope_id)
    assert request.payload == event
    assert request.accepts_response_payload is False
    [envelope] = slack.envelopes()
    assert envelope.to_json()["retry_attempt"] == 0


async def test_a_slash_command_ack_payload_is_posted_like_an_http_answer(
    slack: SlackEmulator, socket_app: SocketApp
) -> None:
    """A slash command's ack payload becomes an ephemeral reply; a click's payload is ignored."""
    channel = slack.add_channel("general")
    socket_app.answer = {"text": "On it"}
    fields = slack_requests.slash_command(
        "sync", user_id=ANA.id, channel_id=channel.id, response_url="http://127.0.0.1:9/unused"
    )
    ack = await slack.wait_for_ack(await slack.socket_push("slash_commands", fields))
    assert ack.payload == {"text": "On it"} and ack.error is None
    assert socket_app.requests[0].accepts_response_payload is True
    [reply] = slack.ephemeral_messages(user=ANA.id)
    assert (reply.channel, reply.text) == (channel.id, "On it")

    click = slack_requests.block_actions(
        [slack_requests.button_action("pick", "v")],
        user_id=ANA.id,
        channel_id=channel.id,
        message_ts=reply.ts,
        response_url=None,
    )
    ignored = await slack.wait_for_ack(await slack.socket_push("interactive", click))
    assert ignored.error is not None and "ignored" in ignored.error
    assert len(slack.ephemeral_messages(user=ANA.id)) == 1


async def test_an_envelope_nobody_acks_is_never_acked(
    slack: SlackEmulator, socket_app: SocketApp
) -> None:
    """Without an ack, wait_for_ack gives up with TimeoutError and nothing is recorded."""
    socket_app.acking = False
    envelope_id = await slack.socket_push("events_api", {"type": "event_callback"})
    await socket_app.until(lambda: socket_app.requests)
    with pytest.raises(TimeoutError):
        await slack.wait_for_ack(envelope_id, within=0.2)
    assert slack.acks() == []


async def test_redelivery_counts_the_attempt_and_keeps_the_payload(
    slack: SlackEmulator, socket_app: SocketApp
) -> None:
    """A redelivered envelope has a new id, retry_attempt 1 and the reason; the payload is equal."""
    payload = slack_requests.event_callback({"type": "app_home_opened", "user": ANA.id})
    first = await slack.socket_push("events_api", payload)
    again = await slack.redeliver(first, reason="timeout")
    await slack.wait_for_ack(again)
    assert again != first
    retried = socket_app.requests[-1]
    assert (retried.retry_attempt, retried.retry_reason) == (1, "timeout")
    assert retried.payload == payload


async def test_disconnect_makes_the_client_move_to_a_new_connection(
    slack: SlackEmulator, socket_app: SocketApp
) -> None:
    """After a refresh_requested disconnect the client reconnects; envelopes follow it."""
    await slack.socket_disconnect("refresh_requested")
    fresh = await slack.wait_for_socket(count=2)
    await slack.wait_for_socket_state(lambda: not slack.socket_connections[0].open)
    assert len(slack.calls("apps.connections.open")) == 2
    ack = await slack.wait_for_ack(await slack.socket_push("events_api", {"type": "x"}))
    assert ack.connection == fresh.id != slack.socket_connections[0].id
    await socket_app.until(lambda: len(socket_app.hellos()) == 2)


async def test_a_connection_dropped_by_slack_is_reopened(
    slack: SlackEmulator, socket_app: SocketApp
) -> None:
    """When Slack closes the WebSocket, the client asks for a new URL and connects again."""
    await slack.drop_socket_connections()
    fresh = await slack.wait_for_socket(count=2)
    assert [c.open for c in slack.socket_connections] == [False, True]
    ack = await slack.wait_for_ack(await slack.socket_push("events_api", {"type": "x"}))
    assert ack.connection == fresh.id
