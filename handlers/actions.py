"""Buttons: book a slot, more times, cancel an offer (and, on the confirmation, what comes next)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import OfferError, SlotTakenError
from bot.scheduling.booking import Change, moves_booking
from handlers import blocks, ids
from handlers.conversation import conversation_link, replace_message
from handlers.delivery import ReplyTo, deliver, deliver_change
from handlers.errors import reporting_errors
from handlers.payloads import Click, read_click
from handlers.services import Services

ButtonHandler = Callable[[Click, AsyncWebClient, AsyncRespond], Awaitable[None]]


def button(
    app: AsyncApp, action_id: str | re.Pattern[str]
) -> Callable[[ButtonHandler], ButtonHandler]:
    """Register ``handler`` for clicks on ``action_id``: acked at once, the click read from the
    payload, failures told to the person (``reporting_errors``)."""

    def register(handler: ButtonHandler) -> ButtonHandler:
        async def listener(
            ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
        ) -> None:
            await ack()
            await handler(read_click(body), client, respond)

        listener.__name__ = listener.__qualname__ = handler.__name__  # in Bolt's logs
        app.action(action_id)(reporting_errors(listener))
        return handler

    return register


def register(app: AsyncApp, services: Services) -> None:
    @button(app, ids.BOOK_SLOT_PATTERN)
    async def book_slot(click: Click, client: AsyncWebClient, respond: AsyncRespond) -> None:
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
        reply = _reply_to(click, respond)
        try:
            picked = await services.scheduler.pick(
                click.team_id,
                click.user_id,
                offer_id,
                index,
                services.directory(client),
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
        if isinstance(picked, Change):  # a reschedule offer: the booking moved
            await _finish_change(client, respond, click, picked, services)
            return
        # Delivered once, whoever gets there first: this click, a retry, or the reconcile.
        delivered = await deliver(client, services.scheduler, picked)
        if delivered is not None:
            # After the confirmation and the .ics: reminders and the others' notices.
            services.follow_up(client, click.team_id, delivered.key, delivered)

    @button(app, ids.MORE_TIMES)
    async def more_times(click: Click, client: AsyncWebClient, respond: AsyncRespond) -> None:
        proposal = await services.scheduler.more_times(click.team_id, click.user_id, click.value)
        await _replace(
            client, respond, click, blocks.offer_text(proposal), blocks.offer_blocks(proposal)
        )

    @button(app, ids.CANCEL_OFFER)
    async def cancel_offer(click: Click, client: AsyncWebClient, respond: AsyncRespond) -> None:
        offer = await services.scheduler.withdraw(click.team_id, click.user_id, click.value)
        key = moves_booking(offer)
        if key is None:
            await _replace(client, respond, click, "Cancelled", blocks.withdrawn_blocks())
            return
        # A withdrawn reschedule offer gives the booking's confirmation back.
        current = await services.scheduler.current(
            click.team_id, click.user_id, key, services.directory(client)
        )
        await _show_change(client, respond, click, current)

    @button(app, ids.RESCHEDULE)
    async def reschedule(click: Click, client: AsyncWebClient, respond: AsyncRespond) -> None:
        current = await services.scheduler.current(
            click.team_id, click.user_id, click.value, services.directory(client)
        )
        if current.upcoming:  # a series: one of its meetings, or all of them?
            await _replace(
                client,
                respond,
                click,
                blocks.occurrence_choice_text(current),
                blocks.occurrence_choice_blocks(current, cancel=False),
            )
            return
        await _offer_new_times(client, respond, click, services, click.value, None)

    @button(app, ids.RESCHEDULE_CHOICE_PATTERN)
    async def reschedule_choice(
        click: Click, client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        key, occurrence = ids.read_occurrence_value(click.value)
        await _offer_new_times(client, respond, click, services, key, occurrence)

    @button(app, ids.CANCEL_BOOKING)
    async def cancel_booking(click: Click, client: AsyncWebClient, respond: AsyncRespond) -> None:
        current = await services.scheduler.current(
            click.team_id, click.user_id, click.value, services.directory(client)
        )
        if current.cancelled:
            await _show_change(client, respond, click, current)
            return
        if current.upcoming:  # a series: one of its meetings, or all of them?
            await _replace(
                client,
                respond,
                click,
                blocks.occurrence_choice_text(current),
                blocks.occurrence_choice_blocks(current, cancel=True),
            )
            return
        await _replace(
            client,
            respond,
            click,
            blocks.cancel_prompt_text(current),
            blocks.cancel_prompt_blocks(current),
        )

    @button(app, ids.CANCEL_CHOICE_PATTERN)
    async def cancel_choice(click: Click, client: AsyncWebClient, respond: AsyncRespond) -> None:
        key, occurrence = ids.read_occurrence_value(click.value)
        current = await services.scheduler.current(
            click.team_id, click.user_id, key, services.directory(client)
        )
        await _replace(
            client,
            respond,
            click,
            f"Cancel {blocks.escape(current.booking.title or 'the meeting')}?",
            blocks.cancel_prompt_blocks(current, occurrence),
        )

    @button(app, ids.CONFIRM_CANCEL)
    async def confirm_cancel(click: Click, client: AsyncWebClient, respond: AsyncRespond) -> None:
        key, occurrence = ids.read_occurrence_value(click.value)
        change = await services.scheduler.cancel(
            click.team_id,
            click.user_id,
            key,
            services.directory(client),
            occurrence=occurrence,
            reply_to=_reply_to(click, respond).to_json(),
        )
        await _finish_change(client, respond, click, change, services)

    @button(app, ids.KEEP_BOOKING)
    async def keep_booking(click: Click, client: AsyncWebClient, respond: AsyncRespond) -> None:
        current = await services.scheduler.current(
            click.team_id, click.user_id, click.value, services.directory(client)
        )
        await _show_change(client, respond, click, current)


async def _offer_new_times(
    client: AsyncWebClient,
    respond: AsyncRespond,
    click: Click,
    services: Services,
    key: str,
    occurrence: datetime | None,
) -> None:
    """Replace the clicked message with new times for the booking (or one of its meetings);
    picking one puts the confirmation back, moved."""
    proposal = await services.scheduler.reschedule(
        click.team_id, click.user_id, key, services.directory(client), occurrence=occurrence
    )
    await _replace(
        client, respond, click, blocks.offer_text(proposal), blocks.offer_blocks(proposal)
    )


async def _show_change(
    client: AsyncWebClient, respond: AsyncRespond, click: Click, change: Change
) -> None:
    """Show the booking as it stands in place of the clicked message."""
    await _replace(client, respond, click, blocks.change_text(change), blocks.change_blocks(change))


async def _finish_change(
    client: AsyncWebClient,
    respond: AsyncRespond,
    click: Click,
    change: Change,
    services: Services,
) -> None:
    """After a move or cancel: deliver it (its .ics once, the booking shown here and in its
    confirmation message) if this click made it, or finish it if a crash left it half-done
    (a retried click); else just show the booking. Then its reminders and the others'
    notices follow."""
    if change.pending is None:
        resumed = await services.scheduler.resume_change(
            click.team_id, change.booking.key, services.directory(client)
        )
        if resumed is None:
            await _show_change(client, respond, click, change)
            return
        change = resumed
    if await deliver_change(client, services.scheduler, change):
        services.follow_up(client, click.team_id, change.booking.key)


def _reply_to(click: Click, respond: AsyncRespond) -> ReplyTo:
    """Where this click wants its answer: the clicked message, or its response_url."""
    return ReplyTo(
        user_id=click.user_id,
        channel_id=click.channel_id,
        thread_ts=click.thread_ts,
        message_ts=click.message_ts,
        ephemeral=click.ephemeral,
        response_url=respond.response_url,
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
