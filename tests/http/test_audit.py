"""Routes served from the read models: the users list, the audit log, its export and
a user's history. Without read models they answer 503, never made-up data."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from application.clock import FixedClock
from application.service import AeroAuth, last_saved_position
from projections.api import AuditQuery, UserRow
from tests.conftest import DatabaseUnderTest
from tests.http.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    Api,
    FakeReadModels,
    TestClient,
    audit_entry,
    bearer,
    error_of,
)
from tests.support import AUDIT_EXPORT_COLUMNS

T = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


@pytest.fixture
def database(sqlite_database: DatabaseUnderTest) -> DatabaseUnderTest:
    """These routes only translate what the read models answer; one store is enough."""
    return sqlite_database


@pytest.fixture
def fake() -> list[FakeReadModels]:
    return []


@pytest.fixture
def with_read_models(
    app_factory: Callable[..., TestClient], clock: FixedClock, fake: list[FakeReadModels]
) -> Api:
    def factory(application: AeroAuth) -> FakeReadModels:
        fake.append(FakeReadModels(application))
        return fake[-1]

    api = Api(app_factory(read_models_factory=factory), clock)
    assert api.create_environment().status_code == 201
    return api


def test_without_read_models_these_routes_answer_503(acme: Api) -> None:
    for path in ("/users", "/audit", "/audit/export?format=jsonl", "/users/alice/history"):
        response = acme.client.get(acme.url(path), headers=acme.admin)
        anonymous = acme.client.get(acme.url(path))
        assert (response.status_code, error_of(response)) == (503, "read_models_unavailable")
        assert anonymous.status_code == 401


def test_read_models_start_with_the_app_and_close_with_it(
    app_factory: Callable[..., TestClient], fake: list[FakeReadModels], with_read_models: Api
) -> None:
    [read_models] = fake
    assert read_models.started and not read_models.closed

    with_read_models.client.__exit__(None, None, None)

    assert read_models.closed


def test_admin_writes_answer_once_the_read_models_have_them(
    with_read_models: Api, fake: list[FakeReadModels]
) -> None:
    api, [read_models] = with_read_models, fake
    application = api.application

    api.create_user("bob")
    after_create = application.recorder.max_notification_id()  # type: ignore[attr-defined]
    api.set_policy(True, ["finance"])
    after_policy = application.recorder.max_notification_id()  # type: ignore[attr-defined]
    # No change, nothing saved, nothing to wait for: not even a position the
    # caller's own context holds (a TestClient request copies this thread's).
    stale = last_saved_position.set(10**6)
    try:
        api.set_policy(True, ["finance"])
    finally:
        last_saved_position.reset(stale)

    assert read_models.waited_for[-2:] == [after_create, after_policy]
    read_models.wait_succeeds = False
    late = api.client.put(
        api.url("/users/bob/roles"), json={"roles": ["auditor"]}, headers=api.admin
    )
    assert late.status_code == 200
    metrics = api.client.get("/metrics").text
    assert "aero_read_model_wait_timeouts_total 1.0" in metrics
    assert "aero_read_model_wait_seconds_count 4.0" in metrics


def test_a_write_answered_before_the_read_models_have_it_says_so(
    with_read_models: Api, fake: list[FakeReadModels]
) -> None:
    api, [read_models] = with_read_models, fake
    current = api.create_user("bob")
    read_models.wait_succeeds = False
    late = api.client.put(
        api.url("/users/bob/roles"), json={"roles": ["auditor"]}, headers=api.admin
    )
    no_body = api.client.post(
        api.url("/me/password"),
        json={"current_password": ADMIN_PASSWORD, "new_password": "another long passphrase 9"},
        headers=api.admin,
    )

    assert "aero-reads-reflect-write" not in current.headers
    assert "reads_reflect_write" not in current.json()
    assert late.status_code == 200
    assert late.headers["aero-reads-reflect-write"] == "false"
    assert late.json()["reads_reflect_write"] is False
    assert late.json()["roles"] == ["auditor"]
    assert int(late.headers["content-length"]) == len(late.content)
    assert (no_body.status_code, no_body.headers["aero-reads-reflect-write"]) == (204, "false")


def test_users_list_pages_through_the_read_model(
    with_read_models: Api, fake: list[FakeReadModels]
) -> None:
    api, [read_models] = with_read_models, fake
    read_models.users = [
        UserRow("acme", name, ("finance",), (), True, "group:finance", False, None)
        for name in ("bob", "dave")
    ]

    first = api.client.get(
        api.url("/users"),
        params={"two_factor": "required_unregistered", "limit": 1},
        headers=api.admin,
    )
    bad_filter = api.client.get(api.url("/users"), params={"two_factor": "x"}, headers=api.admin)
    bad_limit = api.client.get(api.url("/users"), params={"limit": 1001}, headers=api.admin)
    bad_cursor = api.client.get(api.url("/users"), params={"cursor": "forged"}, headers=api.admin)

    assert first.json() == {
        "users": [
            {
                "username": "bob",
                "groups": ["finance"],
                "roles": [],
                "two_factor": {
                    "required": True,
                    "registered": False,
                    "locked_until": None,
                    "disabled": False,
                },
            }
        ],
        "next_cursor": "page-2",
    }
    assert ("list_users", ("acme", "required_unregistered", 1, None)) in read_models.asked
    assert bad_filter.status_code == bad_limit.status_code == 422
    assert (bad_cursor.status_code, error_of(bad_cursor)) == (422, "invalid_cursor")


def test_audit_entries_filters_and_roles(with_read_models: Api, fake: list[FakeReadModels]) -> None:
    api, [read_models] = with_read_models, fake
    read_models.entries = [audit_entry(7, T, details={"reason": "wrong_password"})]
    api.create_user("dave", roles=["admin"])
    admin_only = bearer(api.access_token("dave"))

    page = api.client.get(
        api.url("/audit"),
        params=[
            ("username", "bob"),
            ("type", "two_factor_failed"),
            ("type", "two_factor_locked"),
            ("outcome", "failure"),
            ("since", "2026-11-28T10:00:00+01:00"),
            ("until", "2026-11-28T10:00:00Z"),
        ],
        headers=api.admin,
    )
    bad_since = api.client.get(api.url("/audit"), params={"since": "today"}, headers=api.admin)
    bad_outcome = api.client.get(api.url("/audit"), params={"outcome": "x"}, headers=api.admin)
    forbidden = [
        api.client.get(api.url(path), headers=admin_only)
        for path in ("/audit", "/audit/export", "/users/dave/history")
    ]

    assert page.json() == {
        "entries": [
            {
                "position": 7,
                "occurred_at": "2026-11-28T09:30:00Z",
                "type": "login_password_failed",
                "username": "bob",
                "actor": "bob",
                "outcome": "failure",
                "ip": "203.0.113.7",
                "user_agent": "Mozilla/5.0",
                "details": {"reason": "wrong_password"},
            }
        ],
        "next_cursor": None,
    }
    assert (
        "audit",
        (
            AuditQuery(
                "acme",
                "bob",
                ("two_factor_failed", "two_factor_locked"),
                "failure",
                datetime(2026, 11, 28, 9, tzinfo=UTC),
                datetime(2026, 11, 28, 10, tzinfo=UTC),
            ),
            100,
            None,
        ),
    ) in read_models.asked
    assert (bad_since.status_code, error_of(bad_since)) == (422, "invalid_timestamp")
    assert bad_outcome.status_code == 422
    for response in forbidden:
        assert (response.status_code, error_of(response)) == (403, "forbidden")


def test_the_audit_export_streams_csv_and_json_lines(
    with_read_models: Api, fake: list[FakeReadModels]
) -> None:
    api, [read_models] = with_read_models, fake
    read_models.entries = [
        audit_entry(1, T, type="user_created", username="bob", actor=ADMIN, outcome="success"),
        audit_entry(2, T, username='=HYPERLINK("x")', user_agent="-2+3"),
    ]

    as_csv = api.client.get(api.url("/audit/export"), params={"format": "csv"}, headers=api.admin)
    as_jsonl = api.client.get(
        api.url("/audit/export"), params={"format": "jsonl", "username": "bob"}, headers=api.admin
    )

    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0] == AUDIT_EXPORT_COLUMNS
    assert rows[1][:6] == ["1", "2026-11-28T09:30:00Z", "user_created", "bob", "alice", "success"]
    # OWASP CSV injection: cells a spreadsheet would run as formulas are quoted.
    assert rows[2][3] == '\'=HYPERLINK("x")' and rows[2][7] == "'-2+3"
    lines = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert [line["position"] for line in lines] == [1, 2]
    assert as_jsonl.headers["content-type"] == "application/x-ndjson"


def test_a_users_history(with_read_models: Api, fake: list[FakeReadModels]) -> None:
    api, [read_models] = with_read_models, fake
    api.create_user("Bob")
    read_models.entries = [audit_entry(3, T, username="Bob"), audit_entry(4, T, username="x")]

    history = api.client.get(api.url("/users/bob/history"), headers=api.admin)
    unknown = api.client.get(api.url("/users/nobody/history"), headers=api.admin)

    assert [e["position"] for e in history.json()["entries"]] == [3]
    assert ("history", ("acme", "Bob")) in read_models.asked
    assert (unknown.status_code, error_of(unknown)) == (404, "user_not_found")


def test_readiness_reports_what_the_read_models_lack(
    with_read_models: Api, fake: list[FakeReadModels]
) -> None:
    api, [read_models] = with_read_models, fake
    assert api.client.get("/readyz").json() == {"status": "ready"}

    read_models.ready = False
    read_models.stopped_views = ["audit_log stopped at position 12: boom"]
    response = api.client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["problems"] == ["audit_log stopped at position 12: boom"]
    assert response.json()["error"] == "not_ready"
