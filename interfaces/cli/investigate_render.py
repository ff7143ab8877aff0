"""How ``aero-auth investigate`` shows its answers: JSON for scripts, or tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import typer
from rich.console import Console, RenderableType
from rich.table import Table

from application.history import RequirementAnswer
from application.timeline import TimelineEntry
from domain.credential import UserCredential
from domain.instants import rfc3339
from projections.verify import VerifyReport


def emit(data: Any, as_json: bool, table: str | Callable[[], Sequence[RenderableType]]) -> None:
    """``data`` as JSON (--json), else as a table: ``data``'s fields under the title
    ``table``, or what ``table`` renders."""
    if as_json:
        typer.echo(json.dumps(_jsonable(data), indent=2, ensure_ascii=False))
        return
    console = Console()
    for renderable in [_fields(table, data)] if isinstance(table, str) else table():
        console.print(renderable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        items = [_jsonable(v) for v in value]
        return sorted(items) if isinstance(value, frozenset | set) else items
    return value


def text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | frozenset | set):
        return ", ".join(str(v) for v in sorted(value)) or "(none)"
    return str(value)


def _fields(title: str, fields: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in fields.items():
        table.add_row(name, text(value))
    return table


# ----- what the answers show -----


def requirement_fields(answer: RequirementAnswer) -> dict[str, Any]:
    data = asdict(answer)
    # The contract's three first, then what decided them.
    return {
        "required": data.pop("required"),
        "rule": data.pop("rule"),
        "registered": data.pop("registered"),
        **data,
    }


def credential_fields(user: UserCredential, at: datetime, rule: str | None) -> dict[str, Any]:
    """What an investigator may see of a credential: never a hash, secret or challenge."""
    return {
        "environment": user.environment,
        "username": user.username,
        "at": at,
        "version": user.version,
        "created_at": user.created_on,
        "groups": sorted(user.groups),
        "roles": sorted(user.roles),
        "required": rule is not None,
        "rule": rule,
        "registered": user.registered,
        "registration_pending": user.pending_secret is not None,
        "disabled": user.disabled,
        "code_failures": user.code_failures,
        "total_code_failures": user.total_code_failures,
        "code_locked_until": user.code_step_locked_until(at),
        "password_failures": user.password_failures,
        "password_locked_until": user.password_step_locked_until(at),
        "recovery_codes_left": len(user.recovery_codes),
        "login_in_progress": user.challenge_step,
        "last_login_at": user.last_login_at,
        "sessions_valid_after": user.sessions_valid_after,
        "identity_issuer": user.identity_issuer,
        "identity_subject": user.identity_subject,
    }


def timeline_table(environment: str, username: str, entries: list[TimelineEntry]) -> Table:
    table = Table(title=f"{username} in {environment}: {len(entries)} events")
    table.add_column("#", no_wrap=True)
    table.add_column("occurred at", no_wrap=True)
    table.add_column("type", overflow="fold")
    table.add_column("outcome", no_wrap=True)
    # One line each, so a narrow terminal folds them instead of squeezing a column away.
    table.add_column("actor / ip / user agent", overflow="fold")
    table.add_column("details", overflow="fold")
    for entry in entries:
        number = str(entry.version) if entry.stream == "user" else f"env {entry.version}"
        outcome = "[red]failure[/red]" if entry.outcome == "failure" else "success"
        origin = "\n".join(text(v) for v in (entry.actor, entry.ip, entry.user_agent))
        details = "\n".join(f"{k}={text(v)}" for k, v in entry.details.items())
        table.add_row(number, rfc3339(entry.occurred_at), entry.type, outcome, origin, details)
    return table


def rows_table(title: str, columns: Sequence[str], rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(text(row[c]) for c in columns))
    return table


def verify_fields(report: VerifyReport) -> dict[str, Any]:
    return {
        "clean": report.clean,
        "positions": report.positions,
        "difference_count": report.difference_count,
        "differences": [asdict(d) for d in report.differences],
        "chains": [
            {
                "environment": chain.environment,
                "entries_checked": chain.entries_checked,
                "intact": chain.intact,
                "first_broken_position": chain.first_broken_position,
            }
            for chain in report.chains
        ],
    }


def _cell(value: Any, column: str | None) -> str:
    if column is None and value is None:
        return "(no row)"
    if isinstance(value, dict):
        return "\n".join(f"{k}={text(v)}" for k, v in value.items())
    return text(value)


def verify_tables(report: VerifyReport) -> list[RenderableType]:
    shown: list[RenderableType] = []
    where = ", ".join(f"{name} at position {p}" for name, p in report.positions.items())
    if report.differences:
        table = Table(title=f"{report.difference_count} differences ({where})")
        for column in ("view", "table", "key", "column", "live", "rebuilt"):
            table.add_column(column, overflow="fold")
        for d in report.differences:
            key = ", ".join(f"{k}={v}" for k, v in d.key.items())
            table.add_row(
                d.view,
                d.table,
                key,
                d.column or "(whole row)",
                _cell(d.live, d.column),
                _cell(d.rebuilt, d.column),
            )
        shown.append(table)
        if report.difference_count > len(report.differences):
            shown.append(f"... and {report.difference_count - len(report.differences)} more")
    else:
        shown.append(f"views equal to their rebuilds ({where})")
    chains = Table(title="audit hash chains")
    for column in ("environment", "entries checked", "chain"):
        chains.add_column(column)
    for chain in report.chains:
        state = (
            "intact"
            if chain.intact
            else f"[red]broken at position {chain.first_broken_position}[/red]"
        )
        chains.add_row(chain.environment, str(chain.entries_checked), state)
    shown.append(chains)
    return shown
