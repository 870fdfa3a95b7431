"""A tenant's own model-provider credentials over the API: stored encrypted, shown without the
key, per tenant; and no answer, log line or stored document ever holding the key."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def _api_key() -> str:
    """A key unlike anything else in the logs, so finding it anywhere means it leaked."""
    return "sk-e2e-" + secrets.token_urlsafe(24)


def _tenant(system: Any, scopes: list[str] | None = None) -> httpx.Client:
    """A client with the key of a new tenant of its own (over the admin API)."""
    body: dict[str, Any] = {"tenantId": f"providers-{secrets.token_hex(4)}", "name": "test"}
    if scopes is not None:
        body["scopes"] = scopes
    with system.client(key=system.env["ADMIN_API_KEY"], timeout=30) as admin:
        created = admin.post("/v1/admin/keys", json=body)
    assert created.status_code == 201, created.text
    client: httpx.Client = system.client(created.json()["key"], timeout=30)
    return client


def _ingress_log(system: Any) -> str:
    return str((system.logs / "ingress.log").read_text(errors="replace"))


def _stored(system: Any, name: str) -> list[dict[str, Any]]:
    """Every stored credentials document of provider `name` (whatever its tenant)."""
    with MongoClient(system.env["MONGODB_URL"], serverSelectionTimeoutMS=5000) as client:
        docs = client[system.env["MONGODB_DATABASE"]].provider_credentials.find({"name": name})
        return list(docs)


def test_a_put_answers_the_view_and_nothing_ever_holds_the_key(system: Any) -> None:
    key = _api_key()
    with _tenant(system) as c:
        put = c.put("/v1/providers/openai", json={"apiKey": key, "model": "gpt-image-1"})
        assert put.status_code == 200, put.text
        view = put.json()
        assert view["name"] == "openai"
        assert view["apiKeySet"] is True
        assert view["apiKeyLast4"] == key[-4:]
        assert view["baseUrl"] is None
        assert view["model"] == "gpt-image-1"
        assert view["updatedAt"]
        assert set(view) == {"name", "apiKeySet", "apiKeyLast4", "baseUrl", "model", "updatedAt"}

        got = c.get("/v1/providers/openai")
        listed = c.get("/v1/providers")
    assert got.status_code == 200, got.text
    assert got.json() == view
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"items": [view]}
    for answer in (put, got, listed):
        assert key not in answer.text

    # Stored as ciphertext only (the last four characters are what the view shows).
    [doc] = [d for d in _stored(system, "openai") if d.get("apiKeyLast4") == key[-4:]]
    assert key not in repr(doc)
    assert key[:-4] not in repr(doc)
    assert doc["apiKeyCiphertext"]
    assert key not in _ingress_log(system)


def test_a_put_replaces_and_comfyui_takes_a_base_url_and_an_optional_key(system: Any) -> None:
    with _tenant(system) as c:
        bare = c.put("/v1/providers/comfyui", json={"baseUrl": "http://127.0.0.1:28188"})
        assert bare.status_code == 200, bare.text
        assert bare.json()["apiKeySet"] is False
        assert bare.json()["apiKeyLast4"] is None

        key = _api_key()
        proxied = c.put(
            "/v1/providers/comfyui",
            json={"baseUrl": "https://comfy.example.com/api", "apiKey": key, "model": "sdxl"},
        )
        assert proxied.status_code == 200, proxied.text
        view = proxied.json()
        assert (view["baseUrl"], view["apiKeySet"], view["model"]) == (
            "https://comfy.example.com/api",
            True,
            "sdxl",
        )
        assert key not in proxied.text
        listed = c.get("/v1/providers").json()["items"]
        assert [v["name"] for v in listed] == ["comfyui"]
        assert listed[0] == view


def test_delete_is_idempotent(system: Any) -> None:
    with _tenant(system) as c:
        assert c.put("/v1/providers/fal", json={"apiKey": _api_key()}).status_code == 200
        assert c.delete("/v1/providers/fal").status_code == 204
        assert c.delete("/v1/providers/fal").status_code == 204
        gone = c.get("/v1/providers/fal")
        assert gone.status_code == 404
        assert gone.headers["content-type"] == PROBLEM
        assert c.get("/v1/providers").json() == {"items": []}


def test_another_tenant_neither_sees_nor_deletes_them(system: Any) -> None:
    key = _api_key()
    with _tenant(system) as owner, _tenant(system) as other:
        assert owner.put("/v1/providers/replicate", json={"apiKey": key}).status_code == 200
        assert other.get("/v1/providers").json() == {"items": []}
        assert other.get("/v1/providers/replicate").status_code == 404
        assert other.delete("/v1/providers/replicate").status_code == 204
        mine = owner.get("/v1/providers/replicate")
        assert mine.status_code == 200, mine.text
        assert mine.json()["apiKeyLast4"] == key[-4:]


def test_unknown_providers_are_404_and_offline_needs_no_credentials(system: Any) -> None:
    with _tenant(system) as c:
        for method in ("PUT", "GET", "DELETE"):
            body = {"apiKey": _api_key()} if method == "PUT" else None
            unknown = c.request(method, "/v1/providers/midjourney", json=body)
            assert unknown.status_code == 404, (method, unknown.text)
            assert unknown.headers["content-type"] == PROBLEM
            assert "openai, replicate, fal, comfyui" in unknown.json()["detail"]
        offline = c.put("/v1/providers/offline", json={"apiKey": _api_key()})
    assert offline.status_code == 422, offline.text
    assert offline.headers["content-type"] == PROBLEM
    assert offline.json()["detail"] == "the offline provider needs no credentials"


def test_a_missing_api_key_names_the_field_and_no_answer_echoes_a_value(system: Any) -> None:
    key = _api_key()
    with _tenant(system) as c:
        missing = c.put("/v1/providers/openai", json={"model": key})
        assert missing.status_code == 422, missing.text
        problem = missing.json()
        assert problem["errors"] == [{"path": "/apiKey", "message": "openai needs apiKey"}]
        no_url = c.put("/v1/providers/comfyui", json={"apiKey": key})
        assert no_url.status_code == 422, no_url.text
        assert no_url.json()["errors"] == [{"path": "/baseUrl", "message": "comfyui needs baseUrl"}]
        # Bodies pydantic refuses: its errors carry the input, the problem must not.
        refused = {
            "a space in the key": {"apiKey": key + " x"},
            "a key too long": {"apiKey": key * 40},
            "a key that is no string": {"apiKey": [key]},
            "an unknown field": {"apiKey": key, "apiSecret": key},
            "a model with a control character": {"apiKey": key, "model": key + "\n"},
        }
        answers = {why: c.put("/v1/providers/fal", json=body) for why, body in refused.items()}
        assert c.get("/v1/providers").json() == {"items": []}
    for why, answer in answers.items():
        assert answer.status_code == 422, (why, answer.text)
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["errors"], why
        assert key not in answer.text, why
        assert "input" not in answer.json()["errors"][0], why
    assert answers["an unknown field"].json()["errors"][0]["path"] == "/apiSecret"
    assert answers["a key too long"].json()["errors"][0]["path"] == "/apiKey"
    assert key not in _ingress_log(system)


def test_bad_base_urls_are_422_without_repeating_them(system: Any) -> None:
    password = "pw-" + secrets.token_hex(12)
    bad = [
        "ftp://models.example.com",
        "/v1/relative",
        "models.example.com",
        f"https://user:{password}@models.example.com",
        "http://models.example.com:99999",
        "http://models example.com",
        "http:///no-host",
    ]
    with _tenant(system) as c:
        for url in bad:
            r = c.put("/v1/providers/openai", json={"apiKey": _api_key(), "baseUrl": url})
            assert r.status_code == 422, (url, r.text)
            assert r.json()["errors"][0]["path"] == "/baseUrl", url
            assert url not in r.text
        assert c.get("/v1/providers").json() == {"items": []}
    assert password not in _ingress_log(system)


def test_provider_credentials_need_the_workflows_write_scope(system: Any) -> None:
    with _tenant(system, scopes=["runs:write", "runs:read"]) as c:
        put = c.put("/v1/providers/openai", json={"apiKey": _api_key()})
        listed = c.get("/v1/providers")
    assert put.status_code == 403, put.text
    assert "workflows:write" in put.json()["detail"]
    assert listed.status_code == 403, listed.text
