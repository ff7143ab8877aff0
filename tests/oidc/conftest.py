"""A real OpenID Connect provider for the tests, set up like a Microsoft Entra tenant.

panva's ``oidc-provider`` (tests/oidc/provider.mjs, installed by ``npm ci`` in this
folder) runs as its own Node process on 127.0.0.1 for the whole session. Its
development login screen takes any login name, which becomes the subject; a
test says what claims each login name carries and, through ``/_control``, what
the provider does wrong. httpx plays the browser.

aero-auth runs in process on the test's store (SQLite and PostgreSQL) with its
clock set to the real time, since the provider stamps its tokens with the real time.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from interfaces.composition import build_read_models
from interfaces.settings import Settings
from tests.http.conftest import (  # noqa: F401 (fixtures)
    Api,
    TestClient,
    app_factory,
    bearer,
)

HERE = Path(__file__).parent
TENANT = "7f3c1e52-9a4b-4d6e-8f21-3b5c7d9e0a14"
OTHER_TENANT = "0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a"
CLIENT_ID = "b1f0c3d2-aero-auth-tests"
CLIENT_SECRET = "Q~client-secret-for-tests-8c1f5e7a2d4b6c9e0f3a"
REDIRECT_URI = "https://aero.example.com/ui/acme/login/oidc"
OTHER_REDIRECT_URI = "https://aero.example.com/ui/other/login/oidc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Provider:
    """The running provider, and what a test can make it do."""

    base_url: str
    issuer: str
    log: Path

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        if body is None and path == "stats":
            response = httpx.get(f"{self.base_url}/_control/{path}", timeout=5)
        else:
            response = httpx.post(f"{self.base_url}/_control/{path}", json=body or {}, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def account(self, login: str, **claims: Any) -> str:
        """A login name (the subject) and the claims its ID tokens carry."""
        claims.setdefault("preferred_username", login)
        self.control("accounts", {login: claims})
        return login

    def jwks_fetches(self) -> int:
        return int(self.control("stats")["jwks_fetches"])

    def authorize(
        self, authorization_url: str, login: str, redirect_uri: str = REDIRECT_URI
    ) -> dict[str, str]:
        """A browser at the provider: log in as ``login``, consent, and come back with
        what the provider puts on the redirect URI (code, state, iss)."""
        with httpx.Client(timeout=10) as browser:
            response = browser.get(authorization_url)
            for _ in range(12):
                location = response.headers.get("location")
                if location is not None:
                    target = urljoin(str(response.url), location)
                    if target.startswith(redirect_uri):
                        query = parse_qs(urlsplit(target).query)
                        return {key: values[0] for key, values in query.items()}
                    response = browser.get(target)
                    continue
                form = re.search(r'<form[^>]*action="([^"]+)"', response.text)
                assert form is not None, response.text
                fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"',
                                         response.text))  # fmt: skip
                if 'name="login"' in response.text:
                    fields.update(login=login, password="any password")
                action = urljoin(str(response.url), html.unescape(form.group(1)))
                response = browser.post(action, data=fields)
        raise AssertionError("the provider never sent the browser back")


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    node = shutil.which("node")
    assert node is not None, "Node.js runs the test provider"
    assert (HERE / "node_modules" / "oidc-provider").is_dir(), (
        "run `npm ci` in tests/oidc first (.ci/run does)"
    )
    port = free_port()
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PORT": str(port),
        "TENANT_ID": TENANT,
        "CLIENTS": (
            f'[{{"client_id": "{CLIENT_ID}", "client_secret": "{CLIENT_SECRET}", '
            f'"redirect_uris": ["{REDIRECT_URI}", "{OTHER_REDIRECT_URI}"]}}]'
        ),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [node, str(HERE / "provider.mjs")], cwd=HERE, env=env, stdout=out, stderr=out
        )
    base_url = f"http://127.0.0.1:{port}"
    provider = Provider(base_url, f"{base_url}/{TENANT}/v2.0", log)
    try:
        deadline = time.monotonic() + 30
        while b"ready " not in log.read_bytes():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield provider
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def provider(oidc_provider: Provider) -> Provider:
    oidc_provider.control("reset")
    return oidc_provider


class ShiftedClock(FixedClock):
    """The real time, shifted by what a test advances: the provider stamps iat and
    exp with the real time, so aero-auth's clock must move with it."""

    def __init__(self) -> None:
        super().__init__(datetime.now(UTC))
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.offset += delta if delta is not None else timedelta(**kwargs)
        return self.now()

    def set(self, at: datetime) -> None:
        self.offset = at - datetime.now(UTC)


@pytest.fixture
def clock() -> FixedClock:
    return ShiftedClock()


@dataclass
class Federation:
    """The story's calls: an environment ``acme`` with the provider connected."""

    api: Api
    provider: Provider

    @property
    def application(self) -> AeroAuth:
        return self.api.application

    def connect(self, **overrides: Any) -> httpx.Response:
        body: dict[str, Any] = {
            "issuer": self.provider.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "display_name": "Microsoft",
            "redirect_uris": [REDIRECT_URI],
        }
        body.update(overrides)
        body = {key: value for key, value in body.items() if value is not ...}
        return self.api.client.put(
            self.api.url("/identity-provider"), json=body, headers=self.api.admin
        )

    def start(self, redirect_uri: str = REDIRECT_URI) -> httpx.Response:
        return self.api.client.post(
            self.api.url("/login/oidc"),
            json={"redirect_uri": redirect_uri},
            headers={"User-Agent": "Browser/1.0"},
        )

    def callback(self, answer: dict[str, str]) -> httpx.Response:
        body = {key: answer[key] for key in ("state", "code", "iss", "error") if key in answer}
        return self.api.client.post(
            self.api.url("/login/oidc/callback"),
            json=body,
            headers={"User-Agent": "Browser/1.0"},
        )

    def login(self, login: str, rewrite: Callable[[str], str] | None = None) -> httpx.Response:
        """The whole flow as a browser goes through it, for the subject ``login``."""
        started = self.start()
        assert started.status_code == 200, started.text
        url = started.json()["authorization_url"]
        answer = self.provider.authorize(rewrite(url) if rewrite else url, login)
        return self.callback(answer)

    def audit(self, **query: Any) -> list[dict[str, Any]]:
        services = self.api.app.state.services
        position = services.application.recorder.max_notification_id() or 0
        assert services.read_models.wait_for(position, 10)
        response = self.api.client.get(
            self.api.url("/audit"), params={"limit": 1000, **query}, headers=self.api.admin
        )
        assert response.status_code == 200, response.text
        return list(response.json()["entries"])

    def user(self, username: str) -> dict[str, Any]:
        response = self.api.client.get(self.api.url(f"/users/{username}"), headers=self.api.admin)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def federation(
    app_factory: Callable[..., TestClient],  # noqa: F811
    settings: Settings,
    clock: FixedClock,
    provider: Provider,
) -> Federation:
    """``acme`` (admin alice) with read models, the provider not yet connected."""

    def read_models(application: AeroAuth) -> Any:
        return build_read_models(settings, application)

    api = Api(app_factory(read_models_factory=read_models), clock)
    assert api.create_environment().status_code == 201
    return Federation(api, provider)


@pytest.fixture
def connected(federation: Federation) -> Federation:
    response = federation.connect()
    assert response.status_code == 200, response.text
    return federation


__all__ = ["bearer"]
