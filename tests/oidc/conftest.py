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

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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
from tests.oidc.harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    Provider,
    running_provider,
)


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with running_provider(tmp_path_factory.mktemp("oidc") / "provider.log") as provider:
        yield provider


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
