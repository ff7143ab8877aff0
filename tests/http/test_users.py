"""Users, managed by admins: create, read (now and as at an instant), groups, roles,
password, two-factor reset."""

from __future__ import annotations

from tests.http.conftest import PASSWORD, Api, bearer, error_of


def test_admin_creates_a_user_and_reads_it_back(acme: Api) -> None:
    acme.set_policy(True, ["finance"])

    created = acme.create_user("Bob", groups=["finance", "amsterdam", "finance"])

    expected = {
        "username": "Bob",
        "groups": ["amsterdam", "finance"],
        "roles": [],
        "two_factor": {
            "required": True,
            "registered": False,
            "locked_until": None,
            "disabled": False,
        },
        "identity": None,
    }
    assert created.status_code == 201
    assert created.json() == expected
    # Usernames compare case-insensitively and show as created.
    assert acme.client.get(acme.url("/users/bOB"), headers=acme.admin).json() == expected


def test_creating_users_refuses_duplicates_weak_passwords_and_unknown_roles(acme: Api) -> None:
    assert acme.create_user("bob").status_code == 201

    duplicate = acme.create_user("BOB")
    weak = acme.create_user("carol", password="carol")
    same_as_name = acme.create_user("carolcarol", password="CarolCarol")
    role = acme.create_user("carol", roles=["root"])
    name = acme.create_user("carol:x")

    assert (duplicate.status_code, error_of(duplicate)) == (409, "user_exists")
    assert (weak.status_code, error_of(weak)) == (422, "weak_password")
    assert (same_as_name.status_code, error_of(same_as_name)) == (422, "weak_password")
    assert role.status_code == 422
    assert (name.status_code, error_of(name)) == (422, "invalid_input")


def test_an_unknown_user_is_not_found(acme: Api) -> None:
    for method, path, body in (
        ("GET", "/users/nobody", None),
        ("PUT", "/users/nobody/groups", {"groups": []}),
        ("PUT", "/users/nobody/roles", {"roles": []}),
        ("PUT", "/users/nobody/password", {"password": PASSWORD}),
        ("POST", "/users/nobody/two-factor/reset", {"reason": "ticket 1"}),
    ):
        response = acme.client.request(method, acme.url(path), json=body, headers=acme.admin)
        assert (response.status_code, error_of(response)) == (404, "user_not_found"), path


def test_groups_decide_whether_two_factor_is_required(acme: Api) -> None:
    acme.set_policy(True, ["finance"])
    acme.create_user("bob")

    response = acme.client.put(
        acme.url("/users/bob/groups"), json={"groups": ["finance"]}, headers=acme.admin
    )

    assert response.status_code == 200
    assert response.json()["groups"] == ["finance"]
    assert response.json()["two_factor"]["required"] is True


def test_roles_taken_away_take_effect_at_once(acme: Api) -> None:
    acme.create_user("dave", roles=["admin"])
    dave = bearer(acme.access_token("dave"))
    assert acme.client.get(acme.url("/policy"), headers=dave).status_code == 200

    demoted = acme.client.put(acme.url("/users/dave/roles"), json={"roles": []}, headers=acme.admin)

    assert demoted.json()["roles"] == []
    refused = acme.client.get(acme.url("/policy"), headers=dave)
    assert (refused.status_code, error_of(refused)) == (403, "forbidden")


def test_an_admin_sets_a_password_and_the_users_sessions_end(acme: Api) -> None:
    acme.create_user("bob")
    old = bearer(acme.access_token("bob"))
    acme.clock.advance(seconds=1)

    response = acme.client.put(
        acme.url("/users/bob/password"),
        json={"password": "a new passphrase 0815"},
        headers=acme.admin,
    )
    weak = acme.client.put(
        acme.url("/users/bob/password"), json={"password": "short"}, headers=acme.admin
    )

    assert response.status_code == 200
    assert (weak.status_code, error_of(weak)) == (422, "weak_password")
    assert acme.client.get(acme.url("/me"), headers=old).status_code == 401
    assert acme.login("bob").status_code == 401
    assert acme.login("bob", "a new passphrase 0815").status_code == 200


def test_reset_forgets_the_authenticator_and_ends_sessions(acme: Api) -> None:
    acme.set_policy(True, [])
    acme.create_user("bob")
    enrolment = acme.enrol("bob")
    acme.clock.advance(seconds=1)

    reset = acme.client.post(
        acme.url("/users/bob/two-factor/reset"),
        json={"reason": "lost phone, ticket 4711"},
        headers=acme.admin,
    )
    blank = acme.client.post(
        acme.url("/users/bob/two-factor/reset"), json={"reason": "  "}, headers=acme.admin
    )

    assert reset.status_code == 200
    assert reset.json()["two_factor"] == {
        "required": True,
        "registered": False,
        "locked_until": None,
        "disabled": False,
    }
    assert (blank.status_code, error_of(blank)) == (422, "invalid_input")
    assert (
        acme.client.get(acme.url("/me"), headers=bearer(enrolment.access_token)).status_code == 401
    )
    acme.next_step()
    assert acme.login("bob").json()["status"] == "two_factor_registration_required"


def test_a_user_as_at_an_instant(acme: Api) -> None:
    acme.create_user("audrey", roles=["auditor"])
    acme.create_user("carol")
    auditor = bearer(acme.access_token("audrey"))
    before_bob = acme.clock.now()
    acme.clock.advance(minutes=1)
    acme.create_user("bob")
    bob_created = acme.clock.now()
    acme.clock.advance(minutes=1)
    acme.set_policy(True, ["finance"])
    acme.client.put(acme.url("/users/bob/groups"), json={"groups": ["finance"]}, headers=acme.admin)

    def at(instant: str) -> dict[str, str]:
        return {"at": instant}

    then = acme.client.get(
        acme.url("/users/bob"), params=at(bob_created.isoformat()), headers=auditor
    )
    now = acme.client.get(
        acme.url("/users/bob"), params=at(acme.clock.now().isoformat()), headers=auditor
    )
    missing = acme.client.get(
        acme.url("/users/bob"), params=at(before_bob.isoformat()), headers=auditor
    )
    without_at = acme.client.get(acme.url("/users/bob"), headers=auditor)
    plain_user = acme.client.get(
        acme.url("/users/bob"),
        params=at(bob_created.isoformat()),
        headers=bearer(acme.access_token("carol")),
    )

    assert then.json()["groups"] == [] and then.json()["two_factor"]["required"] is False
    assert now.json()["groups"] == ["finance"] and now.json()["two_factor"]["required"] is True
    assert (missing.status_code, error_of(missing)) == (404, "user_not_found")
    assert (without_at.status_code, error_of(without_at)) == (403, "forbidden")
    assert (plain_user.status_code, error_of(plain_user)) == (403, "forbidden")


def test_user_management_needs_the_admin_role(acme: Api) -> None:
    acme.create_user("bob")
    bob = bearer(acme.access_token("bob"))

    for method, path, body in (
        ("POST", "/users", {"username": "eve", "password": PASSWORD}),
        ("GET", "/users", None),
        ("GET", "/users/bob", None),
        ("PUT", "/users/bob/groups", {"groups": []}),
        ("PUT", "/users/bob/roles", {"roles": ["admin"]}),
        ("PUT", "/users/bob/password", {"password": PASSWORD}),
        ("POST", "/users/bob/two-factor/reset", {"reason": "because"}),
    ):
        forbidden = acme.client.request(method, acme.url(path), json=body, headers=bob)
        anonymous = acme.client.request(method, acme.url(path), json=body)
        assert (forbidden.status_code, error_of(forbidden)) == (403, "forbidden"), path
        assert (anonymous.status_code, error_of(anonymous)) == (401, "invalid_token"), path


def test_look_alike_names_and_passwords_holding_context_words_are_refused(acme: Api) -> None:
    look_alikes = [acme.create_user(name) for name in ("\uff42\uff4f\uff42", "bob\u200b", " bob")]
    issuer = acme.create_user("bob", password="my BizzStream Aero login")
    repeated = acme.create_user("bob", password="\uff41" * 12)

    assert [(r.status_code, error_of(r)) for r in look_alikes] == [(422, "invalid_input")] * 3
    assert (issuer.status_code, error_of(issuer)) == (422, "weak_password")
    assert "issuer" in issuer.json()["detail"]
    assert (repeated.status_code, error_of(repeated)) == (422, "weak_password")
    assert "one character repeated" in repeated.json()["detail"]
