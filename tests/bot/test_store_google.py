"""Storage for Google accounts, redeemed OAuth states and requests waiting for a calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.store import Store

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def test_google_accounts_are_stored_replaced_and_deleted_per_person(store: Store) -> None:
    """A token is kept per team and user, a reconnect replaces it, delete forgets it."""
    await store.save_google_account("T1", "U1", "sealed-1", ["b", "a"], NOW)
    await store.save_google_account("T1", "U1", "sealed-2", ["a"], NOW)
    assert await store.get_google_account("T1", "U1") == ("sealed-2", ("a",))
    assert await store.get_google_account("T2", "U1") is None
    assert await store.delete_google_account("T1", "U1") is True
    assert await store.delete_google_account("T1", "U1") is False
    assert await store.get_google_account("T1", "U1") is None


async def test_an_oauth_state_is_redeemed_once(store: Store) -> None:
    """The first redemption of a nonce wins; later ones fail until the mark has expired."""
    expires = NOW + timedelta(minutes=10)
    assert not await store.oauth_state_redeemed("n1")
    assert await store.redeem_oauth_state("n1", expires, NOW) is True
    assert await store.redeem_oauth_state("n1", expires, NOW) is False
    assert await store.oauth_state_redeemed("n1")
    # Marks older than their state's expiry are dropped: the signature refuses those anyway.
    assert await store.redeem_oauth_state("n2", expires, expires + timedelta(seconds=1))
    assert not await store.oauth_state_redeemed("n1")


async def test_a_pending_request_is_the_latest_and_is_taken_once(store: Store) -> None:
    """Remembering again replaces the offer id; taking it removes it."""
    await store.remember_pending_request("T1", "U1", "offer-a", NOW)
    await store.remember_pending_request("T1", "U1", "offer-b", NOW)
    assert await store.take_pending_request("T2", "U1") is None
    assert await store.take_pending_request("T1", "U1") == "offer-b"
    assert await store.take_pending_request("T1", "U1") is None
