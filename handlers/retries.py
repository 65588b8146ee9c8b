"""When Slack's Web API may be asked again: only where asking twice cannot post twice.

429 means Slack did nothing, so every method is retried after ``Retry-After`` (slack_sdk's own
handler). A 5xx, a timeout or a dropped connection may come *after* Slack acted, so those are
retried only for methods that read or that replace state in place.
"""

from __future__ import annotations

import asyncio

from aiohttp import ClientConnectionError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

__all__ = ["IDEMPOTENT_METHODS", "IdempotentRetryHandler", "retry_handlers"]

#: Reads, and writes that set a value rather than add one: safe to send twice.
IDEMPOTENT_METHODS = frozenset(
    {
        "auth.test",
        "users.info",
        "users.list",
        "conversations.open",
        "conversations.info",
        "chat.update",
        "chat.getPermalink",
        "chat.deleteScheduledMessage",
        "chat.scheduledMessages.list",
        "views.publish",
        "files.info",
        "files.getUploadURLExternal",
        "apps.connections.open",
    }
)


def method_of(url: str) -> str:
    """The Web API method a request URL calls (``…/api/chat.update`` → ``chat.update``)."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class IdempotentRetryHandler(AsyncRetryHandler):
    """Retries 5xx answers, timeouts and dropped connections, for idempotent methods only."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if method_of(request.url) not in IDEMPOTENT_METHODS:
            return False
        if error is not None:
            return isinstance(error, ClientConnectionError | asyncio.TimeoutError)
        return response is not None and response.status_code >= 500


def retry_handlers() -> list[AsyncRetryHandler]:
    """The retry policy of every Web API client Slotbot builds."""
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        IdempotentRetryHandler(max_retry_count=2),
    ]
