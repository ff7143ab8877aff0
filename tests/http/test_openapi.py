"""/openapi.json is enough to write and generate a client: every operation is described,
every request and answer has an example that fits its own schema, every error response
lists its codes as an enum at the status the service answers them with, and every
parameter, field and header says what it is.

The app is not started: the document needs no store."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from domain.errors import AeroError
from interfaces.http.app import create_app
from interfaces.http.error_codes import CODES
from tests.http.conftest import TestClient
from tests.http.documented import (
    UNROUTED,
    ErrorConformance,
    Operation,
    documented_errors,
    error_codes,
    operations,
    resolve,
)

GUIDE = Path(__file__).parents[2] / "docs" / "api.md"
JSON = "application/json"
# Raised by the CLI's service-credential commands only; no HTTP route answers them.
CLI_ONLY = {"service_credential_exists", "service_credential_not_found"}


def _never_started() -> Any:
    raise AssertionError("the OpenAPI document needs no container")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    client = TestClient(create_app(_never_started, max_request_bytes=65536))
    response = client.get("/openapi.json")
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


@pytest.fixture(scope="module")
def all_operations(document: dict[str, Any]) -> list[Operation]:
    found = list(operations(document))
    assert len(found) >= 30
    return found


def _strict(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every object schema closed to properties it does not name, so
    that an example with a misspelt or stale field fails."""
    strict = copy.deepcopy(document)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for key, value in node.items():
                if key not in ("example", "examples"):
                    close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(strict)
    return strict


def _problems(document: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    # The components travel with the schema, so its "#/components/..." references resolve.
    rooted = {**schema, "components": document["components"]}
    errors = jsonschema_rs.iter_errors(rooted, value, draft=jsonschema_rs.Draft202012)
    return [f"{error.instance_path}: {error.message}" for error in errors]


def _examples(media: dict[str, Any]) -> list[tuple[str, Any]]:
    named = [(name, example["value"]) for name, example in media.get("examples", {}).items()]
    if "example" in media:
        named.append(("example", media["example"]))
    return named


def _contents(operation: Operation) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, media type, media object) of the request body and of every response."""
    body = operation.spec.get("requestBody")
    if body is not None:
        for media_type, media in body["content"].items():
            yield "request body", media_type, media
    for status, response in operation.spec["responses"].items():
        for media_type, media in response.get("content", {}).items():
            yield f"response {status}", media_type, media


def test_every_operation_has_a_summary_a_description_and_a_described_tag(
    document: dict[str, Any], all_operations: list[Operation]
) -> None:
    tags = {tag["name"] for tag in document["tags"] if tag.get("description")}
    missing = [
        op.label
        for op in all_operations
        if not op.spec.get("summary")
        or not op.spec.get("description", "").strip()
        or not set(op.spec["tags"]) <= tags
    ]
    assert not missing, missing


def test_every_request_body_and_every_answer_has_examples_that_fit_its_schema(
    document: dict[str, Any],
) -> None:
    strict = _strict(document)
    problems: list[str] = []
    checked = 0
    for op in operations(strict):
        for where, media_type, media in _contents(op):
            label = f"{op.label} {where} {media_type}"
            schema = media.get("schema", {})
            if resolve(strict, schema).get("format") == "binary":
                continue  # an image: its schema says so, and no example text could show it
            named = _examples(media)
            if not named:
                problems.append(f"{label}: no example")
            for name, value in named:
                checked += 1
                problems += [f"{label} {name!r}: {p}" for p in _problems(strict, schema, value)]
    assert not problems, "\n".join(problems)
    assert checked >= 100


def test_an_answer_without_a_body_is_a_204(all_operations: list[Operation]) -> None:
    bodiless = [
        f"{op.label} {status}"
        for op in all_operations
        for status, response in op.spec["responses"].items()
        if not response.get("content") and status != "204"
    ]
    assert not bodiless, bodiless


def test_every_error_response_lists_its_codes_as_an_enum_with_an_example_each(
    document: dict[str, Any], all_operations: list[Operation]
) -> None:
    problems: list[str] = []
    for op in all_operations:
        for status, response in op.spec["responses"].items():
            if int(status) < 400:
                continue
            media = response.get("content", {}).get(JSON)
            if media is None:
                problems.append(f"{op.label} {status}: no JSON body")
                continue
            codes = error_codes(document, media["schema"])
            if not codes:
                problems.append(f"{op.label} {status}: `error` is not an enum")
                continue
            wrong = [c for c in codes if c not in CODES or CODES[c].status != int(status)]
            if wrong:
                problems.append(f"{op.label} {status}: {wrong} are answered with another status")
            shown = {value["error"] for _, value in _examples(media)}
            if shown != set(codes):
                problems.append(f"{op.label} {status}: examples show {shown}, enum {codes}")
    assert not problems, "\n".join(problems)


def _schemas(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if "properties" in node:
            yield where, node
        for key, value in node.items():
            yield from _schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _schemas(value, f"{where}/{index}")


def test_every_parameter_property_and_header_says_what_it_is(
    document: dict[str, Any], all_operations: list[Operation]
) -> None:
    missing: list[str] = []
    for op in all_operations:
        for parameter in op.spec.get("parameters", []):
            if not parameter.get("description"):
                missing.append(f"{op.label} parameter {parameter['in']} {parameter['name']}")
        for status, response in op.spec["responses"].items():
            for name, header in response.get("headers", {}).items():
                if not header.get("description"):
                    missing.append(f"{op.label} {status} header {name}")
    for where, schema in _schemas(document, "#"):
        for name, prop in schema["properties"].items():
            if not prop.get("description"):
                missing.append(f"{where} property {name}")
    for name, scheme in document["components"]["securitySchemes"].items():
        if not scheme.get("description"):
            missing.append(f"security scheme {name}")
    assert not missing, "\n".join(missing)


def _subclasses(cls: type[AeroError]) -> Iterator[type[AeroError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_domain_error_has_its_status_in_the_one_table() -> None:
    # Imported for their subclasses of AeroError.
    import domain.service_credential  # noqa: F401

    codes = {cls.code for cls in _subclasses(AeroError)} - CLI_ONLY

    assert len(codes) >= 20
    # Else status_of answers them with its fallback, 400, which no route documents.
    assert codes <= set(CODES), codes - set(CODES)


def test_the_guides_error_table_names_every_code_with_the_status_it_is_answered_with() -> None:
    section = GUIDE.read_text().split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", section, re.MULTILINE))

    assert {(str(code.status), name) for name, code in CODES.items()} == rows


def _guide_blocks() -> Iterator[tuple[str, str]]:
    """(``METHOD path``, text) for each place the guide describes one endpoint: a heading
    and its section, a bullet and its continuation lines, or a table row."""
    endpoint = re.compile(r"`(GET|POST|PUT|DELETE) (/[^`?\s]*)")
    heading: tuple[str, list[str]] | None = None
    bullet: tuple[str, list[str]] | None = None
    for line in GUIDE.read_text().splitlines():
        found = endpoint.search(line)
        if bullet is not None and line.startswith("  "):
            bullet[1].append(line)
            continue
        if bullet is not None:
            yield bullet[0], "\n".join(bullet[1])
            bullet = None
        if line.startswith("#"):
            if heading is not None:
                yield heading[0], "\n".join(heading[1])
            heading = (f"{found.group(1)} {found.group(2)}", [line]) if found else None
        elif line.startswith("| ") and found and line.startswith(f"| {found.group()}"):
            yield f"{found.group(1)} {found.group(2)}", line
        elif line.startswith("- ") and found and line.startswith(f"- {found.group()}"):
            bullet = (f"{found.group(1)} {found.group(2)}", [line])
        elif heading is not None:
            heading[1].append(line)
    if bullet is not None:
        yield bullet[0], "\n".join(bullet[1])
    if heading is not None:
        yield heading[0], "\n".join(heading[1])


def test_every_error_the_guide_names_for_an_endpoint_is_in_its_enum(
    document: dict[str, Any], all_operations: list[Operation]
) -> None:
    by_label = {op.label: op for op in all_operations}
    blocks = list(_guide_blocks())
    assert len({label for label, _ in blocks}) >= 30

    problems: list[str] = []
    for label, text in blocks:
        operation = by_label.get(label)
        if operation is None:
            problems.append(f"the guide describes {label}, which /openapi.json does not")
            continue
        listed = documented_errors(document, operation)
        for code in re.findall(r"`([a-z_]+)`", text):
            if code not in CODES or code in UNROUTED:
                continue
            if code not in listed.get(CODES[code].status, []):
                problems.append(f"{label}: the guide names {code}, its enum does not")
    assert not problems, "\n".join(problems)


def test_the_contract_tests_refuse_an_error_their_operation_does_not_list(
    document: dict[str, Any],
) -> None:
    conformance = ErrorConformance(document)
    me = httpx.Request("GET", "http://testserver/v1/environments/acme/me")

    def answer(status: int, code: str) -> httpx.Response:
        return httpx.Response(status, json={"error": code, "detail": "..."}, request=me)

    conformance(answer(401, "invalid_token"))
    conformance(answer(404, "not_found"))  # no route matched: the guide's table names it
    with pytest.raises(AssertionError, match="not in its OpenAPI enum"):
        conformance(answer(401, "invalid_code"))
    with pytest.raises(AssertionError, match="a status its OpenAPI description does not list"):
        conformance(answer(404, "user_not_found"))
