"""What /openapi.json says each operation answers: its statuses and, per error status,
the codes of its `error` enum. The contract tests check every error they meet
against it (conftest.py), and test_openapi.py checks the document itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

METHODS = ("get", "put", "post", "delete", "patch")

# Answered where no operation matched the request: the API guide's table names them.
UNROUTED = frozenset({"not_found", "method_not_allowed"})


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def error_codes(document: dict[str, Any], schema: dict[str, Any]) -> list[str] | None:
    """The enum of the ``error`` property, across ``anyOf``/``oneOf`` branches; None when a
    branch leaves ``error`` free."""
    schema = resolve(document, schema)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        codes: list[str] = []
        for branch in branches:
            listed = error_codes(document, branch)
            if listed is None:
                return None
            codes += [code for code in listed if code not in codes]
        return codes
    error = resolve(document, schema.get("properties", {}).get("error", {}))
    if "enum" in error:
        return list(error["enum"])
    if "const" in error:
        return [error["const"]]
    return None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


def operations(document: dict[str, Any]) -> Iterator[Operation]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield Operation(method, path, item[method])


def documented_errors(document: dict[str, Any], operation: Operation) -> dict[int, list[str]]:
    """Each error status of the operation, with its codes (an empty list: codes not listed)."""
    found: dict[int, list[str]] = {}
    for status, response in operation.spec.get("responses", {}).items():
        if not status.isdigit() or int(status) < 400:
            continue
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        found[int(status)] = error_codes(document, schema) or []
    return found


def _pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


class ErrorConformance:
    """An httpx response hook: every error an operation answers is one its OpenAPI
    description lists, at that status."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.routes = [(_pattern(op.path), op) for op in operations(document)]

    def operation(self, method: str, path: str) -> Operation | None:
        for pattern, operation in self.routes:
            if operation.method == method.lower() and pattern.fullmatch(path):
                return operation
        return None

    def __call__(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        if not response.headers.get("content-type", "").startswith("application/json"):
            return
        operation = self.operation(response.request.method, response.request.url.path)
        if operation is None:
            return
        response.read()
        body = response.json()
        code = body.get("error") if isinstance(body, dict) else None
        if code in UNROUTED:
            return
        documented = documented_errors(self.document, operation)
        assert response.status_code in documented, (
            f"{operation.label} answered {response.status_code} {code}, a status its "
            f"OpenAPI description does not list ({sorted(documented)})"
        )
        assert code in documented[response.status_code], (
            f"{operation.label} answered {response.status_code} {code!r}, which is not in "
            f"its OpenAPI enum {documented[response.status_code]}"
        )
