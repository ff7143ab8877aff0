"""The web UI in Chromium, by role and accessible name, as a screen reader sees it.

The product page's story end to end (with and without JavaScript), a login by
keyboard alone, axe-core on every page, and the UI's security promises:
CSRF, cookies, CSP, no other origin, roles, sessions that end.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pyotp
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import BrowserContext, Page, expect

from tests.web.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    AXE,
    DOCS,
    USER_AGENT,
    Server,
    code_after,
    log_in,
    log_out,
    secret_of,
)

pytestmark = pytest.mark.slow

BOB_PASSWORD = "bob likes spreadsheets"
CAROL_PASSWORD = "carol sells widgets"
NewContext = Callable[..., BrowserContext]


# ----- steps -----


def create_user(page: Page, env: str, username: str, password: str, groups: str) -> None:
    page.goto(f"/ui/{env}/users")
    page.get_by_role("link", name="New user").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Groups").fill(groups)
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name=username, exact=True)).to_be_visible()


def require_2fa_for(page: Page, env: str, group: str, screenshot: Path | None = None) -> None:
    page.get_by_role("link", name="Environment settings").click()
    expect(page.get_by_role("heading", name="Environment settings")).to_be_visible()
    page.get_by_role("checkbox", name="Require 2FA", exact=True).check()
    groups = page.get_by_role("group", name="Require 2FA for groups")
    groups.get_by_role("checkbox", name=group, exact=True).check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved")
    expect(page.get_by_role("checkbox", name="Require 2FA", exact=True)).to_be_checked()
    expect(groups.get_by_role("checkbox", name=group, exact=True)).to_be_checked()
    coverage = page.get_by_role("complementary", name="Coverage")
    expect(coverage.get_by_role("term")).to_have_text(
        ["Users required to use 2FA", "Of them, not registered yet"]
    )
    expect(coverage.get_by_role("definition")).to_have_text(["1", "1"])
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)


def register(page: Page, screenshot: Path | None = None) -> tuple[str, int]:
    """Scan the QR code as a phone would: from the pixels on the screen."""
    expect(page.get_by_role("heading", name="Register for 2FA")).to_be_visible()
    for step in ("Open your authenticator app.", "Tap the plus icon.", "Scan the QR code."):
        expect(page.get_by_text(step, exact=True)).to_be_visible()
    qr = page.get_by_role("img", name="QR code")
    expect(qr).to_be_visible()
    image = Image.open(io.BytesIO(qr.screenshot()))
    symbols = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(symbols) == 1
    uri = symbols[0].text
    assert uri.startswith("otpauth://totp/BizzStream%20Aero:")
    secret = secret_of(uri)
    shown = page.get_by_label("Secret key").input_value()
    assert shown.replace(" ", "") == secret
    assert all(len(block) <= 4 for block in shown.split(" "))
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    code, step = code_after(secret, None)
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Verify").click()
    return secret, step


def keep_recovery_codes(page: Page, javascript: bool = True) -> list[str]:
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    codes = [c.strip() for c in page.locator("ol.codes code").all_inner_texts()]
    assert len(codes) == 10 and all(re.fullmatch(r"[0-9a-f]{4}(-[0-9a-f]{4}){3}", c) for c in codes)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    text = Path(download.value.path()).read_text()
    assert all(code in text for code in codes)
    assert download.value.suggested_filename.endswith(".txt")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text(re.compile(r"^Logged in as "))).to_be_visible()
    return codes


# ----- the story -----


def run_story(server: Server, context: BrowserContext, screenshots: bool) -> None:
    # The screenshots show "acme", as the README's walkthrough does.
    env = server.new_environment("story", slug="acme" if screenshots else None)
    origins: set[str] = set()
    context.on("request", lambda request: origins.add(_origin(request.url)))
    page = context.new_page()

    # The admin requires 2FA for finance in Environment settings.
    log_in(page, env, ADMIN, ADMIN_PASSWORD)
    expect(page.get_by_text(f"Logged in as {ADMIN}", exact=True)).to_be_visible()
    create_user(page, env, "bob", BOB_PASSWORD, "finance")
    create_user(page, env, "carol", CAROL_PASSWORD, "sales")
    require_2fa_for(
        page, env, "finance", DOCS / "ui-environment-settings.png" if screenshots else None
    )
    log_out(page)

    # Bob logs in: he must register. QR code, code, recovery codes.
    log_in(page, env, "bob", BOB_PASSWORD)
    secret, step = register(page, DOCS / "ui-register.png" if screenshots else None)
    codes = keep_recovery_codes(page)
    expect(page.get_by_text("Logged in as bob", exact=True)).to_be_visible()
    log_out(page)

    # The next login asks for the code; a wrong code is announced.
    log_in(page, env, "bob", BOB_PASSWORD)
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    code = page.get_by_label("Code", exact=True)
    expect(code).to_have_attribute("inputmode", "numeric")
    expect(code).to_have_attribute("autocomplete", "one-time-code")
    wrong = pyotp.TOTP(secret).at((step - 10) * 30)
    code.fill(wrong)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid code")
    right, step = code_after(secret, step)
    page.get_by_label("Code", exact=True).fill(right)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("Logged in as bob", exact=True)).to_be_visible()
    log_out(page)

    # A recovery code works once instead of the app.
    log_in(page, env, "bob", BOB_PASSWORD)
    page.get_by_role("link", name="Use a recovery code").click()
    page.get_by_label("Recovery code").fill(codes[0].upper())
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("Logged in as bob", exact=True)).to_be_visible()
    log_out(page)

    # Carol (sales) needs only her password.
    log_in(page, env, "carol", CAROL_PASSWORD)
    expect(page.get_by_text("Logged in as carol", exact=True)).to_be_visible()
    log_out(page)

    # The admin resets bob, with a reason.
    log_in(page, env, ADMIN, ADMIN_PASSWORD)
    page.get_by_role("link", name="Users").click()
    page.get_by_label("Show").select_option(label="2FA registered")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("link", name="carol")).to_have_count(0)
    page.get_by_role("link", name="bob", exact=True).click()
    expect(page.get_by_text("Registered: the user has an authenticator app.")).to_be_visible()
    expect(
        page.get_by_text("Required: the environment requires 2FA of the group finance.")
    ).to_be_visible()
    page.get_by_label("Reason").fill("lost phone, ticket 4711")
    page.get_by_role("button", name="Reset 2FA").click()
    expect(page.get_by_text("Not registered: the user has no authenticator app.")).to_be_visible()
    history = page.get_by_role("table", name=re.compile("^History of bob"))
    expect(history.get_by_role("row").nth(1)).to_contain_text("two_factor_reset")
    log_out(page)

    # His next login registers again.
    log_in(page, env, "bob", BOB_PASSWORD)
    new_secret, _step = register(page)
    assert new_secret != secret
    keep_recovery_codes(page)
    log_out(page)

    # The auditor filters the audit log and exports CSV.
    log_in(page, env, ADMIN, ADMIN_PASSWORD)
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Type").select_option("two_factor_reset")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(2)  # the header and the one reset
    expect(rows.nth(1)).to_contain_text("two_factor_reset")
    expect(rows.nth(1)).to_contain_text(ADMIN)
    expect(rows.nth(1)).to_contain_text("127.0.0.1")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [row["type"] for row in exported] == ["two_factor_reset"]
    assert exported[0]["username"] == "bob" and exported[0]["actor"] == ADMIN
    assert exported[0]["user_agent"] == USER_AGENT
    with page.expect_download() as download:
        page.get_by_role("link", name="Export JSON lines").click()
    [line] = Path(download.value.path()).read_text().splitlines()
    assert json.loads(line)["type"] == "two_factor_reset"

    # Nothing came from another origin.
    assert origins == {server.base_url}


def _origin(url: str) -> str:
    match = re.match(r"^[a-z]+://[^/]+", url)
    return match.group(0) if match else url


def test_the_seed_story_in_the_browser(server: Server, new_context: NewContext) -> None:
    run_story(server, new_context(), screenshots=server.kind == "sqlite")


def test_the_seed_story_without_javascript(server: Server, new_context: NewContext) -> None:
    run_story(server, new_context(java_script_enabled=False), screenshots=False)


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
    _api_policy(server, env, require=True)
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


def _axe(page: Page) -> None:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})"
    )
    violations = [
        (v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in result["violations"]
    ]
    assert violations == [], f"{page.url}: {violations}"


def test_axe_finds_no_violation_on_any_page(server: Server, new_context: NewContext) -> None:
    env = server.new_environment("axe")
    _api_user(server, env, "bob", BOB_PASSWORD, ["finance"])
    # axe is injected as a script of the test's own: the page's CSP would refuse it.
    page = new_context(bypass_csp=True).new_page()
    page.goto("/ui/")
    _axe(page)
    page.goto(f"/ui/{env}/login")
    _axe(page)
    log_in(page, env, ADMIN, "a wrong password")
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password")
    _axe(page)
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
        _axe(page)
    page.goto(f"/ui/{env}/investigate")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("At").fill(_server_now(server))
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("Not required to use 2FA.")).to_be_visible()
    _axe(page)
    page.goto(f"/ui/{env}/setup/environment")
    require_2fa_for(page, env, "finance")
    _axe(page)
    log_out(page)
    _axe(page)
    log_in(page, env, "bob", BOB_PASSWORD)
    _axe(page)  # Register for 2FA
    register(page)
    _axe(page)  # Recovery codes
    page.get_by_role("button", name="Continue").click()
    log_out(page)
    log_in(page, env, "bob", BOB_PASSWORD)
    page.get_by_label("Code", exact=True).fill("12345")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid code")
    _axe(page)  # 2FA, with its alert
    page.get_by_role("link", name="Use a recovery code").click()
    _axe(page)
    # The 403 page of a user without the role.
    page2 = new_context(bypass_csp=True).new_page()
    _api_user(server, env, "dave", "dave drives trucks", [])
    log_in(page2, env, "dave", "dave drives trucks")
    page2.goto(f"/ui/{env}/audit")
    _axe(page2)


def _server_now(server: Server) -> str:
    from datetime import UTC, datetime

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
    assert _api_get(server, env, "policy") == {"require_2fa": False, "groups": []}
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
    _api_user(server, env, "carol", CAROL_PASSWORD, ["sales"])
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
    _api_user(server, env, "bob", BOB_PASSWORD, ["finance"])
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
    _api_reset(server, env, "bob")
    page.goto(f"/ui/{env}/account")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Your session has ended")

    # Changing one's password ends the session too, and says so.
    log_in(page, env, "bob", BOB_PASSWORD)
    page.get_by_role("link", name="Account").click()
    page.get_by_label("Current password").fill(BOB_PASSWORD)
    page.get_by_label("New password").fill("bob still likes spreadsheets")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Password changed")).to_be_visible()
    page.goto(f"/ui/{env}/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    log_in(page, env, "bob", "bob still likes spreadsheets")
    expect(page.get_by_text("Logged in as bob", exact=True)).to_be_visible()


def test_the_code_step_locks_and_says_how_long_to_wait(
    server: Server, new_context: NewContext
) -> None:
    env = server.new_environment("lock")
    _api_user(server, env, "bob", BOB_PASSWORD, ["finance"])
    _api_policy(server, env, require=True)
    secret = _api_enrol(server, env, "bob", BOB_PASSWORD)
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


# ----- the API, for set-up and checks -----


def _api_enrol(server: Server, env: str, username: str, password: str) -> str:
    base = f"{server.base_url}/v1/environments/{env}/login"
    step = httpx.post(base, json={"username": username, "password": password}, timeout=30)
    assert step.json()["status"] == "two_factor_registration_required", step.text
    token = {"Authorization": f"Bearer {step.json()['login_token']}"}
    secret = httpx.post(f"{base}/two-factor/registration", headers=token, timeout=30).json()[
        "secret"
    ]
    confirmed = httpx.post(
        f"{base}/two-factor/registration/confirm",
        headers=token,
        json={"code": pyotp.TOTP(secret).now()},
        timeout=30,
    )
    assert confirmed.status_code == 200, confirmed.text
    return str(secret)


def _admin_token(server: Server, env: str) -> dict[str, str]:
    login = httpx.post(
        f"{server.base_url}/v1/environments/{env}/login",
        json={"username": ADMIN, "password": ADMIN_PASSWORD},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _api_user(server: Server, env: str, username: str, password: str, groups: list[str]) -> None:
    created = httpx.post(
        f"{server.base_url}/v1/environments/{env}/users",
        headers=_admin_token(server, env),
        json={"username": username, "password": password, "groups": groups, "roles": []},
        timeout=30,
    )
    assert created.status_code == 201, created.text


def _api_policy(server: Server, env: str, require: bool) -> None:
    answer = httpx.put(
        f"{server.base_url}/v1/environments/{env}/policy",
        headers=_admin_token(server, env),
        json={"require_2fa": require, "groups": []},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def _api_reset(server: Server, env: str, username: str) -> None:
    answer = httpx.post(
        f"{server.base_url}/v1/environments/{env}/users/{username}/two-factor/reset",
        headers=_admin_token(server, env),
        json={"reason": "test"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def _api_get(server: Server, env: str, path: str) -> object:
    answer = httpx.get(
        f"{server.base_url}/v1/environments/{env}/{path}",
        headers=_admin_token(server, env),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()
