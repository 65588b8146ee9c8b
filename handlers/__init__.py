"""Everything that is Slack. ``register_handlers`` is the table of contents, a line per surface."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from handlers import actions, commands, errors, home, messages, views
from handlers.services import Services

__all__ = ["Services", "register_handlers"]


def register_handlers(app: AsyncApp, services: Services) -> None:
    commands.register(app, services)  # /schedule
    messages.register(app, services)  # DMs to the bot, @mentions in channels
    actions.register(app, services)  # Book, More times, Cancel buttons
    home.register(app, services)  # the App Home tab
    views.register(app, services)  # the settings modal
    errors.register(app)  # one error handler for all of them
