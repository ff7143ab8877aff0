"""The identity provider in the aggregates: connecting, the break-glass rule, links,
federated login steps and the life of a login's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.credential import DONE, REGISTRATION, TWO_FACTOR, UserCredential
from domain.environment import Environment
from domain.identity import (
    FederatedLogin,
    IdentityLink,
    ProviderMetadata,
    ProviderSettings,
    federated_login_id,
)

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
ISSUER = "https://login.microsoftonline.com/7f3c1e52-9a4b-4d6e-8f21-3b5c7d9e0a14/v2.0"
SETTINGS = ProviderSettings(
    issuer=ISSUER,
    client_id="client-1",
    display_name="Microsoft",
    redirect_uris=frozenset({"https://aero.example.com/cb"}),
    password_login="admins",
    provisioning="auto",
    username_claim="preferred_username",
    groups_claim=None,
    two_factor="aero",
)
METADATA = ProviderMetadata(
    ISSUER, f"{ISSUER}/authorize", f"{ISSUER}/token", f"{ISSUER}/keys", frozenset({"RS256"})
)


def connected(**changes: object) -> Environment:
    environment = Environment.create("acme", "Acme", "BizzStream Aero", NOW)
    environment.connect_identity_provider(
        SETTINGS._replace(**changes),
        METADATA,
        "k1.sealed",
        "c1",
        NOW,  # type: ignore[arg-type]
    )
    environment.collect_events()
    return environment


def test_connecting_records_the_settings_and_the_sealed_secret_only() -> None:
    environment = Environment.create("acme", "Acme", "BizzStream Aero", NOW)
    environment.collect_events()

    environment.connect_identity_provider(SETTINGS, METADATA, "k1.sealed", "c1", NOW)

    [event] = environment.collect_events()
    assert isinstance(event, Environment.IdentityProviderConnected)
    assert (event.issuer, event.encrypted_client_secret, event.jwks_uri) == (
        ISSUER,
        "k1.sealed",
        f"{ISSUER}/keys",
    )
    assert environment.identity_provider is not None
    assert environment.identity_provider.entra_tenant == "7f3c1e52-9a4b-4d6e-8f21-3b5c7d9e0a14"


def test_a_change_keeps_the_connection_unless_issuer_client_or_secret_change() -> None:
    environment = connected()

    environment.connect_identity_provider(
        SETTINGS._replace(two_factor="provider"), METADATA, "k1.sealed", "c2", NOW
    )
    environment.connect_identity_provider(SETTINGS, METADATA, "k1.resealed", "c3", NOW)

    kept, renewed = environment.collect_events()
    assert isinstance(kept, Environment.IdentityProviderChanged)
    assert kept.connection_id == "c1" and kept.two_factor == "provider"
    assert renewed.connection_id == "c3"  # type: ignore[attr-defined]


def test_break_glass_lets_only_admins_use_a_password_while_connected() -> None:
    environment = connected()
    assert environment.password_login_allowed(frozenset({"admin"}))
    assert not environment.password_login_allowed(frozenset({"auditor"}))
    assert not connected(password_login="none").password_login_allowed(frozenset({"admin"}))
    assert connected(password_login="all").password_login_allowed(frozenset())

    environment.disconnect_identity_provider(NOW)

    assert environment.password_login_allowed(frozenset())
    assert environment.identity_provider is None


def user(registered: bool = False) -> UserCredential:
    credential = UserCredential.create("acme", "bob", "", (), (), NOW)
    if registered:
        credential.secret = "k1.secret"
    credential.collect_events()
    return credential


def test_a_federated_step_goes_on_as_after_a_password_unless_the_provider_did_mfa() -> None:
    for registered, required, mfa, expected in [
        (False, False, False, DONE),
        (False, True, False, REGISTRATION),
        (True, False, False, TWO_FACTOR),
        (True, True, True, DONE),
    ]:
        credential = user(registered)
        step = credential.pass_federated_step(
            ISSUER, "s1", "aero", mfa, "c", required, NOW + timedelta(minutes=5), NOW
        )
        events = credential.collect_events()
        assert step == expected
        assert isinstance(events[0], UserCredential.FederatedStepSucceeded)
        assert (len(events) == 2) == (expected == DONE)


def test_relinking_a_user_unlinks_the_old_subject_first() -> None:
    credential = user()
    credential.link_identity(ISSUER, "s1", NOW)
    credential.collect_events()

    credential.link_identity(ISSUER, "s2", NOW)
    credential.link_identity(ISSUER, "s2", NOW)  # no change, no event

    unlinked, linked = credential.collect_events()
    assert isinstance(unlinked, UserCredential.IdentityUnlinked) and unlinked.subject == "s1"
    assert isinstance(linked, UserCredential.IdentityLinked) and linked.subject == "s2"
    assert not credential.has_password


def test_a_link_is_released_once() -> None:
    link = IdentityLink.create("acme", ISSUER, "s1", "bob", NOW)
    link.collect_events()
    link.release(NOW)
    link.release(NOW)
    assert len(link.collect_events()) == 1 and link.username is None


def test_a_login_state_is_good_once_for_ten_minutes_with_its_provider() -> None:
    login = FederatedLogin.start(
        federated_login_id("state"), "acme", "c1", "h", "v", "https://x/cb",
        NOW + timedelta(minutes=10), NOW,
    )  # fmt: skip
    assert login.usable("acme", "c1", NOW) is None
    assert login.usable("other", "c1", NOW) == "unknown_state"
    assert login.usable("acme", "c2", NOW) == "provider_changed"
    assert login.usable("acme", None, NOW) == "provider_changed"
    assert login.usable("acme", "c1", NOW + timedelta(minutes=10)) == "state_expired"
    login.fail("wrong_nonce", None, NOW)
    assert login.usable("acme", "c1", NOW) == "state_used"
    assert federated_login_id("state") != federated_login_id("state2")
