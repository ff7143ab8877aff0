"""The audit rules: one entry per event, saying what happened, to whom, by whom and
from where, and never a secret."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from pydantic import SecretStr

from application.clock import FixedClock
from application.service import AeroAuth
from application.service_credentials import ServiceCredentials
from domain.base import AeroAggregate
from domain.credential import UserCredential
from domain.environment import Environment
from domain.errors import (
    InvalidCodeError,
    InvalidCredentialsError,
    TooManyAttemptsError,
)
from domain.identity import FederatedLogin, IdentityLink, RejectedCallback
from domain.origin import Origin, originating
from domain.service_credential import ServiceCredential
from domain.unknown_user import UnknownUserLogin
from interfaces.composition import build_application
from interfaces.settings import Settings
from projections.api import AuditEntry
from projections.audit_chain import (
    canonical,
)
from projections.audit_rules import AUDIT_TYPES, RULES
from projections.live import LiveReadModels
from tests.projections.helpers import (
    entries,
    login_challenge,
    make_environment,
    wrong_code,
)
from tests.support import (
    ADMIN,
    PASSWORD,
    caught_up,
    code_at,
    register,
)

DESK = Origin(actor=ADMIN, ip="203.0.113.7", user_agent="Mozilla/5.0 (desk)")
PHONE = Origin(actor=None, ip="198.51.100.2", user_agent="AeroApp/1.0")


def kinds(found: list[AuditEntry]) -> list[tuple[str, str | None, str, dict[str, object]]]:
    return [(e.type, e.username, e.outcome, e.details) for e in found]


def test_admin_commands_record_what_who_and_from_where(
    app: AeroAuth, read_models: LiveReadModels
) -> None:
    with originating(DESK):
        make_environment(app)
        app.create_user("acme", "Bob", PASSWORD, groups=["finance"])
        app.set_policy("acme", True, ["finance"])
        app.change_groups("acme", "bob", ["finance", "sales"])
        app.change_roles("acme", "bob", ["auditor"])
        app.change_password("acme", "bob", "another long pass 2")
        app.reset_two_factor("acme", "bob", "lost phone, ticket 4711")
    caught_up(app, read_models)

    found = entries(read_models)
    assert kinds(found) == [
        (
            "environment_created",
            None,
            "success",
            {"display_name": "Acme", "issuer": "BizzStream Aero"},
        ),
        ("user_created", "alice", "success", {"groups": [], "roles": ["admin", "auditor"]}),
        ("user_created", "Bob", "success", {"groups": ["finance"], "roles": []}),
        ("two_factor_requirement_changed", None, "success", {"require_2fa": True}),
        ("groups_selected", None, "success", {"groups": ["finance"]}),
        ("groups_changed", "Bob", "success", {"groups": ["finance", "sales"]}),
        ("roles_changed", "Bob", "success", {"roles": ["auditor"]}),
        ("password_changed", "Bob", "success", {}),
        ("two_factor_reset", "Bob", "success", {"reason": "lost phone, ticket 4711"}),
    ]
    assert {(e.environment, e.actor, e.ip, e.user_agent) for e in found} == {
        ("acme", ADMIN, "203.0.113.7", "Mozilla/5.0 (desk)")
    }
    assert [e.position for e in found] == sorted(e.position for e in found)
    assert found[0].occurred_at.utcoffset() == timedelta(0)


def test_service_credentials_issued_and_revoked_are_the_environments_entries(
    app: AeroAuth, read_models: LiveReadModels
) -> None:
    credentials = ServiceCredentials(app)
    with originating(DESK):
        make_environment(app)
        credentials.create("acme", "billing")
        credentials.revoke("acme", "billing")
        credentials.create("acme", "billing")
    caught_up(app, read_models)

    found = entries(read_models, types=("service_credential_created", "service_credential_revoked"))
    assert kinds(found) == [
        ("service_credential_created", None, "success", {"name": "billing"}),
        ("service_credential_revoked", None, "success", {"name": "billing"}),
        ("service_credential_created", None, "success", {"name": "billing"}),
    ]
    assert {e.actor for e in found} == {ADMIN}


def test_logins_record_every_step_and_never_a_secret(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    make_environment(app)
    bob = app.create_user("acme", "bob", PASSWORD)
    app.set_policy("acme", True, [])
    with originating(PHONE):
        secret, recovery_codes = register(app, clock, "bob", PASSWORD)
        with pytest.raises(InvalidCredentialsError):
            app.start_login("acme", "bob", "not the password")
        with pytest.raises(InvalidCredentialsError):
            app.start_login("acme", "mallory", "whatever it is")

        challenge = login_challenge(app, "acme", "bob")
        used = code_at(secret, clock.now())
        with pytest.raises(InvalidCodeError):
            app.verify_code("acme", "bob", challenge, used)  # the registration used it
        with pytest.raises(InvalidCodeError):
            app.verify_code("acme", "bob", challenge, "12345")
        for _ in range(3):
            with pytest.raises(InvalidCodeError):
                app.verify_code("acme", "bob", challenge, wrong_code(secret, clock.now()))
        with pytest.raises(TooManyAttemptsError):
            app.verify_code("acme", "bob", challenge, wrong_code(secret, clock.now()))

        clock.advance(minutes=6)
        challenge = login_challenge(app, "acme", "bob")
        app.use_recovery_code("acme", "bob", challenge, recovery_codes[0])
        new_codes = app.regenerate_recovery_codes("acme", "bob")
        challenge = login_challenge(app, "acme", "bob")
        app.verify_code("acme", "bob", challenge, code_at(secret, clock.now()))
    caught_up(app, read_models)

    logins = [e for e in entries(read_models) if e.ip == PHONE.ip]
    assert kinds(logins) == [
        ("login_password_succeeded", "bob", "success", {"next_step": "registration"}),
        ("two_factor_registration_started", "bob", "success", {}),
        ("two_factor_registered", "bob", "success", {}),
        ("recovery_codes_issued", "bob", "success", {"count": 10}),
        ("login_succeeded", "bob", "success", {"method": "registration"}),
        ("login_password_failed", "bob", "failure", {"reason": "wrong_password"}),
        ("login_password_failed", "mallory", "failure", {"reason": "unknown_user"}),
        ("login_password_succeeded", "bob", "success", {"next_step": "two_factor"}),
        ("two_factor_code_replayed", "bob", "failure", {}),
        ("two_factor_failed", "bob", "failure", {"kind": "totp", "reason": "malformed"}),
        ("two_factor_failed", "bob", "failure", {"kind": "totp", "reason": "wrong"}),
        ("two_factor_failed", "bob", "failure", {"kind": "totp", "reason": "wrong"}),
        ("two_factor_failed", "bob", "failure", {"kind": "totp", "reason": "wrong"}),
        (
            "two_factor_locked",
            "bob",
            "failure",
            {"locked_until": "2026-11-28T10:05:10Z"},
        ),
        ("two_factor_throttled", "bob", "failure", {"reason": "locked"}),
        ("login_password_succeeded", "bob", "success", {"next_step": "two_factor"}),
        ("recovery_code_used", "bob", "success", {"remaining": 9}),
        ("login_succeeded", "bob", "success", {"method": "recovery"}),
        ("recovery_codes_issued", "bob", "success", {"count": 10}),
        ("login_password_succeeded", "bob", "success", {"next_step": "two_factor"}),
        ("two_factor_succeeded", "bob", "success", {"kind": "totp"}),
        ("login_succeeded", "bob", "success", {"method": "totp"}),
    ]
    assert {e.actor for e in logins} == {"bob", "mallory"}

    user = app.user("acme", "bob")
    secrets = {
        PASSWORD,
        "not the password",
        bob.password_hash,
        secret,
        user.secret,
        used,
        *recovery_codes,
        *new_codes,
        *user.recovery_codes,
    }
    # The events themselves hold the challenge ids, hashes and encrypted secrets.
    for notification in app.recorder.select_notifications(0, 1000):
        event = app.mapper.to_domain_event(notification)
        for name in ("challenge_id", "encrypted_secret", "password_hash", "code_hash"):
            if getattr(event, name, None):
                secrets.add(getattr(event, name))
        secrets.update(getattr(event, "code_hashes", ()))
    assert len(secrets) > 40
    everything = b"".join(canonical(e, "") for e in entries(read_models)).decode()
    leaked = [s for s in secrets if s and s in everything]
    assert leaked == []


OPERATOR = Origin(actor="operator", ip=None, user_agent="aero-auth cli")


def test_a_key_rotation_reads_as_one_entry_per_secret_with_the_key_ids_only(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock, settings: Settings
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    app.set_policy("acme", True, [])
    secret, _ = register(app, clock, "bob", PASSWORD)
    new_key = base64.b64encode(b"n" * 32).decode()
    assert settings.secret_key is not None
    rotated = settings.model_copy(
        update={
            "secret_keys": SecretStr(f"k2:{new_key},k1:{settings.secret_key.get_secret_value()}")
        }
    )
    rotating = build_application(rotated, clock=clock)
    try:
        with originating(OPERATOR):
            rotating.reencrypt_secrets("acme", "bob")
            rotating.reencrypt_secrets("acme", "bob")  # already current: no second entry
        ciphertext = rotating.user("acme", "bob").secret
    finally:
        rotating.close()
    caught_up(app, read_models)

    [entry] = entries(read_models, types=("two_factor_key_rotated",))
    assert kinds([entry]) == [
        (
            "two_factor_key_rotated",
            "bob",
            "success",
            {"stage": "registered", "previous_key_id": "k1", "key_id": "k2"},
        )
    ]
    assert (entry.actor, entry.user_agent) == ("operator", "aero-auth cli")
    shown = canonical(entry, "").decode()
    assert ciphertext is not None and ciphertext.startswith("k2.")
    assert all(s not in shown for s in (ciphertext, ciphertext[3:], secret, new_key))


def test_password_throttling_reads_as_failed_logins_saying_why(
    app: AeroAuth, read_models: LiveReadModels
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    for _ in range(11):
        with pytest.raises(InvalidCredentialsError):
            app.start_login("acme", "bob", "not the password")
    caught_up(app, read_models)

    failures = entries(read_models, username="bob", outcome="failure")
    assert [e.details.get("reason") for e in failures] == ["wrong_password"] * 10 + [
        None,
        "throttled",
    ]
    assert failures[-2].type == "password_step_locked"
    assert failures[-1].details["locked_until"] == failures[-2].details["locked_until"]


def test_every_type_of_api_md_is_produced() -> None:
    required = {
        "environment_created",
        "two_factor_requirement_changed",
        "groups_selected",
        "user_created",
        "groups_changed",
        "roles_changed",
        "password_changed",
        "login_password_succeeded",
        "login_password_failed",
        "two_factor_registration_started",
        "two_factor_registered",
        "two_factor_succeeded",
        "two_factor_failed",
        "two_factor_code_replayed",
        "two_factor_locked",
        "two_factor_reset",
        "recovery_codes_issued",
        "recovery_code_used",
        "login_succeeded",
    }
    assert required <= set(AUDIT_TYPES)


def test_every_domain_event_has_an_audit_rule() -> None:
    events = [
        member
        for aggregate in (
            Environment,
            UserCredential,
            UnknownUserLogin,
            ServiceCredential,
            FederatedLogin,
            IdentityLink,
            RejectedCallback,
        )
        for name, member in vars(aggregate).items()
        # "Event" is each aggregate's base class, never triggered itself.
        if isinstance(member, type) and issubclass(member, AeroAggregate.Event) and name != "Event"
    ]
    assert {getattr(event, "TOPIC", None) for event in events} == set(RULES)
