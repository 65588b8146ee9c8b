"""``/schedule``: a request in one line becomes an offer of free times; also help, the list,
typed moves and cancels (``/schedule move my 3pm to tomorrow``) and calendar connections."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.scheduling.commands import is_booking_command
from handlers import blocks, ids
from handlers.conversation import Place, post_to
from handlers.errors import reporting_errors
from handlers.managing import answer_booking_command
from handlers.payloads import read_command
from handlers.services import Services

HELP_WORDS = {"", "help", "?", "-h", "--help"}
CONNECT_WORDS = {"connect", "connect google", "connect calendar"}
DISCONNECT_WORDS = {"disconnect", "disconnect google", "disconnect calendar"}
LIST_WORDS = {"list", "my meetings", "upcoming", "meetings"}


def register(app: AsyncApp, services: Services) -> None:
    @app.command(ids.COMMAND)
    @reporting_errors
    async def schedule(
        ack: AsyncAck,
        body: dict[str, Any],
        command: dict[str, Any],
        client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        await ack()
        request = read_command(command)
        if request.text.lower() in HELP_WORDS:
            await respond(text="How to use /schedule", blocks=blocks.help_blocks())
            return
        if request.text.lower() in LIST_WORDS:
            bookings = await services.scheduler.upcoming(request.team_id, request.user_id)
            await respond(
                text=blocks.list_text(bookings),
                blocks=blocks.list_blocks(bookings, request.user_id),
                response_type="ephemeral",
            )
            return
        if request.text.lower() in CONNECT_WORDS | DISCONNECT_WORDS:
            await _account(services, request.team_id, request.user_id, request.text, respond)
            return
        # In a DM with the bot the answer is a normal message; elsewhere only the requester sees it.
        place = Place(request.channel_id, request.user_id, private=not request.in_direct_message)
        if is_booking_command(request.text):  # /schedule move my 3pm to tomorrow
            await answer_booking_command(
                services,
                client,
                team_id=request.team_id,
                user_id=request.user_id,
                text=request.text,
                place=place,
                respond=respond,
            )
            return
        proposal = await services.scheduler.propose(
            request.team_id,
            request.user_id,
            request.text,
            services.directory(client),
            channel_id=request.channel_id,
        )
        await post_to(
            client,
            place,
            text=blocks.offer_text(proposal),
            blocks=blocks.offer_blocks(proposal),
            respond=respond,
        )


async def _account(
    services: Services, team_id: str, user_id: str, text: str, respond: AsyncRespond
) -> None:
    """``/schedule connect`` and ``/schedule disconnect``: only the person sees the answer."""
    accounts = services.accounts
    if accounts is None:
        message = blocks.nothing_to_connect_text(services.scheduler.calendar.name)
        await respond(text=message, response_type="ephemeral")
        return
    if text.lower() in CONNECT_WORDS:
        link = accounts.connect_link(team_id, user_id)
        minutes = int(accounts.state_ttl.total_seconds() // 60)
        await respond(
            text="Connect your Google Calendar",
            blocks=blocks.connect_blocks(link, minutes),
            response_type="ephemeral",
        )
        return
    result = await accounts.disconnect(team_id, user_id)
    await respond(
        text=blocks.disconnected_text(result.was_connected, result.revoked),
        response_type="ephemeral",
    )
