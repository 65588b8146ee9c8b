"""Direct messages to the bot and @mentions in channels: the same request, by conversation."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from handlers import blocks
from handlers.conversation import Place, post_to
from handlers.errors import reporting_errors
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
        await _offer(services, client, request, place)

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
        await _offer(services, client, request, place)


async def _offer(
    services: Services, client: AsyncWebClient, request: MessageRequest, place: Place
) -> None:
    if request.text.lower() in ("", "help", "hi", "hello", "?"):
        await post_to(client, place, text="How to ask for a meeting", blocks=blocks.help_blocks())
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
