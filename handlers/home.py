"""The App Home tab: your upcoming meetings and how to ask for one, published on open."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from handlers import blocks
from handlers.errors import reporting_errors
from handlers.services import Services


def register(app: AsyncApp, services: Services) -> None:
    @app.event("app_home_opened")
    @reporting_errors
    async def home_opened(
        event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        team_id = str(body.get("team_id") or "")
        bookings = await services.scheduler.upcoming(team_id, str(event["user"]))
        view = View(type="home", blocks=blocks.home_blocks(bookings))
        await client.views_publish(user_id=str(event["user"]), view=view)
