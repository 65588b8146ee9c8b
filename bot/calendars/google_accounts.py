"""People's own Google accounts (the per-user OAuth mode): the connect link, the consent and
code exchange (google-auth-oauthlib, offline access, PKCE), refresh tokens stored encrypted,
and revocation when someone disconnects.

The OAuth ``state`` is signed, bound to the Slack team and user who asked, expires in minutes
and is redeemed once; the PKCE verifier is derived from it, so nothing is stored in between.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow

from bot.calendars.google import SCOPES
from bot.errors import CalendarError
from bot.secrets import SecretBox, SignedState, StateSigner, expired_link_error
from bot.store import Store

__all__ = ["DEFAULT_REVOKE_URI", "Disconnection", "GoogleAccounts"]

logger = logging.getLogger("slotbot.google")

DEFAULT_REVOKE_URI = "https://oauth2.googleapis.com/revoke"
START_PATH = "/google/oauth/start"
CALLBACK_PATH = "/google/oauth/callback"


@dataclass(frozen=True, slots=True)
class Disconnection:
    """What ``disconnect`` did: whether there was a token, and whether Google revoked it."""

    was_connected: bool
    revoked: bool


class GoogleAccounts:
    """Connects Slack users to their own Google Calendar and hands out their credentials."""

    def __init__(
        self,
        store: Store,
        *,
        client_file: Path,
        secret_key: str,
        public_url: str,
        clock: Callable[[], datetime],
        state_ttl: timedelta = timedelta(minutes=10),
        timeout: float = 20.0,
    ) -> None:
        config: dict[str, Any] = json.loads(client_file.read_text(encoding="utf-8"))
        kind = "web" if "web" in config else "installed"
        if kind not in config:
            raise ValueError(f"{client_file} is not a Google OAuth client file (web application)")
        self._config = config
        self._client: dict[str, Any] = config[kind]
        self._store = store
        self._box = SecretBox(secret_key)
        self._states = StateSigner(secret_key, state_ttl)
        self._clock = clock
        self._timeout = timeout
        self.public_url = public_url.rstrip("/")
        self.redirect_uri = self.public_url + CALLBACK_PATH
        # Credentials by person, with the sealed token they came from: an access token is
        # reused until it expires, and a token replaced or removed elsewhere is noticed.
        self._cache: dict[tuple[str, str], tuple[str, Credentials]] = {}

    @property
    def state_ttl(self) -> timedelta:
        return self._states.ttl

    # --- connecting ------------------------------------------------------------------------

    def connect_link(self, team_id: str, user_id: str) -> str:
        """The link to send the person: our start page, with a state only they can redeem."""
        state = self._states.sign(team_id, user_id, self._clock())
        return f"{self.public_url}{START_PATH}?{urlencode({'state': state})}"

    async def check_state(self, state: str) -> SignedState:
        """What a state vouches for, if it is genuine, unexpired and not yet redeemed."""
        signed = self._states.read(state, self._clock())
        if await self._store.oauth_state_redeemed(signed.nonce):
            raise expired_link_error()
        return signed

    async def consent_url(self, state: str) -> tuple[str, SignedState]:
        """Google's consent page for a valid, unused state (and what the state vouches for)."""
        signed = await self.check_state(state)
        url, _ = self._flow(signed).authorization_url(
            access_type="offline",  # a refresh token, so Slotbot can read calendars later
            prompt="consent",  # Google only returns a refresh token when consent is shown
            include_granted_scopes="true",
            state=state,
        )
        return str(url), signed

    async def complete(self, state: str, code: str) -> SignedState:
        """Redeem the state, exchange the code, and store the refresh token encrypted."""
        now = self._clock()
        signed = self._states.read(state, now)
        if not await self._store.redeem_oauth_state(signed.nonce, signed.expires_at, now):
            raise expired_link_error()
        flow = self._flow(signed)
        try:
            await asyncio.to_thread(flow.fetch_token, code=code, timeout=self._timeout)
        except Warning as warning:  # oauthlib raises "Scope has changed" as a Warning
            raise _missing_scopes() from warning
        except Exception as error:  # oauthlib, requests and google-auth each raise their own
            logger.warning("Google code exchange failed: %s", type(error).__name__)
            raise CalendarError(
                "Google did not accept the sign-in, so your calendar is not connected. "
                "Please run `/schedule connect` again.",
                hint=type(error).__name__,
            ) from error
        credentials = flow.credentials
        granted = set(credentials.granted_scopes or credentials.scopes or ())
        if not set(SCOPES) <= granted:
            raise _missing_scopes()
        if not credentials.refresh_token:
            raise CalendarError(
                "Google did not give Slotbot lasting access. Remove Slotbot at "
                "https://myaccount.google.com/permissions, then run `/schedule connect` again."
            )
        await self._store.save_google_account(
            signed.team_id,
            signed.user_id,
            self._box.seal(credentials.refresh_token),
            sorted(granted),
            now,
        )
        self._cache.pop((signed.team_id, signed.user_id), None)
        return signed

    # --- using ---------------------------------------------------------------------------

    async def credentials(self, team_id: str, user_id: str) -> Credentials | None:
        """The person's Google credentials, or None if they have not connected."""
        row = await self._store.get_google_account(team_id, user_id)
        if row is None:
            self._cache.pop((team_id, user_id), None)
            return None
        sealed, scopes = row
        cached = self._cache.get((team_id, user_id))
        if cached is not None and cached[0] == sealed:
            return cached[1]
        found = self._credentials_for(self._box.unseal(sealed), scopes)
        self._cache[(team_id, user_id)] = (sealed, found)
        return found

    async def is_connected(self, team_id: str, user_id: str) -> bool:
        return await self._store.get_google_account(team_id, user_id) is not None

    async def disconnect(self, team_id: str, user_id: str) -> Disconnection:
        """Revoke the person's token at Google and forget it (forgotten even if Google fails)."""
        row = await self._store.get_google_account(team_id, user_id)
        if row is None:
            return Disconnection(was_connected=False, revoked=False)
        revoked = await self._revoke(self._box.unseal(row[0]))
        await self._store.delete_google_account(team_id, user_id)
        self._cache.pop((team_id, user_id), None)
        return Disconnection(was_connected=True, revoked=revoked)

    # --- plumbing ------------------------------------------------------------------------

    def _flow(self, signed: SignedState) -> Flow:
        return Flow.from_client_config(
            self._config,
            scopes=list(SCOPES),
            redirect_uri=self.redirect_uri,
            code_verifier=self._states.code_verifier(signed.nonce),
        )

    def _credentials_for(self, refresh_token: str, scopes: Sequence[str]) -> Credentials:
        # google-auth leaves this constructor unannotated.
        return Credentials(  # type: ignore[no-untyped-call]
            None,
            refresh_token=refresh_token,
            token_uri=self._client["token_uri"],
            client_id=self._client["client_id"],
            client_secret=self._client["client_secret"],
            scopes=list(scopes),
        )

    async def _revoke(self, token: str) -> bool:
        uri = self._client.get("revoke_uri") or DEFAULT_REVOKE_URI
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(uri, data={"token": token}) as response,
            ):
                await response.read()
                # 400 invalid_token: it was revoked already (at myaccount.google.com, say).
                return response.status in (200, 400)
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.warning("could not revoke a Google token: %s", type(error).__name__)
            return False


def _missing_scopes() -> CalendarError:
    return CalendarError(
        "Slotbot needs both calendar permissions Google asks for (see free/busy, and manage "
        "the events it creates). Run `/schedule connect` again and allow both."
    )
