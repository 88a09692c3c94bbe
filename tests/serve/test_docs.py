"""GET /docs works offline: Swagger UI comes from the package, not from a CDN.

The static check parses the page, requires every script, stylesheet and icon to be a path
on this server, and fetches each one. The browser check (skipped, with the reason, where
playwright or a Chromium is missing: `pip install playwright` and Debian's `chromium`
package) renders the page in headless Chromium with every request to another host
blocked and recorded, and waits for the /predict operation to appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from serving import Server, running

from toolkit.serve import docs

BROWSER_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def server(seed_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(seed_onnx, tmp_path_factory.mktemp("docs")) as server:
        yield server


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def test_docs_reference_no_other_host_and_every_asset_is_served(server):
    with server.client() as client:
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "://" not in page.text, "the page names an absolute URL"
        parser = _Links()
        parser.feed(page.text)
        openapi = re.search(r"url: '([^']+)'", page.text)
        assert openapi and openapi.group(1) == "/openapi.json"
        links = [*parser.links, openapi.group(1)]
        assert {urlsplit(link).path for link in parser.links} == {
            f"{docs.ASSETS}/swagger-ui.css",
            f"{docs.ASSETS}/swagger-ui-bundle.js",
            f"{docs.ASSETS}/favicon-32x32.png",
        }
        types = {".css": "text/css", ".js": "javascript", ".png": "image/png", ".json": "json"}
        for link in links:
            assert not urlsplit(link).netloc and link.startswith("/"), link
            asset = client.get(link)
            assert asset.status_code == 200, link
            assert types[Path(link).suffix] in asset.headers["content-type"], link
            if link.startswith(docs.ASSETS):
                local = docs.SWAGGER_UI / Path(link).name
                assert asset.content == local.read_bytes()
        assert "redoc" not in client.get("/openapi.json").text.lower()
        assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def test_the_swagger_ui_files_ship_with_their_license():
    names = {path.name for path in docs.SWAGGER_UI.iterdir()}
    assert {"LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"} <= names
    assert "Apache License" in (docs.SWAGGER_UI / "LICENSE").read_text()
    bundle = (docs.SWAGGER_UI / "swagger-ui-bundle.js").read_text()
    assert f'"{docs.SWAGGER_UI_VERSION}"' in bundle  # the version the module names


def test_docs_render_in_a_browser_with_no_request_leaving_the_server(server, chromium):
    executable = chromium
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    local = f"127.0.0.1:{server.port}"

    def route(route_: object) -> None:
        url = route_.request.url  # type: ignore[attr-defined]
        if urlsplit(url).netloc == local or url.startswith("data:"):
            route_.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(url)
            route_.abort()  # type: ignore[attr-defined]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.route("**/*", route)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url + "/docs", wait_until="networkidle", timeout=BROWSER_TIMEOUT_MS)
            operation = page.locator("#operations-default-predict_predict_post")
            operation.wait_for(timeout=BROWSER_TIMEOUT_MS)
            assert "/predict" in operation.inner_text()
            assert (
                page.locator(".swagger-ui .info .title")
                .inner_text()
                .startswith("toolkit prediction service")
            )
        finally:
            browser.close()
    assert outside == [], f"requests left the server: {outside}"
    assert errors == []
