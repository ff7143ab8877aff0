"""Logging in through the identity provider in Chromium: connected on the Environment
settings page, the "Log in with ..." button, the provider's own login screen (the
test provider of tests/oidc, set up like an Entra tenant), then the home page, or
registration and the 2FA page; failures as the Log in page's alert; axe-core on
every new page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.oidc.harness import CLIENT_ID, CLIENT_SECRET, Provider, running_provider
from tests.web.conftest import ADMIN, ADMIN_PASSWORD, Server, axe, code_after, log_in, log_out
from tests.web.steps import NewContext, admin_token, api_policy, register

pytestmark = pytest.mark.slow

PROVIDER_NAME = "Contoso Entra"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with running_provider(tmp_path_factory.mktemp("oidc") / "provider.log") as running:
        yield running


def redirect_uri(server: Server, env: str) -> str:
    return f"{server.base_url}/ui/{env}/login/oidc"


def connect(server: Server, provider: Provider, env: str, **overrides: object) -> None:
    """Through the API, for the tests that are about the login."""
    provider.allow_redirect_uri(redirect_uri(server, env))
    body = {
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "display_name": PROVIDER_NAME,
        "redirect_uris": [redirect_uri(server, env)],
        **overrides,
    }
    answer = httpx.put(
        f"{server.base_url}/v1/environments/{env}/identity-provider",
        headers=admin_token(server, env),
        json=body,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def sign_in_at_provider(page: Page, server: Server, provider: Provider, login: str) -> None:
    """Click the button, then the provider's screens (log in, consent) until it sends
    the browser back; a provider that remembers the browser asks nothing."""
    with page.expect_navigation():
        page.get_by_role("button", name=f"Log in with {PROVIDER_NAME}").click()
    for _ in range(4):
        if page.url.startswith(server.base_url):
            return
        assert page.url.startswith(provider.base_url), page.url
        if page.locator('input[name="login"]').count():
            page.locator('input[name="login"]').fill(login)
            page.locator('input[name="password"]').fill("any password")
        with page.expect_navigation():
            page.locator('button[type="submit"]').first.click()
    raise AssertionError(f"the provider never sent the browser back: {page.url}")


def test_an_admin_connects_the_provider_and_a_user_logs_in_with_it(
    server: Server, provider: Provider, new_context: NewContext
) -> None:
    env = server.new_environment("idp")
    provider.allow_redirect_uri(redirect_uri(server, env))
    provider.account("carol-sub", preferred_username="carol")
    page = new_context().new_page()
    log_in(page, env, ADMIN, ADMIN_PASSWORD)
    page.get_by_role("link", name="Environment settings").click()

    section = page.get_by_role("region", name="Identity provider")
    section.get_by_label("Issuer").fill(provider.issuer)
    section.get_by_label("Client ID").fill(CLIENT_ID)
    section.get_by_label("Client secret").fill(CLIENT_SECRET)
    section.get_by_label("Display name").fill(PROVIDER_NAME)
    expect(section.get_by_label("Redirect URIs")).to_have_value(redirect_uri(server, env))
    section.get_by_label("Password login").select_option("admins")
    section.get_by_label("Second factor").select_option("aero")
    section.get_by_role("button", name="Connect identity provider").click()

    expect(section.get_by_role("status")).to_have_text("Identity provider connected.")
    expect(section.get_by_label("Client secret")).to_have_value("")
    assert CLIENT_SECRET not in page.content()
    log_out(page)
    # The page's own CSP (no bypass here) lets the button's form go to the provider.
    sign_in_at_provider(page, server, provider, "carol-sub")

    expect(page.get_by_text("Logged in as carol")).to_be_visible()
    assert page.url == f"{server.base_url}/ui/{env}/"


def test_with_2fa_required_the_login_goes_through_registration_then_the_2fa_page(
    server: Server, provider: Provider, new_context: NewContext
) -> None:
    env = server.new_environment("idp")
    connect(server, provider, env, two_factor="aero")
    api_policy(server, env, True)
    provider.account("carol-sub", preferred_username="carol")
    page = new_context().new_page()

    page.goto(f"/ui/{env}/login")
    sign_in_at_provider(page, server, provider, "carol-sub")
    secret, step = register(page)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("Logged in as carol")).to_be_visible()
    log_out(page)
    sign_in_at_provider(page, server, provider, "carol-sub")
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    code, _step = code_after(secret, step)
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Verify").click()

    expect(page.get_by_text("Logged in as carol")).to_be_visible()


def test_a_foreign_state_and_a_provider_that_does_not_answer_are_said_so(
    server: Server, provider: Provider, new_context: NewContext
) -> None:
    env = server.new_environment("idp")
    connect(server, provider, env)
    provider.account("mallory-sub", preferred_username="mallory")
    provider.account("carol-sub", preferred_username="carol")
    # Mallory's own answer, which he keeps instead of letting his browser send it here.
    with httpx.Client(base_url=server.base_url, follow_redirects=False, timeout=30) as mallory:
        form = mallory.get(f"/ui/{env}/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        started = mallory.post(f"/ui/{env}/login/oidc/start", data={"csrf_token": token[1]})
        assert started.status_code == 303, started.text
    answer = provider.authorize(
        started.headers["location"], "mallory-sub", redirect_uri=redirect_uri(server, env)
    )

    carol = new_context(bypass_csp=True).new_page()
    carol.goto(f"{redirect_uri(server, env)}?{urlencode(answer)}")
    alert = carol.get_by_role("alert")
    expect(alert).to_contain_text(
        re.compile(rf"^Could not log in with {PROVIDER_NAME}: .* started in another browser")
    )
    expect(carol.get_by_role("heading", name="Log in")).to_be_visible()
    axe(carol)
    carol.goto(f"/ui/{env}/")
    expect(carol.get_by_role("heading", name="Log in")).to_be_visible()

    provider.control("hang", {"paths": ["/token"]})
    try:
        carol.goto(f"/ui/{env}/login")
        sign_in_at_provider(carol, server, provider, "carol-sub")
    finally:
        provider.control("hang", {"paths": []})
    expect(carol.get_by_role("alert")).to_have_text(
        f"Could not log in with {PROVIDER_NAME}: the identity provider did not answer. "
        "Try again later."
    )


def test_axe_finds_no_violation_on_the_new_pages(
    server: Server, provider: Provider, new_context: NewContext
) -> None:
    env = server.new_environment("idp")
    connect(server, provider, env)
    page = new_context(bypass_csp=True).new_page()
    page.goto(f"/ui/{env}/login")
    expect(page.get_by_role("button", name=f"Log in with {PROVIDER_NAME}")).to_be_visible()
    axe(page)
    log_in(page, env, ADMIN, ADMIN_PASSWORD)
    page.goto(f"/ui/{env}/setup/environment")
    axe(page)
    section = page.get_by_role("region", name="Identity provider")
    section.get_by_label("Issuer").fill("http://aero.example.com/tenant/v2.0")
    section.get_by_role("button", name="Update identity provider").click()
    expect(section.get_by_role("alert")).to_contain_text("issuer must be https")
    expect(section.get_by_label("Issuer")).to_have_attribute("aria-invalid", "true")
    axe(page)
    section.get_by_role("link", name="Disconnect the identity provider").click()
    expect(page.get_by_role("heading", name="Disconnect the identity provider")).to_be_visible()
    axe(page)
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("status").filter(has_text="disconnected")).to_be_visible()
    axe(page)
    log_out(page)
    expect(page.get_by_role("button", name=re.compile("^Log in with"))).to_have_count(0)
