"""The API pages work without internet (every file they load comes from the service), and
docs/api.md names every endpoint the service serves."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from tests.conftest import DatabaseUnderTest
from tests.http.conftest import Api

BASE = "http://testserver"
# Any absolute URL written in the page: in an attribute or inside an inline script.
ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


@pytest.fixture
def database(sqlite_database: DatabaseUnderTest) -> DatabaseUnderTest:
    return sqlite_database


class References(HTMLParser):
    """Every URL a browser would fetch to render the page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {"script": "src", "img": "src", "link": "href"}
        for name, value in attrs:
            if tag in names and name == names[tag] and value:
                self.urls.append(value)


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_pages_load_every_file_from_the_service_itself(api: Api, page: str) -> None:
    response = api.client.get(page)
    assert response.status_code == 200
    html = response.text
    urls = references(html)
    assert len(urls) >= 2, urls  # the script and the icon at least
    assert any(url.endswith(".js") for url in urls), urls

    for match in ABSOLUTE_URL.finditer(html):
        assert urlparse(urljoin(BASE, match.group())).netloc == "testserver", match.group()
    for url in urls:
        target = urlparse(urljoin(BASE + page, url))
        assert target.netloc == "testserver", url
        asset = api.client.get(target.path)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url


def test_swagger_ui_reads_the_services_own_openapi_document(api: Api) -> None:
    html = api.client.get("/docs").text

    assert "url: '/openapi.json'" in html
    assert "SwaggerUIBundle" in api.client.get("/docs-assets/swagger-ui-bundle.js").text
    assert api.client.get("/openapi.json").json()["info"]["title"] == "aero-auth"


def test_the_api_guide_names_every_endpoint_the_service_serves(api: Api) -> None:
    guide = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    paths = api.client.get("/openapi.json").json()["paths"]
    endpoints = [
        f"{method.upper()} {path}" for path, methods in paths.items() for method in methods
    ]

    assert len(endpoints) >= 20
    missing = [endpoint for endpoint in endpoints if f"`{endpoint}" not in guide]
    assert not missing, f"docs/api.md does not describe {missing}"
