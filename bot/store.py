"""Slotbot's storage: SQLite by default, PostgreSQL by URL, through SQLAlchemy's async engine.

Every row carries ``team_id`` and every query is scoped by it. The schema migrates itself on
start, one numbered step at a time, under a lock so that concurrent starts are safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from enum import Enum, StrEnum
from pathlib import Path
from time import monotonic
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot import direct
from bot.calendars import Attendee, CalendarEvent
from bot.models import (
    Booking,
    BookingState,
    OccurrenceChange,
    ScheduleObject,
    ScheduleObjectJSON,
    TimeSlot,
    WorkingHours,
    require_aware,
    zone_of,
)
from bot.recurrence import (
    FOREVER,
    booking_occurrences,
    checked_starts,
    occurrence_id,
    rule_of,
    series_end,
    starts_between,
)

__all__ = [
    "BookingConflict",
    "BookingMessage",
    "ClickStart",
    "Created",
    "Delivery",
    "EventStatus",
    "LocalEvent",
    "Offer",
    "OutboxEntry",
    "SchemaTooNewError",
    "Store",
    "UserSettings",
    "WebhookMessage",
    "database_url_from",
]

DATABASE_FILE = "slotbot.db"
# Any constant works; it only has to be the same in every Slotbot process.
_MIGRATION_LOCK_KEY = 0x510780
# Held (session-level) by the one instance analyzing and vacuuming the tables at a time.
_UPKEEP_LOCK_KEY = 0x510781

# When ``Store.analyze_and_vacuum`` stands in for autovacuum, it acts where autovacuum would
# with PostgreSQL's default settings (https://www.postgresql.org/docs/current/
# routine-vacuuming.html#AUTOVACUUM): ANALYZE once a table's changed rows since its last analyze
# exceed autovacuum_analyze_threshold (50) + autovacuum_analyze_scale_factor (0.1) × its live
# rows; VACUUM once its dead rows exceed autovacuum_vacuum_threshold (50) +
# autovacuum_vacuum_scale_factor (0.2) × its live rows.
ANALYZE_THRESHOLD = 50
ANALYZE_SCALE_FACTOR = 0.1
VACUUM_THRESHOLD = 50
VACUUM_SCALE_FACTOR = 0.2


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --- URLs -----------------------------------------------------------------------------------


def database_url_from(value: str | None, data_dir: Path) -> str:
    """The async SQLAlchemy URL for what a person wrote in ``DATABASE_URL``.

    Empty means ``slotbot.db`` in ``data_dir``; ``sqlite://`` and ``postgres(ql)://`` URLs get
    the async drivers; explicit drivers pass through. A SQLite file's directory is created.
    """
    text = (value or "").strip()
    if not text:
        path = data_dir / DATABASE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{path}"
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {text!r}")
    scheme = scheme.lower()
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    if scheme == "sqlite":
        scheme = "sqlite+aiosqlite"
    url = f"{scheme}://{rest}"
    if scheme.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return url


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """Slots shown to a requester, kept server-side; a button carries only ``id``."""

    id: str
    team_id: str
    requester_id: str
    channel_id: str | None
    thread_ts: str | None
    participant_ids: tuple[str, ...]
    duration_minutes: int
    title: str | None
    time_zone: str
    window: TimeSlot
    slots: tuple[TimeSlot, ...]
    page: int
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None = None
    recurrence: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True, slots=True)
class UserSettings:
    """One person's scheduling preferences; a person who never saved any gets these defaults."""

    working_hours: WorkingHours = field(default_factory=WorkingHours)
    time_zone: str | None = None  # overrides the zone in the Slack profile
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    minimum_notice_minutes: int = 60
    default_duration_minutes: int = 30
    horizon_days: int = 14
    reminder_lead_minutes: int | None = 10

    def __post_init__(self) -> None:
        if self.time_zone is not None:
            zone_of(self.time_zone)
        numbers = (
            self.buffer_before_minutes,
            self.buffer_after_minutes,
            self.minimum_notice_minutes,
            self.reminder_lead_minutes or 0,
        )
        if min(numbers) < 0:
            raise ValueError("buffers, notice and reminder lead are never negative")
        if self.default_duration_minutes <= 0 or self.horizon_days <= 0:
            raise ValueError("the default duration and the horizon must be positive")

    def to_json(self) -> dict[str, Any]:
        return {
            "working_hours": [
                [[start.strftime("%H:%M"), end.strftime("%H:%M")] for start, end in day]
                for day in self.working_hours.days
            ],
            "time_zone": self.time_zone,
            "buffer_before_minutes": self.buffer_before_minutes,
            "buffer_after_minutes": self.buffer_after_minutes,
            "minimum_notice_minutes": self.minimum_notice_minutes,
            "default_duration_minutes": self.default_duration_minutes,
            "horizon_days": self.horizon_days,
            "reminder_lead_minutes": self.reminder_lead_minutes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UserSettings:
        """Read saved settings; keys missing (older rows) take the defaults, unknown are ignored."""
        defaults = cls()
        hours = defaults.working_hours
        if "working_hours" in data:
            hours = WorkingHours(
                tuple(
                    tuple((time.fromisoformat(a), time.fromisoformat(b)) for a, b in day)
                    for day in data["working_hours"]
                )
            )
        known = {
            name: data[name]
            for name in (
                "time_zone",
                "buffer_before_minutes",
                "buffer_after_minutes",
                "minimum_notice_minutes",
                "default_duration_minutes",
                "horizon_days",
                "reminder_lead_minutes",
            )
            if name in data
        }
        return replace(defaults, working_hours=hours, **known)


class EventStatus(StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ClickStart:
    """What a click on an offer starts from, read in one statement (``Store.click_start``)."""

    offer: Offer | None  # expired ones too, until deleted
    booking: Booking | None  # the booking made from this offer, if any yet
    settings: UserSettings  # the clicking person's (the defaults if they never saved any)


@dataclass(frozen=True, slots=True)
class LocalEvent:
    """An event of the local calendar as stored."""

    event: CalendarEvent
    status: EventStatus
    ical_uid: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a booking's confirmation goes and how far delivering it got.

    ``reply_to`` is whatever the caller stored when it decided to book (opaque here);
    ``invite_file_id`` is the uploaded invite's id once known, ``invite_channel_id`` the
    conversation it is being shared into; ``delivering_until`` is a deliverer's lease.
    """

    state: BookingState
    reply_to: Mapping[str, Any]
    invite_file_id: str | None
    invite_channel_id: str | None
    delivering_until: datetime | None


@dataclass(frozen=True, slots=True)
class Created:
    """A booking just moved to created, and its delivery as it then stood."""

    booking: Booking
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A move or cancel of a booking on its way: decided in the store, then ``applying`` to
    the calendar, then ``applied`` (webhooks queued) and being delivered (the .ics shared);
    gone once delivered. ``sequence`` is the booking's after the change; ``payload`` is the
    caller's (opaque here); ``file_id`` and ``channel_id`` the .ics upload in progress;
    ``lease_until`` a worker's lease."""

    team_id: str
    booking_key: str
    sequence: int
    stage: str
    payload: Mapping[str, Any]
    file_id: str | None = None
    channel_id: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class BookingMessage:
    """A DM a booking owes one of its people, and how far sending it got.

    ``kind`` is ``reminder`` (before the meeting) or ``notice`` (of a booking, move or
    cancel); ``state`` is how far it got (``new`` until first worked on), ``sequence`` the
    booking's sequence it was made for, ``post_at`` when it is (or was) due, ``message_id``
    Slack's scheduled message id and ``digest`` its text's hash, for finding it again after a
    crash. For notices, ``note`` and ``about_start`` say what the message tells, ``told_note``,
    ``told_start`` and ``told_sequence`` what the person knew before it (the sequence: of a
    series' meetings changed on their own, those changed later are news). For reminders,
    ``about_start`` is the meeting reminded of (a series' next). ``lease_until`` is a
    worker's lease.
    """

    team_id: str
    booking_key: str
    user_id: str
    kind: str
    state: str = "new"
    sequence: int = -1
    post_at: datetime | None = None
    channel_id: str | None = None
    message_id: str | None = None
    digest: str | None = None
    note: str | None = None
    about_start: datetime | None = None
    told_note: str | None = None
    told_start: datetime | None = None
    lease_until: datetime | None = None
    told_sequence: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """One POST owed: ``body`` (the exact text that is signed and sent) to ``url``.

    ``event_id`` names the event; with ``url`` it makes the outbox row unique.
    """

    event_id: str
    team_id: str
    kind: str
    url: str
    body: str


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A webhook row of the outbox as stored, with how far delivering it got."""

    id: int
    message: WebhookMessage
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    lease_until: datetime | None
    delivered_at: datetime | None
    gave_up_at: datetime | None
    last_error: str | None


class BookingConflict(Exception):
    """A claim overlaps a live booking of one of its people (``existing`` is that key)."""

    def __init__(self, key: str, existing: str) -> None:
        super().__init__(f"booking {key} overlaps booking {existing}")
        self.key = key
        self.existing = existing


def _lock_key(team_id: str, user_id: str) -> int:
    """A stable signed 64-bit advisory-lock key for one person of one workspace."""
    digest = hashlib.sha256(f"slotbot-person:{team_id}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# Row counts and whether autovacuum tends each of the named tables (quoted, as in SQL): it does
# unless it is off on the server or the table says ``autovacuum_enabled = false``.
_TABLE_CHURN = sa.text(
    "SELECT t.name, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,"
    " current_setting('autovacuum')::boolean AND NOT EXISTS ("
    "   SELECT FROM pg_options_to_table(c.reloptions) AS o"
    "   WHERE o.option_name = 'autovacuum_enabled' AND NOT o.option_value::boolean"
    " ) AS autovacuum"
    " FROM unnest(:names) WITH ORDINALITY AS t(name, n)"
    " JOIN pg_stat_user_tables AS s ON s.relid = to_regclass(t.name)"
    " JOIN pg_class AS c ON c.oid = s.relid"
    " ORDER BY t.n"
).bindparams(sa.bindparam("names", type_=postgresql.ARRAY(sa.Text)))


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer Slotbot than this one."""


class _Unset(Enum):
    UNSET = "unset"


_UNSET = _Unset.UNSET


# --- column types ---------------------------------------------------------------------------


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An instant: ``timestamptz`` on PostgreSQL, fixed-width UTC ISO text on SQLite.

    The text form sorts like the instants it spells, so range queries work on both.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(32))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        instant = require_aware(value).astimezone(UTC)
        if dialect.name == "sqlite":
            return instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return instant

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        instant = datetime.fromisoformat(value) if isinstance(value, str) else value
        if instant.tzinfo is None:  # only text we wrote ourselves, which is UTC
            instant = instant.replace(tzinfo=UTC)
        return instant.astimezone(UTC)


_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


# --- schema ---------------------------------------------------------------------------------
#
# ``_define_v1`` is the schema as migration 1 creates it. When the schema changes, do not edit
# it: add a step to ``_MIGRATIONS`` and change the current tables below to match.


def _define_v1(md: sa.MetaData) -> None:
    sa.Table(
        "offers",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("requester_id", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(32)),
        sa.Column("thread_ts", sa.String(32)),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime()),
        sa.Index("ix_offers_expires_at", "expires_at"),
    )
    sa.Table(
        "bookings",
        md,
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("organizer_id", sa.String(32), nullable=False),
        sa.Column("participant_ids", _JSON, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("schedule", _JSON, nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("uid", sa.String(255), nullable=False),
        sa.Column("offer_id", sa.String(64), unique=True),
        sa.Column("channel_id", sa.String(32)),
        sa.Column("thread_ts", sa.String(32)),
        sa.Column("message_ts", sa.String(32)),
        sa.Column("event_link", sa.Text),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Index("ix_bookings_state_updated", "state", "updated_at"),
    )
    # One row per person on a booking (organizer included), so "my meetings" is an index lookup.
    sa.Table(
        "booking_members",
        md,
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("booking_key", sa.String(255), primary_key=True),
        sa.ForeignKeyConstraint(
            ["team_id", "booking_key"], ["bookings.team_id", "bookings.key"], ondelete="CASCADE"
        ),
    )
    sa.Table(
        "user_settings",
        md,
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("settings", _JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    sa.Table(
        "local_events",
        md,
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("calendar_id", sa.String(255), primary_key=True),
        sa.Column("event_id", sa.String(1024), primary_key=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("organizer", _JSON),
        sa.Column("attendees", _JSON, nullable=False),
        sa.Column("recurrence", _JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("ical_uid", sa.String(1100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Index("ix_local_events_calendar_start", "team_id", "calendar_id", "start_at"),
    )
    # Who attends a local event, keyed by user id and by lowercased email.
    sa.Table(
        "local_event_attendees",
        md,
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("attendee", sa.String(255), primary_key=True),
        sa.Column("calendar_id", sa.String(255), primary_key=True),
        sa.Column("event_id", sa.String(1024), primary_key=True),
        sa.ForeignKeyConstraint(
            ["team_id", "calendar_id", "event_id"],
            ["local_events.team_id", "local_events.calendar_id", "local_events.event_id"],
            ondelete="CASCADE",
        ),
    )
    sa.Table(
        "processed_events",
        md,
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Index("ix_processed_events_received_at", "received_at"),
    )


_SCHEMA_VERSION = sa.Table(
    "schema_version",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime(), nullable=False),
)


def _define_v3(md: sa.MetaData) -> None:
    # People's own Google accounts (per-user OAuth): the refresh token only ever encrypted.
    sa.Table(
        "google_accounts",
        md,
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("refresh_token", sa.Text, nullable=False),
        sa.Column("scopes", _JSON, nullable=False),
        sa.Column("connected_at", UTCDateTime(), nullable=False),
    )
    # Signed OAuth states already redeemed, kept until they would have expired anyway.
    sa.Table(
        "used_oauth_states",
        md,
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Index("ix_used_oauth_states_expires_at", "expires_at"),
    )
    # The last offer a person got while their own calendar could not be read.
    sa.Table(
        "pending_requests",
        md,
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("offer_id", sa.String(64), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def _v4_columns() -> dict[str, list[sa.Column[Any]]]:
    """What migration 4 adds: delivery progress on bookings, a lease on Slack events."""
    return {
        "bookings": [
            # Where the confirmation goes (channel, thread, response_url...), set at the claim.
            sa.Column("reply_to", _JSON),
            sa.Column("invite_file_id", sa.String(64)),
            sa.Column("invite_channel_id", sa.String(32)),
            sa.Column("delivering_until", UTCDateTime()),
        ],
        "processed_events": [
            # "handling" until the listener finished ("done"); a lapsed lease frees it again.
            sa.Column("state", sa.String(16), nullable=False, server_default="done"),
            sa.Column("lease_until", UTCDateTime()),
        ],
    }


def _define_v5(md: sa.MetaData) -> None:
    # Webhook deliveries still owed: one row per (event, url), kept after delivery for dedupe.
    sa.Table(
        "webhook_outbox",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime()),  # None once delivered or given up
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("delivered_at", UTCDateTime()),
        sa.Column("gave_up_at", UTCDateTime()),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("event_id", "url", name="uq_webhook_outbox_event_url"),
        sa.Index("ix_webhook_outbox_next_attempt_at", "next_attempt_at"),
    )


def _define_v6(md: sa.MetaData) -> None:
    # The DMs each booking owes its people (a reminder, the latest notice), one row per kind.
    sa.Table(
        "booking_messages",
        md,
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("booking_key", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("post_at", UTCDateTime()),
        sa.Column("channel_id", sa.String(32)),
        sa.Column("message_id", sa.String(64)),
        sa.Column("digest", sa.String(64)),
        sa.Column("note", sa.String(16)),
        sa.Column("about_start", UTCDateTime()),
        sa.Column("told_note", sa.String(16)),
        sa.Column("told_start", UTCDateTime()),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id", "booking_key"], ["bookings.team_id", "bookings.key"], ondelete="CASCADE"
        ),
    )


def _v7_columns() -> dict[str, list[sa.Column[Any]]]:
    """What migration 7 adds: recurring bookings and events (series end, one-off changes)."""
    return {
        "bookings": [
            # When a series' last occurrence ends (FOREVER without one); NULL for one meeting.
            sa.Column("series_end_at", UTCDateTime()),
            # Occurrences moved or cancelled on their own (OccurrenceChange.to_json each).
            sa.Column("exceptions", _JSON),
        ],
        "local_events": [
            sa.Column("series_end_at", UTCDateTime()),
            # An override row (one occurrence changed): the series' event id and the
            # occurrence's original start; its own event id is "<series id>_<YYYYMMDDTHHMMSSZ>".
            sa.Column("recurring_event_id", sa.String(1024)),
            sa.Column("original_start_at", UTCDateTime()),
        ],
    }


def _define_v8(md: sa.MetaData) -> None:
    # A booking's move or cancel until its .ics is delivered: one at a time per booking.
    sa.Table(
        "booking_changes",
        md,
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("booking_key", sa.String(255), primary_key=True),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("file_id", sa.String(64)),
        sa.Column("channel_id", sa.String(32)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id", "booking_key"], ["bookings.team_id", "bookings.key"], ondelete="CASCADE"
        ),
    )


def _v9_columns() -> dict[str, list[sa.Column[Any]]]:
    """What migration 9 adds: the booking sequence a person knew before a notice still
    waiting (NULL for rows from before: read as the row's own sequence)."""
    return {"booking_messages": [sa.Column("told_sequence", sa.Integer)]}


_V1 = sa.MetaData()
_define_v1(_V1)
_V3 = sa.MetaData()
_define_v3(_V3)
_V5 = sa.MetaData()
_define_v5(_V5)
_V6 = sa.MetaData()
_define_v1(_V6)  # for the foreign key only: create_all below makes booking_messages alone
_define_v6(_V6)
_V8 = sa.MetaData()
_define_v1(_V8)  # for the foreign key only
_define_v8(_V8)

metadata = sa.MetaData()
_define_v1(metadata)
_define_v3(metadata)
for _table, _columns in (*_v4_columns().items(), *_v7_columns().items()):
    for _column in _columns:
        metadata.tables[_table].append_column(_column)
offers = metadata.tables["offers"]
bookings = metadata.tables["bookings"]
booking_members = metadata.tables["booking_members"]
user_settings = metadata.tables["user_settings"]
local_events = metadata.tables["local_events"]
local_event_attendees = metadata.tables["local_event_attendees"]
processed_events = metadata.tables["processed_events"]
google_accounts = metadata.tables["google_accounts"]
used_oauth_states = metadata.tables["used_oauth_states"]
pending_requests = metadata.tables["pending_requests"]
_define_v5(metadata)
webhook_outbox = metadata.tables["webhook_outbox"]
_define_v6(metadata)
for _column in _v9_columns()["booking_messages"]:
    metadata.tables["booking_messages"].append_column(_column)
booking_messages = metadata.tables["booking_messages"]
_define_v8(metadata)
booking_changes = metadata.tables["booking_changes"]


async def _create_v1(conn: AsyncConnection) -> None:
    await conn.run_sync(_V1.create_all)


async def _index_attendance(conn: AsyncConnection) -> None:
    # free/busy asks "which events does this person attend", by person, not by event.
    await conn.execute(
        sa.text(
            "CREATE INDEX ix_local_event_attendees_attendee"
            " ON local_event_attendees (team_id, attendee)"
        )
    )


async def _create_v3(conn: AsyncConnection) -> None:
    await conn.run_sync(_V3.create_all)


async def _add_v4(conn: AsyncConnection) -> None:
    await _add_columns(conn, _v4_columns())


async def _add_columns(conn: AsyncConnection, tables: dict[str, list[sa.Column[Any]]]) -> None:
    dialect = conn.dialect
    for table, columns in tables.items():
        for column in columns:
            kind = column.type.dialect_impl(dialect)
            if isinstance(kind, UTCDateTime):
                kind = kind.load_dialect_impl(dialect)
            ddl = f"ALTER TABLE {table} ADD COLUMN {column.name} {kind.compile(dialect=dialect)}"
            default = column.server_default
            if isinstance(default, sa.DefaultClause):
                ddl += f" NOT NULL DEFAULT '{default.arg}'"
            await conn.execute(sa.text(ddl))


async def _create_v5(conn: AsyncConnection) -> None:
    await conn.run_sync(_V5.create_all)


async def _create_v6(conn: AsyncConnection) -> None:
    table = _V6.tables["booking_messages"]
    await conn.run_sync(lambda sync: table.create(sync))
    # Attendees of meetings booked before this step knew of them from the conversation: record
    # that, so the first reconcile sends them reminders but no belated "booked" notices.
    old_bookings, members = _V6.tables["bookings"], _V6.tables["booking_members"]
    known = (
        sa.select(
            members.c.team_id,
            members.c.booking_key,
            members.c.user_id,
            sa.literal("notice").label("kind"),
            sa.literal("none").label("state"),
            old_bookings.c.sequence,
            sa.literal("booked").label("note"),
            old_bookings.c.start_at,
            old_bookings.c.updated_at,
        )
        .join(
            old_bookings,
            sa.and_(
                old_bookings.c.team_id == members.c.team_id,
                old_bookings.c.key == members.c.booking_key,
            ),
        )
        .where(
            old_bookings.c.state.in_(["created", "confirmed"]),
            members.c.user_id != old_bookings.c.organizer_id,
        )
    )
    columns = [
        "team_id",
        "booking_key",
        "user_id",
        "kind",
        "state",
        "sequence",
        "note",
        "about_start",
        "updated_at",
    ]
    await conn.execute(table.insert().from_select(columns, known))


async def _create_v8(conn: AsyncConnection) -> None:
    table = _V8.tables["booking_changes"]
    await conn.run_sync(lambda sync: table.create(sync))


async def _add_v7(conn: AsyncConnection) -> None:
    await _add_columns(conn, _v7_columns())
    # Series stored before: their end is unknown here, so they count as endless (busy time may
    # then look for them too far ahead, never too little).
    for table in (bookings, local_events):
        keys = list(table.primary_key.columns)
        rows = (await conn.execute(sa.select(*keys, *_recurrence_columns(table)))).all()
        for row in rows:
            if _recurrence_of(table, row):
                await conn.execute(
                    table.update()
                    .where(*(column == getattr(row, column.name) for column in keys))
                    .values(series_end_at=FOREVER)
                )


async def _add_v9(conn: AsyncConnection) -> None:
    await _add_columns(conn, _v9_columns())


def _recurrence_columns(table: sa.Table) -> list[sa.Column[Any]]:
    return [table.c.schedule] if table is bookings else [table.c.recurrence]


def _recurrence_of(table: sa.Table, row: sa.Row[Any]) -> Any:
    return (row.schedule or {}).get("recurrence") if table is bookings else row.recurrence


_Migration = Callable[[AsyncConnection], Any]

# The ordered history of the schema: (version, what it does, the step). Append only.
_MIGRATIONS: tuple[tuple[int, str, _Migration], ...] = (
    (1, "offers, bookings, settings, local calendar, processed events", _create_v1),
    (2, "index local event attendance by person", _index_attendance),
    (3, "Google accounts, used OAuth states, pending requests", _create_v3),
    (4, "booking delivery progress and lease, Slack event leases", _add_v4),
    (5, "webhook outbox", _create_v5),
    (6, "reminders and notices owed per booking and person", _create_v6),
    (7, "recurring bookings and events: series end, occurrence changes", _add_v7),
    (8, "moves and cancels on their way to delivery", _create_v8),
    (9, "what a person knew of a series before a waiting notice", _add_v9),
)
LATEST_VERSION = _MIGRATIONS[-1][0]


class _OneStatement:
    """A connection that runs exactly one statement: what ``Store._write_one`` hands out."""

    def __init__(self, conn: direct.Connection) -> None:
        self._conn = conn
        self._used = False

    async def execute(
        self, statement: sa.Executable, parameters: direct.Parameters = None
    ) -> direct.Result:
        if self._used:
            raise RuntimeError("one statement only: a transaction of several is _write()")
        self._used = True
        return await self._conn.execute(statement, parameters)


# --- the store ------------------------------------------------------------------------------


class Store:
    """Slotbot's database. Build one with ``await Store.open(url)``; ``await close()`` at exit."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        # Writers on SQLite take the database lock up front (BEGIN IMMEDIATE), so a reader
        # never has to upgrade to a writer mid-transaction, which SQLite refuses without waiting.
        self._writer = engine.execution_options(slotbot_write=True)
        # SQLite: a read is one statement (or a few that need no common snapshot), so no
        # transaction around it (see ``_create_engine``).
        self._reader = engine.execution_options(slotbot_read=True)
        self._clock = clock
        self._dialect = engine.dialect.name
        # SQLite has one writer at a time; queueing in-process is cheaper than busy-waiting.
        self._write_lock = asyncio.Lock() if self._dialect == "sqlite" else None
        # Built once (see the statements after ``_DELIVERY_COLUMNS``), for this dialect.
        self._claim_insert = (
            self._insert(bookings).on_conflict_do_nothing().returning(bookings.c.key)
        )
        self._insert_local_event = (
            self._insert(local_events).on_conflict_do_nothing().returning(*local_events.c)
        )
        messages = booking_messages.c
        claim = self._insert(booking_messages)
        # Taken when the lease lapsed: the row's own values say until when (lease_until) and
        # now (updated_at), so that many rows go as one INSERT … VALUES … (no other parameter).
        self._claim_message = claim.on_conflict_do_update(
            index_elements=[
                messages.team_id,
                messages.booking_key,
                messages.user_id,
                messages.kind,
            ],
            set_={"lease_until": claim.excluded.lease_until},
            where=sa.or_(
                messages.lease_until.is_(None),
                messages.lease_until <= claim.excluded.updated_at,
            ),
        ).returning(*messages)

    @classmethod
    async def open(cls, url: str, *, clock: Callable[[], datetime] = _utc_now) -> Store:
        """Connect to ``url`` (see ``database_url_from``) and bring the schema up to date."""
        engine = _create_engine(url)
        store = cls(engine, clock)
        try:
            await store._migrate()
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self._engine.dispose()

    @property
    def dialect(self) -> str:
        return self._dialect

    @property
    def engine(self) -> AsyncEngine:
        """The engine, for the few tables others own on the same database (Slack installs)."""
        return self._engine

    async def schema_version(self) -> int:
        """The highest migration applied to this database."""
        async with self._engine.connect() as conn:
            return await _current_version(conn)

    # -- plumbing --

    # On PostgreSQL the store's statements run on the pooled asyncpg connection itself
    # (``bot.direct``): SQLAlchemy builds and compiles them, its execution layer is skipped.
    # On SQLite they run through SQLAlchemy.

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[direct.Connection]:
        """For reads: autocommit, each statement sees the latest committed data."""
        if self._dialect == "postgresql":
            async with direct.connect(self._engine, transaction=False) as conn:
                yield conn
        else:
            async with self._reader.connect() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[direct.Connection]:
        """One transaction, committed at the end of the block."""
        if self._dialect == "postgresql":
            async with direct.connect(self._engine, transaction=True) as conn:
                yield conn
        else:
            async with self._write_schema() as sa_conn:
                yield sa_conn

    @contextlib.asynccontextmanager
    async def _write_schema(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction through SQLAlchemy itself, for what ``bot.direct`` does not
        run (the migrations' DDL)."""
        lock = self._write_lock or contextlib.nullcontext()
        async with lock, self._writer.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _write_one(self) -> AsyncIterator[_OneStatement]:
        """For a write that is one statement, atomic by itself. On PostgreSQL it runs in
        autocommit: a transaction around one statement costs two more round trips (BEGIN,
        COMMIT) and two more commands for the server to process. On SQLite, the usual write
        transaction (it takes the write lock up front). A second statement is refused."""
        if self._dialect == "postgresql":
            async with direct.connect(self._engine, transaction=False) as conn:
                yield _OneStatement(conn)
        else:
            async with self._write() as sa_conn:
                yield _OneStatement(sa_conn)

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def _migrate(self) -> None:
        async with self._write_schema() as conn:
            if self._dialect == "postgresql":
                # Held until commit: a second process starting now waits, then finds it done.
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            await conn.run_sync(_SCHEMA_VERSION.create, checkfirst=True)
            current = await _current_version(conn)
            if current > LATEST_VERSION:
                raise SchemaTooNewError(
                    f"the database is at schema version {current}, this Slotbot knows up to "
                    f"{LATEST_VERSION}; upgrade Slotbot"
                )
            for version, description, step in _MIGRATIONS:
                if version > current:
                    await step(conn)
                    await conn.execute(
                        _SCHEMA_VERSION.insert().values(
                            version=version, description=description, applied_at=self._clock()
                        )
                    )

    # -- upkeep --

    async def autovacuum_is_off(self) -> bool:
        """Whether this is PostgreSQL with ``autovacuum`` off server-wide (False on SQLite)."""
        if self._dialect != "postgresql":
            return False
        async with self._read() as conn:
            on = await conn.execute(sa.text("SELECT current_setting('autovacuum')::boolean"))
            return not on.scalar_one()

    async def analyze_and_vacuum(self, also: Iterable[sa.Table] = ()) -> list[str]:
        """Do autovacuum's job on Slotbot's tables where autovacuum is not doing it; what was
        done, e.g. ``["analyze bookings", "vacuum booking_messages"]`` (table names only).

        On PostgreSQL only (SQLite: nothing, ``[]``), for every table Slotbot creates plus
        ``also`` (others' tables on the same database: Slack installs), and only those that
        autovacuum leaves alone: all of them when the server's ``autovacuum`` is off, else those
        with the storage parameter ``autovacuum_enabled = false``. Without it a table never gets
        planner statistics (the planner then takes a team's rows for a handful, and the overlap
        check of a click re-reads all the team's memberships for each booking in its slot) and
        dead rows are never reclaimed. A table is analyzed, or
        vacuumed and analyzed, past PostgreSQL's default thresholds (``ANALYZE_THRESHOLD`` and
        the other constants above), counted from ``pg_stat_user_tables``.

        One instance at a time: the round holds a session-level advisory lock, and an instance
        that finds it taken does nothing this time (``[]``). A table someone holds a
        conflicting lock on is skipped (``SKIP_LOCKED``, as autovacuum skips it), though still
        listed; the next round finds it due again.
        """
        if self._dialect != "postgresql":
            return []
        preparer = self._engine.dialect.identifier_preparer
        tables = {
            preparer.format_table(table): table.name
            for table in (*metadata.tables.values(), _SCHEMA_VERSION, *also)
        }
        done: list[str] = []
        # VACUUM cannot run in a transaction; and through SQLAlchemy, which can drop a
        # connection that failed to release the lock (``_unlock_upkeep``).
        async with self._engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            lock = sa.select(sa.func.pg_try_advisory_lock(_UPKEEP_LOCK_KEY))
            if not (await conn.execute(lock)).scalar_one():
                return done  # another instance is on it
            try:
                churn = (await conn.execute(_TABLE_CHURN, {"names": list(tables)})).all()
                for row in churn:
                    live, quoted = row.n_live_tup, row.name
                    if row.autovacuum:
                        continue
                    if row.n_dead_tup > VACUUM_THRESHOLD + VACUUM_SCALE_FACTOR * live:
                        await conn.execute(sa.text(f"VACUUM (ANALYZE, SKIP_LOCKED) {quoted}"))
                        done.append(f"vacuum {tables[quoted]}")
                    elif row.n_mod_since_analyze > ANALYZE_THRESHOLD + ANALYZE_SCALE_FACTOR * live:
                        await conn.execute(sa.text(f"ANALYZE (SKIP_LOCKED) {quoted}"))
                        done.append(f"analyze {tables[quoted]}")
            finally:
                await _unlock_upkeep(conn)
        return done

    # -- offers --

    async def create_offer(
        self,
        *,
        team_id: str,
        requester_id: str,
        participant_ids: Sequence[str],
        duration_minutes: int,
        time_zone: str,
        window: TimeSlot,
        slots: Sequence[TimeSlot],
        now: datetime,
        ttl: timedelta = timedelta(hours=24),
        title: str | None = None,
        channel_id: str | None = None,
        thread_ts: str | None = None,
        page: int = 0,
        recurrence: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> Offer:
        """Store a new offer under a fresh unguessable id (192 random bits, url-safe)."""
        zone_of(time_zone)
        offer = Offer(
            id=secrets.token_urlsafe(24),
            team_id=team_id,
            requester_id=requester_id,
            channel_id=channel_id,
            thread_ts=thread_ts,
            participant_ids=tuple(participant_ids),
            duration_minutes=duration_minutes,
            title=title,
            time_zone=time_zone,
            window=window,
            slots=tuple(slots),
            page=page,
            created_at=require_aware(now, "now").astimezone(UTC),
            expires_at=(now + ttl).astimezone(UTC),
            recurrence=tuple(recurrence),
            extra=dict(extra or {}),
        )
        async with self._write_one() as conn:
            await conn.execute(
                offers.insert().values(
                    id=offer.id,
                    team_id=team_id,
                    requester_id=requester_id,
                    channel_id=channel_id,
                    thread_ts=thread_ts,
                    payload=_offer_payload(offer),
                    created_at=offer.created_at,
                    expires_at=offer.expires_at,
                )
            )
        return offer

    async def get_offer(self, team_id: str, offer_id: str, now: datetime | None) -> Offer | None:
        """The offer, or None when unknown, expired at ``now``, or another team's.

        ``now=None`` finds an expired offer too (finishing a booking made from it).
        """
        query = _GET_OFFER if now is None else _GET_LIVE_OFFER
        async with self._read() as conn:
            row = (
                await conn.execute(query, {"b_id": offer_id, "b_team": team_id, "b_now": now})
            ).first()
        return _offer_from_row(row) if row else None

    async def update_offer_page(
        self,
        team_id: str,
        offer_id: str,
        *,
        page: int,
        slots: Sequence[TimeSlot],
        now: datetime,
    ) -> Offer | None:
        """Record the page and slots now shown; None when the offer is gone or closed."""
        async with self._write() as conn:
            row = (
                await conn.execute(
                    sa.select(offers).where(
                        offers.c.id == offer_id,
                        offers.c.team_id == team_id,
                        offers.c.expires_at > now,
                        offers.c.closed_at.is_(None),
                    )
                )
            ).first()
            if row is None:
                return None
            offer = replace(_offer_from_row(row), page=page, slots=tuple(slots))
            await conn.execute(
                offers.update()
                .where(offers.c.id == offer_id, offers.c.team_id == team_id)
                .values(payload=_offer_payload(offer))
            )
        return offer

    async def close_offer(self, team_id: str, offer_id: str, now: datetime) -> bool:
        """Close an open offer; True only for the call that closed it."""
        async with self._write() as conn:
            return await self._close_offer(conn, team_id, offer_id, now)

    @staticmethod
    async def _close_offer(
        conn: direct.Connection, team_id: str, offer_id: str, now: datetime
    ) -> bool:
        params = {"b_id": offer_id, "b_team": team_id, "closed_at": now}
        return bool((await conn.execute(_CLOSE_OFFER, params)).rowcount)

    async def delete_expired_offers(self, before: datetime) -> int:
        """Forget offers that expired before ``before`` (all teams); the number deleted."""
        async with self._write_one() as conn:
            result = await conn.execute(offers.delete().where(offers.c.expires_at <= before))
        return int(result.rowcount)

    # -- bookings --

    async def claim_booking(
        self,
        booking: Booking,
        *,
        exclusive: bool = False,
        reply_to: Mapping[str, Any] | None = None,
    ) -> tuple[Booking, bool]:
        """Insert ``booking`` unless its key (or its offer) already has one.

        Returns the booking now stored and whether this call created it; one atomic
        insert-or-get, so of any number of concurrent claims exactly one gets True.

        With ``exclusive``, the claim also fails with ``BookingConflict`` when any of its
        people already has a live booking overlapping it. The check and the insert are one
        step for every process on the database: PostgreSQL takes a transaction-scoped
        advisory lock per person (in a fixed order, so two claims cannot deadlock); SQLite
        serializes every write transaction (BEGIN IMMEDIATE).

        ``reply_to`` is stored with a new booking: where its confirmation must go, so that
        whoever finishes the booking (a retried click, the reconcile) can deliver it.
        """
        now = self._clock()
        slot = booking.slot
        row = {
            "team_id": booking.team_id,
            "key": booking.key,
            "organizer_id": booking.organizer_id,
            "participant_ids": list(booking.participant_ids),
            "title": booking.title,
            "schedule": booking.schedule.to_json(),
            "start_at": slot.start,
            "end_at": slot.end,
            "state": booking.state.value,
            "sequence": booking.sequence,
            "uid": booking.uid,
            "offer_id": booking.offer_id,
            "channel_id": booking.channel_id,
            "thread_ts": booking.thread_ts,
            "message_ts": booking.message_ts,
            "event_link": booking.event_link,
            "reply_to": dict(reply_to) if reply_to is not None else None,
            "series_end_at": _series_end(booking.schedule),
            "exceptions": [change.to_json() for change in booking.exceptions] or None,
            "created_at": now,
            "updated_at": now,
        }
        members = sorted({booking.organizer_id, *booking.participant_ids})
        async with self._write() as conn:
            if exclusive:
                await self._check_free(conn, booking, members, slot)
            if self._dialect == "postgresql":
                # The booking and its members in one statement (one round trip fewer while
                # the people's locks are held).
                claim = _insert_indexed("bookings", tuple(row))
                inserted = (await conn.execute(claim, {**row, "b_members": members})).first()
                if inserted is not None:
                    return booking, True
            else:
                inserted = (await conn.execute(self._claim_insert, row)).first()
                if inserted is not None:
                    await conn.execute(
                        booking_members.insert(),
                        [
                            {"team_id": booking.team_id, "user_id": u, "booking_key": booking.key}
                            for u in members
                        ],
                    )
                    return booking, True
            same = bookings.c.key == booking.key
            if booking.offer_id is not None:
                same = sa.or_(same, bookings.c.offer_id == booking.offer_id)
            existing = (
                await conn.execute(
                    sa.select(bookings)
                    .where(bookings.c.team_id == booking.team_id, same)
                    .order_by((bookings.c.key == booking.key).desc())
                    .limit(1)
                )
            ).first()
        if existing is None:
            # Only another team's offer id can collide like this; offer ids are random.
            raise RuntimeError(f"booking {booking.key!r} conflicts with a row of another team")
        return _booking_from_row(existing), False

    async def _check_free(
        self, conn: direct.Connection, booking: Booking, members: Sequence[str], slot: TimeSlot
    ) -> None:
        if self._dialect == "postgresql":
            # One lock per person, all in one round trip with the transaction's BEGIN, always
            # in ascending key order so that two claims sharing people cannot deadlock.
            assert isinstance(conn, direct.DirectConnection)
            await conn.lock(sorted({_lock_key(booking.team_id, user) for user in members}))
        # A series must be clear on the occurrences it was offered for (the ones checked).
        wanted = _claimed_slots(booking, slot)
        low, high = min(s.start for s in wanted), max(s.end for s in wanted)
        params = {
            "b_team": booking.team_id,
            "b_members": list(members),
            "b_key": booking.key,
            "b_low": low,
            "b_high": high,
        }
        rows = (await conn.execute(_OVERLAPPING[self._dialect], params)).all()
        for row in rows:
            other = _booking_from_row(row)
            for occurrence in booking_occurrences(other, low, high):
                if any(occurrence.slot.overlaps(mine) for mine in wanted):
                    raise BookingConflict(booking.key, other.key)

    async def move_booking(
        self,
        team_id: str,
        key: str,
        *,
        schedule: ScheduleObject,
        expect_sequence: int,
        change: Mapping[str, Any] | None = None,
        lease_until: datetime | None = None,
    ) -> Booking | None:
        """Move a live booking to ``schedule``'s time and raise its sequence by one.

        A compare-and-set on the sequence: None unless the booking is live (created or
        confirmed) at ``expect_sequence``, so of several racing moves exactly one wins. Like an
        exclusive claim, it fails with ``BookingConflict`` when the new time overlaps another
        live booking of anyone on it (the booking itself excluded), checked under the same
        per-person locks as ``claim_booking``.

        With ``change`` the move is recorded, in the same transaction, as a ``PendingChange``
        (stage ``applying``) leased until ``lease_until``: see ``begin_change``.
        """
        slot = schedule.slot
        async with self._write() as conn:
            current = await _live_at(conn, team_id, key, expect_sequence)
            if current is None:
                return None
            members = sorted({current.organizer_id, *current.participant_ids})
            await self._check_free(conn, replace(current, schedule=schedule), members, slot)
            return await self._advance(
                conn,
                current,
                {
                    "schedule": schedule.to_json(),
                    "start_at": slot.start,
                    "end_at": slot.end,
                    "series_end_at": _series_end(schedule),
                    # A series moved as a whole starts afresh: its one-off changes go.
                    "exceptions": None,
                },
                change,
                lease_until,
            )

    async def change_occurrence(
        self,
        team_id: str,
        key: str,
        change: OccurrenceChange,
        *,
        expect_sequence: int,
        pending: Mapping[str, Any] | None = None,
        lease_until: datetime | None = None,
    ) -> Booking | None:
        """Move (``change.slot``) or cancel (None) one occurrence of a live recurring booking,
        keep it among the booking's exceptions (replacing an earlier change of that occurrence)
        and raise the booking's sequence to ``change.sequence``.

        A compare-and-set on ``expect_sequence`` like ``move_booking``; a moved occurrence is
        checked for overlaps with anyone's other live bookings under the same locks. With
        ``pending``, recorded as a pending change like ``move_booking``'s ``change``.
        """
        async with self._write() as conn:
            current = await _live_at(conn, team_id, key, expect_sequence)
            if current is None:
                return None
            if change.slot is not None:
                members = sorted({current.organizer_id, *current.participant_ids})
                single = replace(
                    current,
                    schedule=ScheduleObject.from_slot(change.slot, "UTC"),
                    exceptions=(),
                )
                await self._check_free(conn, single, members, change.slot)
            kept = [c for c in current.exceptions if c.original_start != change.original_start]
            changes = sorted([*kept, change], key=lambda c: c.original_start)
            ends = [_series_end(current.schedule) or current.slot.end]
            ends += [c.slot.end for c in changes if c.slot is not None]
            values = {"exceptions": [c.to_json() for c in changes], "series_end_at": max(ends)}
            return await self._advance(conn, current, values, pending, lease_until)

    async def cancel_booking(
        self,
        team_id: str,
        key: str,
        *,
        expect_sequence: int,
        change: Mapping[str, Any] | None = None,
        lease_until: datetime | None = None,
    ) -> Booking | None:
        """Mark a live booking cancelled and raise its sequence by one.

        A compare-and-set: None unless it is live (created or confirmed) at ``expect_sequence``,
        so a double click or a retry cancels it once, and a move in between is not lost. With
        ``change``, recorded as a pending change like ``move_booking``'s.
        """
        async with self._write() as conn:
            current = await _live_at(conn, team_id, key, expect_sequence)
            if current is None:
                return None
            values = {"state": BookingState.CANCELLED.value}
            return await self._advance(conn, current, values, change, lease_until)

    # -- moves and cancels on their way: the pending change of a booking --

    async def _advance(
        self,
        conn: direct.Connection,
        current: Booking,
        values: Mapping[str, Any],
        change: Mapping[str, Any] | None,
        lease_until: datetime | None,
    ) -> Booking | None:
        """Write ``values`` to a booking read live at its sequence in this transaction, raising
        the sequence by one (None if another writer got there first), and with ``change``
        record it as a pending change."""
        sequence = current.sequence + 1
        row = (
            await conn.execute(
                bookings.update()
                .where(
                    bookings.c.team_id == current.team_id,
                    bookings.c.key == current.key,
                    bookings.c.state.in_([s.value for s in BookingState if s.is_live]),
                    bookings.c.sequence == current.sequence,
                )
                .values(**values, sequence=sequence, updated_at=self._clock())
                .returning(*bookings.c)
            )
        ).first()
        if row is None:
            return None
        if change is not None:
            await self._begin_change(
                conn, current.team_id, current.key, sequence, change, lease_until
            )
        return _booking_from_row(row)

    async def _begin_change(
        self,
        conn: direct.Connection,
        team_id: str,
        key: str,
        sequence: int,
        payload: Mapping[str, Any],
        lease_until: datetime | None,
    ) -> None:
        """Record a change just decided (stage ``applying``), replacing an earlier change of
        the booking still on its way: the newer .ics supersedes it."""
        where = (booking_changes.c.team_id == team_id, booking_changes.c.booking_key == key)
        await conn.execute(booking_changes.delete().where(*where))
        await conn.execute(
            booking_changes.insert().values(
                team_id=team_id,
                booking_key=key,
                sequence=sequence,
                stage="applying",
                payload=dict(payload),
                lease_until=lease_until,
                updated_at=self._clock(),
            )
        )

    async def change_applied(
        self,
        team_id: str,
        key: str,
        sequence: int,
        *,
        webhooks: Sequence[WebhookMessage] = (),
        close_offer: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """The calendar follows the change: move it to ``applied`` and, in the same
        transaction, queue its webhooks and close the offer it was picked from. False (and
        nothing done) unless the change at ``sequence`` was still applying."""
        when = now or self._clock()
        async with self._write() as conn:
            result = await conn.execute(
                booking_changes.update()
                .where(
                    booking_changes.c.team_id == team_id,
                    booking_changes.c.booking_key == key,
                    booking_changes.c.sequence == sequence,
                    booking_changes.c.stage == "applying",
                )
                .values(stage="applied", updated_at=self._clock())
            )
            if not result.rowcount:
                return False
            if webhooks:
                await self._insert_webhooks(conn, webhooks, when)
            if close_offer is not None:
                await self._close_offer(conn, team_id, close_offer, when)
        return True

    async def lease_change(
        self, team_id: str, key: str, now: datetime, until: datetime
    ) -> PendingChange | None:
        """Take the booking's pending change until ``until``; None when there is none or
        another worker's lease has not lapsed. A compare-and-set, like ``lease_delivery``."""
        async with self._write_one() as conn:
            row = (
                await conn.execute(
                    booking_changes.update()
                    .where(
                        booking_changes.c.team_id == team_id,
                        booking_changes.c.booking_key == key,
                        sa.or_(
                            booking_changes.c.lease_until.is_(None),
                            booking_changes.c.lease_until <= now,
                        ),
                    )
                    .values(lease_until=until)
                    .returning(*booking_changes.c)
                )
            ).first()
        return _pending_change_from_row(row) if row else None

    async def get_change(self, team_id: str, key: str) -> PendingChange | None:
        """The booking's pending change, if one is on its way."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    sa.select(booking_changes).where(
                        booking_changes.c.team_id == team_id,
                        booking_changes.c.booking_key == key,
                    )
                )
            ).first()
        return _pending_change_from_row(row) if row else None

    async def record_change_file(
        self, team_id: str, key: str, sequence: int, *, file_id: str, channel_id: str
    ) -> None:
        """Note the change's .ics upload before it can be shared (found again after a crash)."""
        async with self._write_one() as conn:
            await conn.execute(
                booking_changes.update()
                .where(
                    booking_changes.c.team_id == team_id,
                    booking_changes.c.booking_key == key,
                    booking_changes.c.sequence == sequence,
                )
                .values(file_id=file_id, channel_id=channel_id, updated_at=self._clock())
            )

    async def release_change(self, team_id: str, key: str) -> None:
        """Give up a change's lease (the attempt failed): the next may start at once."""
        async with self._write_one() as conn:
            await conn.execute(
                booking_changes.update()
                .where(booking_changes.c.team_id == team_id, booking_changes.c.booking_key == key)
                .values(lease_until=None)
            )

    async def finish_change(self, team_id: str, key: str, sequence: int) -> bool:
        """The change at ``sequence`` is delivered (a newer one, if any, stays on its way)."""
        async with self._write_one() as conn:
            result = await conn.execute(
                booking_changes.delete().where(
                    booking_changes.c.team_id == team_id,
                    booking_changes.c.booking_key == key,
                    booking_changes.c.sequence == sequence,
                )
            )
        return bool(result.rowcount)

    async def unfinished_changes(
        self, now: datetime, settle: timedelta, *, limit: int = 100
    ) -> list[PendingChange]:
        """Pending changes nobody works on, all teams, oldest first: a lapsed lease, or no
        lease and untouched for ``settle``."""
        query = (
            sa.select(booking_changes)
            .where(
                sa.or_(
                    booking_changes.c.lease_until <= now,
                    sa.and_(
                        booking_changes.c.lease_until.is_(None),
                        booking_changes.c.updated_at < self._clock() - settle,
                    ),
                )
            )
            .order_by(booking_changes.c.updated_at)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_pending_change_from_row(row) for row in rows]

    async def booked_intervals(
        self, team_id: str, user_ids: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, list[TimeSlot]]:
        """Each person's live (not cancelled) bookings overlapping ``[start, end)``; a series
        counts with each occurrence, moved ones where they went and cancelled ones not at all."""
        found: dict[str, list[TimeSlot]] = {}
        params = {"b_team": team_id, "b_users": list(user_ids), "b_start": start, "b_end": end}
        async with self._read() as conn:
            rows = (await conn.execute(_BOOKED[self._dialect], params)).all()
        for row in rows:
            for occurrence in booking_occurrences(_booking_from_row(row), start, end):
                found.setdefault(row.user_id, []).append(occurrence.slot)
        return found

    async def click_start(self, team_id: str, offer_id: str, key: str, user_id: str) -> ClickStart:
        """The offer (expired too, as ``get_offer(…, None)``), the booking ``key`` and
        ``user_id``'s settings, in one statement: what a click on an offer starts from."""
        params = {"b_id": offer_id, "b_team": team_id, "b_key": key, "b_user": user_id}
        async with self._read() as conn:
            row = (await conn.execute(_CLICK_START, params)).one()
        return ClickStart(
            offer=_offer_from_row(_prefixed(row, "o_")) if row.o_id is not None else None,
            booking=_booking_from_row(_prefixed(row, "b_")) if row.b_key is not None else None,
            settings=UserSettings.from_json(row.s_settings)
            if row.s_settings is not None
            else UserSettings(),
        )

    async def get_booking(self, team_id: str, key: str) -> Booking | None:
        async with self._read() as conn:
            row = (await conn.execute(_GET_BOOKING, {"b_team": team_id, "b_key": key})).first()
        return _booking_from_row(row) if row else None

    async def update_booking(
        self,
        team_id: str,
        key: str,
        *,
        expect_state: BookingState | None = None,
        state: BookingState | None = None,
        sequence: int | None = None,
        schedule: ScheduleObject | None = None,
        uid: str | None = None,
        exceptions: Sequence[OccurrenceChange] | None = None,
        drop_change: int | None = None,
        channel_id: str | _Unset | None = _UNSET,
        thread_ts: str | _Unset | None = _UNSET,
        message_ts: str | _Unset | None = _UNSET,
        event_link: str | _Unset | None = _UNSET,
    ) -> Booking | None:
        """Change the given fields and return the result.

        With ``expect_state`` it is a compare-and-set: None unless the booking was in that
        state, so only one of several racing callers moves it on. None too for an unknown key.
        ``drop_change`` (a sequence) forgets that pending change in the same transaction (a
        change taken back because the calendar refused it).
        """
        values: dict[str, Any] = {"updated_at": self._clock()}
        if state is not None:
            values["state"] = state.value
        if sequence is not None:
            values["sequence"] = sequence
        if uid is not None:
            values["uid"] = uid
        if schedule is not None:
            slot = schedule.slot
            values.update(
                schedule=schedule.to_json(),
                start_at=slot.start,
                end_at=slot.end,
                series_end_at=_series_end(schedule),
            )
        if exceptions is not None:
            values["exceptions"] = [change.to_json() for change in exceptions] or None
        for name, value in (
            ("channel_id", channel_id),
            ("thread_ts", thread_ts),
            ("message_ts", message_ts),
            ("event_link", event_link),
        ):
            if value is not _UNSET:
                values[name] = value
        where = [bookings.c.team_id == team_id, bookings.c.key == key]
        if expect_state is not None:
            where.append(bookings.c.state == expect_state.value)
        async with self._write() as conn:
            result = await conn.execute(bookings.update().where(*where).values(**values))
            if not result.rowcount:
                return None
            if drop_change is not None:
                await conn.execute(
                    booking_changes.delete().where(
                        booking_changes.c.team_id == team_id,
                        booking_changes.c.booking_key == key,
                        booking_changes.c.sequence == drop_change,
                    )
                )
            row = (await conn.execute(sa.select(bookings).where(*where[:2]))).one()
        return _booking_from_row(row)

    async def bookings_for_user(
        self,
        team_id: str,
        user_id: str,
        after: datetime,
        *,
        include_cancelled: bool = False,
        limit: int = 50,
    ) -> list[Booking]:
        """Bookings the user organizes or attends that end after ``after``, soonest first (a
        series until its last occurrence ends, in the order of its first)."""
        query = (
            sa.select(bookings)
            .join(
                booking_members,
                _membership(),
            )
            .where(
                booking_members.c.team_id == team_id,
                booking_members.c.user_id == user_id,
                _series_or_end() > after,
            )
            .order_by(bookings.c.start_at, bookings.c.key)
            .limit(limit)
        )
        if not include_cancelled:
            query = query.where(bookings.c.state != BookingState.CANCELLED.value)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_booking_from_row(row) for row in rows]

    async def pending_bookings(self, before: datetime, *, limit: int = 100) -> list[Booking]:
        """Unfinished bookings (pending or created) last touched before ``before``, all teams."""
        query = (
            sa.select(bookings)
            .where(
                bookings.c.state.in_([BookingState.PENDING.value, BookingState.CREATED.value]),
                bookings.c.updated_at < before,
            )
            .order_by(bookings.c.updated_at)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_booking_from_row(row) for row in rows]

    # -- delivering bookings --

    async def get_delivery(self, team_id: str, key: str) -> Delivery | None:
        """The booking's delivery record; None for an unknown key."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    sa.select(*_DELIVERY_COLUMNS).where(
                        bookings.c.team_id == team_id, bookings.c.key == key
                    )
                )
            ).first()
        return _delivery_from_row(row) if row else None

    async def set_reply_to(self, team_id: str, key: str, reply_to: Mapping[str, Any]) -> None:
        """Point an undelivered booking's confirmation at a newer place (a retried click's)."""
        async with self._write_one() as conn:
            await conn.execute(
                bookings.update()
                .where(
                    bookings.c.team_id == team_id,
                    bookings.c.key == key,
                    bookings.c.state.in_([BookingState.PENDING.value, BookingState.CREATED.value]),
                )
                .values(reply_to=dict(reply_to))
            )

    async def lease_delivery(
        self, team_id: str, key: str, now: datetime, until: datetime
    ) -> Delivery | None:
        """Take the right to deliver a created booking until ``until``; None if it is not
        created (still pending, or delivered) or another deliverer's lease has not lapsed.

        A compare-and-set: of any number of racing deliverers, on any instance, one wins.
        """
        async with self._write_one() as conn:
            row = (
                await conn.execute(
                    _LEASE_DELIVERY,
                    {"b_team": team_id, "b_key": key, "b_now": now, "delivering_until": until},
                )
            ).first()
        return _delivery_from_row(row) if row else None

    async def record_invite(
        self, team_id: str, key: str, *, file_id: str | None, channel_id: str | None
    ) -> None:
        """Note the invite's file id and the conversation it is being shared into."""
        async with self._write_one() as conn:
            await conn.execute(
                _RECORD_INVITE,
                {
                    "b_team": team_id,
                    "b_key": key,
                    "invite_file_id": file_id,
                    "invite_channel_id": channel_id,
                },
            )

    async def release_delivery(self, team_id: str, key: str) -> None:
        """Give up a delivery lease (the attempt failed) so that the next try need not wait."""
        async with self._write_one() as conn:
            await conn.execute(
                bookings.update()
                .where(bookings.c.team_id == team_id, bookings.c.key == key)
                .values(delivering_until=None)
            )

    async def finish_delivery(
        self, team_id: str, key: str, *, channel_id: str | None, message_ts: str | None
    ) -> Booking | None:
        """Mark a created booking confirmed (delivered) and drop its lease; None unless it was
        created."""
        async with self._write_one() as conn:
            row = (
                await conn.execute(
                    _FINISH_DELIVERY,
                    {
                        "b_team": team_id,
                        "b_key": key,
                        "state": BookingState.CONFIRMED.value,
                        "channel_id": channel_id,
                        "message_ts": message_ts,
                        "delivering_until": None,
                        "updated_at": self._clock(),
                    },
                )
            ).first()
        return _booking_from_row(row) if row else None

    async def unfinished_bookings(
        self, now: datetime, settle: timedelta, *, limit: int = 100
    ) -> list[Booking]:
        """Pending or created bookings nobody is working on, all teams, oldest first.

        That is: a delivery lease lapsed at ``now``, or no lease and untouched for ``settle``
        (a click still creating the event touched it more recently).
        """
        settled_before = self._clock() - settle
        query = (
            sa.select(bookings)
            .where(
                bookings.c.state.in_([BookingState.PENDING.value, BookingState.CREATED.value]),
                sa.or_(
                    bookings.c.delivering_until <= now,
                    sa.and_(
                        bookings.c.delivering_until.is_(None),
                        bookings.c.updated_at < settled_before,
                    ),
                ),
            )
            .order_by(bookings.c.updated_at)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_booking_from_row(row) for row in rows]

    # -- webhooks: the outbox --

    async def mark_booking_created(
        self,
        team_id: str,
        key: str,
        *,
        uid: str,
        schedule: ScheduleObject,
        event_link: str | None,
        announce: Callable[[Booking], Sequence[WebhookMessage]] | None = None,
        now: datetime | None = None,
        close_offer: str | None = None,
        lease_until: datetime | None = None,
    ) -> Created | None:
        """Move a pending booking to created (a compare-and-set: None unless it was pending)
        and, in the same transaction, enqueue the webhooks ``announce`` makes for it, due at
        ``now`` (default: the store's clock), and close the offer ``close_offer``.

        With ``lease_until`` the caller also takes the right to deliver it until then, as
        ``lease_delivery`` would: one round trip where a click creates and then delivers."""
        slot = schedule.slot
        values = {
            "b_team": team_id,
            "b_key": key,
            "state": BookingState.CREATED.value,
            "uid": uid,
            "schedule": schedule.to_json(),
            "start_at": slot.start,
            "end_at": slot.end,
            "event_link": event_link,
            "updated_at": self._clock(),
            "delivering_until": lease_until,
        }
        if announce is None and close_offer is not None and self._dialect == "postgresql":
            # Both updates in one statement (no webhooks to queue): atomic by itself.
            values.update(b_id=close_offer, closed_at=now or self._clock())
            async with self._write_one() as one:
                row = (await one.execute(_MARK_CREATED_CLOSING_OFFER, values)).first()
            return _created_from_row(row) if row else None
        async with self._write() as conn:
            row = (await conn.execute(_MARK_CREATED, values)).first()
            if row is None:
                return None
            created = _created_from_row(row)
            if announce is not None:
                await self._insert_webhooks(conn, announce(created.booking), now or self._clock())
            if close_offer is not None:
                await self._close_offer(conn, team_id, close_offer, now or self._clock())
        return created

    async def enqueue_webhooks(self, messages: Sequence[WebhookMessage], now: datetime) -> int:
        """Add webhook rows due at ``now``; an (event, url) already queued is skipped.
        The number added."""
        async with self._write() as conn:
            return await self._insert_webhooks(conn, messages, now)

    async def _insert_webhooks(
        self, conn: direct.Connection, messages: Sequence[WebhookMessage], now: datetime
    ) -> int:
        added = 0
        for message in messages:
            result = await conn.execute(
                self._insert(webhook_outbox)
                .values(
                    event_id=message.event_id,
                    team_id=message.team_id,
                    kind=message.kind,
                    url=message.url,
                    body=message.body,
                    attempts=0,
                    created_at=now,
                    next_attempt_at=now,
                )
                .on_conflict_do_nothing()
            )
            added += int(result.rowcount or 0)
        return added

    async def claim_webhooks(
        self, now: datetime, lease_until: datetime, *, limit: int = 20
    ) -> list[OutboxEntry]:
        """Lease up to ``limit`` webhook rows due at ``now`` (earliest first) to one sender.

        Rows another sender leased are skipped (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
        serialized writes on SQLite), so instances sharing a database never send a row twice
        at once; a sender that died frees its rows when the lease lapses.
        """
        due = (
            sa.select(webhook_outbox.c.id)
            .where(
                webhook_outbox.c.next_attempt_at <= now,
                webhook_outbox.c.delivered_at.is_(None),
                webhook_outbox.c.gave_up_at.is_(None),
                sa.or_(webhook_outbox.c.lease_until.is_(None), webhook_outbox.c.lease_until <= now),
            )
            .order_by(webhook_outbox.c.next_attempt_at, webhook_outbox.c.id)
            .limit(limit)
        )
        if self._dialect == "postgresql":
            due = due.with_for_update(skip_locked=True)
        async with self._write() as conn:
            ids = [row[0] for row in (await conn.execute(due)).all()]
            if not ids:
                return []
            await conn.execute(
                webhook_outbox.update()
                .where(webhook_outbox.c.id.in_(ids))
                .values(lease_until=lease_until)
            )
            rows = (
                await conn.execute(
                    sa.select(webhook_outbox)
                    .where(webhook_outbox.c.id.in_(ids))
                    .order_by(webhook_outbox.c.next_attempt_at, webhook_outbox.c.id)
                )
            ).all()
        return [_outbox_entry_from_row(row) for row in rows]

    async def webhook_delivered(self, entry_id: int, now: datetime) -> None:
        """The receiver accepted the row (2xx): it is never sent again."""
        async with self._write_one() as conn:
            await conn.execute(
                webhook_outbox.update()
                .where(webhook_outbox.c.id == entry_id)
                .values(
                    attempts=webhook_outbox.c.attempts + 1,
                    delivered_at=now,
                    next_attempt_at=None,
                    lease_until=None,
                    last_error=None,
                )
            )

    async def webhook_failed(
        self, entry_id: int, now: datetime, *, error: str, retry_at: datetime | None
    ) -> None:
        """An attempt failed: try again at ``retry_at``, or give up when it is None."""
        values: dict[str, Any] = {
            "attempts": webhook_outbox.c.attempts + 1,
            "lease_until": None,
            "last_error": error[:500],
            "next_attempt_at": retry_at,
        }
        if retry_at is None:
            values["gave_up_at"] = now
        async with self._write_one() as conn:
            await conn.execute(
                webhook_outbox.update().where(webhook_outbox.c.id == entry_id).values(**values)
            )

    async def release_webhooks(self, entry_ids: Sequence[int]) -> None:
        """Drop the leases of rows a stopping sender did not get to (they stay due)."""
        if not entry_ids:
            return
        async with self._write_one() as conn:
            await conn.execute(
                webhook_outbox.update()
                .where(
                    webhook_outbox.c.id.in_(list(entry_ids)),
                    webhook_outbox.c.delivered_at.is_(None),
                )
                .values(lease_until=None)
            )

    async def webhook_entries(self, team_id: str | None = None) -> list[OutboxEntry]:
        """Every outbox row (of one team, if given), oldest first: for operators and tests."""
        query = sa.select(webhook_outbox).order_by(webhook_outbox.c.id)
        if team_id is not None:
            query = query.where(webhook_outbox.c.team_id == team_id)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_outbox_entry_from_row(row) for row in rows]

    # -- the DMs a booking owes its people: reminders and notices --

    async def claim_booking_messages(
        self,
        team_id: str,
        wanted: Sequence[tuple[str, str, str]],
        now: datetime,
        until: datetime,
    ) -> list[BookingMessage]:
        """Take the right to work on reminders or notices, each a (booking key, person,
        kind), until ``until``: the rows now leased to this worker (state ``new`` the first
        time), in the order asked; a row another worker's lease still covers at ``now`` is
        left out. Of racing workers, on any instance, one wins each row.
        """
        if not wanted:
            return []
        # One statement for them all (SQLAlchemy sends the rows as one INSERT … VALUES …):
        # new rows, or rows with their lease taken, or (leased) nothing.
        rows_in = [
            {
                "team_id": team_id,
                "booking_key": key,
                "user_id": user_id,
                "kind": kind,
                "state": "new",
                "sequence": -1,
                "lease_until": until,
                "updated_at": now,
            }
            for key, user_id, kind in wanted
        ]
        async with self._write_one() as conn:
            rows = (await conn.execute(self._claim_message, rows_in)).all()
        held = {
            (row.booking_key, row.user_id, row.kind): _booking_message_from_row(row) for row in rows
        }
        return [held[asked] for asked in wanted if asked in held]

    async def save_booking_messages(
        self, messages: Sequence[BookingMessage], *, release: bool
    ) -> None:
        """Record how far claimed messages got, in one statement; ``release`` also ends their
        leases."""
        if not messages:
            return
        rows = []
        for message in messages:
            values = {
                "state": message.state,
                "sequence": message.sequence,
                "post_at": message.post_at,
                "channel_id": message.channel_id,
                "message_id": message.message_id,
                "digest": message.digest,
                "note": message.note,
                "about_start": message.about_start,
                "told_note": message.told_note,
                "told_start": message.told_start,
                "told_sequence": message.told_sequence,
                "updated_at": self._clock(),
                "b_team": message.team_id,
                "b_key": message.booking_key,
                "b_user": message.user_id,
                "b_kind": message.kind,
            }
            if release:
                values["lease_until"] = None
            rows.append(values)
        async with self._write_one() as conn:
            await conn.execute(_SAVE_BOOKING_MESSAGE, rows)

    async def release_booking_messages(self, held: Sequence[BookingMessage]) -> None:
        """End a worker's leases on rows without changing them."""
        if not held:
            return
        messages = booking_messages.c
        rows = [
            sa.and_(
                messages.team_id == row.team_id,
                messages.booking_key == row.booking_key,
                messages.user_id == row.user_id,
                messages.kind == row.kind,
            )
            for row in held
        ]
        async with self._write_one() as conn:
            await conn.execute(
                booking_messages.update().where(sa.or_(*rows)).values(lease_until=None)
            )

    async def booking_messages_of(self, team_id: str, key: str) -> list[BookingMessage]:
        """Every reminder and notice row of a booking, by person and kind."""
        query = (
            sa.select(booking_messages)
            .where(booking_messages.c.team_id == team_id, booking_messages.c.booking_key == key)
            .order_by(booking_messages.c.user_id, booking_messages.c.kind)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_booking_message_from_row(row) for row in rows]

    async def bookings_owing_messages(
        self, now: datetime, horizon: timedelta, *, limit: int = 100
    ) -> list[tuple[str, str]]:
        """(team, key) of bookings, all teams, whose reminders or notices are not in step with
        them and that nobody is working on.

        That is a delivered booking still to start (a series: still to end) with a person
        whose reminder (or, for everyone but the organizer, notice) is missing, made for
        another sequence, never finished, or waiting for its time to come within ``horizon``,
        or, in a series, whose reminder went out (the next meeting's is owed); or a cancelled
        booking with a row not yet brought in step.
        """
        reminder = booking_messages.alias("reminder")
        notice = booking_messages.alias("notice")

        def joined(row: Any, kind: str) -> sa.ColumnElement[bool]:
            return sa.and_(
                row.c.team_id == booking_members.c.team_id,
                row.c.booking_key == booking_members.c.booking_key,
                row.c.user_id == booking_members.c.user_id,
                row.c.kind == kind,
            )

        def free(row: Any) -> sa.ColumnElement[bool]:
            return sa.or_(row.c.lease_until.is_(None), row.c.lease_until <= now)

        def behind(row: Any) -> sa.ColumnElement[bool]:
            return sa.and_(
                free(row),
                sa.or_(
                    row.c.sequence != bookings.c.sequence,
                    row.c.state.in_(["new", "pending"]),
                    sa.and_(row.c.state == "waiting", row.c.post_at <= now + horizon),
                ),
            )

        # A series keeps one reminder per person, for its next meeting: once that one's time
        # has come, the one for the meeting after it is owed.
        fired = sa.and_(
            free(reminder),
            bookings.c.series_end_at.is_not(None),
            reminder.c.state.in_(["scheduled", "none"]),
            reminder.c.post_at <= now,
        )
        is_organizer = booking_members.c.user_id == bookings.c.organizer_id
        live = sa.and_(
            bookings.c.state == BookingState.CONFIRMED.value,
            sa.func.coalesce(bookings.c.series_end_at, bookings.c.start_at) > now,
            sa.or_(
                reminder.c.team_id.is_(None),
                behind(reminder),
                fired,
                sa.and_(~is_organizer, sa.or_(notice.c.team_id.is_(None), behind(notice))),
            ),
        )
        cancelled = sa.and_(
            bookings.c.state == BookingState.CANCELLED.value,
            sa.or_(
                sa.and_(reminder.c.team_id.is_not(None), behind(reminder)),
                sa.and_(notice.c.team_id.is_not(None), behind(notice)),
            ),
        )
        query = (
            sa.select(bookings.c.team_id, bookings.c.key)
            .join(booking_members, _membership())
            .outerjoin(reminder, joined(reminder, "reminder"))
            .outerjoin(notice, joined(notice, "notice"))
            .where(sa.or_(live, cancelled))
            .group_by(bookings.c.team_id, bookings.c.key, bookings.c.start_at)
            .order_by(bookings.c.start_at)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [(str(team), str(key)) for team, key in rows]

    # -- user settings --

    async def get_settings(self, team_id: str, user_id: str) -> UserSettings:
        """The user's saved settings, or the defaults if they never saved any."""
        return (await self.settings_of(team_id, [user_id]))[user_id]

    async def settings_of(self, team_id: str, user_ids: Sequence[str]) -> dict[str, UserSettings]:
        """Each user's settings (the defaults for those who never saved any), in one read."""
        params = {"b_team": team_id, "b_users": list(user_ids)}
        async with self._read() as conn:
            rows = (await conn.execute(_SETTINGS_OF, params)).all()
        saved = {row.user_id: UserSettings.from_json(row.settings) for row in rows}
        return {user_id: saved.get(user_id) or UserSettings() for user_id in user_ids}

    async def save_settings(self, team_id: str, user_id: str, settings: UserSettings) -> None:
        data = settings.to_json()
        now = self._clock()
        statement = self._insert(user_settings).values(
            team_id=team_id, user_id=user_id, settings=data, updated_at=now
        )
        async with self._write_one() as conn:
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[user_settings.c.team_id, user_settings.c.user_id],
                    set_={"settings": data, "updated_at": now},
                )
            )

    # -- Slack event deliveries --

    async def claim_event(
        self, team_id: str, event_id: str, now: datetime, lease: timedelta
    ) -> bool:
        """Take a Slack event to handle; False while another handler has it or once done.

        A delivery whose handler failed (``release_event``) or died (its lease lapsed) can
        be claimed again, so Slack's retry of a delivery that really failed still runs.
        """
        until = now + lease
        values = {
            "team_id": team_id,
            "event_id": event_id,
            "received_at": now,
            "state": "handling",
            "lease_until": until,
        }
        async with self._write() as conn:
            inserted = await conn.execute(
                self._insert(processed_events).values(**values).on_conflict_do_nothing()
            )
            if inserted.rowcount:
                return True
            taken = await conn.execute(
                processed_events.update()
                .where(
                    processed_events.c.team_id == team_id,
                    processed_events.c.event_id == event_id,
                    processed_events.c.state == "handling",
                    processed_events.c.lease_until <= now,
                )
                .values(received_at=now, lease_until=until)
            )
        return bool(taken.rowcount)

    async def finish_event(self, team_id: str, event_id: str) -> None:
        """The event was handled: every later delivery of it is a duplicate."""
        async with self._write_one() as conn:
            await conn.execute(
                processed_events.update()
                .where(
                    processed_events.c.team_id == team_id,
                    processed_events.c.event_id == event_id,
                )
                .values(state="done", lease_until=None)
            )

    async def release_event(self, team_id: str, event_id: str) -> None:
        """Handling the event failed: let a redelivery of it run."""
        async with self._write_one() as conn:
            await conn.execute(
                processed_events.delete().where(
                    processed_events.c.team_id == team_id,
                    processed_events.c.event_id == event_id,
                    processed_events.c.state == "handling",
                )
            )

    async def remember_event(self, team_id: str, event_id: str, now: datetime) -> bool:
        """Note a delivered Slack event; True the first time, False for every redelivery."""
        async with self._write_one() as conn:
            result = await conn.execute(
                self._insert(processed_events)
                .values(team_id=team_id, event_id=event_id, received_at=now)
                .on_conflict_do_nothing()
            )
        return bool(result.rowcount)

    async def forget_events_before(self, before: datetime) -> int:
        """Drop dedupe records older than any redelivery could be; the number dropped."""
        async with self._write_one() as conn:
            result = await conn.execute(
                processed_events.delete().where(processed_events.c.received_at < before)
            )
        return int(result.rowcount)

    # -- Google accounts (per-user OAuth) --

    async def save_google_account(
        self, team_id: str, user_id: str, sealed_token: str, scopes: Sequence[str], now: datetime
    ) -> None:
        """Store (or replace) a person's encrypted refresh token; the caller encrypts it."""
        values = {"refresh_token": sealed_token, "scopes": list(scopes), "connected_at": now}
        statement = self._insert(google_accounts).values(team_id=team_id, user_id=user_id, **values)
        async with self._write_one() as conn:
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[google_accounts.c.team_id, google_accounts.c.user_id],
                    set_=values,
                )
            )

    async def get_google_account(
        self, team_id: str, user_id: str
    ) -> tuple[str, tuple[str, ...]] | None:
        """The person's encrypted refresh token and its scopes, if they connected."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    sa.select(google_accounts.c.refresh_token, google_accounts.c.scopes).where(
                        google_accounts.c.team_id == team_id, google_accounts.c.user_id == user_id
                    )
                )
            ).first()
        return (str(row[0]), tuple(row[1])) if row else None

    async def delete_google_account(self, team_id: str, user_id: str) -> bool:
        """Forget the person's token; False if there was none."""
        async with self._write_one() as conn:
            result = await conn.execute(
                google_accounts.delete().where(
                    google_accounts.c.team_id == team_id, google_accounts.c.user_id == user_id
                )
            )
        return bool(result.rowcount)

    async def redeem_oauth_state(self, nonce: str, expires_at: datetime, now: datetime) -> bool:
        """Mark a signed OAuth state used; True only the first time (and drop expired marks)."""
        async with self._write() as conn:
            await conn.execute(
                used_oauth_states.delete().where(used_oauth_states.c.expires_at < now)
            )
            result = await conn.execute(
                self._insert(used_oauth_states)
                .values(nonce=nonce, expires_at=expires_at)
                .on_conflict_do_nothing()
            )
        return bool(result.rowcount)

    async def oauth_state_redeemed(self, nonce: str) -> bool:
        async with self._read() as conn:
            found = (
                await conn.execute(
                    sa.select(used_oauth_states.c.nonce).where(used_oauth_states.c.nonce == nonce)
                )
            ).first()
        return found is not None

    # -- requests waiting for a calendar --

    async def remember_pending_request(
        self, team_id: str, user_id: str, offer_id: str, now: datetime
    ) -> None:
        """Note the person's latest offer made without their calendar (one per person)."""
        statement = self._insert(pending_requests).values(
            team_id=team_id, user_id=user_id, offer_id=offer_id, updated_at=now
        )
        async with self._write_one() as conn:
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[pending_requests.c.team_id, pending_requests.c.user_id],
                    set_={"offer_id": offer_id, "updated_at": now},
                )
            )

    async def take_pending_request(self, team_id: str, user_id: str) -> str | None:
        """The pending offer id, removed so that it is re-run at most once."""
        where = (pending_requests.c.team_id == team_id, pending_requests.c.user_id == user_id)
        async with self._write() as conn:
            offer_id = (
                await conn.execute(sa.select(pending_requests.c.offer_id).where(*where))
            ).scalar()
            if offer_id is not None:
                await conn.execute(pending_requests.delete().where(*where))
        return str(offer_id) if offer_id is not None else None

    # -- the local calendar --

    async def insert_local_event(
        self, team_id: str, event: CalendarEvent, ical_uid: str
    ) -> tuple[LocalEvent, bool]:
        """Store a local event unless its id exists in that calendar; (stored, created)."""
        now = self._clock()
        row = {
            **_local_event_values(event),
            "team_id": team_id,
            "status": EventStatus.CONFIRMED.value,
            "ical_uid": ical_uid,
            "created_at": now,
            "updated_at": now,
        }
        if self._dialect == "postgresql":
            # The event and its attendance index in one statement, atomic by itself.
            params = {**row, "b_attendees": _attendee_keys(event)}
            async with self._write_one() as one:
                statement = _insert_indexed("local_events", tuple(row))
                inserted = (await one.execute(statement, params)).first()
            if inserted is not None:
                return _local_event_from_row(inserted), True
            async with self._read() as conn:
                stored = await _select_local_event(conn, team_id, event.calendar_id, event.event_id)
        else:
            async with self._write() as conn:
                inserted = (await conn.execute(self._insert_local_event, row)).first()
                if inserted is not None:
                    await _index_attendees(conn, team_id, event)
                    return _local_event_from_row(inserted), True
                stored = await _select_local_event(conn, team_id, event.calendar_id, event.event_id)
        if stored is None:  # pragma: no cover - the row exists: it conflicted
            raise RuntimeError("a local event vanished while it was being created")
        return stored, False

    async def replace_local_event(self, team_id: str, event: CalendarEvent) -> LocalEvent | None:
        """Overwrite an existing local event (never lowering its sequence); None if unknown."""
        where = _local_event_key(team_id, event.calendar_id, event.event_id)
        values = _local_event_values(event)
        values["sequence"] = sa.func.max(local_events.c.sequence, event.sequence)
        if self._dialect == "postgresql":
            values["sequence"] = sa.func.greatest(local_events.c.sequence, event.sequence)
        values["updated_at"] = self._clock()
        async with self._write() as conn:
            result = await conn.execute(local_events.update().where(*where).values(**values))
            if not result.rowcount:
                return None
            await _drop_attendees(conn, team_id, event.calendar_id, [event.event_id])
            await _index_attendees(conn, team_id, event)
            # A series changed as a whole starts afresh: its one-off occurrence changes go.
            overrides = _overrides_of(team_id, event.calendar_id, event.event_id)
            ids = (await conn.execute(sa.select(local_events.c.event_id).where(*overrides))).all()
            if ids:
                await _drop_attendees(conn, team_id, event.calendar_id, [i[0] for i in ids])
                await conn.execute(local_events.delete().where(*overrides))
            return await _select_local_event(conn, team_id, event.calendar_id, event.event_id)

    async def put_local_occurrence(
        self,
        team_id: str,
        calendar_id: str,
        event_id: str,
        original_start: datetime,
        event: CalendarEvent | None,
    ) -> LocalEvent | None:
        """Move one occurrence of a local series to ``event``'s time (None: cancel it) with an
        override row ``<event_id>_<YYYYMMDDTHHMMSSZ>``; None when the series is unknown."""
        instance_id = f"{event_id}_{occurrence_id(original_start)}"
        now = self._clock()
        async with self._write() as conn:
            series = await _select_local_event(conn, team_id, calendar_id, event_id)
            if series is None:
                return None
            base = series.event if event is None else event
            override = CalendarEvent(
                event_id=instance_id,
                calendar_id=calendar_id,
                summary=base.summary,
                start=base.start if event is not None else original_start,
                end=base.end if event is not None else original_start + series.event.slot.duration,
                time_zone=base.time_zone,
                description=base.description,
                attendees=base.attendees,
                organizer=base.organizer,
                sequence=max(base.sequence, series.event.sequence),
            )
            values = {
                **_local_event_values(override),
                "recurring_event_id": event_id,
                "original_start_at": original_start,
                "status": (EventStatus.CANCELLED if event is None else EventStatus.CONFIRMED).value,
                "updated_at": now,
            }
            key = _local_event_key(team_id, calendar_id, instance_id)
            await conn.execute(local_events.delete().where(*key))
            await _drop_attendees(conn, team_id, calendar_id, [instance_id])
            await conn.execute(
                local_events.insert().values(
                    **values, team_id=team_id, ical_uid=series.ical_uid, created_at=now
                )
            )
            await _index_attendees(conn, team_id, override)
            return await _select_local_event(conn, team_id, calendar_id, instance_id)

    async def cancel_local_event(
        self, team_id: str, calendar_id: str, event_id: str
    ) -> LocalEvent | None:
        """Mark a local event cancelled (it stops being busy), a series with every occurrence
        changed on its own; None if unknown."""
        where = _local_event_key(team_id, calendar_id, event_id)
        live = local_events.c.status != EventStatus.CANCELLED.value
        async with self._write() as conn:
            for match in (where, _overrides_of(team_id, calendar_id, event_id)):
                await conn.execute(
                    local_events.update()
                    .where(*match, live)
                    .values(status=EventStatus.CANCELLED.value, updated_at=self._clock())
                )
            return await _select_local_event(conn, team_id, calendar_id, event_id)

    async def get_local_event(
        self, team_id: str, calendar_id: str, event_id: str
    ) -> LocalEvent | None:
        async with self._read() as conn:
            return await _select_local_event(conn, team_id, calendar_id, event_id)

    async def local_events_for(
        self,
        team_id: str,
        person: str,
        start: datetime,
        end: datetime,
        *,
        include_cancelled: bool = False,
    ) -> list[LocalEvent]:
        """Events in ``person``'s calendar or attended by them that overlap ``[start, end)``;
        a series as one event per occurrence (its times), moved ones as their override."""
        query = (
            sa.select(local_events)
            .where(
                local_events.c.team_id == team_id,
                _owned_or_attended(team_id, [person]),
                local_events.c.start_at < end,
                _local_series_or_end() > start,
            )
            .order_by(local_events.c.start_at, local_events.c.event_id)
        )
        if not include_cancelled:
            query = query.where(local_events.c.status != EventStatus.CANCELLED.value)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
            changed = await _overridden(conn, team_id, rows)
        found: list[LocalEvent] = []
        for row in rows:
            stored = _local_event_from_row(row)
            if row.series_end_at is None:
                if row.end_at > start:
                    found.append(stored)
                continue
            for slot in _occurrences(row, changed, start, end):
                event = replace(stored.event, start=slot.start, end=slot.end)
                found.append(replace(stored, event=event))
        return sorted(found, key=lambda e: (e.event.start, e.event.event_id))

    async def busy_intervals(
        self, team_id: str, calendar_ids: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, list[TimeSlot]]:
        """Busy time within ``[start, end)`` for each id, merged and sorted.

        An id is busy during the live events of the calendar with that id and the events it
        attends (ids with an ``@`` match attendee emails, case-insensitively); a recurring
        event during each occurrence, a moved one where it went, a cancelled one not at all.
        """
        require_aware(start, "start")
        require_aware(end, "end")
        wanted = list(dict.fromkeys(calendar_ids))
        result: dict[str, list[TimeSlot]] = {key: [] for key in wanted}
        if not wanted or end <= start:
            return result
        by_attendee = {_attendee_key(key): key for key in wanted}
        params = {
            "b_team": team_id,
            "b_start": start,
            "b_end": end,
            "b_calendars": wanted,
            "b_attendees": list(by_attendee),
        }
        async with self._read() as conn:
            found = (await conn.execute(_BUSY_LOCAL[self._dialect], params)).all()
            changed = await _overridden(conn, team_id, found)
        owned_rows = [row for row in found if not row.via]
        attended_rows = [row for row in found if row.via]
        raw: dict[str, list[TimeSlot]] = {key: [] for key in wanted}
        for rows, who_of in ((owned_rows, lambda w: w), (attended_rows, by_attendee.__getitem__)):
            for row in rows:
                if row.series_end_at is None:
                    pieces = [TimeSlot(row.start_at, row.end_at)] if row.end_at > start else []
                else:
                    pieces = _occurrences(row, changed, start, end)
                raw[who_of(row.who)].extend(
                    TimeSlot(max(p.start, start), min(p.end, end)) for p in pieces
                )
        for key, slots in raw.items():
            result[key] = merge_slots(slots)
        return result


# --- helpers --------------------------------------------------------------------------------


def merge_slots(slots: Iterable[TimeSlot]) -> list[TimeSlot]:
    """Sorted, with overlapping and touching slots joined."""
    merged: list[TimeSlot] = []
    for slot in sorted(slots):
        if merged and slot.start <= merged[-1].end:
            if slot.end > merged[-1].end:
                merged[-1] = TimeSlot(merged[-1].start, slot.end)
        else:
            merged.append(slot)
    return merged


def _create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # Parameters carry what people typed (titles, offers): never in logs, even at DEBUG.
        engine = create_async_engine(url, hide_parameters=True)
        sync_engine = engine.sync_engine

        @sa.event.listens_for(sync_engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            # We issue BEGIN ourselves (below); the driver's implicit one skips DDL.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout = 15000")
            cursor.execute("PRAGMA foreign_keys = ON")
            if parsed.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @sa.event.listens_for(sync_engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            options = conn.get_execution_options()
            if options.get("slotbot_read", False):
                return  # autocommit: each statement sees the latest committed data
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("slotbot_write") else "BEGIN")

        return engine
    engine = create_async_engine(
        url,
        pool_size=5,
        max_overflow=10,
        pool_timeout=30,
        pool_recycle=1800,
        pool_use_lifo=True,
        hide_parameters=True,
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling, only where it can matter: a connection that sat idle
    in the pool (through a server restart, a proxy's idle timeout) is pinged on checkout and
    replaced if dead; one used a moment ago is not. ``pool_pre_ping`` pings on every
    checkout: a round trip per transaction, a third of the database work of a click."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @sa.event.listens_for(pool, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = monotonic()

    @sa.event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or monotonic() - idle_since < direct.IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool drops this connection and checks out (or opens) another.
            raise sa.exc.DisconnectionError("a pooled connection was dead") from error


async def _unlock_upkeep(conn: AsyncConnection) -> None:
    """Release the upkeep lock; if that fails, close the connection, which releases it too,
    rather than let the pool keep a session that holds it."""
    try:
        await conn.execute(sa.select(sa.func.pg_advisory_unlock(_UPKEEP_LOCK_KEY)))
    except BaseException:
        await conn.invalidate()
        raise


async def _current_version(conn: AsyncConnection) -> int:
    exists = await conn.run_sync(lambda sync: sa.inspect(sync).has_table(_SCHEMA_VERSION.name))
    if not exists:
        return 0
    version = (await conn.execute(sa.select(sa.func.max(_SCHEMA_VERSION.c.version)))).scalar()
    return int(version or 0)


def _slot_json(slot: TimeSlot) -> list[str]:
    return [slot.start.isoformat(), slot.end.isoformat()]


def _slot_from_json(pair: Sequence[str]) -> TimeSlot:
    return TimeSlot(datetime.fromisoformat(pair[0]), datetime.fromisoformat(pair[1]))


def _offer_payload(offer: Offer) -> dict[str, Any]:
    return {
        "participants": list(offer.participant_ids),
        "duration_minutes": offer.duration_minutes,
        "title": offer.title,
        "time_zone": offer.time_zone,
        "window": _slot_json(offer.window),
        "slots": [_slot_json(slot) for slot in offer.slots],
        "page": offer.page,
        "recurrence": list(offer.recurrence),
        "extra": dict(offer.extra),
    }


def _prefixed(row: Any, prefix: str) -> Any:
    """The columns of ``row`` named ``prefix…``, as a row of their own (without the prefix)."""
    cut = len(prefix)
    return SimpleNamespace(
        **{name[cut:]: getattr(row, name) for name in row._fields if name.startswith(prefix)}
    )


def _offer_from_row(row: sa.Row[Any]) -> Offer:
    payload = row.payload
    return Offer(
        id=row.id,
        team_id=row.team_id,
        requester_id=row.requester_id,
        channel_id=row.channel_id,
        thread_ts=row.thread_ts,
        participant_ids=tuple(payload["participants"]),
        duration_minutes=int(payload["duration_minutes"]),
        title=payload.get("title"),
        time_zone=payload["time_zone"],
        window=_slot_from_json(payload["window"]),
        slots=tuple(_slot_from_json(pair) for pair in payload["slots"]),
        page=int(payload.get("page", 0)),
        created_at=row.created_at,
        expires_at=row.expires_at,
        closed_at=row.closed_at,
        recurrence=tuple(payload.get("recurrence", ())),
        extra=payload.get("extra", {}),
    )


def _booking_from_row(row: sa.Row[Any]) -> Booking:
    schedule_json: ScheduleObjectJSON = row.schedule
    return Booking(
        key=row.key,
        team_id=row.team_id,
        organizer_id=row.organizer_id,
        participant_ids=tuple(row.participant_ids),
        title=row.title,
        schedule=ScheduleObject.from_json(schedule_json),
        state=BookingState(row.state),
        sequence=row.sequence,
        uid=row.uid,
        offer_id=row.offer_id,
        channel_id=row.channel_id,
        thread_ts=row.thread_ts,
        message_ts=row.message_ts,
        event_link=row.event_link,
        exceptions=tuple(OccurrenceChange.from_json(c) for c in row.exceptions or ()),
    )


def _series_end(schedule: ScheduleObject) -> datetime | None:
    return series_end(schedule.recurrence, schedule.slot, schedule.start_time.time_zone)


def _series_or_end() -> sa.ColumnElement[Any]:
    """When a booking's last meeting ends: its series' end, or its own for a single one."""
    return sa.func.coalesce(bookings.c.series_end_at, bookings.c.end_at)


def _claimed_slots(booking: Booking, slot: TimeSlot) -> list[TimeSlot]:
    """The meetings a claim or move must find free: a single slot, or the checked
    occurrences of a series starting at ``slot``."""
    rule = rule_of(booking.schedule.recurrence)
    zone = booking.schedule.start_time.time_zone
    starts = checked_starts(rule, slot.start, zone) if rule else None
    if not starts:
        return [slot]
    return [TimeSlot(start, start + slot.duration) for start in starts]


_DELIVERY_COLUMNS = (
    bookings.c.state,
    bookings.c.reply_to,
    bookings.c.invite_file_id,
    bookings.c.invite_channel_id,
    bookings.c.delivering_until,
)

# -- the statements every click runs, built once: building one costs more Python than running
# it (each comparison and value is coerced, then the whole is keyed for the compiled cache);
# these take their values as parameters (``b_`` names, apart from the columns they set).

_THIS_BOOKING = (
    bookings.c.team_id == sa.bindparam("b_team"),
    bookings.c.key == sa.bindparam("b_key"),
)
_GET_BOOKING = sa.select(bookings).where(*_THIS_BOOKING)
_GET_OFFER = sa.select(offers).where(
    offers.c.id == sa.bindparam("b_id"), offers.c.team_id == sa.bindparam("b_team")
)
_GET_LIVE_OFFER = _GET_OFFER.where(offers.c.expires_at > sa.bindparam("b_now"))
# One row whatever exists: the offer's columns (o_…), the booking's (b_…) and the person's
# saved settings (s_settings), each None if absent.
_CLICK_START = sa.select(
    *(column.label(f"o_{column.name}") for column in offers.c),
    *(column.label(f"b_{column.name}") for column in bookings.c),
    user_settings.c.settings.label("s_settings"),
).select_from(
    sa.select(sa.literal(1).label("one"))
    .subquery("one")
    .outerjoin(
        offers,
        sa.and_(offers.c.id == sa.bindparam("b_id"), offers.c.team_id == sa.bindparam("b_team")),
    )
    .outerjoin(bookings, sa.and_(*_THIS_BOOKING))
    .outerjoin(
        user_settings,
        sa.and_(
            user_settings.c.team_id == sa.bindparam("b_team"),
            user_settings.c.user_id == sa.bindparam("b_user"),
        ),
    )
)
_CREATED = bookings.c.state == BookingState.CREATED.value
_LEASE_DELIVERY = (
    bookings.update()
    .where(
        *_THIS_BOOKING,
        _CREATED,
        sa.or_(
            bookings.c.delivering_until.is_(None),
            bookings.c.delivering_until <= sa.bindparam("b_now"),
        ),
    )
    .returning(*_DELIVERY_COLUMNS)
)
_RECORD_INVITE = bookings.update().where(*_THIS_BOOKING)
_FINISH_DELIVERY = bookings.update().where(*_THIS_BOOKING, _CREATED).returning(*bookings.c)
_MARK_CREATED = (
    bookings.update()
    .where(*_THIS_BOOKING, bookings.c.state == BookingState.PENDING.value)
    .returning(*bookings.c)
)
_SAVE_BOOKING_MESSAGE = booking_messages.update().where(
    booking_messages.c.team_id == sa.bindparam("b_team"),
    booking_messages.c.booking_key == sa.bindparam("b_key"),
    booking_messages.c.user_id == sa.bindparam("b_user"),
    booking_messages.c.kind == sa.bindparam("b_kind"),
)


def _pending_change_from_row(row: Any) -> PendingChange:
    return PendingChange(
        team_id=row.team_id,
        booking_key=row.booking_key,
        sequence=row.sequence,
        stage=row.stage,
        payload=dict(row.payload or {}),
        file_id=row.file_id,
        channel_id=row.channel_id,
        lease_until=row.lease_until,
    )


def _created_from_row(row: Any) -> Created:
    return Created(_booking_from_row(row), _delivery_from_row(row))


def _delivery_from_row(row: Any) -> Delivery:
    return Delivery(
        state=BookingState(row.state),
        reply_to=dict(row.reply_to or {}),
        invite_file_id=row.invite_file_id,
        invite_channel_id=row.invite_channel_id,
        delivering_until=row.delivering_until,
    )


def _attendee_json(person: Attendee) -> dict[str, str | None]:
    return {"email": person.email, "name": person.name, "user_id": person.user_id}


def _attendee_from_json(data: Mapping[str, Any]) -> Attendee:
    return Attendee(data.get("email"), data.get("name"), data.get("user_id"))


def _attendee_key(value: str) -> str:
    return value.lower() if "@" in value else value


def _local_series_or_end() -> sa.ColumnElement[Any]:
    return sa.func.coalesce(local_events.c.series_end_at, local_events.c.end_at)


def _overrides_of(
    team_id: str, calendar_id: str, event_id: str
) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        local_events.c.team_id == team_id,
        local_events.c.calendar_id == calendar_id,
        local_events.c.recurring_event_id == event_id,
    )


async def _overridden(
    conn: direct.Connection, team_id: str, rows: Sequence[Any]
) -> set[tuple[str, str, datetime]]:
    """(calendar, series id, original start) of every occurrence of these rows' series that
    an override row replaces (moved or cancelled)."""
    series = {(row.calendar_id, row.event_id) for row in rows if row.series_end_at is not None}
    if not series:
        return set()
    found = (
        await conn.execute(
            sa.select(
                local_events.c.calendar_id,
                local_events.c.recurring_event_id,
                local_events.c.original_start_at,
            ).where(
                local_events.c.team_id == team_id,
                local_events.c.recurring_event_id.in_([event_id for _, event_id in series]),
            )
        )
    ).all()
    return {(c, e, o) for c, e, o in found if (c, e) in series}


def _occurrences(
    row: Any, changed: set[tuple[str, str, datetime]], start: datetime, end: datetime
) -> list[TimeSlot]:
    """A series row's occurrences overlapping ``[start, end)``, less the overridden ones."""
    rule = rule_of(row.recurrence)
    first = TimeSlot(row.start_at, row.end_at)
    if rule is None:
        return [first] if first.start < end and start < first.end else []
    length = first.duration
    return [
        TimeSlot(moment, moment + length)
        for moment in starts_between(rule, first.start, row.time_zone, start - length, end)
        if (row.calendar_id, row.event_id, moment) not in changed
    ]


async def _drop_attendees(
    conn: direct.Connection, team_id: str, calendar_id: str, event_ids: Sequence[str]
) -> None:
    await conn.execute(
        local_event_attendees.delete().where(
            local_event_attendees.c.team_id == team_id,
            local_event_attendees.c.calendar_id == calendar_id,
            local_event_attendees.c.event_id.in_(list(event_ids)),
        )
    )


def _local_event_values(event: CalendarEvent) -> dict[str, Any]:
    return {
        "calendar_id": event.calendar_id,
        "event_id": event.event_id,
        "summary": event.summary,
        "description": event.description,
        "start_at": event.start,
        "end_at": event.end,
        "time_zone": event.time_zone,
        "organizer": _attendee_json(event.organizer) if event.organizer else None,
        "attendees": [_attendee_json(person) for person in event.attendees],
        "recurrence": list(event.recurrence),
        "series_end_at": series_end(event.recurrence, event.slot, event.time_zone),
        "sequence": event.sequence,
    }


def _local_event_from_row(row: sa.Row[Any]) -> LocalEvent:
    zone = zone_of(row.time_zone)
    event = CalendarEvent(
        event_id=row.event_id,
        calendar_id=row.calendar_id,
        summary=row.summary,
        description=row.description,
        start=row.start_at.astimezone(zone),
        end=row.end_at.astimezone(zone),
        time_zone=row.time_zone,
        attendees=tuple(_attendee_from_json(a) for a in row.attendees),
        organizer=_attendee_from_json(row.organizer) if row.organizer else None,
        recurrence=tuple(row.recurrence),
        sequence=row.sequence,
    )
    return LocalEvent(event, EventStatus(row.status), row.ical_uid, row.created_at, row.updated_at)


def _local_event_key(
    team_id: str, calendar_id: str, event_id: str
) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        local_events.c.team_id == team_id,
        local_events.c.calendar_id == calendar_id,
        local_events.c.event_id == event_id,
    )


def _membership() -> sa.ColumnElement[bool]:
    """Joins a booking to its people (organizer and participants)."""
    return sa.and_(
        booking_members.c.team_id == bookings.c.team_id,
        booking_members.c.booking_key == bookings.c.key,
    )


def _attendance_join() -> sa.ColumnElement[bool]:
    return sa.and_(
        local_events.c.team_id == local_event_attendees.c.team_id,
        local_events.c.calendar_id == local_event_attendees.c.calendar_id,
        local_events.c.event_id == local_event_attendees.c.event_id,
    )


def _owned_or_attended(team_id: str, people: Sequence[str]) -> sa.ColumnElement[bool]:
    attended = (
        sa.select(local_event_attendees.c.event_id)
        .where(
            _attendance_join(),
            local_event_attendees.c.team_id == team_id,
            local_event_attendees.c.attendee.in_([_attendee_key(p) for p in people]),
        )
        .exists()
    )
    return sa.or_(local_events.c.calendar_id.in_(list(people)), attended)


def _attendee_keys(event: CalendarEvent) -> list[str]:
    """Who the event's attendance index lists: each attendee's user id and email, once."""
    keys: dict[str, None] = {}
    for person in event.attendees:
        for value in (person.user_id, person.email):
            if value:
                keys[_attendee_key(value)] = None
    return list(keys)


async def _index_attendees(conn: direct.Connection, team_id: str, event: CalendarEvent) -> None:
    keys = _attendee_keys(event)
    if keys:
        await conn.execute(
            local_event_attendees.insert(),
            [
                {
                    "team_id": team_id,
                    "attendee": key,
                    "calendar_id": event.calendar_id,
                    "event_id": event.event_id,
                }
                for key in keys
            ],
        )


async def _live_at(
    conn: direct.Connection, team_id: str, key: str, sequence: int
) -> Booking | None:
    """The booking if it is live (created or confirmed) at ``sequence``, else None."""
    row = (
        await conn.execute(
            sa.select(bookings).where(bookings.c.team_id == team_id, bookings.c.key == key)
        )
    ).first()
    if row is None:
        return None
    booking = _booking_from_row(row)
    if booking.sequence != sequence or not booking.state.is_live:
        return None
    return booking


async def _select_local_event(
    conn: direct.Connection, team_id: str, calendar_id: str, event_id: str
) -> LocalEvent | None:
    row = (
        await conn.execute(
            sa.select(local_events).where(*_local_event_key(team_id, calendar_id, event_id))
        )
    ).first()
    return _local_event_from_row(row) if row else None


def _booking_message_key(
    team_id: str, key: str, user_id: str, kind: str
) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        booking_messages.c.team_id == team_id,
        booking_messages.c.booking_key == key,
        booking_messages.c.user_id == user_id,
        booking_messages.c.kind == kind,
    )


def _booking_message_from_row(row: sa.Row[Any]) -> BookingMessage:
    return BookingMessage(
        team_id=row.team_id,
        booking_key=row.booking_key,
        user_id=row.user_id,
        kind=row.kind,
        state=row.state,
        sequence=int(row.sequence),
        post_at=row.post_at,
        channel_id=row.channel_id,
        message_id=row.message_id,
        digest=row.digest,
        note=row.note,
        about_start=row.about_start,
        told_note=row.told_note,
        told_start=row.told_start,
        lease_until=row.lease_until,
        told_sequence=row.told_sequence,
    )


def _outbox_entry_from_row(row: sa.Row[Any]) -> OutboxEntry:
    message = WebhookMessage(row.event_id, row.team_id, row.kind, row.url, row.body)
    return OutboxEntry(
        id=int(row.id),
        message=message,
        attempts=int(row.attempts),
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        lease_until=row.lease_until,
        delivered_at=row.delivered_at,
        gave_up_at=row.gave_up_at,
        last_error=row.last_error,
    )


# --- statements every click runs, built once (building one costs more than running it) ---


def _members_bookings(
    dialect: str, users: str, *, other_than: str | None, low: str, high: str, with_user: bool
) -> sa.Select[Any]:
    """The live bookings of the people in the list parameter ``users`` (of team ``b_team``)
    that may meet within ``[low, high)``, one row per person and booking, other than the
    booking ``other_than`` names; each row led by the person's ``user_id`` if ``with_user``.

    On PostgreSQL each booking is looked up by its key from the person's membership row
    (``LATERAL``), so the work grows with these people's bookings, never with the team's.
    With a plain join the planner could start from the team's bookings in the time range and
    read every membership of the team for each (seen in the bench once PostgreSQL settled on
    the generic plan of the prepared statement: 15–24 ms for one check at 900 bookings, and
    the largest database cost of a click); a generic plan cannot tell a narrow range from a
    wide one."""
    live = [
        bookings.c.state != BookingState.CANCELLED.value,
        bookings.c.start_at < sa.bindparam(high),
        _series_or_end() > sa.bindparam(low),
    ]
    if other_than is not None:
        live.append(bookings.c.key != sa.bindparam(other_than))
    people = (
        booking_members.c.team_id == sa.bindparam("b_team"),
        booking_members.c.user_id.in_(sa.bindparam(users, expanding=True)),
    )
    lead = [booking_members.c.user_id] if with_user else []
    if dialect == "postgresql":
        # LIMIT 1 (a membership names one booking) also keeps the planner from pulling the
        # subquery up into an ordinary join, which it would reorder again.
        booking = sa.select(bookings).where(_membership(), *live).limit(1).lateral("booking")
        return (
            sa.select(*lead, *booking.c)
            .select_from(booking_members.join(booking, sa.true()))
            .where(*people)
        )
    return (
        sa.select(*lead, bookings)
        .select_from(booking_members.join(bookings, _membership()))
        .where(*people, *live)
    )


#: The live bookings other than ``b_key`` of any of ``b_members`` that may meet within
#: ``[b_low, b_high)``: what a claim or a move must find free (the per-click overlap check).
_OVERLAPPING = {
    dialect: _members_bookings(
        dialect, "b_members", other_than="b_key", low="b_low", high="b_high", with_user=False
    )
    for dialect in ("postgresql", "sqlite")
}
#: Each of ``b_users``' live bookings that may meet within ``[b_start, b_end)``.
_BOOKED = {
    dialect: _members_bookings(
        dialect, "b_users", other_than=None, low="b_start", high="b_end", with_user=True
    )
    for dialect in ("postgresql", "sqlite")
}
_SETTINGS_OF = sa.select(user_settings.c.user_id, user_settings.c.settings).where(
    user_settings.c.team_id == sa.bindparam("b_team"),
    user_settings.c.user_id.in_(sa.bindparam("b_users", expanding=True)),
)
_CLOSE_OFFER = (
    offers.update()
    .where(
        offers.c.id == sa.bindparam("b_id"),
        offers.c.team_id == sa.bindparam("b_team"),
        offers.c.closed_at.is_(None),
    )
    .values(closed_at=sa.bindparam("closed_at"))
)


def _busy_local(dialect: str) -> sa.CompoundSelect[Any]:
    """The local events ``b_calendars`` own and those ``b_attendees`` attend, live within
    ``[b_start, b_end)``, in one statement (``via`` tells which).

    On PostgreSQL the attended events are looked up from the attendance index, one event per
    attendance row (``LATERAL``): the work grows with these people's events, never with the
    workspace's. A plain join let the planner, with few or stale statistics (a new or fast
    growing table), scan the attendance rows once per live event of the workspace: 2 ms at
    60 events, the largest database cost of a click."""
    live = (
        local_events.c.status != EventStatus.CANCELLED.value,
        local_events.c.start_at < sa.bindparam("b_end"),
        _local_series_or_end() > sa.bindparam("b_start"),
    )
    columns = (
        local_events.c.calendar_id,
        local_events.c.event_id,
        local_events.c.start_at,
        local_events.c.end_at,
        local_events.c.time_zone,
        local_events.c.recurrence,
        local_events.c.series_end_at,
    )
    team = local_events.c.team_id == sa.bindparam("b_team")
    owned = sa.select(
        local_events.c.calendar_id.label("who"), sa.literal(False).label("via"), *columns
    ).where(
        local_events.c.calendar_id.in_(sa.bindparam("b_calendars", expanding=True)), team, *live
    )
    attendance = local_event_attendees.c
    attending = (
        attendance.team_id == sa.bindparam("b_team"),
        attendance.attendee.in_(sa.bindparam("b_attendees", expanding=True)),
    )
    if dialect == "postgresql":
        # LIMIT 1 (an attendance row names one event) also keeps the planner from pulling
        # the subquery up into an ordinary join, which it would reorder again.
        event = sa.select(*columns).where(_attendance_join(), *live).limit(1).lateral("event")
        attended = (
            sa.select(attendance.attendee.label("who"), sa.literal(True).label("via"), *event.c)
            .select_from(local_event_attendees.join(event, sa.true()))
            .where(*attending)
        )
    else:
        attended = (
            sa.select(attendance.attendee.label("who"), sa.literal(True).label("via"), *columns)
            .join(local_events, _attendance_join())
            .where(*attending, team, *live)
        )
    return sa.union_all(owned, attended)


_BUSY_LOCAL = {dialect: _busy_local(dialect) for dialect in ("postgresql", "sqlite")}


def _mark_created_closing_offer() -> sa.Select[Any]:
    """``_MARK_CREATED`` and, if it took, ``_CLOSE_OFFER``: one PostgreSQL statement (a
    data-modifying WITH runs once whether or not it is read)."""
    names = (
        "state",
        "uid",
        "schedule",
        "start_at",
        "end_at",
        "event_link",
        "updated_at",
        "delivering_until",
    )
    created = _MARK_CREATED.values({name: sa.bindparam(name) for name in names}).cte("created")
    closed = _CLOSE_OFFER.where(sa.exists(sa.select(created.c.key))).cte("closed")
    return sa.select(created).add_cte(closed)


_MARK_CREATED_CLOSING_OFFER = _mark_created_closing_offer()


#: A row and its index rows, inserted together on PostgreSQL: for each parent table, the
#: index table, its column taking each element of the list parameter, that parameter, and
#: the index columns copied from the new row (index column, row column).
_INDEXED: dict[str, tuple[sa.Table, str, str, tuple[tuple[str, str], ...]]] = {
    "local_events": (
        local_event_attendees,
        "attendee",
        "b_attendees",
        (("team_id", "team_id"), ("calendar_id", "calendar_id"), ("event_id", "event_id")),
    ),
    "bookings": (
        booking_members,
        "user_id",
        "b_members",
        (("team_id", "team_id"), ("booking_key", "key")),
    ),
}


@functools.lru_cache(maxsize=8)
def _insert_indexed(table_name: str, names: tuple[str, ...]) -> sa.Select[Any]:
    """A new row of ``table_name`` (the columns ``names``, as parameters of their own names)
    and, if it was new (no conflict), its index rows, one per element of the list parameter
    (see ``_INDEXED``): one PostgreSQL statement, built once. Its result: the new row, if any.
    """
    table = metadata.tables[table_name]
    index, item, parameter, copied = _INDEXED[table_name]
    row = (
        postgresql.insert(table)
        .values({name: sa.bindparam(name) for name in names})
        .on_conflict_do_nothing()
        .returning(*table.c)
        .cte("new_row")
    )
    items = (
        sa.func.unnest(sa.bindparam(parameter, type_=postgresql.ARRAY(sa.String)))
        .table_valued(item)
        .render_derived(name="items")
    )
    indexed = (
        postgresql.insert(index)
        .from_select(
            [*(mine for mine, _ in copied), item],
            sa.select(*(row.c[theirs] for _, theirs in copied), items.c[item]).join_from(
                row, items, sa.true()
            ),
        )
        .cte("indexed")
    )
    return sa.select(row).add_cte(indexed)
