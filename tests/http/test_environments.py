"""POST /v1/environments: the operator token's one use."""

from __future__ import annotations

from tests.http.conftest import ADMIN, ADMIN_PASSWORD, OPERATOR, Api, bearer, error_of


def test_operator_creates_an_environment_whose_admin_can_log_in(api: Api) -> None:
    response = api.create_environment()

    assert response.status_code == 201
    assert response.json() == {"slug": "acme", "display_name": "Acme", "issuer": "BizzStream Aero"}
    me = api.client.get(api.url("/me"), headers=bearer(api.access_token(ADMIN, ADMIN_PASSWORD)))
    assert me.json()["roles"] == ["admin", "auditor"]


def test_creating_an_existing_environment_is_a_conflict(acme: Api) -> None:
    response = acme.create_environment(display_name="Acme again")

    assert response.status_code == 409
    assert error_of(response) == "environment_exists"


def test_a_weak_password_is_refused_before_the_conflict(acme: Api) -> None:
    response = acme.create_environment(admin={"username": "alice", "password": "password"})

    assert response.status_code == 422
    assert error_of(response) == "weak_password"


def test_invalid_input_is_refused(api: Api) -> None:
    for body in (
        {"slug": "Acme"},
        {"slug": "acme\n"},
        {"issuer": "Biz:Aero"},
        {"admin": {"username": "a:b", "password": ADMIN_PASSWORD}},
        {"admin": {"username": "alice", "password": ADMIN_PASSWORD, "role": "root"}},
        {"unexpected": True},
    ):
        response = api.create_environment(**body)
        assert response.status_code == 422, body

    assert api.create_environment().status_code == 201


def test_only_the_operator_token_creates_environments(acme: Api) -> None:
    body = {
        "slug": "globex",
        "display_name": "Globex",
        "issuer": "BizzStream Aero",
        "admin": {"username": "hank", "password": ADMIN_PASSWORD},
    }
    for headers in ({}, bearer("not-the-operator-token"), acme.admin, {"Authorization": "Basic x"}):
        response = acme.client.post("/v1/environments", json=body, headers=headers)
        assert response.status_code == 401, headers
        assert error_of(response) == "invalid_token"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_operator_token_is_refused_everywhere_else(acme: Api) -> None:
    for method, path in (
        ("GET", "/policy"),
        ("GET", "/users/alice"),
        ("GET", "/me"),
        ("GET", "/audit"),
        ("POST", "/login/two-factor"),
        ("GET", "/login/two-factor/registration/qr.png"),
    ):
        response = acme.client.request(method, acme.url(path), headers=OPERATOR, json={"code": "1"})
        assert response.status_code == 401, path
        assert error_of(response) == "invalid_token"
