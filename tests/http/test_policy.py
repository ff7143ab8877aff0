"""The 2FA policy: the "Require 2FA" checkbox and the "Require 2FA for groups" list."""

from __future__ import annotations

from tests.http.conftest import Api, bearer, error_of


def test_policy_starts_off_and_an_admin_sets_it(acme: Api) -> None:
    assert acme.client.get(acme.url("/policy"), headers=acme.admin).json() == {
        "require_2fa": False,
        "groups": [],
    }

    response = acme.set_policy(True, ["finance", "board", "finance"])

    assert response.status_code == 200
    assert response.json() == {"require_2fa": True, "groups": ["board", "finance"]}
    assert acme.client.get(acme.url("/policy"), headers=acme.admin).json() == response.json()


def test_policy_as_it_stood_at_an_instant(acme: Api) -> None:
    created_at = acme.clock.now()
    acme.clock.advance(minutes=1)
    acme.set_policy(True, ["finance"])
    acme.clock.advance(minutes=1)
    auditor = acme.create_user("audrey", roles=["auditor"])
    assert auditor.status_code == 201
    headers = bearer(acme.access_token("audrey"))

    before = acme.client.get(
        acme.url("/policy"), params={"at": created_at.isoformat()}, headers=headers
    )
    now = acme.client.get(
        acme.url("/policy"), params={"at": "2026-11-28T11:01:30+01:00"}, headers=headers
    )

    assert before.json() == {"require_2fa": False, "groups": []}
    assert now.json() == {"require_2fa": True, "groups": ["finance"]}


def test_at_before_the_environment_existed_or_in_the_future(acme: Api) -> None:
    earlier = acme.client.get(
        acme.url("/policy"), params={"at": "2026-11-28T09:00:00Z"}, headers=acme.admin
    )
    later = acme.client.get(
        acme.url("/policy"), params={"at": "2026-11-28T10:05:00Z"}, headers=acme.admin
    )
    naive = acme.client.get(
        acme.url("/policy"), params={"at": "2026-11-28T10:00:00"}, headers=acme.admin
    )
    garbage = acme.client.get(acme.url("/policy"), params={"at": "yesterday"}, headers=acme.admin)
    # ISO 8601 forms that are not RFC 3339: a week date, the basic format, no seconds.
    not_rfc3339 = [
        acme.client.get(acme.url("/policy"), params={"at": at}, headers=acme.admin)
        for at in ("2026-W48-6T10:00:00+01:00", "20261128T100000Z", "2026-11-28T10:00Z")
    ]

    assert (earlier.status_code, error_of(earlier)) == (404, "environment_not_found")
    for response in (later, naive, garbage, *not_rfc3339):
        assert (response.status_code, error_of(response)) == (422, "invalid_timestamp")


def test_policy_needs_the_admin_role_and_auditors_may_only_look_back(acme: Api) -> None:
    acme.create_user("audrey", roles=["auditor"])
    acme.create_user("bob")
    auditor = bearer(acme.access_token("audrey"))
    user = bearer(acme.access_token("bob"))
    at = {"at": "2026-11-28T10:00:10Z"}

    for headers, expected in ((auditor, 403), (user, 403)):
        assert acme.client.get(acme.url("/policy"), headers=headers).status_code == expected
        put = acme.client.put(
            acme.url("/policy"), json={"require_2fa": True, "groups": []}, headers=headers
        )
        assert (put.status_code, error_of(put)) == (403, "forbidden")
    assert acme.client.get(acme.url("/policy"), params=at, headers=auditor).status_code == 200
    assert acme.client.get(acme.url("/policy"), params=at, headers=user).status_code == 403


def test_policy_bodies_are_strict(acme: Api) -> None:
    for body in (
        {"require_2fa": "true", "groups": []},
        {"require_2fa": True, "groups": [""]},
        {"require_2fa": True, "groups": ["x" * 65]},
        {"require_2fa": True, "groups": "finance"},
        {"require_2fa": True, "groups": [], "grace_days": 3},
        {"groups": []},
    ):
        response = acme.client.put(acme.url("/policy"), json=body, headers=acme.admin)
        assert response.status_code == 422, body
    control = acme.set_policy(True, ["fin\nance"])
    assert (control.status_code, error_of(control)) == (422, "invalid_input")


def test_setting_the_policy_unauthenticated_is_refused(acme: Api) -> None:
    response = acme.client.put(acme.url("/policy"), json={"require_2fa": True, "groups": []})

    assert (response.status_code, error_of(response)) == (401, "invalid_token")
