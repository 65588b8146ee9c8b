"""The one error handler: a ``SlotbotError`` is told to the person; anything else is logged
(without message bodies) and answered with an apology. Never a stack trace in Slack.

Listeners are wrapped with ``reporting_errors`` because Bolt loses the HTTP answer when a
listener fails right after ``ack()`` (it answers 404); ``@app.error`` covers the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator
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
#: Work also waits while requests that came in are still unanswered, and until none has come
#: in for ``QUIET_SECONDS`` (a burst arrives over a few milliseconds, not all at once), up to
#: ``ACKS_FIRST_SECONDS`` in all: an ack is a promise Slack times out after 3 s, the work
#: behind it is not.
ACKS_FIRST_SECONDS = 0.25
QUIET_SECONDS = 0.015


class WorkQueue:
    """Orders one event loop's work: every arrived request's answer before any listener's work
    after ``ack()``, and then at most ``WORK_SLOTS`` listeners at a time."""

    def __init__(self) -> None:
        self._slots = asyncio.Semaphore(WORK_SLOTS)
        self._unanswered = 0
        self._listening = 0
        self._last_arrival = 0.0
        self._all_answered = asyncio.Event()
        self._all_answered.set()
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around the handling of one request up to its HTTP answer."""
        self._unanswered += 1
        self._last_arrival = asyncio.get_running_loop().time()
        self._all_answered.clear()
        self._idle.clear()
        try:
            yield
        finally:
            self._unanswered -= 1
            if not self._unanswered:
                self._all_answered.set()
            self._note_idle()

    async def take_turn(self) -> None:
        """Wait (for a while) until the requests in hand are answered and no more are coming,
        then for a slot."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ACKS_FIRST_SECONDS
        while (left := deadline - loop.time()) > 0:
            if self._unanswered:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._all_answered.wait(), left)
                continue
            quiet_left = self._last_arrival + QUIET_SECONDS - loop.time()
            if quiet_left <= 0:
                break
            await asyncio.sleep(min(quiet_left, left))
        await self._slots.acquire()

    def end_turn(self) -> None:
        self._slots.release()

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """Around one listener, from its start to the end of its work."""
        self._listening += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._listening -= 1
            self._note_idle()

    def _note_idle(self) -> None:
        if not (self._unanswered or self._listening):
            self._idle.set()

    async def idle(self) -> None:
        """Return once no request is unanswered and no listener is at work."""
        await self._idle.wait()


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WorkQueue] = (
    weakref.WeakKeyDictionary()
)


def work_queue() -> WorkQueue:
    """The running loop's work queue."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = WorkQueue()
    return queue


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
        queue = work_queue()
        held = False
        real_ack = kwargs.get("ack")

        async def ack_then_wait_for_a_slot(*ack_args: Any, **ack_kwargs: Any) -> None:
            nonlocal held
            await real_ack(*ack_args, **ack_kwargs)  # type: ignore[operator]
            if not held:
                await queue.take_turn()
                held = True

        with queue.listening():
            if real_ack is not None:
                kwargs["ack"] = ack_then_wait_for_a_slot
            else:
                await queue.take_turn()
                held = True
            try:
                await listener(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - every failure is reported, then logged
                await report(error, kwargs["body"], kwargs["client"], kwargs.get("respond"))  # type: ignore[arg-type]
            finally:
                if held:
                    queue.end_turn()

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
