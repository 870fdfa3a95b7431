"""`/v1/providers`: what is answered before anything is stored (no stack: the tenant and the
runtime are stand-ins, and none of these requests reaches MongoDB)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ingress.app import create_app
from ingress.auth import authenticate
from ingress.routes.providers import base_url_problem
from ingress.runtime import get_runtime
from ingress.settings import IngressSettings
from storage.providers import ProviderCredentials
from storage.settings import provider_fernet

KEY = "sk-unit-" + "k" * 30


class Unreachable:
    """A database no request of these tests may touch."""

    def __getitem__(self, name: str) -> Any:
        return self

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the request reached MongoDB ({name})")


def _app(keys: str | None) -> FastAPI:
    settings = IngressSettings()
    app = create_app(settings)
    providers = ProviderCredentials(cast(Any, Unreachable()), provider_fernet(keys))
    runtime = SimpleNamespace(settings=settings, providers=providers)

    async def tenant() -> str:
        return "t1"

    async def the_runtime() -> Any:
        return runtime

    app.dependency_overrides[authenticate] = tenant
    app.dependency_overrides[get_runtime] = the_runtime
    return app


def test_without_keys_a_put_is_503_and_the_list_is_empty() -> None:
    client = TestClient(_app(None))
    put = client.put("/v1/providers/openai", json={"apiKey": KEY})
    assert put.status_code == 503
    assert put.headers["content-type"] == "application/problem+json"
    assert put.json()["detail"] == (
        "per-tenant provider credentials are disabled: set PROVIDER_CREDENTIALS_KEYS"
    )
    assert int(put.headers["Retry-After"]) > 0
    assert client.get("/v1/providers").json() == {"items": []}
    assert client.get("/v1/providers/openai").status_code == 404


def test_unknown_names_are_404_and_offline_is_422() -> None:
    client = TestClient(_app(Fernet.generate_key().decode()))
    assert client.put("/v1/providers/dalle", json={"apiKey": KEY}).status_code == 404
    assert client.get("/v1/providers/dalle").status_code == 404
    assert client.delete("/v1/providers/dalle").status_code == 404
    offline = client.put("/v1/providers/offline", json={})
    assert offline.status_code == 422
    assert offline.json()["type"].endswith("/provider-needs-no-credentials")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"apiKey": KEY + " "}, "/apiKey"),
        ({"apiKey": KEY * 40}, "/apiKey"),
        ({"apiKey": [KEY]}, "/apiKey"),
        ({"apiKey": KEY, "secret": KEY}, "/secret"),
        ({"api_key": KEY}, "/api_key"),
        ({"apiKey": KEY, "model": KEY + "\t"}, "/model"),
        ({"apiKey": KEY, "baseUrl": f"https://u:{KEY}@h"}, "/baseUrl"),
        ({"model": KEY}, "/apiKey"),
    ],
)
def test_a_refused_body_names_the_path_and_never_echoes_a_value(
    body: dict[str, Any], path: str
) -> None:
    client = TestClient(_app(Fernet.generate_key().decode()))
    r = client.put("/v1/providers/openai", json=body)
    assert r.status_code == 422, r.text
    assert KEY not in r.text
    errors = r.json()["errors"]
    assert path in [e["path"] for e in errors]
    assert all(set(e) == {"path", "message"} for e in errors)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8188", "https://api.openai.com/v1", "http://[::1]:8080/x?y=1"],
)
def test_good_base_urls(url: str) -> None:
    assert base_url_problem(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h",
        "h/v1",
        "//h/v1",
        "https://user@h",
        "https://u:p@h",
        "http://h:0",
        "http://h:65536",
        "http://h:x",
        "http://[::1",
        "http:///x",
        "http://h /x",
        "http://h/\u00e9",
    ],
)
def test_bad_base_urls(url: str) -> None:
    why = base_url_problem(url)
    assert why is not None
    assert url not in why
