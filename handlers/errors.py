"""The one error handler: a ``SlotbotError`` is told to the person; anything else is logged
(without message bodies) and answered with an apology. Never a stack trace in Slack.

Listeners are wrapped with ``reporting_errors`` because Bolt loses the HTTP answer when a
listener fails right after ``ack()`` (it answers 404); ``@app.error`` covers the rest.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SlotbotError
from handlers.payloads import PayloadError

logger = logging.getLogger("slotbot.handlers")

SORRY = (
    "Sorry, something went wrong on my side and nothing was booked. Please try again in a minute."
)


P = ParamSpec("P")

#: Work after ``ack()`` runs at most this many listeners at a time. Everything shares one
#: event loop: without a limit, a burst of 50 requests makes the 50th ack wait behind the
#: other 49 requests' work; with it, acks go out first and the work follows in turn.
WORK_SLOTS = 4
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _work_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(WORK_SLOTS)
    return slots


def reporting_errors(
    listener: Callable[P, Awaitable[None]],
) -> Callable[P, Awaitable[None]]:
    """Run ``listener`` in a work slot taken right after its ``ack()`` (events, acked by Bolt
    already, take it at once); if it fails, tell the person. It must take ``body`` and
    ``client``."""
    names = inspect.getfullargspec(listener).args
    if not {"body", "client"} <= set(names):
        raise TypeError(f"{listener.__name__} must take body and client to report errors")

    @functools.wraps(listener)
    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        slots = _work_slots()
        held = False
        real_ack = kwargs.get("ack")

        async def ack_then_wait_for_a_slot(*ack_args: Any, **ack_kwargs: Any) -> None:
            nonlocal held
            await real_ack(*ack_args, **ack_kwargs)  # type: ignore[operator]
            if not held:
                await slots.acquire()
                held = True

        if real_ack is not None:
            kwargs["ack"] = ack_then_wait_for_a_slot
        else:
            await slots.acquire()
            held = True
        try:
            await listener(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - every failure is reported, then logged
            await report(error, kwargs["body"], kwargs["client"], kwargs.get("respond"))  # type: ignore[arg-type]
        finally:
            if held:
                slots.release()

    return run


def register(app: AsyncApp) -> None:
    @app.error
    async def on_error(
        error: Exception,
        body: dict[str, Any],
        client: AsyncWebClient,
        respond: AsyncRespond | None,
    ) -> None:
        await report(error, body, client, respond)


async def report(
    error: Exception,
    body: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond | None,
) -> None:
    """Tell the person what went wrong in words they can act on; log what they cannot."""
    if isinstance(error, SlotbotError):
        message = error.user_message
    elif isinstance(error, PayloadError):
        logger.warning("unreadable %s payload: %s", body.get("type", "?"), error)
        message = SORRY
    else:
        logger.error(
            "failed to handle a %s request: %s",
            body.get("type") or body.get("command") or "?",
            type(error).__name__,
            exc_info=error,
        )
        message = SORRY
    await tell(client, respond, body, message)


async def tell(
    client: AsyncWebClient, respond: AsyncRespond | None, body: dict[str, Any], message: str
) -> None:
    """Say ``message`` to the person behind ``body``, only to them where Slack allows it."""
    event = body.get("event")
    try:
        if isinstance(event, dict):
            channel, user = event.get("channel"), event.get("user")
            if not (channel and user):
                return
            if event.get("channel_type") == "im":
                await client.chat_postMessage(
                    channel=channel, text=message, thread_ts=event.get("thread_ts")
                )
            else:
                await client.chat_postEphemeral(
                    channel=channel,
                    user=user,
                    text=message,
                    thread_ts=event.get("thread_ts") or event.get("ts"),
                )
        elif respond is not None:
            await respond(text=message, response_type="ephemeral", replace_original=False)
    except Exception as exc:  # noqa: BLE001 - the last resort must never raise
        logger.error("could not deliver an error message: %s", type(exc).__name__)
