"""The test OpenID Connect provider (tests/oidc/provider.mjs) as a running process, and
a browser (httpx) that logs in on its development login screen. Used by the tests and by
bench/federated_login.py."""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

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
        if body is None and path in ("stats", "requests"):
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

    def allow_redirect_uri(self, uri: str) -> None:
        """Register one more redirect URI for the tests' client, such as a browser
        test's server's ``/ui/{env}/login/oidc``."""
        self.control("redirect-uris", {"redirect_uris": [uri]})

    def jwks_fetches(self) -> int:
        return self.requests("/jwks")

    def requests(self, path: str) -> int:
        """How many requests ``path`` below the issuer (``/token``, ``/jwks``, ...)
        received since the last reset."""
        return int(self.control("requests").get(path, 0))

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


@contextmanager
def running_provider(log: Path) -> Iterator[Provider]:
    """The provider on a free port of 127.0.0.1, with the tests' client registered."""
    node = shutil.which("node")
    assert node is not None, "Node.js runs the test provider"
    assert (HERE / "node_modules" / "oidc-provider").is_dir(), (
        "run `npm ci` in tests/oidc first (.ci/run does)"
    )
    port = free_port()
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
