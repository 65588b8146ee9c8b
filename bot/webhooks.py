"""Webhooks: other systems follow bookings through signed POSTs sent from a persisted outbox.

A booking event becomes one outbox row per URL in the same transaction that stores the booking;
``Outbox`` sends due rows from a background loop and retries with capped, jittered backoff, so
nothing is lost across restarts and nobody waits for a receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from bot.models import Booking, format_datetime, require_aware
from bot.store import OutboxEntry, Store, WebhookMessage
from bot.tasks import finish_round

__all__ = [
    "KINDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Backoff",
    "Outbox",
    "WebhookKind",
    "Webhooks",
    "sign",
    "verify_signature",
    "webhook_event_id",
    "webhook_payload",
]

logger = logging.getLogger("slotbot.webhooks")

WebhookKind = Literal["booking.created", "booking.moved", "booking.cancelled"]
KINDS: tuple[WebhookKind, ...] = ("booking.created", "booking.moved", "booking.cancelled")
TIMESTAMP_HEADER = "X-Slotbot-Request-Timestamp"
SIGNATURE_HEADER = "X-Slotbot-Signature"
#: How far a receiver should let a request's timestamp stray from its own clock.
DEFAULT_TOLERANCE = timedelta(minutes=5)
#: 4xx answers that mean "not now" rather than "never".
_RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})
#: A receiver that takes longer is treated as down: the row is retried later.
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=5)


# --- signing ----------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: str | bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``v1:{timestamp}:{body}`` keyed with ``secret``."""
    raw = body.encode() if isinstance(body, str) else body
    base = b"v1:" + str(timestamp).encode() + b":" + raw
    return "v1=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: str | bytes,
    signature: str,
    *,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp``, and that is within ``tolerance``
    of ``now`` (what a receiver checks; a replayed old request fails)."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(require_aware(now, "now").timestamp() - stamp) > tolerance.total_seconds():
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


# --- payloads ---------------------------------------------------------------------------------


def webhook_event_id(team_id: str, key: str, kind: str, sequence: int) -> str:
    """A stable id for one event of one booking: the same however often it is enqueued."""
    digest = hashlib.sha256(f"{team_id}\x00{key}\x00{kind}\x00{sequence}".encode()).hexdigest()
    return "evt_" + digest[:32]


def webhook_payload(
    booking: Booking,
    kind: WebhookKind,
    *,
    link: str | None,
    occurred_at: datetime,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON a receiver gets: the schedule object in the seed's shape, plus the booking's
    people (organizer first), title and Slack link (None when unknown)."""
    if kind not in KINDS:
        raise ValueError(f"unknown webhook kind {kind!r}; one of {', '.join(KINDS)}")
    payload: dict[str, Any] = {
        "id": webhook_event_id(booking.team_id, booking.key, kind, booking.sequence),
        "type": kind,
        "occurred_at": format_datetime(occurred_at),
        "team_id": booking.team_id,
        "booking_key": booking.key,
        "title": booking.title,
        "organizer": booking.organizer_id,
        "participants": list(dict.fromkeys((booking.organizer_id, *booking.participant_ids))),
        "permalink": link,
        "sequence": booking.sequence,
        "schedule": booking.schedule.to_json(),
    }
    payload.update(extra or {})
    return payload


class Webhooks:
    """Where booking events go: builds the outbox rows and wakes the sender when some wait."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = tuple(dict.fromkeys(urls))
        self._wake = asyncio.Event()

    def messages(
        self,
        booking: Booking,
        kind: WebhookKind,
        *,
        link: str | None,
        now: datetime,
        extra: Mapping[str, Any] | None = None,
    ) -> list[WebhookMessage]:
        """One outbox row per URL for ``kind`` of ``booking``; every URL gets the same body."""
        payload = webhook_payload(booking, kind, link=link, occurred_at=now, extra=extra)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return [
            WebhookMessage(payload["id"], booking.team_id, kind, url, body) for url in self.urls
        ]

    def announcer(
        self, kind: WebhookKind, *, link: str | None, now: datetime
    ) -> Callable[[Booking], list[WebhookMessage]]:
        """The rows for a booking as a store transaction sees it (``mark_booking_created``)."""
        return lambda booking: self.messages(booking, kind, link=link, now=now)

    def wake(self) -> None:
        """Rows were just committed: let the sender look now rather than at its next poll."""
        self._wake.set()

    async def wait(self, seconds: float) -> None:
        """Until ``wake`` or ``seconds``, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()


# --- retrying -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: ``first`` doubled per failure up to ``cap``, each
    delay drawn from its upper half; no attempt later than ``give_up_after`` the enqueue."""

    first: timedelta = timedelta(seconds=10)
    cap: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(hours=24)

    def delay(self, failures: int, jitter: float) -> timedelta:
        """The wait after the ``failures``-th failure; ``jitter`` is in ``[0, 1)``."""
        exponent = min(max(failures, 1) - 1, 40)
        base: timedelta = min(self.cap, self.first * (2**exponent))
        return base * (0.5 + jitter / 2)

    def next_attempt(
        self,
        *,
        created_at: datetime,
        now: datetime,
        failures: int,
        jitter: float,
        retry_after: timedelta | None = None,
    ) -> datetime | None:
        """When to try again, or None: the next try would come after the deadline."""
        wait = self.delay(failures, jitter)
        if retry_after is not None:
            wait = min(max(wait, retry_after), self.cap)
        at = now + wait
        return at if at <= created_at + self.give_up_after else None


def _retry_after(headers: Mapping[str, str]) -> timedelta | None:
    raw = headers.get("Retry-After", "").strip()
    return timedelta(seconds=int(raw)) if raw.isdigit() else None


def _host(url: str) -> str:
    # URLs may carry a token in their path or query; logs name the host only.
    return urlsplit(url).netloc


# --- sending ------------------------------------------------------------------------------------


class Outbox:
    """Sends due webhook rows: now and whenever woken, else every ``poll_seconds``.

    2xx marks a row delivered; 4xx other than 408/429 gives it up (logged); anything else
    (5xx, 408, 429, 3xx, a timeout, a refused connection) retries after ``backoff``.
    Delivery is at least once: receivers dedupe on the payload's ``id``.
    """

    def __init__(
        self,
        store: Store,
        webhooks: Webhooks,
        secret: str,
        *,
        clock: Callable[[], datetime],
        backoff: Backoff = Backoff(),
        lease: timedelta = timedelta(minutes=2),
        batch: int = 20,
        poll_seconds: float = 5.0,
        timeout: aiohttp.ClientTimeout = HTTP_TIMEOUT,
        jitter: Callable[[], float] = random.random,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.store = store
        self.webhooks = webhooks
        self.clock = clock
        self.backoff = backoff
        self.lease = lease
        self.batch = batch
        self.poll_seconds = poll_seconds
        self._secret = secret
        self._timeout = timeout
        self._jitter = jitter
        self._session = session
        self._own_session = session is None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="slotbot-webhooks")

    async def stop(self) -> None:
        """Stop the loop (rows in flight keep their state or are released) and close HTTP."""
        if self._task is not None:
            # After the round in progress: cancelling mid-query strands its DB connection.
            self._stopping = True
            self.webhooks.wake()
            await finish_round(self._task)
            self._task = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver_due(self) -> int:
        """Send every row due now, batch after batch; the number delivered."""
        delivered = 0
        while True:
            now = self.clock()
            entries = await self.store.claim_webhooks(now, now + self.lease, limit=self.batch)
            if not entries:
                return delivered
            pending = {entry.id for entry in entries}
            try:
                for entry in entries:
                    if await self._attempt(entry):
                        delivered += 1
                    pending.discard(entry.id)
            finally:
                if pending:  # stopped midway: the rest need not wait for the lease to lapse
                    await asyncio.shield(self.store.release_webhooks(sorted(pending)))
            if len(entries) < self.batch:
                return delivered

    async def _attempt(self, entry: OutboxEntry) -> bool:
        message = entry.message
        timestamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Slotbot-Webhooks/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, message.body),
        }
        retry_after = None
        try:
            async with self._http().post(
                message.url,
                data=message.body.encode(),
                headers=headers,
                allow_redirects=False,
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, error = None, type(exc).__name__
        else:
            error = f"HTTP {status}"
        now = self.clock()
        if status is not None and 200 <= status < 300:
            await self.store.webhook_delivered(entry.id, now)
            return True
        if status is not None and 400 <= status < 500 and status not in _RETRYABLE_CLIENT_ERRORS:
            logger.warning(
                "webhook %s (%s) to %s refused with %s; giving up",
                message.event_id,
                message.kind,
                _host(message.url),
                error,
            )
            await self.store.webhook_failed(entry.id, now, error=error, retry_at=None)
            return False
        retry_at = self.backoff.next_attempt(
            created_at=entry.created_at,
            now=now,
            failures=entry.attempts + 1,
            jitter=self._jitter(),
            retry_after=retry_after,
        )
        if retry_at is None:
            logger.warning(
                "webhook %s (%s) to %s still failing (%s) after %d attempts; giving up",
                message.event_id,
                message.kind,
                _host(message.url),
                error,
                entry.attempts + 1,
            )
        await self.store.webhook_failed(entry.id, now, error=error, retry_at=retry_at)
        return False

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.deliver_due()
            except Exception as exc:  # noqa: BLE001 - the loop outlives a database hiccup
                logger.warning("webhook round failed: %s", type(exc).__name__)
            await self.webhooks.wait(self.poll_seconds)
