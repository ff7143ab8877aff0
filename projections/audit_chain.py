"""The audit log's keyed hash chain (SECURITY.md 19): what an entry's hash is made of.

Each entry stores ``hash = HMAC-SHA256(audit key, previous hash || canonical
JSON of the entry)``, the previous hash being that of the environment's entry
before it (32 zero bytes for the first). Changing, inserting or deleting a
stored entry breaks the chain at that entry or the next one. The key lives
outside the database (a key file or a setting, like the other keys): someone
who can write to the database but has not the key cannot recompute the chain
after an edit.

The entry also records what its event said: ``event`` is
``sha256(topic || 0x00 || stored state bytes)`` of the event beneath it, so an
event edited in place no longer matches its entry, and a rebuild of the view
(``investigate verify``) shows the difference.

The canonical JSON is what ``json.dumps(content, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)`` writes, in UTF-8, for the
content ``{"position", "environment", "occurred_at", "type", "username",
"actor", "outcome", "ip", "user_agent", "details", "event"}``, ``occurred_at`` in UTC
with six fractional digits and a Z. orjson writes exactly that for what an
entry holds (strings, ints, booleans, null, lists, string-keyed objects;
tests/projections/test_audit.py compares every code point), several times
faster; what it would write differently (floats) or cannot write (ints
beyond 64 bits) no audit rule produces, and is refused.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from projections.api import AuditEntry

GENESIS = "0" * 64


class NotCanonicalError(ValueError):
    """A value the chain has no canonical form for: no audit rule writes one."""


def canonical_json(value: Any) -> bytes:
    """``value`` as the chain writes it (see the module's docstring)."""
    _refuse_floats(value)
    return _dumps(value)


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as e:
        raise NotCanonicalError(str(e)) from None


def _refuse_floats(value: Any) -> None:
    kind = type(value)
    if kind is float:
        raise NotCanonicalError(f"no canonical form for the float {value!r}")
    if kind is list:
        for item in value:
            _refuse_floats(item)
    elif kind is dict:
        for item in value.values():
            _refuse_floats(item)


def event_digest(topic: str, state: bytes) -> str:
    """What the stored event said, as the chain records it: hex sha256(topic || 0 || state)."""
    return hashlib.sha256(topic.encode() + b"\x00" + state).hexdigest()


def canonical(entry: AuditEntry, event: str) -> bytes:
    """The entry's content as bytes that both databases and every rebuild reproduce exactly."""
    return chain_content(entry, canonical_json(entry.details), event)


def chain_content(entry: Any, details: bytes, event: str) -> bytes:
    """``canonical(entry)`` for an entry whose details are canonical JSON already:
    the projection writes them once, for the stored column and for the hash."""
    return entry_content(
        entry.position,
        entry.environment,
        entry.occurred_at,
        entry.type,
        entry.username,
        entry.actor,
        entry.outcome,
        entry.ip,
        entry.user_agent,
        details,
        event,
    )


def entry_content(
    position: int,
    environment: str,
    occurred_at: datetime,
    type: str,
    username: str | None,
    actor: str | None,
    outcome: str,
    ip: str | None,
    user_agent: str | None,
    details: bytes,
    event: str,
) -> bytes:
    """``chain_content`` of the entry these values would make, without making it: the
    projection hashes an entry before it builds it (an entry made only to be read
    cost half a microsecond of each)."""
    # The other values are strings, None and the int position: no float to refuse.
    return _dumps(
        {
            "position": position,
            "environment": environment,
            "occurred_at": utc_text(occurred_at),
            "type": type,
            "username": username,
            "actor": actor,
            "outcome": outcome,
            "ip": ip,
            "user_agent": user_agent,
            "details": orjson.Fragment(details),
            "event": event,
        }
    )


def utc_text(at: datetime) -> str:
    """``at`` in UTC as the chain hashes it, six fractional digits and a Z.

    Equal to ``at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")``, at a third of the cost.
    """
    at = at.astimezone(UTC)
    if at.year < 1000:  # strftime writes such years unpadded
        return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 (faster than f"{:02d}")
        at.year,
        at.month,
        at.day,
        at.hour,
        at.minute,
        at.second,
        at.microsecond,
    )


def link(key: bytes, previous: str, content: bytes) -> str:
    """The keyed hash of an entry whose canonical bytes are ``content``, after ``previous``."""
    return _keyed(key).hexdigest(bytes.fromhex(previous) + content)


class KeyedHash:
    """HMAC-SHA256 under one key (RFC 2104), the key's two padded blocks hashed once.

    ``hmac.new`` hashes them again for every message: half of an entry's HMAC,
    a microsecond of every audit entry written or verified. The result is the
    same (tests/projections/test_audit_chain.py compares them).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        block = key.ljust(_BLOCK, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


_BLOCK = 64  # SHA-256's block size in bytes


@lru_cache(maxsize=4)
def _keyed(key: bytes) -> KeyedHash:
    return KeyedHash(key)


def chain_hash(key: bytes, previous: str, entry: AuditEntry, event: str) -> str:
    return link(key, previous, canonical(entry, event))
