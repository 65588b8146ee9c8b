"""Slack installations for many workspaces: Bolt's OAuth flow on Slotbot's own database.

Slack's async SQLAlchemy installation and state stores share the Store's engine. Every token
(bot, user, refresh) and the incoming-webhook URL is sealed with ``SLOTBOT_SECRET_KEY`` before
it is written and opened when it is read, so the tables never hold a usable secret.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.secrets import SecretBox, UnreadableSecretError

__all__ = [
    "SealedInstallationStore",
    "SingleUseStateStore",
    "SlackInstalls",
    "oauth_settings",
    "open_slack_installs",
]

logger = logging.getLogger("slotbot.installations")

#: Columns holding secrets. Sealed values are longer than Slack's (Fernet adds ~100 characters
#: and base64), so these columns are TEXT rather than the stock VARCHAR(200).
_SEALED_INSTALLATION_FIELDS = (
    "bot_token",
    "bot_refresh_token",
    "user_token",
    "user_refresh_token",
    "incoming_webhook_url",
)
_SEALED_BOT_FIELDS = ("bot_token", "bot_refresh_token")
# Any constant works; it only has to be the same in every Slotbot process.
_TABLES_LOCK_KEY = 0x51AC4
_STATE_TTL = timedelta(minutes=10)

_Sealable = TypeVar("_Sealable", Installation, Bot)


class _WideTokenInstallationStore(AsyncSQLAlchemyInstallationStore):
    """Slack's SQLAlchemy installation store with TEXT columns wide enough for sealed tokens."""

    @classmethod
    def build_installations_table(cls, metadata: sa.MetaData, table_name: str) -> sa.Table:
        table = super().build_installations_table(metadata, table_name)
        return _widened(table, _SEALED_INSTALLATION_FIELDS)

    @classmethod
    def build_bots_table(cls, metadata: sa.MetaData, table_name: str) -> sa.Table:
        return _widened(super().build_bots_table(metadata, table_name), _SEALED_BOT_FIELDS)


def _widened(table: sa.Table, names: tuple[str, ...]) -> sa.Table:
    for name in names:
        table.c[name].type = sa.Text()
    return table


class SealedInstallationStore(AsyncInstallationStore):
    """An installation store whose rows hold tokens only in sealed (encrypted) form.

    Wraps Slack's SQLAlchemy store rather than subclassing it: its ``async_save`` calls its own
    ``async_save_bot``, which would seal the bot's tokens a second time.
    """

    def __init__(self, engine: AsyncEngine, *, client_id: str, secret_key: str) -> None:
        self.rows = _WideTokenInstallationStore(client_id=client_id, engine=engine, logger=logger)
        self._box = SecretBox(secret_key)

    @property
    def logger(self) -> logging.Logger:
        return logger

    @property
    def metadata(self) -> sa.MetaData:
        """The two tables (``slack_installations``, ``slack_bots``)."""
        return self.rows.metadata

    async def async_save(self, installation: Installation) -> None:
        await self.rows.async_save(self._sealed(installation, _SEALED_INSTALLATION_FIELDS))

    async def async_save_bot(self, bot: Bot) -> None:
        await self.rows.async_save_bot(self._sealed(bot, _SEALED_BOT_FIELDS))

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        bot = await self.rows.async_find_bot(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        return None if bot is None else self._opened(bot, _SEALED_BOT_FIELDS)

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        installation = await self.rows.async_find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )
        if installation is None:
            return None
        return self._opened(installation, _SEALED_INSTALLATION_FIELDS)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.rows.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await self.rows.async_delete_installation(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )

    def _sealed(self, value: _Sealable, names: tuple[str, ...]) -> _Sealable:
        sealed = copy.copy(value)
        for name in names:
            secret = getattr(value, name, None)
            if secret:
                setattr(sealed, name, self._box.seal(secret))
        return sealed

    def _opened(self, value: _Sealable, names: tuple[str, ...]) -> _Sealable | None:
        try:
            for name in names:
                sealed = getattr(value, name, None)
                if sealed:
                    setattr(value, name, self._box.unseal(sealed))
        except UnreadableSecretError:
            # Treated as not installed: Slack then asks the workspace to install again.
            logger.warning(
                "the Slack installation of team %s was sealed with another SLOTBOT_SECRET_KEY; "
                "reinstall Slotbot in that workspace",
                value.team_id,
            )
            return None
        return value


class SingleUseStateStore(AsyncSQLAlchemyOAuthStateStore):
    """Slack's SQLAlchemy OAuth state store, with a state usable exactly once across instances.

    The stock ``async_consume`` reads, then deletes: two instances could both accept one state.
    Here one DELETE decides, and expired states are swept when new ones are issued.
    """

    async def async_issue(self, *args: object, **kwargs: object) -> str:
        async with self.engine.begin() as conn:
            await conn.execute(
                self.oauth_states.delete().where(self.oauth_states.c.expire_at <= _db_now())
            )
        state: str = await super().async_issue(*args, **kwargs)
        return state

    async def async_consume(self, state: str) -> bool:
        c = self.oauth_states.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                self.oauth_states.delete().where(c.state == state, c.expire_at > _db_now())
            )
        return result.rowcount == 1


def _db_now() -> datetime:
    # Slack's tables hold naive UTC datetimes (TIMESTAMP WITHOUT TIME ZONE).
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class SlackInstalls:
    """Where installations and OAuth states live; made by ``open_slack_installs``."""

    installations: SealedInstallationStore
    states: SingleUseStateStore

    @property
    def tables(self) -> tuple[sa.Table, ...]:
        """The three tables (installations, bots, OAuth states), e.g. for database upkeep."""
        return (*self.installations.metadata.sorted_tables, *self.states.metadata.sorted_tables)

    async def create_tables(self) -> None:
        """Create the three tables if missing; safe when several instances start at once."""
        # A write transaction from the start (BEGIN IMMEDIATE on SQLite): a deferred one that
        # turns into a write while another process creates the tables fails with "locked" at
        # once instead of waiting its turn.
        engine = self.installations.rows.engine.execution_options(slotbot_write=True)
        for attempt in range(5):
            try:
                async with engine.begin() as conn:
                    if engine.dialect.name == "postgresql":
                        # Held until commit: a second instance waits here, then finds the tables.
                        await conn.execute(
                            sa.select(sa.func.pg_advisory_xact_lock(_TABLES_LOCK_KEY))
                        )
                    await conn.run_sync(self.installations.metadata.create_all)
                    await conn.run_sync(self.states.metadata.create_all)
                return
            except sa.exc.DBAPIError:
                # SQLite has no advisory lock: a concurrent creator wins, we look again.
                if attempt == 4:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))


async def open_slack_installs(
    engine: AsyncEngine, *, client_id: str, secret_key: str
) -> SlackInstalls:
    """The installation and state stores on ``engine``, their tables created."""
    installs = SlackInstalls(
        SealedInstallationStore(engine, client_id=client_id, secret_key=secret_key),
        SingleUseStateStore(
            expiration_seconds=int(_STATE_TTL.total_seconds()), engine=engine, logger=logger
        ),
    )
    await installs.create_tables()
    return installs


def oauth_settings(
    settings: Settings, installs: SlackInstalls, client: AsyncWebClient
) -> AsyncOAuthSettings:
    """Bolt's OAuth settings: our stores, our paths, and Slack reached only at SLACK_API_URL.

    ``client`` is the app's Web API client; token rotation goes through it as well, and the
    consent page is the one beside ``SLACK_API_URL``.
    """
    assert settings.slack_client_id and settings.slack_client_secret
    oauth = AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret,
        scopes=list(settings.slack_scopes),
        user_scopes=[],
        redirect_uri=settings.slack_redirect_uri,
        install_path=settings.slack_install_path,
        redirect_uri_path=settings.slack_redirect_path,
        # Straight to Slack's consent page, as an "Add to Slack" link would go.
        install_page_rendering_enabled=False,
        authorization_url=settings.slack_authorize_url,
        installation_store=installs.installations,
        state_store=installs.states,
        state_expiration_seconds=int(_STATE_TTL.total_seconds()),
        logger=logger,
    )
    # Bolt's default authorize would rotate tokens through a client bound to slack.com.
    oauth.authorize = AsyncInstallationStoreAuthorize(
        logger=logger,
        installation_store=installs.installations,
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret,
        token_rotation_expiration_minutes=oauth.token_rotation_expiration_minutes,
        # auth.test once per token, not on every request; the token itself is looked up each time.
        cache_enabled=True,
        client=client,
    )
    return oauth
