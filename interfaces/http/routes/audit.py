"""The audit log (role auditor), served from the read models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from domain.errors import InvalidInputError
from domain.instants import parse_rfc3339
from domain.rules import has_control_characters
from interfaces.http.deps import AuditorUser, ReadModelsDep, ServicesDep
from interfaces.http.errors import COMMON, ErrorBody
from interfaces.http.schemas import AuditEntryView, AuditPage, UserHistory
from interfaces.http.streaming import in_one_thread
from projections.api import AuditQuery
from projections.export import csv_lines, jsonl_lines

router = APIRouter(
    prefix="/v1/environments/{env}",
    tags=["audit"],
    responses={
        **COMMON,
        401: {"model": ErrorBody, "description": "invalid_token"},
        403: {"model": ErrorBody, "description": "forbidden: the role auditor is missing"},
        503: {"model": ErrorBody, "description": "read_models_unavailable"},
    },
)


def _plain(value: str | None, name: str) -> str | None:
    if value is not None and has_control_characters(value):
        raise InvalidInputError(name, "must not contain control characters")
    return value


async def audit_filters(
    env: str,
    username: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[
        list[str] | None, Query(description="an event type; may repeat", max_length=64)
    ] = None,
    outcome: Literal["success", "failure"] | None = None,
    since: Annotated[str | None, Query(description="RFC 3339, inclusive")] = None,
    until: Annotated[str | None, Query(description="RFC 3339, exclusive")] = None,
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


@router.get("/audit")
def audit(
    env: str,
    auditor: AuditorUser,
    read_models: ReadModelsDep,
    query: AuditFilters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> AuditPage:
    """The audit log, oldest first, a page at a time. Filters combine with AND; `type`
    may repeat; `since` is inclusive, `until` exclusive."""
    page = read_models.audit(query, limit, _plain(cursor, "cursor"))
    return AuditPage(
        entries=[AuditEntryView.of(entry) for entry in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/audit/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}, "application/x-ndjson": {}},
            "description": "the whole filtered log, oldest first",
        }
    },
)
def export_audit(
    env: str,
    auditor: AuditorUser,
    read_models: ReadModelsDep,
    query: AuditFilters,
    format: Literal["csv", "jsonl"] = "csv",
) -> StreamingResponse:
    """The whole filtered audit log, streamed as CSV or JSON Lines."""
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
    responses={404: {"model": ErrorBody, "description": "user_not_found"}},
)
def user_history(
    env: str, username: str, auditor: AuditorUser, read_models: ReadModelsDep, services: ServicesDep
) -> UserHistory:
    """Everything that happened to one user, oldest first."""
    user = services.application.user(env, username)
    return UserHistory(
        entries=[AuditEntryView.of(entry) for entry in read_models.history(env, user.username)]
    )
