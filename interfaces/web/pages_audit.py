"""Audit log (filters, paging, exports) and Investigate: the auditor's pages.

They read the same audit view and history as the API's audit routes and ``?at=``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from domain.errors import (
    AeroError,
    InvalidInputError,
    InvalidTimestampError,
    UserNotFoundError,
)
from domain.instants import parse_rfc3339
from domain.rules import has_control_characters
from interfaces.http.streaming import in_one_thread
from interfaces.web.context import (
    PageError,
    SessionDep,
    WebDep,
    base,
    render,
    require_role,
)
from interfaces.web.i18n import _
from interfaces.web.page_helpers import page_size, queries, rule_in_words
from projections.api import AuditQuery, InvalidCursorError
from projections.audit_rules import AUDIT_TYPES
from projections.export import csv_lines, jsonl_lines

router = APIRouter()


# ----- audit log -----


def _instant(value: str, name: str) -> datetime | None:
    """A ``datetime-local`` value (UTC, as the page says) or RFC 3339 text."""
    value = value.strip()
    if not value:
        return None
    if len(value) == 16:  # 2026-11-28T10:00: a browser leaves out zero seconds
        value += ":00"
    if value[-1] not in "Zz" and "+" not in value[10:] and "-" not in value[10:]:
        value += "Z"
    return parse_rfc3339(value, name)


def _audit_query(
    env: str, username: str, type: str, outcome: str, since: str, until: str
) -> AuditQuery:
    for text in (username, type):
        if has_control_characters(text):
            raise InvalidInputError("filter", "must not contain control characters")
    return AuditQuery(
        environment=env,
        username=username.strip() or None,
        types=(type,) if type else (),
        outcome=outcome if outcome in ("success", "failure") else None,
        since=_instant(since, "since"),
        until=_instant(until, "until"),
    )


def _local(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@router.get("/{env}/audit")
def audit_log(
    env: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    username: str = "",
    type: str = "",
    outcome: str = "",
    since: str = "",
    until: str = "",
    cursor: str | None = None,
    limit: int | None = None,
) -> Response:
    require_role(session, "auditor")
    size = page_size(limit)
    paging = {} if limit is None else {"limit": str(size)}
    filters = {
        "username": username,
        "type": type,
        "outcome": outcome,
        "since": since,
        "until": until,
    }
    error = None
    try:
        query = _audit_query(env, username, type, outcome, since, until)
        page = queries(web).audit(query, size, cursor)
    except (InvalidInputError, InvalidTimestampError, InvalidCursorError) as e:
        error = e.detail if isinstance(e, AeroError) else str(e)
        query = AuditQuery(environment=env)
        page = queries(web).audit(query, size, None)
        filters = {key: "" for key in filters}
    shown = {key: value for key, value in filters.items() if value}
    next_url = (
        f"{base(request, env)}/audit?{urlencode({**shown, **paging, 'cursor': page.next_cursor})}"
        if page.next_cursor
        else None
    )
    export = urlencode(shown)
    return render(
        web,
        request,
        "audit.html",
        env=env,
        session=session,
        entries=page.items,
        filters=filters,
        types=AUDIT_TYPES,
        error=error,
        next_url=next_url,
        export_query=export,
        status=422 if error else 200,
    )


@router.get("/{env}/audit/export.{format}")
def export_audit_log(
    env: str,
    format: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    username: str = "",
    type: str = "",
    outcome: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    require_role(session, "auditor")
    if format not in ("csv", "jsonl"):
        raise PageError(404, _("Not found"), _("There is no such export."))
    try:
        query = _audit_query(env, username, type, outcome, since, until)
    except (InvalidInputError, InvalidTimestampError) as e:
        raise PageError(422, _("Invalid filter"), e.detail) from None
    read_models = queries(web)
    lines = csv_lines if format == "csv" else jsonl_lines

    def produce() -> Iterator[bytes]:
        return (line.encode() for line in lines(read_models.export_audit(query)))

    return StreamingResponse(
        in_one_thread(produce),
        media_type="text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit-{env}.{format}"'},
    )


# ----- investigate -----


@router.get("/{env}/investigate")
def investigate(
    env: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    username: str = "",
    at: str = "",
) -> Response:
    require_role(session, "auditor")
    policy = requirement = error = None
    if at.strip():
        history = web.services.history
        try:
            instant = _instant(at, "at")
            assert instant is not None
            policy = history.policy_at(env, instant)
            if username.strip():
                requirement = history.required_at(env, username.strip(), instant)
        except (InvalidTimestampError, InvalidInputError, UserNotFoundError) as e:
            error = e.detail
        except AeroError as e:
            error = e.detail
    elif username.strip():
        error = _("Give the instant to look at.")
    return render(
        web,
        request,
        "investigate.html",
        env=env,
        session=session,
        username=username,
        at=at,
        policy=policy,
        requirement=requirement,
        rule=rule_in_words(requirement.rule) if requirement else None,
        error=error,
        status=422 if error else 200,
    )
