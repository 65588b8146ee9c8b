"""Typed moves and cancels of booked meetings ("move my 3pm with Ana to tomorrow", "cancel the
1:1"): one answer wherever they are typed, a DM, an @mention or ``/schedule``."""

from __future__ import annotations

from slack_bolt.async_app import AsyncRespond
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from handlers import blocks
from handlers.conversation import Place, post_to
from handlers.services import Services

__all__ = ["answer_booking_command"]


async def answer_booking_command(
    services: Services,
    client: AsyncWebClient,
    *,
    team_id: str,
    user_id: str,
    text: str,
    place: Place,
    respond: AsyncRespond | None = None,
) -> None:
    """Find the meeting the command means and answer at ``place``: its reschedule offer, its
    cancel prompt, a choice of meetings, or the person's meetings when none matched. The
    buttons are the usual ones, so the flow goes on as from the confirmation."""
    answer = await services.scheduler.manage(team_id, user_id, text, services.directory(client))
    content: list[Block]
    if answer.proposal is not None:
        summary = blocks.offer_text(answer.proposal)
        content = blocks.offer_blocks(answer.proposal)
    elif answer.cancelling is not None:
        summary = blocks.cancel_prompt_text(answer.cancelling)
        content = blocks.cancel_prompt_blocks(answer.cancelling)
    elif answer.choices:
        summary = blocks.choice_text(answer.choices)
        content = blocks.choice_blocks(answer.choices, user_id, answer.command.action)
    else:
        summary = blocks.no_match_text()
        content = blocks.no_match_blocks(answer.upcoming, user_id)
    await post_to(client, place, text=summary, blocks=content, respond=respond)
