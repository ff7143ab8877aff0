"""Instants as API.md writes and reads them: RFC 3339, shown in UTC with a ``Z``."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from domain.errors import InvalidTimestampError

# RFC 3339 section 5.6 date-time: a full date, a full time, and an offset.
# datetime.fromisoformat alone also takes ISO 8601 forms RFC 3339 does not
# (week dates, basic format, times without seconds).
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_rfc3339(value: str, name: str) -> datetime:
    """An RFC 3339 instant (``Z`` or any offset), in UTC; else InvalidTimestampError."""
    value = value.strip()
    if not _RFC3339.match(value):
        raise InvalidTimestampError(
            f"{name} {value!r} is not an RFC 3339 instant such as 2026-03-03T10:00:00Z"
        )
    normalized = value.upper().replace(" ", "T").replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(normalized).astimezone(UTC)
    except ValueError as e:
        raise InvalidTimestampError(f"{name} {value!r} is not a valid RFC 3339 instant: {e}") from e
