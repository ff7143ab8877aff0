"""Browser sessions: sealed cookies, a server-side session list, and CSRF tokens.

A session stands for one access token (interfaces.tokens), which is checked on
every request exactly as the API checks a bearer token, so whatever ends the
token (expiry, a 2FA reset, a password change) ends the session. The token
travels in an ``HttpOnly`` cookie, sealed (AES-256-GCM) so that the cookie
is opaque even to whoever can read it; page scripts never see it.

Logging out must end the session on the server, which a self-contained token
cannot do alone: each session also has a row in a small table (the store's
own database for PostgreSQL, a file beside the SQLite store), and a session
whose row is gone is over. Rows carry only a hash of the session id.

The unfinished login (the login token between the password and the code)
and the recovery codes between "shown" and "downloaded" live in sealed
cookies too, each limited to its path and its minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg_pool import ConnectionPool

from projections.lease import CONNECTION_OPTIONS

if TYPE_CHECKING:
    # Only for annotations: the composition root builds the session list.
    from interfaces.composition import Store


def cookie_key(signing_key: Ed25519PrivateKey) -> bytes:
    """The cookies' AES key, derived from the token signing key (HKDF), so every worker
    and host that shares that key unseals the same cookies without a second secret to
    manage. One-way: the derived key cannot sign a token."""
    raw = signing_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"aero-auth web cookies v1"
    ).derive(raw)


def _csrf_key(key: bytes) -> bytes:
    return hashlib.sha256(b"aero-auth web csrf\0" + key).digest()


class Sealer:
    """AES-256-GCM over JSON, with the cookie's name as associated data, so a value
    sealed for one cookie cannot be replayed as another.

    After a signing key rotation the previous key's cookie key (written by the
    rotation) still opens cookies and accepts forms from before it, as the previous
    signing key still verifies tokens: a rotation logs no browser out. Only the
    current key seals.
    """

    def __init__(self, key: bytes, previous: bytes | None = None) -> None:
        self._aead = AESGCM(key)
        self._csrf_key = _csrf_key(key)
        self._opening = [self._aead]
        self._csrf_keys = [self._csrf_key]
        if previous is not None and previous != key:
            self._opening.append(AESGCM(previous))
            self._csrf_keys.append(_csrf_key(previous))

    @classmethod
    def from_signing_key(
        cls, signing_key: Ed25519PrivateKey, previous_cookie_key: bytes | None = None
    ) -> Sealer:
        return cls(cookie_key(signing_key), previous_cookie_key)

    def seal(self, purpose: str, value: dict[str, Any]) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, json.dumps(value).encode(), purpose.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def unseal(self, purpose: str, cookie: str | None) -> dict[str, Any] | None:
        if not cookie or len(cookie) > 8192:
            return None
        try:
            data = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
        except ValueError:
            return None
        for aead in self._opening:
            try:
                value = json.loads(aead.decrypt(data[:12], data[12:], purpose.encode()))
            except (ValueError, InvalidTag):
                continue
            return value if isinstance(value, dict) else None
        return None

    def csrf_token(self, seed: str) -> str:
        """Signed double submit (OWASP): the form's token is an HMAC of the seed
        cookie, which a page on another origin can neither read nor set."""
        return hmac.new(self._csrf_key, seed.encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, seed: str | None, token: str | None) -> bool:
        if not seed or not token:
            return False
        return any(
            hmac.compare_digest(hmac.new(key, seed.encode(), hashlib.sha256).hexdigest(), token)
            for key in self._csrf_keys
        )


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionList(ABC):
    """The sessions that have not been logged out, by the hash of their id."""

    @abstractmethod
    def add(self, session_id: str, expires_at: datetime, now: datetime) -> None:
        """Also forgets the sessions that expired before ``now``."""

    @abstractmethod
    def contains(self, session_id: str, now: datetime) -> bool: ...

    @abstractmethod
    def remove(self, session_id: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class SQLiteSessionList(SessionList):
    """A file of its own beside the event store: a logout never waits for the
    store's write lock, and the event store's file holds events only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS web_sessions_v1 "
            "(session_key TEXT PRIMARY KEY, expires_at REAL NOT NULL)"
        )

    def add(self, session_id: str, expires_at: datetime, now: datetime) -> None:
        with self._lock:
            # Expired rows go as new ones come: the table holds live sessions only.
            self._db.execute("DELETE FROM web_sessions_v1 WHERE expires_at < ?", (now.timestamp(),))
            self._db.execute(
                "INSERT INTO web_sessions_v1 VALUES (?, ?)",
                (_key(session_id), expires_at.timestamp()),
            )

    def contains(self, session_id: str, now: datetime) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM web_sessions_v1 WHERE session_key = ? AND expires_at > ?",
                (_key(session_id), now.timestamp()),
            ).fetchone()
        return row is not None

    def remove(self, session_id: str) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM web_sessions_v1 WHERE session_key = ?", (_key(session_id),)
            )

    def close(self) -> None:
        self._db.close()


class PostgresSessionList(SessionList):
    def __init__(self, store: Store) -> None:
        self._pool: ConnectionPool[Any] = ConnectionPool(
            kwargs={
                "host": store.host,
                "port": store.port,
                "user": store.user,
                "password": store.password,
                "dbname": store.dbname,
                "autocommit": True,
                **CONNECTION_OPTIONS,
            },
            min_size=1,
            max_size=4,
            open=True,
        )
        with self._pool.connection() as conn:
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS web_sessions_v1 "
                    "(session_key TEXT PRIMARY KEY, expires_at TIMESTAMPTZ NOT NULL)"
                )
            except psycopg.errors.UniqueViolation:
                pass  # another worker created it at the same moment

    def add(self, session_id: str, expires_at: datetime, now: datetime) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM web_sessions_v1 WHERE expires_at < %s", (now,))
            conn.execute(
                "INSERT INTO web_sessions_v1 VALUES (%s, %s)", (_key(session_id), expires_at)
            )

    def contains(self, session_id: str, now: datetime) -> bool:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM web_sessions_v1 WHERE session_key = %s AND expires_at > %s",
                (_key(session_id), now),
            ).fetchone()
        return row is not None

    def remove(self, session_id: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM web_sessions_v1 WHERE session_key = %s", (_key(session_id),))

    def close(self) -> None:
        self._pool.close()
