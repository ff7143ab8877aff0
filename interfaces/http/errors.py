"""One error shape, ``{"error": code, "detail": text}``, with the status that
error_codes.CODES gives each code."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from eventsourcing.persistence import (
    ConnectionUnavailableError,
    InterfaceError,
    OperationalError,
    RecordConflictError,
)
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import AeroError, ConflictError, InvalidChallengeError, TooManyAttemptsError
from interfaces.http.error_codes import CODES, status_of_code
from interfaces.http.observability import escape, logger
from projections.api import InvalidCursorError

# RFC 9110 §11.6.1: a 401 carries a challenge; RFC 6750 §3 names the error.
_BEARER = 'Bearer realm="aero-auth"'
_BEARER_INVALID = 'Bearer realm="aero-auth", error="invalid_token"'

# Starlette's own refusals (no route, another method, ...): their codes by status.
_HTTP_CODES = {
    CODES[code].status: code
    for code in (
        "invalid_token",
        "forbidden",
        "not_found",
        "method_not_allowed",
        "payload_too_large",
        "unsupported_media_type",
    )
}


class ApiError(Exception):
    """An error the HTTP layer itself decides: wrong token, missing role, no read models.
    Its status is the code's, from the one table (error_codes.CODES)."""

    def __init__(self, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status_of_code(code)
        self.code = code
        self.detail = detail
        self.headers = headers


def invalid_token(detail: str = "the token is not accepted here") -> ApiError:
    return ApiError("invalid_token", detail, {"WWW-Authenticate": _BEARER_INVALID})


def forbidden(detail: str) -> ApiError:
    return ApiError("forbidden", detail)


def read_models_unavailable() -> ApiError:
    return ApiError(
        "read_models_unavailable", "this process runs without read models; try again later"
    )


def status_of(error: AeroError) -> int:
    """The status of a domain error, by its code."""
    return status_of_code(error.code)


def error_response(code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """``{"error": code, "detail": detail}`` with the code's status."""
    return JSONResponse(
        {"error": code, "detail": detail}, status_code=status_of_code(code), headers=headers
    )


def _aero_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AeroError)
    status = status_of(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, TooManyAttemptsError | ConflictError):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = (
            _BEARER_INVALID if isinstance(exc, InvalidChallengeError) else _BEARER
        )
    return error_response(exc.code, exc.detail, headers)


def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.code, exc.detail, exc.headers)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body that is not UTF-8 at all; a body that is
        # not JSON is already a 422, and API.md keeps malformed input at 422.
        return error_response("invalid_request", "the body is not UTF-8 JSON")
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return JSONResponse(
        {"error": code, "detail": detail}, exc.status_code, dict(exc.headers or {})
    )


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI's shape, minus the rejected input: it may be a password, and
    # responses end up in proxies' and browsers' logs.
    errors: list[dict[str, Any]] = [
        {key: value for key, value in error.items() if key != "input"} for error in exc.errors()
    ]
    return JSONResponse(
        {"error": "invalid_request", "detail": jsonable_encoder(errors)},
        status_code=status_of_code("invalid_request"),
    )


def _invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
    return error_response("invalid_cursor", "the cursor is not one this service issued")


# The store's operational failures: the database went away, is full, locked, or
# the pool had no connection to give. The request may succeed once it is back.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,  # the library's, ConnectionUnavailableError (pool timeout) among them
    InterfaceError,
    sqlite3.OperationalError,  # the read models' own connections
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
STORE_RETRY_AFTER_SECONDS = 1

def store_error_kind(exc: BaseException) -> str:
    """``pool_timeout``, ``disk_full``, ``locked``, ``connection_lost`` or ``unavailable``."""
    text = " ".join(str(e) for e in (exc, exc.__cause__) if e is not None).lower()
    if isinstance(exc, ConnectionUnavailableError) or "couldn't get a connection" in text:
        return "pool_timeout"
    if "full" in text or "no space left" in text:
        return "disk_full"
    if "locked" in text:
        return "locked"
    if isinstance(exc, psycopg.Error | InterfaceError) or isinstance(exc.__cause__, psycopg.Error):
        return "connection_lost"
    return "unavailable"


def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    kind = store_error_kind(exc)
    request.app.state.metrics.store_error(exc)  # aero_store_errors_total{kind}
    # One line, no traceback: the cause is the store's, and a traceback per request
    # while the database is down would bury everything else in the log.
    logger.warning(
        "store unavailable (%s) on %s %s: %s: %s",
        kind,
        escape(request.method),
        escape(request.url.path),
        type(exc).__name__,
        escape(str(exc).splitlines()[0] if str(exc) else ""),
    )
    return error_response(
        "store_unavailable",
        "the event store is unavailable; try again shortly",
        {"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
    )


def _record_conflict(request: Request, exc: Exception) -> JSONResponse:
    # A conflict that no command retried (the commands turn theirs into ConflictError).
    logger.warning(
        "record conflict on %s %s: %s",
        escape(request.method),
        escape(request.url.path),
        type(exc).__name__,
    )
    return error_response(
        "conflict", "the record was changed concurrently; try again", {"Retry-After": "1"}
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request.app.state.metrics.store_error(exc)  # aero_store_errors_total{kind}
    # The traceback goes to the log only; the client learns nothing of the internals.
    logger.error(
        "unhandled %s on %s %s",
        type(exc).__name__,
        escape(request.method),
        escape(request.url.path),
        exc_info=exc,
    )
    return error_response("internal_error", "the server failed to handle the request")


def install(app: FastAPI) -> None:
    app.add_exception_handler(AeroError, _aero_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InvalidCursorError, _invalid_cursor)
    # Handlers for these classes answer inside the app, so Starlette neither
    # re-raises them to the server (a second traceback) nor closes the connection.
    for cls in STORE_UNAVAILABLE:
        app.add_exception_handler(cls, _store_unavailable)
    app.add_exception_handler(RecordConflictError, _record_conflict)
    app.add_exception_handler(Exception, _unexpected)
