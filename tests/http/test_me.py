"""The caller's own account: view, password, recovery codes."""

from __future__ import annotations

from tests.http.conftest import PASSWORD, Api, bearer, error_of


def test_a_user_changes_their_own_password(acme: Api) -> None:
    acme.create_user("bob", groups=["finance"])
    token = bearer(acme.access_token("bob"))
    me = acme.client.get(acme.url("/me"), headers=token)
    assert me.json()["username"] == "bob" and me.json()["groups"] == ["finance"]

    def change(current: str, new: str) -> int:
        response = acme.client.post(
            acme.url("/me/password"),
            json={"current_password": current, "new_password": new},
            headers=token,
        )
        return response.status_code if response.status_code == 204 else error_of(response)

    assert change("not my password", "a brand new passphrase") == "invalid_credentials"
    assert change(PASSWORD, "bob") == "weak_password"
    acme.clock.advance(seconds=1)
    assert change(PASSWORD, "a brand new passphrase") == 204
    # The change ended this session too, like any other (SECURITY.md 13).
    assert change("a brand new passphrase", "yet another passphrase") == "invalid_token"
    assert acme.login("bob", "a brand new passphrase").status_code == 200


def test_new_recovery_codes_replace_the_old_ones(acme: Api) -> None:
    acme.create_user("carol")
    carol = bearer(acme.access_token("carol"))
    unregistered = acme.client.post(acme.url("/me/recovery-codes"), headers=carol)
    assert (unregistered.status_code, error_of(unregistered)) == (409, "two_factor_not_registered")

    acme.set_policy(True, [])
    acme.create_user("bob")
    enrolment = acme.enrol("bob")
    response = acme.client.post(
        acme.url("/me/recovery-codes"), headers=bearer(enrolment.access_token)
    )

    codes = response.json()["recovery_codes"]
    assert len(codes) == 10 and not set(codes) & set(enrolment.recovery_codes)

    def recover(code: str) -> int:
        token = acme.login_token("bob", "two_factor_required")
        return acme.client.post(
            acme.url("/login/recovery"), json={"recovery_code": code}, headers=bearer(token)
        ).status_code

    assert recover(enrolment.recovery_codes[0]) == 401
    assert recover(codes[0]) == 200


def test_self_service_needs_an_access_token(acme: Api) -> None:
    for method, path in (("GET", "/me"), ("POST", "/me/password"), ("POST", "/me/recovery-codes")):
        response = acme.client.request(method, acme.url(path), headers=bearer("garbage"))
        assert (response.status_code, error_of(response)) == (401, "invalid_token"), path
