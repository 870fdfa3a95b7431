"""The console and the API reference are served from the project's own files: every script,
stylesheet and module they name is answered by this app (no stack, no browser needed; the
browser tests are tests/e2e/test_console.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from ingress.app import create_app
from ingress.settings import IngressSettings
from ingress.webui import CONSOLE_DIR


@pytest.fixture(scope="module")
def client() -> TestClient:
    # Static routes need no dependency: no lifespan, so no stack.
    return TestClient(create_app(IngressSettings()))


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.import_map = ""
        self._in_map = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in ("src", "href"):
            if a.get(name) and tag in ("script", "link"):
                self.urls.append(str(a[name]))
        self._in_map = tag == "script" and a.get("type") == "importmap"

    def handle_data(self, data: str) -> None:
        if self._in_map:
            self.import_map += data


def _assets(html: str) -> _Assets:
    parser = _Assets()
    parser.feed(html)
    return parser


def test_the_console_page_and_every_asset_it_names_are_served_locally(
    client: TestClient,
) -> None:
    r = client.get("/console", follow_redirects=True)
    assert r.status_code == 200
    assert str(r.url).endswith("/console/")
    page = _assets(r.text)
    mapped = re.findall(r'"(\./[^"]+)"', page.import_map)
    assert mapped, "the import map names the vendored modules"
    for url in [*page.urls, *mapped]:
        assert not url.startswith(("http:", "https:", "//")), url
        asset = client.get(f"/console/{url.removeprefix('./')}")
        assert asset.status_code == 200, url
        if url.endswith(".js"):
            # Module scripts are refused under any other type.
            assert asset.headers["content-type"].startswith("text/javascript"), url


def test_every_module_import_of_the_console_is_a_shipped_file() -> None:
    bare = {"preact", "preact/hooks", "htm"}  # the import map's names
    for module in (CONSOLE_DIR / "js").glob("*.js"):
        for target in re.findall(r'^import .*? from "([^"]+)";', module.read_text(), re.M):
            if target in bare:
                continue
            assert (module.parent / target).resolve().is_file(), f"{module.name}: {target}"


def test_each_vendored_library_ships_with_its_license() -> None:
    vendor = CONSOLE_DIR / "vendor"
    libraries = [d for d in vendor.iterdir() if d.is_dir()]
    assert {d.name for d in libraries} == {"preact", "htm"}
    for library in libraries:
        assert (library / "LICENSE").read_text().strip(), library.name


def test_the_api_reference_loads_swagger_ui_from_this_server(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    page = _assets(r.text)
    assert page.urls, "the page names its script and stylesheet"
    for url in page.urls:
        assert url.startswith("/docs/assets/"), url
        assert client.get(url).status_code == 200, url
    assert "cdn" not in r.text.lower()
    assert '"validatorUrl": null' in r.text
