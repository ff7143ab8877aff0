"""Logging in through the provider: the whole flow, provisioning, linking (never by
email or name), group sync and the two_factor modes, against a real provider."""

from __future__ import annotations

from typing import Any

import pyotp

from tests.http.conftest import PASSWORD, bearer, error_of
from tests.oidc.conftest import Federation


def subject_audit(federation: Federation, subject: str) -> list[tuple[str, Any, Any]]:
    return [
        (e["type"], e["username"], e["actor"])
        for e in federation.audit()
        if e["details"].get("subject") == subject or e["username"] == subject
    ]


def test_first_login_of_a_new_subject_creates_the_user_and_logs_in(
    connected: Federation,
) -> None:
    provider = connected.provider
    subject = provider.account("carol-sub", preferred_username="carol", email="carol@acme.test")

    response = connected.login(subject)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "authenticated"
    me = connected.api.client.get(
        connected.api.url("/me"), headers=bearer(response.json()["access_token"])
    )
    assert me.json()["username"] == "carol"
    assert me.json()["identity"] == {"issuer": provider.issuer, "subject": "carol-sub"}
    entries = connected.audit()
    login = [(e["type"], e["username"], e["actor"], e["user_agent"]) for e in entries[-6:]]
    assert login == [
        ("identity_provider_connected", None, "alice", "testclient"),
        ("login_federated_started", None, None, "Browser/1.0"),
        ("user_created", "carol", "identity-provider", "Browser/1.0"),
        ("identity_linked", "carol", "identity-provider", "Browser/1.0"),
        ("login_federated_succeeded", "carol", "carol", "Browser/1.0"),
        ("login_succeeded", "carol", "carol", "Browser/1.0"),
    ]
    assert entries[-1]["details"] == {"method": "federated"}
    assert entries[-2]["details"]["subject"] == "carol-sub"


def test_the_next_login_of_a_linked_subject_is_the_same_user(connected: Federation) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    assert connected.login(subject).status_code == 200
    # The provider now calls the same subject by another name: it is still carol.
    connected.provider.account("carol-sub", preferred_username="caroline")

    again = connected.login(subject)

    assert again.status_code == 200, again.text
    token = again.json()["access_token"]
    me = connected.api.client.get(connected.api.url("/me"), headers=bearer(token))
    assert me.json()["username"] == "carol"
    assert (
        connected.api.client.get(
            connected.api.url("/users/caroline"), headers=connected.api.admin
        ).status_code
        == 404
    )


def test_a_new_subject_with_an_existing_users_name_and_email_is_not_that_user(
    connected: Federation,
) -> None:
    """The nOAuth takeover: email and name are the provider's users' to change."""
    api = connected.api
    assert api.create_user("bob").status_code == 201
    attacker = connected.provider.account(
        "attacker-sub", preferred_username="bob", email="bob@acme.test", name="bob"
    )

    response = connected.login(attacker)

    assert (response.status_code, error_of(response)) == (409, "user_exists")
    assert connected.user("bob")["identity"] is None
    failed = connected.audit(type="login_federated_failed")[-1]
    assert failed["details"] == {"reason": "username_taken", "subject": "attacker-sub"}
    # Once an admin links bob to his own subject, that subject logs in as bob.
    bob = connected.provider.account("bob-sub", preferred_username="robert")
    linked = api.client.put(
        api.url("/users/bob/identity"), json={"subject": "bob-sub"}, headers=api.admin
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["identity"] == {"issuer": connected.provider.issuer, "subject": "bob-sub"}
    assert connected.login(bob).status_code == 200
    assert (connected.login(attacker).status_code) == 409


def test_links_are_unique_and_can_be_undone(connected: Federation) -> None:
    api = connected.api
    api.create_user("bob")
    api.create_user("dave")
    url = api.url("/users/{}/identity").format
    assert api.client.put(url("bob"), json={"subject": "s-1"}, headers=api.admin).status_code == 200

    taken = api.client.put(url("dave"), json={"subject": "s-1"}, headers=api.admin)
    unlinked = api.client.delete(url("bob"), headers=api.admin)
    now_free = api.client.put(url("dave"), json={"subject": "s-1"}, headers=api.admin)

    assert (taken.status_code, error_of(taken)) == (409, "identity_in_use")
    assert unlinked.status_code == 200 and unlinked.json()["identity"] is None
    assert now_free.status_code == 200
    connected.provider.account("s-1", preferred_username="someone")
    token = connected.login("s-1").json()["access_token"]
    assert api.client.get(api.url("/me"), headers=bearer(token)).json()["username"] == "dave"
    kinds = [e["type"] for e in connected.audit(type=["identity_linked", "identity_unlinked"])]
    assert kinds == ["identity_linked", "identity_unlinked", "identity_linked"]


def test_without_provisioning_an_unlinked_subject_is_refused(connected: Federation) -> None:
    assert connected.connect(client_secret=..., provisioning="none").status_code == 200
    subject = connected.provider.account("erin-sub", preferred_username="erin")

    response = connected.login(subject)

    assert (response.status_code, error_of(response)) == (403, "user_not_provisioned")
    assert (
        connected.api.client.get(
            connected.api.url("/users/erin"), headers=connected.api.admin
        ).status_code
        == 404
    )


def test_a_username_claim_that_is_missing_or_invalid_provisions_nobody(
    connected: Federation,
) -> None:
    connected.provider.account("nameless", preferred_username="a:b")

    response = connected.login("nameless")

    assert (response.status_code, error_of(response)) == (403, "user_not_provisioned")


def test_group_sync_decides_who_must_use_two_factor(connected: Federation) -> None:
    api = connected.api
    assert connected.connect(client_secret=..., groups_claim="groups").status_code == 200
    assert api.set_policy(True, ["finance"]).status_code == 200
    subject = connected.provider.account("fred-sub", preferred_username="fred", groups=["finance"])

    in_finance = connected.login(subject)
    assert in_finance.json()["status"] == "two_factor_registration_required"
    assert connected.user("fred")["groups"] == ["finance"]
    assert connected.user("fred")["two_factor"]["required"] is True

    connected.provider.account("fred-sub", preferred_username="fred", groups=["sales"])
    moved = connected.login(subject)
    assert moved.json()["status"] == "authenticated"
    assert connected.user("fred")["two_factor"]["required"] is False

    refused = api.client.put(
        api.url("/users/fred/groups"), json={"groups": ["finance"]}, headers=api.admin
    )
    assert (refused.status_code, error_of(refused)) == (409, "groups_managed_by_provider")
    changes = connected.audit(type="groups_changed", username="fred")
    assert [(e["actor"], e["details"]["groups"]) for e in changes] == [
        ("identity-provider", ["finance"]),
        ("identity-provider", ["sales"]),
    ]


def register(federation: Federation, login_token: str) -> str:
    api = federation.api
    secret = api.client.post(
        api.url("/login/two-factor/registration"), headers=bearer(login_token)
    ).json()["secret"]
    confirmed = api.client.post(
        api.url("/login/two-factor/registration/confirm"),
        json={"code": api.code(secret)},
        headers=bearer(login_token),
    )
    assert confirmed.status_code == 200, confirmed.text
    return str(secret)


def test_two_factor_aero_asks_for_our_code_as_after_a_password(connected: Federation) -> None:
    api = connected.api
    api.set_policy(True)
    subject = connected.provider.account("gina-sub", preferred_username="gina")
    first = connected.login(subject)
    assert first.json()["status"] == "two_factor_registration_required"
    secret = register(connected, first.json()["login_token"])
    api.next_step()

    second = connected.login(subject)

    assert second.json()["status"] == "two_factor_required"
    done = api.submit_code(second.json()["login_token"], pyotp.TOTP(secret).at(api.clock.now()))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "authenticated"


def test_two_factor_provider_trusts_the_providers_mfa_even_for_a_registered_user(
    connected: Federation,
) -> None:
    api = connected.api
    api.set_policy(True)
    subject = connected.provider.account("gina-sub", preferred_username="gina")
    register(connected, connected.login(subject).json()["login_token"])
    assert connected.connect(client_secret=..., two_factor="provider").status_code == 200

    response = connected.login(subject)

    assert response.json()["status"] == "authenticated"
    succeeded = connected.audit(type="login_federated_succeeded")[-1]["details"]
    assert (succeeded["two_factor"], succeeded["mfa"]) == ("provider", True)


def test_two_factor_amr_needs_mfa_in_the_id_token(connected: Federation) -> None:
    api = connected.api
    api.set_policy(True)
    assert connected.connect(client_secret=..., two_factor="amr").status_code == 200
    with_mfa = connected.provider.account("hal-sub", preferred_username="hal", amr=["pwd", "mfa"])
    without = connected.provider.account("ivy-sub", preferred_username="ivy", amr=["pwd"])

    assert connected.login(with_mfa).json()["status"] == "authenticated"
    assert connected.login(without).json()["status"] == "two_factor_registration_required"


def test_break_glass_only_admins_keep_password_login(connected: Federation) -> None:
    api = connected.api
    api.create_user("bob")

    right = api.login("bob")
    wrong = api.login("bob", "not bob's password")
    admin = api.login("alice", "correct horse battery")

    assert (right.status_code, error_of(right)) == (403, "password_login_disabled")
    assert (wrong.status_code, error_of(wrong)) == (401, "invalid_credentials")
    assert admin.status_code == 200
    refused = connected.audit(type="login_password_failed", username="bob")
    assert [e["details"]["reason"] for e in refused] == [
        "password_login_disabled",
        "wrong_password",
    ]


def test_a_refused_right_password_counts_toward_no_lockout(connected: Federation) -> None:
    api = connected.api
    api.create_user("bob")
    for _ in range(12):
        assert api.login("bob").status_code == 403

    assert api.client.delete(api.url("/identity-provider"), headers=api.admin).status_code == 204

    assert api.login("bob").status_code == 200


def test_password_login_none_refuses_admins_too_and_all_lets_everyone(
    connected: Federation,
) -> None:
    api = connected.api
    token = api.admin  # an access token taken before the rule closes password login
    api.create_user("bob")
    assert (
        api.client.put(
            api.url("/identity-provider"),
            json={
                "issuer": connected.provider.issuer,
                "client_id": "b1f0c3d2-aero-auth-tests",
                "redirect_uris": ["https://aero.example.com/ui/acme/login/oidc"],
                "password_login": "none",
            },
            headers=token,
        ).status_code
        == 200
    )
    assert api.login("alice", "correct horse battery").status_code == 403
    assert (
        api.client.put(
            api.url("/identity-provider"),
            json={
                "issuer": connected.provider.issuer,
                "client_id": "b1f0c3d2-aero-auth-tests",
                "redirect_uris": ["https://aero.example.com/ui/acme/login/oidc"],
                "password_login": "all",
            },
            headers=token,
        ).status_code
        == 200
    )
    assert api.login("bob").status_code == 200


def test_a_provisioned_user_has_no_local_password(connected: Federation) -> None:
    api = connected.api
    assert connected.connect(client_secret=..., password_login="all").status_code == 200
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    token = connected.login(subject).json()["access_token"]

    by_password = api.login("carol", "")
    by_any = api.login("carol", PASSWORD)
    change = api.client.post(
        api.url("/me/password"),
        json={"current_password": "", "new_password": "a new passphrase 0815"},
        headers=bearer(token),
    )

    assert by_password.status_code == 401 and by_any.status_code == 401
    assert (change.status_code, error_of(change)) == (403, "password_login_disabled")


def test_disconnecting_ends_pending_logins_and_keeps_links(connected: Federation) -> None:
    api = connected.api
    api.create_user("bob")
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    assert connected.login(subject).status_code == 200
    pending = connected.start().json()
    answer = connected.provider.authorize(pending["authorization_url"], subject)

    assert api.client.delete(api.url("/identity-provider"), headers=api.admin).status_code == 204
    assert connected.connect().status_code == 200
    late = connected.callback(answer)

    assert (late.status_code, error_of(late)) == (401, "invalid_oidc_response")
    assert connected.user("carol")["identity"]["subject"] == "carol-sub"
    assert connected.login(subject).status_code == 200
    reasons = [e["details"]["reason"] for e in connected.audit(type="login_federated_failed")]
    assert reasons == ["provider_changed"]
