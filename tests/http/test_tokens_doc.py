"""docs/tokens.md stays true: its Python examples run, as written, against a real server."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import DatabaseUnderTest
from tests.http.conftest import ADMIN, ADMIN_PASSWORD, PASSWORD, Server, serving

DOC = Path(__file__).parents[2] / "docs" / "tokens.md"


@pytest.fixture
def database(sqlite_database: DatabaseUnderTest) -> DatabaseUnderTest:
    return sqlite_database


def python_block_after(heading: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n{heading}\n")
    match = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no Python example after {heading!r}"
    return match.group(1)


@pytest.fixture
def running(database: DatabaseUnderTest, tmp_path: Path) -> Iterator[Server]:
    with serving(database, tmp_path) as server:
        yield server


@pytest.fixture
def example(running: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The two examples, run in one module namespace as a service would hold them."""
    monkeypatch.setenv("AERO_URL", running.base_url)
    namespace: dict[str, Any] = {"__name__": "billing_service"}
    for heading in ("## Verifying a token in another service", "## Token introspection (RFC 7662)"):
        exec(compile(python_block_after(heading), str(DOC), "exec"), namespace)  # noqa: S102
    return namespace


def _environment(http: httpx.Client, server: Server, slug: str) -> str:
    operator = (server.data_dir / "operator.token").read_text().strip()
    created = http.post(
        "/v1/environments",
        json={
            "slug": slug,
            "display_name": slug.title(),
            "issuer": "BizzStream Aero",
            "admin": {"username": ADMIN, "password": ADMIN_PASSWORD},
        },
        headers={"Authorization": f"Bearer {operator}"},
    )
    assert created.status_code == 201, created.text
    return _login(http, slug, ADMIN, ADMIN_PASSWORD)


def _login(http: httpx.Client, slug: str, username: str, password: str) -> str:
    response = http.post(
        f"/v1/environments/{slug}/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return str(body.get("access_token") or body["login_token"])


def _service_credential(server: Server, database: DatabaseUnderTest) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AERO_")}
    env.update({"AERO_DATABASE_URL": database.url, "AERO_DATA_DIR": str(server.data_dir)})
    command = [
        str(Path(sys.executable).parent / "aero-auth"),
        "service-credentials",
        "create",
        "--env",
        "acme",
        "--name",
        "billing",
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    return lines["client_id"], lines["client_secret"]


def test_the_documented_verifier_accepts_an_access_token_and_nothing_else(
    running: Server, example: dict[str, Any]
) -> None:
    verify = example["verify_access_token"]
    with httpx.Client(base_url=running.base_url) as http:
        token = _environment(http, running, "acme")
        admin = {"Authorization": f"Bearer {token}"}
        carol = {"username": "carol", "password": PASSWORD, "groups": ["finance"]}
        assert http.post("/v1/environments/acme/users", json=carol, headers=admin).is_success
        policy = {"require_2fa": True, "groups": ["finance"]}
        assert http.put("/v1/environments/acme/policy", json=policy, headers=admin).is_success
        login_token = _login(http, "acme", "carol", PASSWORD)
        foreign = _environment(http, running, "globex")

    claims = verify(token)

    assert (claims["username"], claims["env"], claims["roles"]) == (
        "alice",
        "acme",
        ["admin", "auditor"],
    )
    header, payload, _ = token.split(".")
    forged = jwt.encode(
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers=json.loads(base64.urlsafe_b64decode(header + "==")),
    )
    for refused in (login_token, foreign, forged):
        with pytest.raises(jwt.PyJWTError):
            verify(refused)


def test_the_documented_introspection_call_sees_a_reset_at_once(
    running: Server, example: dict[str, Any], database: DatabaseUnderTest
) -> None:
    with httpx.Client(base_url=running.base_url) as http:
        admin_token = _environment(http, running, "acme")
        admin = {"Authorization": f"Bearer {admin_token}"}
        created = http.post(
            "/v1/environments/acme/users",
            headers=admin,
            json={"username": "bob", "password": PASSWORD},
        )
        assert created.status_code == 201, created.text
        token = _login(http, "acme", "bob", PASSWORD)
        client_id, secret = _service_credential(running, database)

        assert example["is_active"](token, client_id, secret)
        reset = http.post(
            "/v1/environments/acme/users/bob/two-factor/reset",
            json={"reason": "ticket 12"},
            headers=admin,
        )
        assert reset.status_code == 200, reset.text

    assert example["verify_access_token"](token)["username"] == "bob"  # offline: still good
    assert not example["is_active"](token, client_id, secret)
