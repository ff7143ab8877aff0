"""Sealed cookies, CSRF tokens and the server's list of sessions, without a browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interfaces.composition import Store, web_sessions
from interfaces.web.sessions import Sealer, cookie_key
from tests.conftest import DatabaseUnderTest

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def test_a_sealed_cookie_opens_only_unchanged_and_for_its_own_purpose() -> None:
    sealer = Sealer.from_signing_key(Ed25519PrivateKey.generate())
    sealed = sealer.seal("aero_login", {"token": "a login token"})
    assert "login token" not in sealed
    assert sealer.unseal("aero_login", sealed) == {"token": "a login token"}
    assert sealer.unseal("aero_session", sealed) is None
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    assert sealer.unseal("aero_login", flipped) is None
    assert sealer.unseal("aero_login", "not base64 at all!") is None
    assert sealer.unseal("aero_login", None) is None
    other = Sealer.from_signing_key(Ed25519PrivateKey.generate())
    assert other.unseal("aero_login", sealed) is None


def test_the_same_signing_key_gives_every_worker_the_same_sealer() -> None:
    key = Ed25519PrivateKey.generate()
    sealed = Sealer.from_signing_key(key).seal("aero_session", {"sid": "x"})
    assert Sealer.from_signing_key(key).unseal("aero_session", sealed) == {"sid": "x"}


def test_a_csrf_token_matches_only_its_own_seed() -> None:
    sealer = Sealer.from_signing_key(Ed25519PrivateKey.generate())
    token = sealer.csrf_token("seed-1")
    assert sealer.csrf_valid("seed-1", token)
    assert not sealer.csrf_valid("seed-2", token)
    assert not sealer.csrf_valid(None, token)
    assert not sealer.csrf_valid("seed-1", None)
    assert not sealer.csrf_valid("seed-1", "")


def test_after_a_rotation_cookies_and_forms_of_the_previous_key_still_open() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    before = Sealer.from_signing_key(old)
    sealed = before.seal("aero_session", {"sid": "x"})
    form = before.csrf_token("seed-1")

    after = Sealer.from_signing_key(new, cookie_key(old))

    assert after.unseal("aero_session", sealed) == {"sid": "x"}
    assert after.unseal("aero_login", sealed) is None
    assert after.csrf_valid("seed-1", form)
    assert not after.csrf_valid("seed-2", form)
    # Only the new key seals: the old key alone cannot open what is sealed now.
    assert before.unseal("aero_session", after.seal("aero_session", {"sid": "y"})) is None
    assert after.csrf_token("seed-1") != form
    # Without the previous key's cookie key, the old cookies are refused as before.
    assert Sealer.from_signing_key(new).unseal("aero_session", sealed) is None
    assert not Sealer.from_signing_key(new).csrf_valid("seed-1", form)


def test_a_session_lives_until_logout_or_expiry(database: DatabaseUnderTest) -> None:
    sessions = web_sessions(Store.from_url(database.url))
    try:
        sessions.add("one", NOW + timedelta(hours=1), NOW)
        sessions.add("two", NOW + timedelta(hours=1), NOW)
        assert sessions.contains("one", NOW)
        assert not sessions.contains("three", NOW)
        assert not sessions.contains("one", NOW + timedelta(hours=1, seconds=1))
        sessions.remove("one")
        assert not sessions.contains("one", NOW)
        assert sessions.contains("two", NOW)
        # Adding a session forgets the ones expired by then.
        sessions.add("three", NOW + timedelta(hours=3), NOW + timedelta(hours=2))
        assert not sessions.contains("two", NOW)
        sessions.add("four", NOW + timedelta(hours=1), NOW)
    finally:
        sessions.close()
    # A second process sees the same list.
    again = web_sessions(Store.from_url(database.url))
    try:
        assert again.contains("four", NOW)
    finally:
        again.close()
