"""HTTP fixtures: an app over the test store, a client, and the steps a story repeats.

pyotp plays the authenticator app; the FixedClock passed into the app governs
codes and tokens alike, so no test sleeps.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx import Response

from application.clock import FixedClock
from application.service import AeroAuth
from interfaces.composition import http_app
from interfaces.settings import Settings
from projections.api import (
    AuditEntry,
    AuditQuery,
    ChainReport,
    Compliance,
    InvalidCursorError,
    Page,
    UserRow,
    ViewStatus,
)
from tests.conftest import DatabaseUnderTest
from tests.http.documented import ErrorConformance

# Re-exported: the HTTP tests import these from here.
from tests.support import ADMIN as ADMIN
from tests.support import ADMIN_PASSWORD as ADMIN_PASSWORD
from tests.support import ENV as ENV
from tests.support import PASSWORD as PASSWORD
from tests.support import code_at

with warnings.catch_warnings():
    # Starlette asks for httpx2 here; httpx is what the project installs.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

OPERATOR_TOKEN = "operator-token-for-tests"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


OPERATOR = bearer(OPERATOR_TOKEN)


def error_of(response: Response) -> str:
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    return str(body["error"])


@dataclass
class Enrolment:
    secret: str
    recovery_codes: list[str]
    access_token: str


@dataclass
class Api:
    """The calls a story makes, over a TestClient; each returns the raw response
    unless its name says it returns what a successful call yields."""

    client: TestClient
    clock: FixedClock
    env: str = ENV
    _admin_token: str | None = field(default=None, repr=False)

    @property
    def app(self) -> FastAPI:
        app = self.client.app
        assert isinstance(app, FastAPI)
        return app

    @property
    def application(self) -> AeroAuth:
        application: AeroAuth = self.app.state.services.application
        return application

    def url(self, path: str) -> str:
        return f"/v1/environments/{self.env}{path}"

    def create_environment(self, **overrides: Any) -> Response:
        body: dict[str, Any] = {
            "slug": self.env,
            "display_name": "Acme",
            "issuer": "BizzStream Aero",
            "admin": {"username": ADMIN, "password": ADMIN_PASSWORD},
        }
        body.update(overrides)
        return self.client.post("/v1/environments", json=body, headers=OPERATOR)

    def login(self, username: str, password: str = PASSWORD, **headers: str) -> Response:
        return self.client.post(
            self.url("/login"), json={"username": username, "password": password}, headers=headers
        )

    def access_token(self, username: str, password: str = PASSWORD) -> str:
        response = self.login(username, password)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "authenticated", response.json()
        return str(response.json()["access_token"])

    def login_token(self, username: str, status: str, password: str = PASSWORD) -> str:
        response = self.login(username, password)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status, response.json()
        return str(response.json()["login_token"])

    @property
    def admin(self) -> dict[str, str]:
        if self._admin_token is None:
            self._admin_token = self.access_token(ADMIN, ADMIN_PASSWORD)
        return bearer(self._admin_token)

    def create_user(
        self,
        username: str,
        groups: list[str] | None = None,
        roles: list[str] | None = None,
        password: str = PASSWORD,
    ) -> Response:
        return self.client.post(
            self.url("/users"),
            json={
                "username": username,
                "password": password,
                "groups": groups or [],
                "roles": roles or [],
            },
            headers=self.admin,
        )

    def set_policy(self, require_2fa: bool, groups: list[str] | None = None) -> Response:
        return self.client.put(
            self.url("/policy"),
            json={"require_2fa": require_2fa, "groups": groups or []},
            headers=self.admin,
        )

    def code(self, secret: str, steps: int = 0) -> str:
        """What the authenticator app shows now, or ``steps`` 30 s steps from now."""
        return code_at(secret, self.clock.now(), steps)

    def enrol(self, username: str, password: str = PASSWORD) -> Enrolment:
        """A required user's first login: scan, confirm with a code, keep the recovery codes."""
        token = self.login_token(username, "two_factor_registration_required", password)
        registration = self.client.post(
            self.url("/login/two-factor/registration"), headers=bearer(token)
        )
        assert registration.status_code == 200, registration.text
        secret = registration.json()["secret"]
        confirmed = self.client.post(
            self.url("/login/two-factor/registration/confirm"),
            json={"code": self.code(secret)},
            headers=bearer(token),
        )
        assert confirmed.status_code == 200, confirmed.text
        body = confirmed.json()
        return Enrolment(secret, body["recovery_codes"], body["access_token"])

    def next_step(self) -> None:
        """On to the next 30 s step: the last accepted one cannot be used again."""
        self.clock.advance(seconds=30)

    def submit_code(self, token: str, code: str) -> Response:
        return self.client.post(
            self.url("/login/two-factor"), json={"code": code}, headers=bearer(token)
        )


@pytest.fixture
def app_factory(settings: Settings, clock: FixedClock) -> Iterator[Callable[..., TestClient]]:
    """Start apps over the test store; each is shut down (AeroAuth closed) at the end."""
    clients: list[TestClient] = []

    def start(settings_: Settings | None = None, **kwargs: Any) -> TestClient:
        kwargs.setdefault("clock", clock)
        app = http_app(settings_ or settings, **kwargs)
        client = TestClient(app)
        # Every error a test meets must be one /openapi.json lists for that operation.
        client.event_hooks["response"].append(ErrorConformance(app.openapi()))
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(app_factory: Callable[..., TestClient]) -> TestClient:
    return app_factory()


@pytest.fixture
def api(client: TestClient, clock: FixedClock) -> Api:
    return Api(client, clock)


@pytest.fixture
def acme(api: Api) -> Api:
    """An environment ``acme`` whose admin is alice."""
    assert api.create_environment().status_code == 201
    return api


class FakeReadModels:
    """A ReadModels double: answers what a test put in, records what it was asked."""

    def __init__(self, application: AeroAuth) -> None:
        self.application = application
        self.started = False
        self.closed = False
        self.ready = True
        self.stopped_views: list[str] = []
        self.waited_for: list[int] = []
        self.wait_succeeds = True
        self.users: list[UserRow] = []
        self.entries: list[AuditEntry] = []
        self.asked: list[tuple[str, Any]] = []

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True

    def wait_for(self, position: int, timeout: float = 5.0) -> bool:
        self.waited_for.append(position)
        return self.wait_succeeds

    def is_ready(self) -> bool:
        return self.ready

    def problems(self) -> list[str]:
        return list(self.stopped_views)

    def status(self) -> list[ViewStatus]:
        head = self.application.recorder.max_notification_id() or 0  # type: ignore[attr-defined]
        return [ViewStatus(n, head, head, 0, 0.0, "this process") for n in ("audit", "directory")]

    def list_users(
        self, environment: str, two_factor: str, limit: int, cursor: str | None
    ) -> Page[UserRow]:
        self.asked.append(("list_users", (environment, two_factor, limit, cursor)))
        if cursor not in (None, "page-2"):
            raise InvalidCursorError(cursor)
        return Page(self.users[:limit], "page-2" if len(self.users) > limit else None)

    def compliance(self, environment: str) -> Compliance:
        required = [u for u in self.users if u.required]
        return Compliance(
            environment,
            required=len(required),
            registered=sum(u.registered for u in self.users),
            required_unregistered=sum(not u.registered for u in required),
        )

    def audit(self, query: AuditQuery, limit: int, cursor: str | None) -> Page[AuditEntry]:
        self.asked.append(("audit", (query, limit, cursor)))
        return Page(self.entries[:limit], None)

    def export_audit(self, query: AuditQuery) -> Iterator[AuditEntry]:
        self.asked.append(("export_audit", query))
        yield from self.entries

    def history(self, environment: str, username: str) -> list[AuditEntry]:
        self.asked.append(("history", (environment, username)))
        return [e for e in self.entries if e.username == username]

    def verify_audit_chain(self, environment: str) -> ChainReport:
        return ChainReport(environment, len(self.entries), None)


def audit_entry(position: int, occurred_at: datetime, **fields: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "type": "login_password_failed",
        "environment": ENV,
        "username": "bob",
        "actor": "bob",
        "outcome": "failure",
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "details": {},
    }
    values.update(fields)
    return AuditEntry(position=position, occurred_at=occurred_at, **values)


# ----- the real server process -----


@dataclass
class Server:
    base_url: str
    data_dir: Path
    log: Path
    pid: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(database: DatabaseUnderTest, tmp_path: Path, workers: int = 1) -> Iterator[Server]:
    """``aero-auth serve`` as its own process on a free port, with an empty data
    directory: the first start makes the keys and the operator token."""
    port = _free_port()
    data_dir = tmp_path / "data"
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AERO_")}
    env.update({"AERO_DATABASE_URL": database.url, "AERO_DATA_DIR": str(data_dir)})
    command = [str(Path(sys.executable).parent / "aero-auth"), "serve", "--port", str(port),
               "--workers", str(workers)]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded machine: workers took over 30 s to start
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield Server(base_url, data_dir, log, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def server(database: DatabaseUnderTest, tmp_path: Path) -> Iterator[Server]:
    with serving(database, tmp_path) as running:
        yield running
