"""The web UI with an identity provider connected: its errors are pages, never a 500."""

from __future__ import annotations

import re

from tests.http.conftest import PASSWORD
from tests.oidc.conftest import Federation


def _csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def test_the_login_page_says_password_login_is_disabled(connected: Federation) -> None:
    api = connected.api
    assert api.create_user("bob").status_code == 201
    client = api.client
    form = client.get("/ui/acme/login")
    assert form.status_code == 200

    wrong = client.post(
        "/ui/acme/login",
        data={"username": "bob", "password": "not bob's", "csrf_token": _csrf_token(form.text)},
    )
    right = client.post(
        "/ui/acme/login",
        data={"username": "bob", "password": PASSWORD, "csrf_token": _csrf_token(form.text)},
    )

    assert wrong.status_code == 401
    assert "Invalid username or password" in wrong.text
    assert right.status_code == 403
    assert "Password login is disabled" in right.text
    assert "Invalid username or password" not in right.text
