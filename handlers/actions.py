"""Buttons: book a slot, more times, cancel an offer (and, on the confirmation, what comes next)."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import OfferError, SlotTakenError
from handlers import blocks, ids
from handlers.conversation import conversation_link, replace_message
from handlers.delivery import ReplyTo, deliver
from handlers.errors import reporting_errors
from handlers.payloads import Click, read_click
from handlers.services import Services


def register(app: AsyncApp, services: Services) -> None:
    @app.action(ids.BOOK_SLOT_PATTERN)
    @reporting_errors
    async def book_slot(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        click = read_click(body)
        target = ids.read_slot_value(click.value)
        if target is None:
            raise OfferError("That button is not one of mine any more. Run `/schedule` again.")
        offer_id, index = target
        # An ephemeral offer has no permalink; the thread it answers (or its channel) does.
        link = await conversation_link(
            client,
            click.team_id,
            click.channel_id,
            click.thread_ts or (None if click.ephemeral else click.message_ts),
        )
        reply = ReplyTo(
            user_id=click.user_id,
            channel_id=click.channel_id,
            thread_ts=click.thread_ts,
            message_ts=click.message_ts,
            ephemeral=click.ephemeral,
            response_url=respond.response_url,
        )
        try:
            confirmation = await services.scheduler.book(
                click.team_id,
                click.user_id,
                offer_id,
                index,
                conversation_link=link,
                reply_to=reply.to_json(),
            )
        except SlotTakenError as taken:
            proposal = await services.scheduler.current_offer(
                click.team_id, click.user_id, offer_id
            )
            await _replace(
                client,
                respond,
                click,
                blocks.offer_text(proposal),
                blocks.offer_blocks(proposal, note=taken.user_message),
            )
            return
        # Delivered once, whoever gets there first: this click, a retry, or the reconcile.
        await deliver(client, services.scheduler, confirmation)

    @app.action(ids.MORE_TIMES)
    @reporting_errors
    async def more_times(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        click = read_click(body)
        proposal = await services.scheduler.more_times(click.team_id, click.user_id, click.value)
        await _replace(
            client, respond, click, blocks.offer_text(proposal), blocks.offer_blocks(proposal)
        )

    @app.action(ids.CANCEL_OFFER)
    @reporting_errors
    async def cancel_offer(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        click = read_click(body)
        await services.scheduler.withdraw(click.team_id, click.user_id, click.value)
        await _replace(client, respond, click, "Cancelled", blocks.withdrawn_blocks())

    @app.action(re.compile(f"^({ids.RESCHEDULE}|{ids.CANCEL_BOOKING})$"))
    async def manage_booking(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await respond(
            text="Moving and cancelling booked meetings from Slack is not available yet. "
            "Change the event in your calendar for now; the .ics above has all its details.",
            response_type="ephemeral",
            replace_original=False,
        )


async def _replace(
    client: AsyncWebClient, respond: AsyncRespond, click: Click, text: str, content: list[Any]
) -> None:
    await replace_message(
        client,
        respond,
        ephemeral=click.ephemeral,
        channel_id=click.channel_id,
        message_ts=click.message_ts,
        text=text,
        blocks=content,
    )
