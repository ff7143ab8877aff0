"""What the OpenAPI document says of each route: its examples and every answer it gives.

A route names its success examples and the error codes it may answer
(``answers``); the codes are grouped by the status error_codes.CODES gives them,
the table the error handlers answer from. Each error response lists its codes as
an enum, with one example per code, so a generated client knows them all.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from interfaces.http import examples
from interfaces.http.error_codes import CODES, HEADERS
from interfaces.http.examples import Examples

# The ``responses=`` and ``openapi_extra=`` arguments of a route.
Responses = dict[int | str, dict[str, Any]]

JSON = "application/json"

# Any request: too big, not fitting the schema (an unknown query parameter
# included), or failing unexpectedly.
COMMON = ("payload_too_large", "invalid_request", "internal_error")
# A request that reaches the services and the event store.
SERVED = (*COMMON, "starting", "store_unavailable")
# An access token, with any role; with a role the route names.
ACCESS = (*SERVED, "invalid_token")
ROLE = (*ACCESS, "forbidden")
# A login token of the second step; its commands retry on conflicts.
LOGIN_TOKEN = (*SERVED, "invalid_token", "conflict")
# The code step and its recovery codes: wrong codes count, and lock.
CODE_STEP = (*LOGIN_TOKEN, "invalid_code", "too_many_attempts", "two_factor_disabled")

# Said by every write that waits for the views to include it (admin writes, /me).
READS_REFLECT_WRITE = {
    "Aero-Reads-Reflect-Write": "`false` when the users list and the audit log did not "
    "include this write within AERO_READ_MODEL_WAIT_SECONDS; the write stands. A JSON "
    'object answer then also carries `"reads_reflect_write": false`. Absent otherwise'
}

_PROBLEM = {
    "type": "object",
    "required": ["type", "loc", "msg"],
    "properties": {
        "type": {"type": "string", "description": "the kind of problem, e.g. `missing`"},
        "loc": {
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "description": "where: `body`, `query` or `path`, then the field",
        },
        "msg": {"type": "string", "description": "the problem, for people"},
    },
}


def _error_schema(codes: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {
                "type": "string",
                "enum": codes,
                "description": "what went wrong, for programs: one of these codes",
            },
            "detail": {"type": "string", "description": "what went wrong, for people"},
        },
    }


def _schema(codes: list[str]) -> dict[str, Any]:
    if "invalid_request" not in codes:
        return _error_schema(codes)
    # A request that does not fit the schema: FastAPI's list of problems as `detail`
    # (a body that is not UTF-8 at all gets a sentence, as any other error).
    listed = _error_schema(["invalid_request"])
    listed["properties"]["detail"] = {
        "type": "array",
        "items": _PROBLEM,
        "description": "each problem with the request, without the input it refused",
    }
    return {"anyOf": [_error_schema(codes), listed]}


def _example(code: str) -> dict[str, Any]:
    detail: Any = examples.VALIDATION_PROBLEMS if code == "invalid_request" else CODES[code].detail
    return examples.example({"error": code, "detail": detail}, CODES[code].when)


def errors(*codes: str) -> Responses:
    """The error responses of these codes, one per status, each listing its codes."""
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(CODES[code].status, []).append(code)
    responses: Responses = {}
    for status, listed in sorted(by_status.items()):
        response: dict[str, Any] = {
            "description": "\n".join(f"- `{code}`: {CODES[code].when}" for code in listed),
            "content": {
                JSON: {
                    "schema": _schema(listed),
                    "examples": {code: _example(code) for code in listed},
                }
            },
        }
        headers = [name for code in listed for name in CODES[code].headers]
        if headers:
            response["headers"] = {
                name: _header(name, HEADERS[name]) for name in dict.fromkeys(headers)
            }
        responses[status] = response
    return responses


def _header(name: str, description: str) -> dict[str, Any]:
    integer = name == "Retry-After"
    return {"description": description, "schema": {"type": "integer" if integer else "string"}}


def answers(
    status: int,
    ok: Examples | None,
    *codes: str,
    description: str | None = None,
    content: dict[str, dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Responses:
    """The success answer (``ok``: its JSON examples; ``content``: other media types),
    then the error responses of ``codes``."""
    success: dict[str, Any] = {}
    if description is not None:
        success["description"] = description
    if ok is not None:
        success["content"] = {JSON: {"examples": _marked(ok)}}
    if content is not None:
        success.setdefault("content", {}).update(content)
    if headers:
        success["headers"] = {name: _header(name, text) for name, text in headers.items()}
    responses: Responses = {status: success}
    responses.update(errors(*codes))
    return responses


def text(media_type: str, value: str, summary: str, description: str) -> dict[str, Any]:
    """A text answer of ``media_type`` (CSV, JSON Lines, Prometheus): a string, by example."""
    return {
        media_type: {
            "schema": {"type": "string", "description": description},
            "examples": {"example": examples.example(value, summary)},
        }
    }


def request(body: Examples, media_type: str = JSON) -> dict[str, Any]:
    """``openapi_extra`` for a route's request body examples."""
    return {"requestBody": {"content": {media_type: {"examples": _marked(body)}}}}


def install(app: FastAPI) -> None:
    """Serve the examples' nulls: FastAPI drops every null from the document it
    generates (``exclude_none``), examples' values included, so they travel as
    ``_NULL`` and are turned back here, once per generated document."""
    generate = app.openapi
    restored: list[int] = []

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI's, cached until the routes change
        if restored != [id(document)]:
            document.update(_unmarked(document))
            restored[:] = [id(document)]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


# Stands for null in an example until install() turns it back; no real text holds it.
_NULL = "\x00null\x00"


def _marked(value: Any) -> Any:
    if value is None:
        return _NULL
    if isinstance(value, dict):
        return {key: _marked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_marked(item) for item in value]
    return value


def _unmarked(value: Any) -> Any:
    if value == _NULL:
        return None
    if isinstance(value, dict):
        return {key: _unmarked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unmarked(item) for item in value]
    return value
