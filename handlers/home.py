"""The App Home tab: your upcoming meetings (move or cancel your own), your scheduling
settings with the button that opens their form, and how to ask for a meeting."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from handlers import blocks, ids
from handlers.conversation import Place, post_to
from handlers.errors import reporting_errors
from handlers.payloads import read_click
from handlers.services import Services


async def publish_home(
    client: AsyncWebClient, services: Services, team_id: str, user_id: str
) -> None:
    """Publish ``user_id``'s Home tab as things stand now."""
    bookings = await services.scheduler.upcoming(team_id, user_id)
    settings = await services.scheduler.settings_of(team_id, user_id)
    view = View(
        type="home",
        blocks=blocks.home_blocks(bookings, user_id=user_id, settings=settings),
    )
    await client.views_publish(user_id=user_id, view=view)


async def _direct_message(client: AsyncWebClient, user_id: str) -> str:
    opened = await client.conversations_open(users=user_id)
    channel = opened.get("channel")
    channel_id = channel.get("id") if isinstance(channel, dict) else None
    if not isinstance(channel_id, str):
        raise RuntimeError("conversations.open returned no channel")
    return channel_id


def register(app: AsyncApp, services: Services) -> None:
    @app.event("app_home_opened")
    @reporting_errors
    async def home_opened(
        event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        team_id = str(body.get("team_id") or "")
        await publish_home(client, services, team_id, str(event["user"]))

    @app.action(ids.EDIT_SETTINGS)
    @reporting_errors
    async def edit_settings(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        click = read_click(body)
        settings = await services.scheduler.settings_of(click.team_id, click.user_id)
        await client.views_open(
            trigger_id=str(body.get("trigger_id") or ""), view=blocks.settings_modal(settings)
        )

    # A click in the Home tab has no message to replace: the flow starts in the DM with the
    # bot, where the offer, the cancel prompt and a series' "which meeting?" are normal
    # messages the usual buttons update.
    @app.action(ids.HOME_RESCHEDULE)
    @reporting_errors
    async def reschedule_from_home(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        click = read_click(body)
        directory = services.directory(client)
        current = await services.scheduler.current(
            click.team_id, click.user_id, click.value, directory
        )
        channel_id = await _direct_message(client, click.user_id)
        place = Place(channel_id, click.user_id, private=False)
        if current.upcoming:  # a series: one of its meetings, or all of them?
            await post_to(
                client,
                place,
                text=blocks.occurrence_choice_text(current),
                blocks=blocks.occurrence_choice_blocks(current, cancel=False),
            )
            return
        proposal = await services.scheduler.reschedule(
            click.team_id, click.user_id, click.value, directory
        )
        await post_to(
            client, place, text=blocks.offer_text(proposal), blocks=blocks.offer_blocks(proposal)
        )

    @app.action(ids.HOME_CANCEL_BOOKING)
    @reporting_errors
    async def cancel_from_home(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        click = read_click(body)
        current = await services.scheduler.current(
            click.team_id, click.user_id, click.value, services.directory(client)
        )
        channel_id = await _direct_message(client, click.user_id)
        place = Place(channel_id, click.user_id, private=False)
        if current.cancelled:
            await post_to(
                client,
                place,
                text=blocks.change_text(current),
                blocks=blocks.change_blocks(current),
            )
            return
        if current.upcoming:
            await post_to(
                client,
                place,
                text=blocks.occurrence_choice_text(current),
                blocks=blocks.occurrence_choice_blocks(current, cancel=True),
            )
            return
        await post_to(
            client,
            place,
            text=blocks.cancel_prompt_text(current),
            blocks=blocks.cancel_prompt_blocks(current),
        )
