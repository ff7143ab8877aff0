"""A browser for the web UI at the HTTP level: a cookie jar of its own, at the address
the test provider knows as the redirect URI's (https://aero.example.com), never
following redirects, so a test sees each step the real browser would take."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from httpx import Response

from tests.oidc.conftest import Federation
from tests.support import ADMIN, ADMIN_PASSWORD

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ORIGIN = "https://aero.example.com"


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


@dataclass
class Browser:
    federation: Federation
    client: TestClient

    @classmethod
    def open(cls, federation: Federation, user_agent: str = "Browser/1.0") -> Browser:
        # The app has started already (the federation's client): no lifespan here.
        client = TestClient(
            federation.api.app,
            base_url=ORIGIN,
            follow_redirects=False,
            headers={"User-Agent": user_agent},
        )
        return cls(federation, client)

    def get(self, path: str, **params: str) -> Response:
        return self.client.get(f"/ui/acme{path}", params=params)

    def post(self, path: str, form_page: str, **fields: str) -> Response:
        """Send the form of ``form_page`` (for its CSRF token) to ``path``."""
        page = self.get(form_page)
        assert page.status_code == 200, page.text
        data = {"csrf_token": csrf_token(page.text), **fields}
        return self.client.post(f"/ui/acme{path}", data=data)

    def start(self) -> Response:
        """Click "Log in with ..." on the Log in page."""
        return self.post("/login/oidc/start", "/login")

    def log_in_at_provider(self, login: str) -> dict[str, str]:
        """The whole trip: the button, the provider's login screen, and back with
        what the provider put on the redirect URI (not yet sent to the redirect page)."""
        started = self.start()
        assert started.status_code == 303, started.text
        return self.federation.provider.authorize(started.headers["location"], login)

    def come_back(self, answer: dict[str, str]) -> Response:
        """The provider's redirect to /ui/acme/login/oidc."""
        return self.get("/login/oidc", **answer)

    def log_in_with_password(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
        response = self.post("/login", "/login", username=username, password=password)
        assert response.status_code == 303, response.text

    def home_says(self) -> str:
        home = self.get("/")
        assert home.status_code == 200, (home.status_code, home.headers.get("location"))
        found = re.search(r"Logged in as ([^<]+)<", home.text)
        assert found is not None, home.text
        return found.group(1)
