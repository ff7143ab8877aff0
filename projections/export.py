"""API.md's AuditEntry as JSON, and the CSV and JSON-lines exports, one line at a time."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from domain.instants import rfc3339
from projections.api import AuditEntry

CSV_COLUMNS = (
    "position",
    "occurred_at",
    "type",
    "username",
    "actor",
    "outcome",
    "ip",
    "user_agent",
    "details",
)
# A spreadsheet runs a cell starting with one of these as a formula (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "position": entry.position,
        "occurred_at": rfc3339(entry.occurred_at),
        "type": entry.type,
        "username": entry.username,
        "actor": entry.actor,
        "outcome": entry.outcome,
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "details": entry.details,
    }


def jsonl_lines(entries: Iterable[AuditEntry]) -> Iterator[str]:
    for entry in entries:
        yield json.dumps(entry_json(entry), ensure_ascii=False) + "\n"


def csv_lines(entries: Iterable[AuditEntry]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: Iterable[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(cells)
        return buffer.getvalue()

    yield line(CSV_COLUMNS)
    for entry in entries:
        data = entry_json(entry)
        data["details"] = json.dumps(entry.details, ensure_ascii=False, sort_keys=True)
        yield line(_defused(data[column]) for column in CSV_COLUMNS)


def _defused(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
