"""The audit log (role auditor), served from the read models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from domain.errors import InvalidInputError
from domain.instants import parse_rfc3339
from domain.rules import has_control_characters
from interfaces.http import examples
from interfaces.http.deps import (
    AuditorUser,
    Cursor,
    Env,
    Limit,
    ReadModelsDep,
    ServicesDep,
    Username,
)
from interfaces.http.openapi import ROLE, answers, text
from interfaces.http.schemas import AuditEntryView, AuditPage, UserHistory
from interfaces.http.streaming import in_one_thread
from projections.api import AuditQuery
from projections.export import csv_lines, jsonl_lines

router = APIRouter(prefix="/v1/environments/{env}", tags=["audit"])

# Every audit read: from the read models, with filters that may be refused.
_READ = (*ROLE, "read_models_unavailable")
_FILTERED = (*_READ, "invalid_timestamp", "invalid_input")


def _plain(value: str | None, name: str) -> str | None:
    if value is not None and has_control_characters(value):
        raise InvalidInputError(name, "must not contain control characters")
    return value


async def audit_filters(
    env: Env,
    username: Annotated[
        str | None,
        Query(max_length=64, description="only entries about this user (as created)"),
    ] = None,
    type: Annotated[
        list[str] | None,
        Query(description="only entries of this type; may repeat", max_length=64),
    ] = None,
    outcome: Annotated[
        Literal["success", "failure"] | None, Query(description="only successes or failures")
    ] = None,
    since: Annotated[
        str | None,
        Query(description="RFC 3339; entries at or after it", examples=["2026-11-28T00:00:00Z"]),
    ] = None,
    until: Annotated[
        str | None,
        Query(description="RFC 3339; entries before it", examples=["2026-11-29T00:00:00Z"]),
    ] = None,
) -> AuditQuery:
    for value in type or ():
        _plain(value, "type")
    return AuditQuery(
        environment=env,
        username=_plain(username, "username"),
        types=tuple(type or ()),
        outcome=outcome,
        since=parse_rfc3339(since, "since") if since is not None else None,
        until=parse_rfc3339(until, "until") if until is not None else None,
    )


AuditFilters = Annotated[AuditQuery, Depends(audit_filters)]


@router.get("/audit", responses=answers(200, examples.AUDIT_PAGE, *_FILTERED, "invalid_cursor"))
def audit(
    env: Env,
    auditor: AuditorUser,
    read_models: ReadModelsDep,
    query: AuditFilters,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> AuditPage:
    """The audit log (role auditor), oldest first, a page at a time. Filters combine with
    AND; `type` may repeat; `since` is inclusive, `until` exclusive."""
    page = read_models.audit(query, limit, _plain(cursor, "cursor"))
    return AuditPage(
        entries=[AuditEntryView.of(entry) for entry in page.items], next_cursor=page.next_cursor
    )


_FILE = "the file's name: `audit-{env}.{format}`"


@router.get(
    "/audit/export",
    response_class=StreamingResponse,
    responses=answers(
        200,
        None,
        *_FILTERED,
        description="the whole filtered log, oldest first",
        content={
            **text(
                "text/csv",
                examples.AUDIT_CSV,
                "format=csv: a header line, then one line per entry",
                "CSV (RFC 4180), UTF-8; `details` as a JSON object",
            ),
            **text(
                "application/x-ndjson",
                examples.AUDIT_JSONL,
                "format=jsonl: one AuditEntry per line",
                "JSON Lines: one AuditEntry object per line",
            ),
        },
        headers={"Content-Disposition": f"`attachment`, with {_FILE}"},
    ),
)
def export_audit(
    env: Env,
    auditor: AuditorUser,
    read_models: ReadModelsDep,
    query: AuditFilters,
    format: Annotated[
        Literal["csv", "jsonl"], Query(description="CSV (text/csv) or JSON Lines")
    ] = "csv",
) -> StreamingResponse:
    """The whole filtered audit log (role auditor), streamed as CSV or JSON Lines."""
    lines = csv_lines if format == "csv" else jsonl_lines

    def produce() -> Iterator[bytes]:
        return (line.encode() for line in lines(read_models.export_audit(query)))

    return StreamingResponse(
        in_one_thread(produce),
        media_type="text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit-{env}.{format}"'},
    )


@router.get(
    "/users/{username}/history",
    responses=answers(200, examples.HISTORY, *_READ, "user_not_found"),
)
def user_history(
    env: Env,
    username: Username,
    auditor: AuditorUser,
    read_models: ReadModelsDep,
    services: ServicesDep,
) -> UserHistory:
    """Everything that happened to one user (role auditor), oldest first."""
    user = services.application.user(env, username)
    return UserHistory(
        entries=[AuditEntryView.of(entry) for entry in read_models.history(env, user.username)]
    )
