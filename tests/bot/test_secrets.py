"""Keys derived from SLOTBOT_SECRET_KEY: sealed tokens and signed OAuth states."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import PermissionDeniedError
from bot.secrets import SecretBox, StateSigner, UnreadableSecretError

KEY = "a-secret-key-that-is-long-enough-0123456789"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_a_sealed_token_opens_only_with_the_same_key() -> None:
    """Sealing hides the text; the same key opens it, another key or a changed byte cannot."""
    sealed = SecretBox(KEY).seal("1//refresh-token")
    assert "refresh-token" not in sealed
    assert SecretBox(KEY).unseal(sealed) == "1//refresh-token"
    with pytest.raises(UnreadableSecretError):
        SecretBox(KEY + "x").unseal(sealed)
    with pytest.raises(UnreadableSecretError):
        SecretBox(KEY).unseal(sealed[:-4] + ("AAAA" if sealed[-4:] != "AAAA" else "BBBB"))


def test_a_state_carries_team_and_user_until_it_expires() -> None:
    """A signed state reads back its team, user and expiry, and is refused once expired."""
    signer = StateSigner(KEY, ttl=timedelta(minutes=10))
    state = signer.sign("T1", "U1", NOW)
    signed = signer.read(state, NOW + timedelta(minutes=9))
    assert (signed.team_id, signed.user_id) == ("T1", "U1")
    assert signed.expires_at == NOW + timedelta(minutes=10)
    assert signer.sign("T1", "U1", NOW) != state, "every state has its own nonce"
    with pytest.raises(PermissionDeniedError, match="expired"):
        signer.read(state, NOW + timedelta(minutes=10))


@pytest.mark.parametrize("how", ["other key", "swapped user", "garbage", "empty"])
def test_forged_or_altered_states_are_refused(how: str) -> None:
    """A state signed with another key, with a changed payload, or not a state at all fails."""
    signer = StateSigner(KEY)
    state = signer.sign("T1", "U1", NOW)
    mac = state.split(".")[1]
    forged = {
        "other key": StateSigner(KEY + "!").sign("T1", "U1", NOW),
        "swapped user": StateSigner(KEY).sign("T1", "U2", NOW).split(".")[0] + "." + mac,
        "garbage": "not-a-state",
        "empty": "",
    }[how]
    with pytest.raises(PermissionDeniedError):
        signer.read(forged, NOW)


def test_the_pkce_verifier_is_stable_per_nonce_and_valid() -> None:
    """The derived PKCE verifier is 43-128 unreserved characters, the same for one nonce."""
    signer = StateSigner(KEY)
    verifier = signer.code_verifier("nonce-1")
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
    assert verifier == StateSigner(KEY).code_verifier("nonce-1")
    assert verifier != signer.code_verifier("nonce-2")
    assert verifier != StateSigner(KEY + "!").code_verifier("nonce-1")
