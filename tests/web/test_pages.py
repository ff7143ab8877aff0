"""Every page in Chromium: without JavaScript, by keyboard, under axe-core, and the
UI's security promises (CSRF, cookies, CSP, roles, sessions that end, lockout).

What these check does not depend on the store, so they run on SQLite only (one
server for the module); the story runs on both stores in test_story.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    Server,
    axe,
    log_in,
    log_out,
    serving,
)
from tests.web.steps import (
    BOB_PASSWORD,
    CAROL_PASSWORD,
    NewContext,
    api_enrol,
    api_get,
    api_policy,
    api_reset,
    api_user,
    register,
    require_2fa_for,
    run_story,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving("sqlite", tmp_path_factory.mktemp("web-pages")) as running:
        yield running


def test_the_seed_story_without_javascript(server: Server, new_context: NewContext) -> None:
    run_story(server, new_context(java_script_enabled=False), screenshots=False)


def test_users_and_the_audit_log_page_with_next_page(
    server: Server, new_context: NewContext
) -> None:
    env = server.new_environment("paging")
    api_user(server, env, "bob", BOB_PASSWORD, ["finance"])
    api_user(server, env, "carol", CAROL_PASSWORD, ["sales"])
    page = new_context().new_page()
    log_in(page, env, ADMIN, ADMIN_PASSWORD)
    page.goto(f"/ui/{env}/users?limit=2")
    table = page.get_by_role("table")
    expect(table.get_by_role("link")).to_have_text(["alice", "bob"])
    page.get_by_role("link", name="Next page").click()
    expect(table.get_by_role("link")).to_have_text(["carol"])
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)

    page.goto(f"/ui/{env}/audit?limit=3")
    page.get_by_label("Type").select_option("user_created")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(4)  # the header and alice, bob, carol
    page.goto(f"/ui/{env}/audit?type=user_created&limit=2")
    expect(rows.nth(1)).to_contain_text("alice")
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("carol")
    assert "type=user_created" in page.url


# ----- keyboard -----


def _tab_to(page: Page, element_id: str) -> None:
    for _ in range(20):
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            # Focus is visible: the focused control has an outline.
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none"
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


def test_logging_in_and_registering_by_keyboard_alone(
    server: Server, new_context: NewContext
) -> None:
    env = server.new_environment("keys")
    api_policy(server, env, require=True)
    page = new_context().new_page()
    page.goto(f"/ui/{env}/login")
    _tab_to(page, "username")
    page.keyboard.type(ADMIN)
    _tab_to(page, "password")
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Register for 2FA")).to_be_visible()
    secret = page.get_by_label("Secret key").input_value().replace(" ", "")
    _tab_to(page, "code")
    page.keyboard.type(pyotp.TOTP(secret).now())
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    page.get_by_role("button", name="Continue").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_text(f"Logged in as {ADMIN}", exact=True)).to_be_visible()


# ----- axe-core -----


def test_axe_finds_no_violation_on_any_page(server: Server, new_context: NewContext) -> None:
    env = server.new_environment("axe")
    api_user(server, env, "bob", BOB_PASSWORD, ["finance"])
    # axe is injected as a script of the test's own: the page's CSP would refuse it.
    page = new_context(bypass_csp=True).new_page()
    page.goto("/ui/")
    axe(page)
    page.goto(f"/ui/{env}/login")
    axe(page)
    log_in(page, env, ADMIN, "a wrong password")
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password")
    axe(page)
    log_in(page, env, ADMIN, ADMIN_PASSWORD)
    for path in (
        "/",
        "/setup/environment",
        "/users",
        "/setup/new-user",
        "/users/bob",
        "/audit",
        "/investigate?username=bob&at=2100-01-01T00:00:00",
        "/account",
    ):
        page.goto(f"/ui/{env}{path}")
        axe(page)
    page.goto(f"/ui/{env}/investigate")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("At").fill(_now())
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("Not required to use 2FA.")).to_be_visible()
    axe(page)
    page.goto(f"/ui/{env}/setup/environment")
    require_2fa_for(page, env, "finance")
    axe(page)
    log_out(page)
    axe(page)
    log_in(page, env, "bob", BOB_PASSWORD)
    axe(page)  # Register for 2FA
    register(page)
    axe(page)  # Recovery codes
    page.get_by_role("button", name="Continue").click()
    log_out(page)
    log_in(page, env, "bob", BOB_PASSWORD)
    page.get_by_label("Code", exact=True).fill("12345")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid code")
    axe(page)  # 2FA, with its alert
    page.get_by_role("link", name="Use a recovery code").click()
    axe(page)
    # The 403 page of a user without the role.
    page2 = new_context(bypass_csp=True).new_page()
    api_user(server, env, "dave", "he drives trucks", [])
    log_in(page2, env, "dave", "he drives trucks")
    page2.goto(f"/ui/{env}/audit")
    axe(page2)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


# ----- security -----


def test_a_form_without_a_valid_csrf_token_is_refused_and_changes_nothing(
    server: Server, new_context: NewContext
) -> None:
    env = server.new_environment("csrf")
    context = new_context()
    page = context.new_page()
    page.goto(f"/ui/{env}/login")
    # Login CSRF: the session cookie would be the attacker's.
    refused = context.request.post(
        f"/ui/{env}/login", form={"username": ADMIN, "password": ADMIN_PASSWORD}, max_redirects=0
    )
    assert refused.status == 403
    assert not any(c["name"] == "aero_session" for c in context.cookies())
    log_in(page, env, ADMIN, ADMIN_PASSWORD)
    expect(page.get_by_text(f"Logged in as {ADMIN}", exact=True)).to_be_visible()
    for token in (None, "0" * 64):
        form = {"require_2fa": "on", "other_groups": "finance"}
        if token is not None:
            form["csrf_token"] = token
        refused = context.request.post(f"/ui/{env}/setup/environment", form=form, max_redirects=0)
        assert refused.status == 403
        assert "Form expired" in refused.text()
    page.goto(f"/ui/{env}/setup/environment")
    expect(page.get_by_role("checkbox", name="Require 2FA", exact=True)).not_to_be_checked()
    assert api_get(server, env, "policy") == {"require_2fa": False, "groups": []}
    # A token from another browser's seed does not pass either.
    other = new_context().new_page()
    other.goto(f"/ui/{env}/login")
    foreign = other.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = context.request.post(
        f"/ui/{env}/logout", form={"csrf_token": foreign or ""}, max_redirects=0
    )
    assert refused.status == 403
    page.goto(f"/ui/{env}/")
    expect(page.get_by_text(f"Logged in as {ADMIN}", exact=True)).to_be_visible()


def test_cookies_are_http_only_and_pages_carry_the_csp(
    server: Server, new_context: NewContext
) -> None:
    env = server.new_environment("cookies")
    context = new_context()
    page = context.new_page()
    response = page.goto(f"/ui/{env}/login")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    log_in(page, env, ADMIN, ADMIN_PASSWORD)
    expect(page.get_by_text(f"Logged in as {ADMIN}", exact=True)).to_be_visible()
    cookies = context.cookies()
    assert {c["name"] for c in cookies} >= {"aero_session", "aero_csrf"}
    for cookie in cookies:
        assert cookie["httpOnly"], cookie["name"]
        assert cookie["sameSite"] in ("Lax", "Strict"), cookie["name"]
        assert not cookie["secure"], "served over plain HTTP here"
    assert page.evaluate("document.cookie") == ""
    # No inline script anywhere: every script is a file of our own.
    assert page.locator("script:not([src])").count() == 0
    for path in ("/", "/setup/environment", "/users", "/audit", "/investigate", "/account"):
        answer = context.request.get(f"/ui/{env}{path}")
        assert answer.status == 200
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["cache-control"] == "no-store"


def test_cookies_are_secure_behind_a_trusted_https_proxy(server: Server) -> None:
    env = server.new_environment("proxy")
    plain = httpx.get(f"{server.base_url}/ui/{env}/login")
    assert "secure" not in plain.headers["set-cookie"].lower()
    proxied = httpx.get(f"{server.base_url}/ui/{env}/login", headers={"X-Forwarded-Proto": "https"})
    assert "; secure" in proxied.headers["set-cookie"].lower()


def test_a_user_without_a_role_gets_403_on_admin_and_audit_pages(
    server: Server, new_context: NewContext
) -> None:
    env = server.new_environment("roles")
    api_user(server, env, "carol", CAROL_PASSWORD, ["sales"])
    context = new_context()
    page = context.new_page()
    log_in(page, env, "carol", CAROL_PASSWORD)
    expect(page.get_by_role("link", name="Account")).to_be_visible()
    for name in ("Environment settings", "Users", "Audit log", "Investigate"):
        expect(page.get_by_role("link", name=name)).to_have_count(0)
    for path in (
        "/setup/environment",
        "/users",
        "/users/carol",
        "/setup/new-user",
        "/audit",
        "/audit/export.csv",
        "/investigate",
    ):
        response = page.goto(f"/ui/{env}{path}")
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", name="Access denied")).to_be_visible()
    # Without a session at all: to the Log in page.
    anonymous = new_context().new_page()
    anonymous.goto(f"/ui/{env}/audit")
    expect(anonymous.get_by_role("heading", name="Log in")).to_be_visible()


def test_a_session_ends_on_logout_reset_and_password_change(
    server: Server, new_context: NewContext
) -> None:
    env = server.new_environment("sessions")
    api_user(server, env, "bob", BOB_PASSWORD, ["finance"])
    context = new_context()
    page = context.new_page()
    log_in(page, env, "bob", BOB_PASSWORD)
    expect(page.get_by_text("Logged in as bob", exact=True)).to_be_visible()
    [session] = [c for c in context.cookies() if c["name"] == "aero_session"]
    log_out(page)
    # Logging out ended the session on the server: its cookie, kept, is worth nothing.
    replay = new_context()
    replay.add_cookies([session])
    again = replay.new_page()
    again.goto(f"/ui/{env}/")
    expect(again.get_by_role("heading", name="Log in")).to_be_visible()

    # An admin's 2FA reset ends bob's session.
    log_in(page, env, "bob", BOB_PASSWORD)
    expect(page.get_by_text("Logged in as bob", exact=True)).to_be_visible()
    api_reset(server, env, "bob")
    page.goto(f"/ui/{env}/account")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Your session has ended")

    # Changing one's password ends the session too, and says so.
    log_in(page, env, "bob", BOB_PASSWORD)
    page.get_by_role("link", name="Account").click()
    page.get_by_label("Current password").fill(BOB_PASSWORD)
    page.get_by_label("New password").fill("he still likes spreadsheets")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Password changed")).to_be_visible()
    page.goto(f"/ui/{env}/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    log_in(page, env, "bob", "he still likes spreadsheets")
    expect(page.get_by_text("Logged in as bob", exact=True)).to_be_visible()


def test_the_code_step_locks_and_says_how_long_to_wait(
    server: Server, new_context: NewContext
) -> None:
    env = server.new_environment("lock")
    api_user(server, env, "bob", BOB_PASSWORD, ["finance"])
    api_policy(server, env, require=True)
    secret = api_enrol(server, env, "bob", BOB_PASSWORD)
    page = new_context(java_script_enabled=False).new_page()
    log_in(page, env, "bob", BOB_PASSWORD)
    full_width = "\uff11\uff12\uff13\uff14\uff15\uff16"
    for malformed in ("12345", full_width, "12 3456", "abcdef", "1234567"):
        page.get_by_label("Code", exact=True).fill(malformed)
        page.get_by_role("button", name="Verify").click()
        expect(page.get_by_role("alert")).to_have_text("Invalid code")
    # Five failures lock the code step, even for the right code, for five minutes.
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Too many attempts. Wait 5 minute(s), then try again."
    )
    page.get_by_role("link", name="Use a recovery code").click()
    page.get_by_label("Recovery code").fill("0000-0000-0000-0000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many attempts")
