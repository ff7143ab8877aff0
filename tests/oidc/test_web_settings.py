"""The identity provider on the Environment settings page, at the HTTP level, against the
real provider: connect, change (the secret kept), errors, CSRF, disconnect, and a
client secret that never reaches a page."""

from __future__ import annotations

from typing import Any

from tests.oidc.browser import Browser
from tests.oidc.conftest import Federation
from tests.oidc.harness import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI

SETTINGS = "/setup/environment"


def admin(federation: Federation) -> Browser:
    browser = Browser.open(federation)
    browser.log_in_with_password()
    return browser


def fields(federation: Federation, **changes: str) -> dict[str, str]:
    values = {
        "issuer": federation.provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "display_name": "Contoso Entra",
        "redirect_uris": REDIRECT_URI,
        "password_login": "admins",
        "provisioning": "auto",
        "username_claim": "preferred_username",
        "groups_claim": "",
        "two_factor": "aero",
    }
    values.update(changes)
    return values


def provider_view(federation: Federation) -> Any:
    api = federation.api
    return api.client.get(api.url("/identity-provider"), headers=api.admin)


def test_connecting_from_the_settings_page(federation: Federation) -> None:
    browser = admin(federation)
    page = browser.get(SETTINGS)
    assert ">Connect identity provider</button>" in page.text
    # The redirect URI of this very page is offered.
    assert f">{REDIRECT_URI}</textarea>" in page.text

    saved = browser.post(
        "/setup/identity-provider", SETTINGS, **fields(federation, groups_claim="groups")
    )
    after = browser.get(SETTINGS, saved="provider_connected")

    assert saved.status_code == 303
    assert saved.headers["location"] == "/ui/acme/setup/environment?saved=provider_connected"
    assert "Identity provider connected." in after.text
    assert ">Update identity provider</button>" in after.text
    assert CLIENT_SECRET not in after.text
    view = provider_view(federation).json()
    assert view == {
        "issuer": federation.provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret_set": True,
        "display_name": "Contoso Entra",
        "redirect_uris": [REDIRECT_URI],
        "password_login": "admins",
        "provisioning": "auto",
        "username_claim": "preferred_username",
        "groups_claim": "groups",
        "two_factor": "aero",
    }
    connected = [e for e in federation.audit() if e["type"] == "identity_provider_connected"]
    assert [(e["actor"], e["user_agent"]) for e in connected] == [("alice", "Browser/1.0")]
    assert ">Log in with Contoso Entra</button>" in Browser.open(federation).get("/login").text


def test_changing_with_an_empty_secret_keeps_the_stored_one(connected: Federation) -> None:
    browser = admin(connected)
    stored = connected.application.environment("acme").identity_provider
    assert stored is not None

    saved = browser.post(
        "/setup/identity-provider",
        SETTINGS,
        **fields(connected, client_secret="", two_factor="provider", password_login="none"),
    )

    assert saved.status_code == 303
    assert saved.headers["location"].endswith("?saved=provider_changed")
    changed = connected.application.environment("acme").identity_provider
    assert changed is not None
    assert changed.encrypted_client_secret == stored.encrypted_client_secret
    assert (changed.two_factor, changed.password_login) == ("provider", "none")
    # The secret still works: a login through the provider goes through.
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    carol = Browser.open(connected)
    assert carol.come_back(carol.log_in_at_provider(subject)).status_code == 303
    assert carol.home_says() == "carol"


def test_errors_are_said_beside_the_form_which_keeps_all_but_the_secret(
    federation: Federation,
) -> None:
    browser = admin(federation)
    cases = {
        "http://aero.example.com/tenant/v2.0": (422, "issuer must be https"),
        f"{federation.provider.issuer}/": (422, "the discovery document names the issuer"),
        "http://127.0.0.1:9/tenant/v2.0": (502, "could not be reached"),
    }
    for issuer, (status, message) in cases.items():
        response = browser.post(
            "/setup/identity-provider", SETTINGS, **fields(federation, issuer=issuer)
        )

        assert response.status_code == status, issuer
        assert message in response.text, issuer
        assert 'role="alert" id="provider-error"' in response.text
        assert 'aria-describedby="issuer-hint provider-error" aria-invalid="true"' in response.text
        assert f'value="{issuer}"' in response.text
        assert CLIENT_SECRET not in response.text

    no_secret = browser.post(
        "/setup/identity-provider", SETTINGS, **fields(federation, client_secret="")
    )
    no_uri = browser.post(
        "/setup/identity-provider", SETTINGS, **fields(federation, redirect_uris=" \n ")
    )

    assert no_secret.status_code == 422
    assert "client_secret: is required to connect a provider" in no_secret.text
    assert 'aria-describedby="client_secret-hint provider-error"' in no_secret.text
    assert no_uri.status_code == 422
    assert "redirect_uris: name at least one redirect URI" in no_uri.text
    assert provider_view(federation).status_code == 404


def test_the_form_needs_its_csrf_token_and_the_role_admin(connected: Federation) -> None:
    browser = admin(connected)
    api = connected.api
    assert api.create_user("dave", password="he drives trucks", roles=[]).status_code == 201
    assert connected.connect(password_login="all").status_code == 200

    forged = browser.client.post(
        "/ui/acme/setup/identity-provider", data=fields(connected, display_name="Forged")
    )
    dave = Browser.open(connected)
    dave.log_in_with_password("dave", "he drives trucks")
    not_admin = dave.post("/setup/identity-provider", "/account", **fields(connected))
    not_admin_disconnect = dave.post("/setup/identity-provider/disconnect", "/account")

    assert forged.status_code == 403
    assert not_admin.status_code == 403
    assert not_admin_disconnect.status_code == 403
    assert provider_view(connected).json()["display_name"] == "Microsoft"


def test_disconnecting_asks_first(connected: Federation) -> None:
    browser = admin(connected)
    assert 'href="/ui/acme/setup/identity-provider/disconnect"' in browser.get(SETTINGS).text

    confirm = browser.get("/setup/identity-provider/disconnect")
    still = provider_view(connected).status_code
    done = browser.post(
        "/setup/identity-provider/disconnect", "/setup/identity-provider/disconnect"
    )
    after = browser.get(SETTINGS, saved="provider_disconnected")

    assert confirm.status_code == 200
    assert "<h1>Disconnect the identity provider</h1>" in confirm.text
    assert ">Disconnect</button>" in confirm.text
    assert still == 200
    assert done.status_code == 303
    assert provider_view(connected).status_code == 404
    assert "Identity provider disconnected." in after.text
    assert ">Connect identity provider</button>" in after.text
    assert "Log in with" not in Browser.open(connected).get("/login").text
    # Asked again once there is nothing to disconnect: back to the settings.
    assert browser.get("/setup/identity-provider/disconnect").status_code == 303
