"""Browser fixtures: one ``aero-auth serve`` per store per module, one Chromium for all.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright for Python;
axe-core comes from npm (``tests/web/package.json``, ``npm ci`` in this folder).
Each test works in an environment of its own on the shared server, so tests do
not see each other's users or policy.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.conftest import DatabaseUnderTest, _create_pg_database, _drop_pg_database

CHROMIUM = Path(os.environ.get("AERO_TEST_CHROMIUM", "/usr/bin/chromium"))
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
DOCS = Path(__file__).resolve().parents[2] / "docs"
ADMIN = "alice"
ADMIN_PASSWORD = "correct horse battery"
USER_AGENT = "aero-browser-tests/1.0"
# Generous: CI runs this beside the rest of the suite on two cores.
expect.set_options(timeout=15_000)


@dataclass
class Server:
    kind: str
    base_url: str
    data_dir: Path
    log: Path

    @property
    def operator_token(self) -> str:
        return (self.data_dir / "operator.token").read_text().strip()

    def new_environment(self, prefix: str = "env", slug: str | None = None) -> str:
        """A fresh environment with alice (admin, auditor) as its first user."""
        slug = slug or f"{prefix}-{uuid.uuid4().hex[:8]}"
        response = httpx.post(
            f"{self.base_url}/v1/environments",
            headers={"Authorization": f"Bearer {self.operator_token}"},
            json={
                "slug": slug,
                "display_name": "Acme Corporation",
                "issuer": "BizzStream Aero",
                "admin": {"username": ADMIN, "password": ADMIN_PASSWORD},
            },
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return slug


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(kind: str, tmp: Path) -> Iterator[Server]:
    """``aero-auth serve`` over a fresh store of ``kind``; 127.0.0.1 is a trusted proxy,
    so a test can say X-Forwarded-Proto: https as a TLS-terminating proxy would."""
    pg_name = None
    if kind == "sqlite":
        path = tmp / "store" / "aero.db"
        database = DatabaseUnderTest("sqlite", f"sqlite:///{path}", sqlite_path=path)
    else:
        pg_name = _create_pg_database()
        database = DatabaseUnderTest(
            "postgres", f"postgresql://postgres@127.0.0.1:5432/{pg_name}", pg_dbname=pg_name
        )
    port = _free_port()
    data_dir = tmp / "data"
    log = tmp / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AERO_")}
    env.update(
        {
            "AERO_DATABASE_URL": database.url,
            "AERO_DATA_DIR": str(data_dir),
            "AERO_TRUSTED_PROXIES": '["127.0.0.1"]',
        }
    )
    command = [str(Path(sys.executable).parent / "aero-auth"), "serve", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield Server(kind, base_url, data_dir, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if pg_name is not None:
            _drop_pg_database(pg_name)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per store per module."""
    with serving(request.param, tmp_path_factory.mktemp(f"web-{request.param}")) as running:
        yield running


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    yield browser
    browser.close()


@pytest.fixture
def new_context(browser: Browser, server: Server) -> Iterator[Callable[..., BrowserContext]]:
    """Contexts (cookie jars) for the test, all closed at its end."""
    contexts: list[BrowserContext] = []

    def make(**options: object) -> BrowserContext:
        context = browser.new_context(
            base_url=server.base_url,
            user_agent=USER_AGENT,
            accept_downloads=True,
            locale="en-GB",
            timezone_id="UTC",
            **options,  # type: ignore[arg-type]
        )
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


# ----- steps a story repeats -----


def log_in(page: Page, env: str, username: str, password: str) -> None:
    page.goto(f"/ui/{env}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()


def axe(page: Page) -> None:
    """axe-core finds no violation of WCAG 2.2 AA (and best practice) on the page. It is
    injected as the test's own script: use a context with ``bypass_csp=True``."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})"
    )
    violations = [
        (v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in result["violations"]
    ]
    assert violations == [], f"{page.url}: {violations}"


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def code_after(secret: str, last: int | None) -> tuple[str, int]:
    """The code of the earliest time step after ``last`` that the server accepts now
    (the current step or the next: its window is one step either side), so that a
    second login within the same 30 s is not refused as a replay."""
    totp = pyotp.TOTP(secret)
    now_step = int(time.time()) // 30
    step = now_step if last is None or last < now_step else last + 1
    assert step <= now_step + 1, "no fresh code within the window yet"
    return totp.at(step * 30), step


def secret_of(uri: str) -> str:
    match = re.search(r"[?&]secret=([A-Z2-7]+)", uri)
    assert match, uri
    return match.group(1)
