"""Two real ``slotbot serve`` processes on one PostgreSQL database, clicks spread over both.

Bursts of concurrent clicks go to both instances at once, as behind a load balancer: every
uncontested booking is made exactly once, a contested time goes to exactly one offer, and
nobody is double-booked. The instances run on the real clock, so requests are built from now.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from icalendar import Calendar
from sqlalchemy.ext.asyncio import create_async_engine

from playground.slack_api import RESPONSE_URL, SlackUser
from tests.scenarios.harness import Cluster, Offer, start_cluster, stop_cluster

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

UPLOAD_DONE = "files.completeUploadExternal"
TAKEN = "just taken"
DATE_TOKEN = re.compile(r"<!date\^(\d+)\^")

BEN = SlackUser(id="U0BEN0002", name="ben", real_name="Ben Brown", email="ben@example.com")


def people(prefix: str, count: int) -> tuple[SlackUser, ...]:
    """``count`` people in UTC with ids ``U0<prefix><n>``."""
    return tuple(
        SlackUser(
            id=f"U0{prefix}{n:04d}",
            name=f"{prefix.lower()}{n}",
            real_name=f"{prefix} {n}",
            email=f"{prefix.lower()}{n}@example.com",
        )
        for n in range(count)
    )


REQUESTERS = people("REQ", 24)
PARTNERS = people("PAR", 24)


def working_day_ahead(days: int = 2) -> date:
    """The first Monday-to-Friday date at least ``days`` days after today (UTC)."""
    day = datetime.now(UTC).date() + timedelta(days=days)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def spoken(day: date) -> str:
    return f"{day:%B} {day.day}"


@pytest.fixture
async def cluster(tmp_path: Path, database_url: str) -> AsyncIterator[Cluster]:
    started = await start_cluster(
        tmp_path, database_url, users=(BEN, *REQUESTERS, *PARTNERS), instances=2
    )
    yield started
    await stop_cluster(started)


async def query(cluster: Cluster, sql: str, **params: Any) -> list[sa.Row[Any]]:
    """Rows of ``sql`` on the cluster's database, read from outside the instances."""
    engine = create_async_engine(cluster.database_url)
    try:
        async with engine.connect() as connection:
            return list(await connection.execute(sa.text(sql), params))
    finally:
        await engine.dispose()


async def wait_until(check: Any, within: float = 30.0, what: str = "") -> None:
    """Poll the async ``check`` until it is true; fail with ``what`` after ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def completed_uploads(cluster: Cluster) -> list[Any]:
    return [f for f in cluster.slack.uploaded_files() if f.completed]


def starts_in(offer: Offer) -> list[int]:
    """The start instants (epoch seconds) of the slot rows, those with a Book button, in order."""
    return [
        int(DATE_TOKEN.findall(block["text"]["text"])[0])
        for block in offer.blocks
        if str((block.get("accessory") or {}).get("action_id", "")).startswith("book_slot")
    ]


async def ask_all(cluster: Cluster, asks: Sequence[tuple[SlackUser, str]]) -> dict[str, Offer]:
    """Send every request at once, alternating instances; the offers by requester id."""
    statuses = await asyncio.gather(
        *(cluster.command(text, user=user, instance=n) for n, (user, text) in enumerate(asks))
    )
    assert set(statuses) == {200}
    return await cluster.wait_for_offers([user for user, _ in asks])


def assert_nobody_double_booked(rows: Sequence[BookingRow]) -> None:
    """No person is in two live bookings whose times overlap."""
    by_person: dict[str, list[tuple[datetime, datetime, str]]] = {}
    for row in rows:
        for person in (row.organizer_id, *row.participant_ids):
            by_person.setdefault(person, []).append((row.start_at, row.end_at, row.key))
    for person, spans in by_person.items():
        spans.sort()
        for (_, end, key), (start, _, other) in itertools.pairwise(spans):
            assert start >= end, f"{person} is double-booked: {key} and {other}"


@dataclass(frozen=True)
class BookingRow:
    """A live booking as stored: who, when, from which offer."""

    key: str
    organizer_id: str
    participant_ids: tuple[str, ...]
    start_at: datetime
    end_at: datetime
    state: str
    offer_id: str


async def live_bookings(cluster: Cluster) -> list[BookingRow]:
    rows = await query(
        cluster,
        "SELECT key, organizer_id, participant_ids, start_at, end_at, state, offer_id "
        "FROM bookings WHERE state <> 'cancelled'",
    )
    return [
        BookingRow(
            row.key,
            row.organizer_id,
            tuple(json.loads(ids) if isinstance(ids, str) else ids),
            _aware(row.start_at),
            _aware(row.end_at),
            row.state,
            row.offer_id,
        )
        for row in rows
        for ids in [row.participant_ids]
    ]


def _aware(value: Any) -> datetime:
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(instant, datetime)
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


async def test_a_burst_of_own_offers_across_two_instances_books_every_one(cluster: Cluster) -> None:
    """24 people click their own offers at once over two instances: 24 bookings, none lost."""
    asks = [
        (user, f"sync with <@{partner.id}> 30m in the next 2 weeks")
        for user, partner in zip(REQUESTERS, PARTNERS, strict=True)
    ]
    offers = await ask_all(cluster, asks)
    # Each click goes to the instance that did not make the offer.
    clicks = [
        cluster.click(
            offers[user.id], offers[user.id].buttons("book_slot")[0], user=user, instance=n + 1
        )
        for n, user in enumerate(REQUESTERS)
    ]
    assert set(await asyncio.gather(*clicks)) == {200}

    async def all_confirmed() -> bool:
        rows = await query(cluster, "SELECT count(*) AS n FROM bookings WHERE state='confirmed'")
        return rows[0].n == len(REQUESTERS)

    await wait_until(all_confirmed, what="every booking confirmed")
    bookings = await live_bookings(cluster)
    assert len(bookings) == len(REQUESTERS)
    assert {b.organizer_id for b in bookings} == {u.id for u in REQUESTERS}
    assert len({b.offer_id for b in bookings}) == len(REQUESTERS)
    events = await query(cluster, "SELECT event_id FROM local_events WHERE status <> 'cancelled'")
    assert len(events) == len(REQUESTERS)
    uploads = completed_uploads(cluster)
    assert len(uploads) == len(REQUESTERS)
    uids = {str(Calendar.from_ical(f.content).walk("VEVENT")[0]["UID"]) for f in uploads}
    assert len(uids) == len(REQUESTERS)
    for user in REQUESTERS:
        confirmation = cluster.offer_of(user)
        assert confirmation is not None and "is booked" in confirmation.text()
    assert_nobody_double_booked(bookings)


async def test_contested_time_goes_to_exactly_one_offer(cluster: Cluster) -> None:
    """Six offers with Ben for overlapping times clicked at once: one wins, five get fresh times."""
    day = spoken(working_day_ahead())
    contenders = REQUESTERS[:6]
    asks = [
        (user, f"sync with <@{BEN.id}> 1h on {day} at 10am")
        if n % 2 == 0
        else (user, f"sync with <@{BEN.id}> 30m on {day} at 10:30am")
        for n, user in enumerate(contenders)
    ]
    offers = await ask_all(cluster, asks)
    firsts = {u.id: starts_in(offers[u.id])[0] for u in contenders}
    ten = datetime.combine(working_day_ahead(), datetime.min.time(), UTC) + timedelta(hours=10)
    assert sorted(set(firsts.values())) == [
        int(ten.timestamp()),
        int((ten + timedelta(minutes=30)).timestamp()),
    ]

    clicks = [
        cluster.click(offers[u.id], offers[u.id].buttons("book_slot")[0], user=u, instance=n)
        for n, u in enumerate(contenders)
    ]
    assert set(await asyncio.gather(*clicks)) == {200}

    async def all_answered() -> bool:
        answers = [cluster.offer_of(u) for u in contenders]
        return all(
            a is not None and ("is booked" in a.text() or TAKEN in a.text()) for a in answers
        )

    await wait_until(all_answered, what="an answer to every click")
    await cluster.slack.wait_for(UPLOAD_DONE, within=10)
    answers = {u.id: cluster.offer_of(u) for u in contenders}
    winners = [uid for uid, a in answers.items() if a and "is booked" in a.text()]
    losers = [uid for uid, a in answers.items() if a and TAKEN in a.text()]
    assert len(winners) == 1 and len(losers) == 5, (winners, losers)

    bookings = await live_bookings(cluster)
    [booking] = bookings
    assert booking.organizer_id == winners[0] and booking.participant_ids == (BEN.id,)
    won = int(booking.start_at.timestamp())
    assert won == firsts[winners[0]]
    events = await query(
        cluster,
        "SELECT event_id FROM local_event_attendees WHERE attendee = :ben",
        ben=BEN.id,
    )
    assert len(events) == 1
    assert len(completed_uploads(cluster)) == 1
    for uid in losers:
        fresh = answers[uid]
        assert fresh is not None and fresh.buttons("book_slot"), "the loser gets fresh times"
        for start in starts_in(fresh):
            assert not booking.start_at.timestamp() <= start < booking.end_at.timestamp()

    # A fresh time is really free: the first loser books it, and Ben is still booked once a time.
    loser = next(u for u in contenders if u.id == losers[0])
    fresh_offer = answers[loser.id]
    assert fresh_offer is not None
    await cluster.click(fresh_offer, fresh_offer.buttons("book_slot")[0], user=loser, instance=1)
    await cluster.slack.wait_for(UPLOAD_DONE, count=2, within=10)
    bookings = await live_bookings(cluster)
    assert len(bookings) == 2
    assert_nobody_double_booked(bookings)


async def test_the_same_click_on_both_instances_books_once(cluster: Cluster) -> None:
    """One click delivered to both instances at once (twice each): one booking, one .ics."""
    user, partner = REQUESTERS[0], PARTNERS[0]
    offers = await ask_all(cluster, [(user, f"sync with <@{partner.id}> in the next 2 weeks")])
    offer = offers[user.id]
    button = offer.buttons("book_slot")[0]
    statuses = await asyncio.gather(
        *(cluster.click(offer, button, user=user, instance=n) for n in range(4))
    )
    assert statuses == [200] * 4

    async def confirmed() -> bool:
        rows = await query(cluster, "SELECT state FROM bookings")
        return [r.state for r in rows] == ["confirmed"]

    await wait_until(confirmed, what="the booking confirmed")
    await asyncio.sleep(0.5)  # let any duplicate that is still running show itself
    assert len(await live_bookings(cluster)) == 1
    assert len(await query(cluster, "SELECT event_id FROM local_events")) == 1
    assert len(completed_uploads(cluster)) == 1
    confirmations = [
        call
        for call in cluster.slack.calls(RESPONSE_URL)
        if call.ok and "is booked" in json.dumps(call.params)
    ]
    assert len(confirmations) == 1, "one confirmation, not one per delivery"
