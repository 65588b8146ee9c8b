"""What Slotbot derives from ``SLOTBOT_SECRET_KEY``: encryption for stored tokens, and signed,
expiring OAuth states bound to one Slack user.

Each use gets its own key, derived with HKDF-SHA256 under a distinct label, so a key for one
purpose is never usable for another. Changing ``SLOTBOT_SECRET_KEY`` makes stored tokens
unreadable (people connect again) and outstanding links invalid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.errors import PermissionDeniedError

__all__ = [
    "SecretBox",
    "SignedState",
    "StateSigner",
    "UnreadableSecretError",
    "derive_key",
    "expired_link_error",
]

_EXPIRED = (
    "This link has expired or was already used. Run `/schedule connect` in Slack for a new one."
)


class UnreadableSecretError(ValueError):
    """A sealed value this key did not seal (or that was changed)."""


def derive_key(secret_key: str, purpose: str) -> bytes:
    """32 bytes for ``purpose``, from the configured secret key."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"slotbot", info=purpose.encode()
    ).derive(secret_key.encode())


class SecretBox:
    """Authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) of short texts."""

    def __init__(self, secret_key: str) -> None:
        key = derive_key(secret_key, "slotbot/token-encryption/v1")
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode("ascii")

    def unseal(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as error:
            raise UnreadableSecretError("sealed with another key, or altered") from error


@dataclass(frozen=True, slots=True)
class SignedState:
    """What an OAuth ``state`` vouches for: this Slack user asked, until ``expires_at``."""

    team_id: str
    user_id: str
    nonce: str
    expires_at: datetime


class StateSigner:
    """Makes and checks ``state`` values: ``base64url(json).base64url(hmac)``, short-lived."""

    def __init__(self, secret_key: str, ttl: timedelta = timedelta(minutes=10)) -> None:
        self._key = derive_key(secret_key, "slotbot/oauth-state/v1")
        self._pkce = derive_key(secret_key, "slotbot/oauth-pkce/v1")
        self.ttl = ttl

    def sign(self, team_id: str, user_id: str, now: datetime) -> str:
        expires = int((now + self.ttl).timestamp())
        payload = {"t": team_id, "u": user_id, "n": secrets.token_urlsafe(18), "e": expires}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def read(self, state: str, now: datetime) -> SignedState:
        """The state's claims, or ``PermissionDeniedError`` if forged, altered or expired."""
        body, _, mac = state.partition(".")
        if not body or not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            raise PermissionDeniedError(_EXPIRED, hint="bad state signature")
        try:
            payload = json.loads(_unb64(body))
            signed = SignedState(
                str(payload["t"]),
                str(payload["u"]),
                str(payload["n"]),
                datetime.fromtimestamp(int(payload["e"]), UTC),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise PermissionDeniedError(_EXPIRED, hint="unreadable state") from error
        if signed.expires_at <= now:
            raise PermissionDeniedError(_EXPIRED, hint="expired state")
        return signed

    def code_verifier(self, nonce: str) -> str:
        """The PKCE verifier for a state: derived, so nothing is stored between the two legs."""
        return _b64(hmac.new(self._pkce, nonce.encode(), hashlib.sha256).digest())  # 43 chars

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())


def expired_link_error() -> PermissionDeniedError:
    return PermissionDeniedError(_EXPIRED, hint="state already used")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
