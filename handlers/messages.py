"""Direct messages to the bot and @mentions in channels: the same request, by conversation, or
a typed move or cancel of a booked meeting.

Slack redelivers an event it thinks failed (up to three times, the first after 3 s even while
the original is still being handled); each event_id is answered once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.scheduling.commands import is_booking_command
from handlers import blocks
from handlers.commands import LIST_WORDS
from handlers.conversation import Place, post_to
from handlers.errors import reporting_errors
from handlers.managing import answer_booking_command
from handlers.payloads import MessageRequest, read_message
from handlers.services import Services


def register(app: AsyncApp, services: Services) -> None:
    @app.event("app_mention")
    @reporting_errors
    async def mention(
        event: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        request = read_message(event, body.get("team_id"), context.bot_user_id)
        if request is None:
            return
        # Answer in the thread of the mention, visible to the requester only.
        place = Place(request.channel_id, request.user_id, request.thread_ts or request.ts)
        await _offer_once(services, client, request, place, body)

    @app.event("message")
    @reporting_errors
    async def direct_message(
        event: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        if event.get("channel_type") != "im":
            return
        request = read_message(event, body.get("team_id"), context.bot_user_id)
        if request is None:
            return
        place = Place(request.channel_id, request.user_id, request.thread_ts, private=False)
        await _offer_once(services, client, request, place, body)


#: How long a handler may hold an event before a redelivery may take it over (it died).
EVENT_LEASE = timedelta(seconds=60)


async def _offer_once(
    services: Services,
    client: AsyncWebClient,
    request: MessageRequest,
    place: Place,
    body: dict[str, Any],
) -> None:
    """Answer the request unless this event_id is being answered or was answered already."""
    event_id = body.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        await _offer(services, client, request, place)
        return
    store = services.scheduler.store
    now = services.scheduler.clock()
    if not await store.claim_event(request.team_id, event_id, now, EVENT_LEASE):
        return  # a redelivery of an event in hand or done
    try:
        await _offer(services, client, request, place)
    except BaseException:
        # The first delivery really failed: Slack's retry of it must run, not be dropped.
        await store.release_event(request.team_id, event_id)
        raise
    await store.finish_event(request.team_id, event_id)


async def _offer(
    services: Services, client: AsyncWebClient, request: MessageRequest, place: Place
) -> None:
    if request.text.lower() in ("", "help", "hi", "hello", "?"):
        await post_to(client, place, text="How to ask for a meeting", blocks=blocks.help_blocks())
        return
    if request.text.lower().rstrip("?!. ") in LIST_WORDS:
        bookings = await services.scheduler.upcoming(request.team_id, request.user_id)
        await post_to(
            client,
            place,
            text=blocks.list_text(bookings),
            blocks=blocks.list_blocks(bookings, request.user_id),
        )
        return
    if is_booking_command(request.text):  # "move my 3pm to tomorrow", "cancel the 1:1"
        await answer_booking_command(
            services,
            client,
            team_id=request.team_id,
            user_id=request.user_id,
            text=request.text,
            place=place,
        )
        return
    proposal = await services.scheduler.propose(
        request.team_id,
        request.user_id,
        request.text,
        services.directory(client),
        channel_id=request.channel_id,
        thread_ts=place.thread_ts,
    )
    await post_to(
        client, place, text=blocks.offer_text(proposal), blocks=blocks.offer_blocks(proposal)
    )
