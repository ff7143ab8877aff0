"""The steps the browser tests repeat, and the product page's story told with them."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pyotp
import zxingcpp
from PIL import Image
from playwright.sync_api import BrowserContext, Page, expect

from tests.web.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    DOCS,
    USER_AGENT,
    Server,
    code_after,
    log_in,
    log_out,
    secret_of,
)

BOB_PASSWORD = "he likes spreadsheets"
CAROL_PASSWORD = "she sells widgets"
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


# ----- the API, for set-up and checks -----


def api_enrol(server: Server, env: str, username: str, password: str) -> str:
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


def admin_token(server: Server, env: str) -> dict[str, str]:
    login = httpx.post(
        f"{server.base_url}/v1/environments/{env}/login",
        json={"username": ADMIN, "password": ADMIN_PASSWORD},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def api_user(server: Server, env: str, username: str, password: str, groups: list[str]) -> None:
    created = httpx.post(
        f"{server.base_url}/v1/environments/{env}/users",
        headers=admin_token(server, env),
        json={"username": username, "password": password, "groups": groups, "roles": []},
        timeout=30,
    )
    assert created.status_code == 201, created.text


def api_policy(server: Server, env: str, require: bool) -> None:
    answer = httpx.put(
        f"{server.base_url}/v1/environments/{env}/policy",
        headers=admin_token(server, env),
        json={"require_2fa": require, "groups": []},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def api_reset(server: Server, env: str, username: str) -> None:
    answer = httpx.post(
        f"{server.base_url}/v1/environments/{env}/users/{username}/two-factor/reset",
        headers=admin_token(server, env),
        json={"reason": "test"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def api_get(server: Server, env: str, path: str) -> object:
    answer = httpx.get(
        f"{server.base_url}/v1/environments/{env}/{path}",
        headers=admin_token(server, env),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()
