"""Webhooks: signing, payload shape, backoff, settings, and the outbox against a loopback
receiver on both databases."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.config import ConfigError, Settings
from bot.models import Booking, BookingState, ScheduleObject, SchedulePoint
from bot.store import Store, WebhookMessage
from bot.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Backoff,
    Outbox,
    Webhooks,
    sign,
    verify_signature,
    webhook_payload,
)

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
SECRET = "webhook-test-secret"


def booking(key: str = "k1", sequence: int = 0) -> Booking:
    schedule = ScheduleObject(
        SchedulePoint(2026, 12, 1, 15, 0, time_zone="Europe/Berlin"),
        SchedulePoint(2026, 12, 1, 15, 45, time_zone="Europe/Berlin"),
        calendar_event_id="ev1",
        calendar_id="U0ANA0001",
    )
    return Booking(
        key=key,
        team_id="T1",
        organizer_id="U0ANA0001",
        participant_ids=("U0BEN0002",),
        title="design review",
        schedule=schedule,
        state=BookingState.PENDING,
        sequence=sequence,
    )


def independent_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v1:" + timestamp.encode() + b":" + body
    return "v1=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


# --- signing and payloads -------------------------------------------------------------------


def test_signature_is_hex_hmac_sha256_of_v1_timestamp_body() -> None:
    """sign() equals an HMAC-SHA256 of "v1:{ts}:{body}" computed independently."""
    body = '{"a":1,"title":"café"}'
    assert sign(SECRET, 1795000000, body) == independent_signature(
        SECRET, "1795000000", body.encode()
    )
    assert sign(SECRET, 1795000000, body).startswith("v1=")
    assert sign("other", 1795000000, body) != sign(SECRET, 1795000000, body)


def test_verify_signature_refuses_tampering_and_stale_timestamps() -> None:
    """verify_signature accepts the genuine request only, and only within the tolerance."""
    stamp = int(NOW.timestamp())
    body = b'{"x":1}'
    good = independent_signature(SECRET, str(stamp), body)
    assert verify_signature(SECRET, str(stamp), body, good, now=NOW)
    assert not verify_signature(SECRET, str(stamp), b'{"x":2}', good, now=NOW)
    assert not verify_signature("wrong", str(stamp), body, good, now=NOW)
    assert not verify_signature(SECRET, "soon", body, good, now=NOW)
    assert not verify_signature(SECRET, str(stamp), body, good, now=NOW + timedelta(minutes=6))


def test_payload_carries_the_seed_schedule_object_and_the_booking() -> None:
    """The payload's schedule is exactly ScheduleObject.to_json(); people, title, link beside."""
    item = booking()
    payload = webhook_payload(item, "booking.created", link=None, occurred_at=NOW)
    assert payload["schedule"] == item.schedule.to_json()
    assert set(payload["schedule"]) == {
        "start_time",
        "end_time",
        "calendar_event_id",
        "calendar_id",
        "recurrence",
    }
    assert payload["schedule"]["start_time"] == {
        "date": {"year": 2026, "month": 12, "day": 1},
        "time": {"hour": 15, "minute": 0, "second": 0, "millisecond": 0},
        "timeZone": "Europe/Berlin",
    }
    assert payload["type"] == "booking.created"
    assert payload["participants"] == ["U0ANA0001", "U0BEN0002"]
    assert payload["title"] == "design review"
    assert payload["permalink"] is None
    assert payload["occurred_at"] == "2026-11-30T08:00:00Z"
    assert json.loads(json.dumps(payload)) == payload


def test_event_ids_are_stable_per_kind_and_sequence() -> None:
    """The same event has the same id; another kind or sequence gets another one."""
    first = webhook_payload(booking(), "booking.created", link=None, occurred_at=NOW)
    again = webhook_payload(booking(), "booking.created", link="x", occurred_at=NOW)
    moved = webhook_payload(booking(sequence=1), "booking.moved", link=None, occurred_at=NOW)
    assert first["id"] == again["id"] != moved["id"]


def test_unknown_kind_is_refused() -> None:
    """Only booking.created, booking.moved and booking.cancelled exist."""
    with pytest.raises(ValueError, match="unknown webhook kind"):
        webhook_payload(booking(), "booking.deleted", link=None, occurred_at=NOW)  # type: ignore[arg-type]


def test_every_url_gets_the_same_body() -> None:
    """One message per URL (duplicates collapsed), all with one body and one event id."""
    hooks = Webhooks(["https://a.example/h", "https://b.example/h", "https://a.example/h"])
    messages = hooks.messages(booking(), "booking.created", link="https://slack/x", now=NOW)
    assert [m.url for m in messages] == ["https://a.example/h", "https://b.example/h"]
    assert len({m.body for m in messages}) == 1 and len({m.event_id for m in messages}) == 1
    assert json.loads(messages[0].body)["permalink"] == "https://slack/x"


# --- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_from_ten_seconds_up_to_an_hour() -> None:
    """With full jitter the waits are 10 s, 20 s, 40 s … capped at one hour; least is half."""
    backoff = Backoff()
    top = [backoff.delay(n, 0.999999).total_seconds() for n in range(1, 12)]
    assert [round(s) for s in top] == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
    assert backoff.delay(3, 0.0) == timedelta(seconds=20)
    assert backoff.delay(200, 0.5) == timedelta(minutes=45)


def test_backoff_gives_up_after_a_day() -> None:
    """No retry is scheduled past 24 hours after the webhook was enqueued."""
    backoff = Backoff()
    early = backoff.next_attempt(created_at=NOW, now=NOW, failures=1, jitter=0.0)
    assert early == NOW + timedelta(seconds=5)
    late = NOW + timedelta(hours=23, minutes=50)
    assert backoff.next_attempt(created_at=NOW, now=late, failures=30, jitter=0.0) is None


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    """A receiver's Retry-After lengthens the wait, but never beyond the cap."""
    backoff = Backoff()
    wait = backoff.next_attempt(
        created_at=NOW, now=NOW, failures=1, jitter=0.0, retry_after=timedelta(seconds=120)
    )
    assert wait == NOW + timedelta(seconds=120)
    capped = backoff.next_attempt(
        created_at=NOW, now=NOW, failures=1, jitter=0.0, retry_after=timedelta(days=1)
    )
    assert capped == NOW + timedelta(hours=1)


# --- settings -------------------------------------------------------------------------------


def test_settings_read_several_webhook_urls() -> None:
    """Comma- and space-separated URLs are read in order, duplicates dropped."""
    settings = Settings.from_env(
        {
            "SLOTBOT_WEBHOOK_URLS": "https://a.example/h, http://b.example:8080/x  https://a.example/h",
            "SLOTBOT_WEBHOOK_SECRET": SECRET,
        },
        dotenv=None,
    )
    assert settings.webhook_urls == ("https://a.example/h", "http://b.example:8080/x")
    assert SECRET not in repr(settings)


def test_settings_refuse_urls_without_a_secret() -> None:
    """Unsigned webhooks are refused, naming the missing variable."""
    with pytest.raises(ConfigError, match="SLOTBOT_WEBHOOK_SECRET"):
        Settings.from_env({"SLOTBOT_WEBHOOK_URLS": "https://a.example/h"}, dotenv=None)


def test_settings_refuse_non_http_urls() -> None:
    """Only http(s) URLs with a host are webhook targets."""
    for bad in ("ftp://a.example/h", "a.example/h", "https://"):
        with pytest.raises(ConfigError, match="SLOTBOT_WEBHOOK_URLS"):
            Settings.from_env(
                {"SLOTBOT_WEBHOOK_URLS": bad, "SLOTBOT_WEBHOOK_SECRET": SECRET}, dotenv=None
            )


# --- the outbox against a loopback receiver -------------------------------------------------


@dataclass
class Receiver:
    """Answers each POST with the next status of ``statuses`` (then 200), verifying signatures."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes, bool]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        valid = hmac.compare_digest(
            request.headers.get(SIGNATURE_HEADER, ""), independent_signature(SECRET, stamp, body)
        )
        self.received.append((dict(request.headers), body, valid))
        status = self.statuses.pop(0) if self.statuses else 200
        headers = {"Retry-After": "30"} if status == 429 else {}
        return web.Response(status=status, headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """A loopback receiver on 127.0.0.1 and its URL."""
    target = Receiver()
    app = web.Application()
    app.router.add_post("/hook", target.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield target, str(server.make_url("/hook"))
    await server.close()


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


async def outbox_for(store: Store, url: str, clock: Clock) -> tuple[Outbox, WebhookMessage]:
    hooks = Webhooks([url])
    [message] = hooks.messages(booking(), "booking.created", link=None, now=clock())
    assert await store.enqueue_webhooks([message], clock()) == 1
    return Outbox(store, hooks, SECRET, clock=clock, jitter=lambda: 0.0), message


async def test_outbox_delivers_a_signed_post_once(
    store: Store, receiver: tuple[Receiver, str]
) -> None:
    """A due row is POSTed once with a valid signature and marked delivered; never again."""
    target, url = receiver
    clock = Clock()
    outbox, message = await outbox_for(store, url, clock)
    try:
        assert await outbox.deliver_due() == 1
        clock.now += timedelta(days=2)
        assert await outbox.deliver_due() == 0
    finally:
        await outbox.stop()
    [(headers, body, valid)] = target.received
    assert valid and body.decode() == message.body
    assert headers[TIMESTAMP_HEADER] == str(int(NOW.timestamp()))
    assert headers["Content-Type"] == "application/json"
    [entry] = await store.webhook_entries()
    assert entry.delivered_at == NOW and entry.attempts == 1 and entry.next_attempt_at is None


async def test_outbox_gives_up_on_a_client_error(
    store: Store, receiver: tuple[Receiver, str]
) -> None:
    """A 404 is final: the row is given up with the status recorded and never re-sent."""
    target, url = receiver
    target.statuses = [404]
    clock = Clock()
    outbox, _ = await outbox_for(store, url, clock)
    try:
        assert await outbox.deliver_due() == 0
        clock.now += timedelta(hours=2)
        assert await outbox.deliver_due() == 0
    finally:
        await outbox.stop()
    assert len(target.received) == 1
    [entry] = await store.webhook_entries()
    assert entry.gave_up_at == NOW and entry.delivered_at is None
    assert entry.last_error == "HTTP 404"


async def test_outbox_retries_server_errors_and_rate_limits_with_backoff(
    store: Store, receiver: tuple[Receiver, str]
) -> None:
    """503 then 429 are retried at the backoff's times (Retry-After honoured), then delivered."""
    target, url = receiver
    target.statuses = [503, 429]
    clock = Clock()
    outbox, _ = await outbox_for(store, url, clock)
    try:
        assert await outbox.deliver_due() == 0
        [entry] = await store.webhook_entries()
        assert entry.next_attempt_at == NOW + timedelta(seconds=5)  # 10 s, least jitter
        assert entry.last_error == "HTTP 503"
        assert await outbox.deliver_due() == 0, "not due yet"
        clock.now += timedelta(seconds=5)
        assert await outbox.deliver_due() == 0
        [entry] = await store.webhook_entries()
        assert entry.next_attempt_at == clock.now + timedelta(seconds=30)  # Retry-After
        clock.now += timedelta(seconds=30)
        assert await outbox.deliver_due() == 1
    finally:
        await outbox.stop()
    assert len(target.received) == 3 and all(valid for _, _, valid in target.received)
    [entry] = await store.webhook_entries()
    assert entry.attempts == 3 and entry.delivered_at is not None


async def test_outbox_retries_an_unreachable_receiver(store: Store) -> None:
    """A refused connection is a retry, not a give-up."""
    clock = Clock()
    outbox, _ = await outbox_for(store, "http://127.0.0.1:9/hook", clock)
    try:
        assert await outbox.deliver_due() == 0
    finally:
        await outbox.stop()
    [entry] = await store.webhook_entries()
    assert entry.gave_up_at is None and entry.next_attempt_at is not None
    assert entry.attempts == 1 and entry.last_error


async def test_enqueue_is_idempotent_per_event_and_url(store: Store) -> None:
    """Enqueuing the same event for the same URL twice keeps one row."""
    hooks = Webhooks(["https://a.example/h", "https://b.example/h"])
    messages = hooks.messages(booking(), "booking.created", link=None, now=NOW)
    assert await store.enqueue_webhooks(messages, NOW) == 2
    assert await store.enqueue_webhooks(messages, NOW) == 0
    assert len(await store.webhook_entries()) == 2


async def test_concurrent_claims_never_share_a_row(store: Store) -> None:
    """Two senders claiming at once split the due rows; each row is leased to one of them."""
    hooks = Webhooks([f"https://h{n}.example/h" for n in range(10)])
    await store.enqueue_webhooks(
        hooks.messages(booking(), "booking.created", link=None, now=NOW), NOW
    )
    lease = NOW + timedelta(minutes=2)
    first, second = await asyncio.gather(
        store.claim_webhooks(NOW, lease, limit=6), store.claim_webhooks(NOW, lease, limit=6)
    )
    ids = [e.id for e in first] + [e.id for e in second]
    assert len(ids) == len(set(ids)) == 10
    assert await store.claim_webhooks(NOW, lease) == [], "leased rows are not due"
    assert len(await store.claim_webhooks(lease, lease + timedelta(minutes=2))) == 10


async def test_marking_created_enqueues_in_the_same_step_once(store: Store) -> None:
    """Pending → created enqueues the webhooks; a second (losing) transition enqueues none."""
    item = booking()
    await store.claim_booking(item)
    hooks = Webhooks(["https://a.example/h"])
    announce = hooks.announcer("booking.created", link=None, now=NOW)
    schedule = item.schedule.with_event("ev-final", "U0ANA0001")
    created = await store.mark_booking_created(
        "T1", "k1", uid="uid-1", schedule=schedule, event_link=None, announce=announce
    )
    assert created is not None and created.booking.state == BookingState.CREATED
    again = await store.mark_booking_created(
        "T1", "k1", uid="uid-1", schedule=schedule, event_link=None, announce=announce
    )
    assert again is None
    [entry] = await store.webhook_entries("T1")
    body = json.loads(entry.message.body)
    assert body["schedule"]["calendar_event_id"] == "ev-final"
    assert body["booking_key"] == "k1" and entry.message.kind == "booking.created"
