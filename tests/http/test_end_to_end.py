"""The seed story over HTTP against the real server process, on each store.

Real time here: pyotp computes codes from the wall clock, as the phone would.
"""

from __future__ import annotations

import io
import stat
import time

import httpx
import pyotp
import pytest
import zxingcpp
from PIL import Image

from tests.http.conftest import Server

pytestmark = pytest.mark.slow

ALICE_PASSWORD = "correct horse battery"
BOB_PASSWORD = "he keeps the books 2026"
CAROL_PASSWORD = "she sells the boxes 2026"


def test_the_seed_story_over_http(server: Server) -> None:
    # First start: the operator token was generated, stored 0600, and its place printed.
    token_file = server.data_dir / "operator.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert str(token_file.resolve()) in server.log.read_text()
    http = httpx.Client(base_url=f"{server.base_url}/v1", headers={"User-Agent": "e2e/1.0"})

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def login(username: str, password: str) -> dict[str, str]:
        response = http.post(
            "/environments/acme/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    created = http.post(
        "/environments",
        json={
            "slug": "acme",
            "display_name": "Acme",
            "issuer": "BizzStream Aero",
            "admin": {"username": "alice", "password": ALICE_PASSWORD},
        },
        headers=bearer(token_file.read_text().strip()),
    )
    assert created.status_code == 201, created.text
    admin = bearer(login("alice", ALICE_PASSWORD)["access_token"])

    # The environment requires 2FA for the group finance.
    policy = http.put(
        "/environments/acme/policy",
        json={"require_2fa": True, "groups": ["finance"]},
        headers=admin,
    )
    assert policy.json() == {"require_2fa": True, "groups": ["finance"]}
    for username, password, groups in (
        ("bob", BOB_PASSWORD, ["finance"]),
        ("carol", CAROL_PASSWORD, ["sales"]),
    ):
        user = http.post(
            "/environments/acme/users",
            json={"username": username, "password": password, "groups": groups},
            headers=admin,
        )
        assert user.status_code == 201, user.text

    def register() -> tuple[pyotp.TOTP, str, list[str]]:
        """Bob's first login after the requirement: scan the QR code, confirm with a code."""
        step = login("bob", BOB_PASSWORD)
        assert step["status"] == "two_factor_registration_required"
        token = bearer(step["login_token"])
        registration = http.post("/environments/acme/login/two-factor/registration", headers=token)
        png = http.get("/environments/acme/login/two-factor/registration/qr.png", headers=token)
        [symbol] = zxingcpp.read_barcodes(
            Image.open(io.BytesIO(png.content)), formats=zxingcpp.BarcodeFormat.QRCode
        )
        uri = symbol.text
        assert uri == registration.json()["otpauth_uri"]
        app = pyotp.parse_uri(uri)
        assert isinstance(app, pyotp.TOTP)
        confirmed = http.post(
            "/environments/acme/login/two-factor/registration/confirm",
            json={"code": app.now()},
            headers=token,
        )
        assert confirmed.status_code == 200, confirmed.text
        return app, confirmed.json()["access_token"], confirmed.json()["recovery_codes"]

    authenticator, first_session, recovery_codes = register()

    def second_step() -> dict[str, str]:
        step = login("bob", BOB_PASSWORD)
        assert step["status"] == "two_factor_required"
        return bearer(step["login_token"])

    def submit(token: dict[str, str], code: str) -> httpx.Response:
        return http.post("/environments/acme/login/two-factor", json={"code": code}, headers=token)

    # The next step's code: fresh (after the one used to register), and within +-1 step.
    fresh = authenticator.at(time.time() + 30)
    assert submit(second_step(), fresh).status_code == 200
    replayed = submit(second_step(), fresh)
    assert (replayed.status_code, replayed.json()["error"]) == (401, "invalid_code")

    # A recovery code gets him in and resets the failure count; then five wrong codes lock.
    recovered = http.post(
        "/environments/acme/login/recovery",
        json={"recovery_code": recovery_codes[0]},
        headers=second_step(),
    )
    assert recovered.status_code == 200, recovered.text
    token = second_step()
    wrong = f"{(int(authenticator.now()) + 500_000) % 1_000_000:06d}"
    assert [submit(token, wrong).status_code for _ in range(5)] == [401] * 5
    locked = submit(token, authenticator.now())
    assert (locked.status_code, locked.json()["error"]) == (429, "too_many_attempts")
    assert int(locked.headers["Retry-After"]) > 0

    # Lost phone: the admin resets him; his sessions end and he registers again.
    reset = http.post(
        "/environments/acme/users/bob/two-factor/reset",
        json={"reason": "lost phone, ticket 4711"},
        headers=admin,
    )
    assert reset.json()["two_factor"]["registered"] is False
    # Reads reflect writes: the users list and the audit log have the reset already.
    unregistered = http.get(
        "/environments/acme/users", params={"two_factor": "required_unregistered"}, headers=admin
    )
    assert [u["username"] for u in unregistered.json()["users"]] == ["bob"]
    history = http.get("/environments/acme/users/bob/history", headers=admin).json()["entries"]
    assert {key: history[-1][key] for key in ("type", "actor", "outcome", "ip", "user_agent")} == {
        "type": "two_factor_reset",
        "actor": "alice",
        "outcome": "success",
        "ip": "127.0.0.1",
        "user_agent": "e2e/1.0",
    }
    assert http.get("/environments/acme/me", headers=bearer(first_session)).status_code == 401
    again, session, _ = register()
    assert again.secret != authenticator.secret
    assert http.get("/environments/acme/me", headers=bearer(session)).status_code == 200

    # Carol is not in finance: the password is enough.
    assert login("carol", CAROL_PASSWORD)["status"] == "authenticated"

    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert 'aero_login_steps_total{outcome="too_many_attempts",step="two_factor"} 1.0' in metrics
    log = server.log.read_text()
    for secret in (ALICE_PASSWORD, BOB_PASSWORD, authenticator.secret, session, recovery_codes[1]):
        assert secret not in log
