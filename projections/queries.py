"""The read models' queries (projections.api.ReadModelQueries): pages over the views.

Cursors are opaque to clients: base64 of the kind of page and the last key
it showed, checked on the way back in.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from domain.rules import username_key
from projections.api import (
    TWO_FACTOR_FILTERS,
    AuditEntry,
    AuditQuery,
    ChainReport,
    Compliance,
    InvalidCursorError,
    Page,
    ReadModelQueries,
    UserRow,
)
from projections.audit import export, verify_chain
from projections.views import Views


def encode_cursor(kind: str, after: int | str) -> str:
    raw = json.dumps({"k": kind, "a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, expected: type) -> Any:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursorError("the cursor is not one this service issued") from None
    if not isinstance(data, dict) or data.get("k") != kind:
        raise InvalidCursorError("the cursor is not one this service issued")
    after = data.get("a")
    if not isinstance(after, expected) or isinstance(after, bool):
        raise InvalidCursorError("the cursor is not one this service issued")
    if isinstance(after, int) and not 0 <= after < 2**63:
        # Positions are BIGINTs: a larger number would fail in the database, a 500.
        raise InvalidCursorError("the cursor is not one this service issued")
    return after


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise ValueError("limit must be 1 to 1000")


class ViewQueries:
    """What the routes ask of the read models, answered from ``views``.

    ``now`` (None: never) decides whether a stored lock still holds.
    """

    def __init__(self, views: Views, now: Callable[[], datetime] | None = None) -> None:
        self.views = views
        self._now = now

    def list_users(
        self, environment: str, two_factor: str, limit: int, cursor: str | None
    ) -> Page[UserRow]:
        if two_factor not in TWO_FACTOR_FILTERS:
            raise ValueError(f"two_factor must be one of {', '.join(TWO_FACTOR_FILTERS)}")
        _check_limit(limit)
        after = None if cursor is None else decode_cursor("users", cursor, str)
        rows = self.views.directory.users(environment, two_factor, after, limit + 1)
        items = [self._current(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor("users", username_key(items[-1].username))
        return Page(items, next_cursor)

    def user(self, environment: str, username: str) -> UserRow | None:
        row = self.views.directory.user(environment, username)
        return None if row is None else self._current(row)

    def compliance(self, environment: str) -> Compliance:
        return self.views.directory.compliance(environment)

    def audit(self, query: AuditQuery, limit: int, cursor: str | None) -> Page[AuditEntry]:
        _check_limit(limit)
        after = 0 if cursor is None else decode_cursor("audit", cursor, int)
        rows = self.views.audit.entries(query, after, limit + 1)
        items = rows[:limit]
        next_cursor = encode_cursor("audit", items[-1].position) if len(rows) > limit else None
        return Page(items, next_cursor)

    def export_audit(self, query: AuditQuery) -> Iterator[AuditEntry]:
        return export(self.views.audit, query)

    def history(self, environment: str, username: str) -> list[AuditEntry]:
        return list(export(self.views.audit, AuditQuery(environment, username=username)))

    def verify_audit_chain(self, environment: str) -> ChainReport:
        return verify_chain(self.views.audit, environment)

    def _current(self, row: UserRow) -> UserRow:
        # The view stores when a lock ends; whether it still holds depends on now.
        lock = row.locked_until
        if lock is not None and self._now is not None and lock <= self._now():
            return replace(row, locked_until=None)
        return row


# Checked by mypy: ViewQueries is what the routes ask for.
_implements: type[ReadModelQueries] = ViewQueries
