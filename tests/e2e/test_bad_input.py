"""A caller's mistake gets a problem+json 4xx a person can act on, and nothing is stored."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

SCHEMA = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "maxLength": 20},
        "options": {"type": "object", "properties": {"quality": {"enum": ["draft", "high"]}}},
    },
}
DEFINITION = {
    "name": "strict",
    "inputSchema": SCHEMA,
    "nodes": [
        {"id": "say", "type": "text.template", "params": {"template": "{{ inputs.prompt }}"}}
    ],
    "outputs": {"text": "{{ nodes.say.text }}"},
}


@pytest.fixture(scope="module")
def workflow_id(system: Any) -> str:
    workflow_id = f"strict-{secrets.token_hex(4)}"
    with system.client() as c:
        assert c.put(f"/v1/workflows/{workflow_id}", json=DEFINITION).status_code == 201
    return workflow_id


def _assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def _run_count(system: Any, workflow_id: str) -> int:
    with system.client() as c:
        return len(
            c.get("/v1/runs", params={"workflowId": workflow_id, "limit": 100}).json()["items"]
        )


def test_malformed_json_is_a_400_naming_where_it_broke(system: Any, workflow_id: str) -> None:
    with system.client() as c:
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            content=b'{"inputs": {"prompt": ',
            headers={"Content-Type": "application/json"},
        )
    assert "not valid JSON" in _assert_problem(r, 400)["detail"]
    assert _run_count(system, workflow_id) == 0


def test_a_body_over_the_limit_is_a_413(system: Any, workflow_id: str) -> None:
    with system.client() as c:
        r = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"prompt": "x" * 100_000}})
    _assert_problem(r, 413)
    assert _run_count(system, workflow_id) == 0


def test_inputs_failing_the_schema_are_a_422_listing_every_path(
    system: Any, workflow_id: str
) -> None:
    with system.client() as c:
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={
                "inputs": {"prompt": "far too long for the schema", "options": {"quality": "ultra"}}
            },
        )
    paths = {e["path"] for e in _assert_problem(r, 422)["errors"]}
    assert paths == {"/inputs/prompt", "/inputs/options/quality"}
    with system.client() as c:
        r = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {}})
    assert {e["path"] for e in _assert_problem(r, 422)["errors"]} == {"/inputs/prompt"}
    assert _run_count(system, workflow_id) == 0


def test_an_unknown_field_in_the_request_is_a_422(system: Any, workflow_id: str) -> None:
    with system.client() as c:
        r = c.post(f"/v1/workflows/{workflow_id}/run", json={"input": {"prompt": "hi"}})
    assert "/input" in {e["path"] for e in _assert_problem(r, 422)["errors"]}


def test_an_unknown_workflow_or_version_is_a_404(system: Any, workflow_id: str) -> None:
    with system.client() as c:
        missing = c.post("/v1/workflows/no-such-workflow/run", json={"inputs": {"prompt": "a"}})
        version = c.post(
            f"/v1/workflows/{workflow_id}/run", json={"inputs": {"prompt": "a"}, "version": 99}
        )
        get = c.get(f"/v1/workflows/{workflow_id}/versions/99")
        run = c.get("/v1/runs/run_0000000000000000000000000000")
    for r in (missing, version, get, run):
        _assert_problem(r, 404)


def test_a_missing_or_wrong_key_is_a_401(system: Any, workflow_id: str) -> None:
    no_key = httpx.post(
        f"{system.url}/v1/workflows/{workflow_id}/run", json={"inputs": {"prompt": "a"}}
    )
    with system.client(key="wfk_wrong") as c:
        wrong = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"prompt": "a"}})
    for r in (no_key, wrong):
        _assert_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert _run_count(system, workflow_id) == 0


def test_another_tenants_workflow_is_not_visible(system: Any, workflow_id: str) -> None:
    import subprocess
    import sys

    other = subprocess.run(
        [sys.executable, "-m", "ingress.admin", "create-key", "--tenant", "someone-else"],
        env=system.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with system.client(key=other) as c:
        _assert_problem(c.get(f"/v1/workflows/{workflow_id}"), 404)
        _assert_problem(
            c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"prompt": "a"}}), 404
        )


def test_an_invalid_definition_is_a_422_listing_every_problem(system: Any) -> None:
    bad = {
        "name": "broken",
        "inputSchema": {"type": "object"},
        "nodes": [
            {"id": "a", "type": "image.teleport", "params": {}},
            {
                "id": "b",
                "type": "image.resize",
                "params": {"image": "{{ nodes.c.image }}", "width": -5, "height": 10},
            },
            {"id": "c", "type": "image.adjust", "params": {"image": "{{ nodes.b.image }}"}},
            {
                "id": "d",
                "type": "image.crop",
                "params": {
                    "image": "{{ nodes.ghost.image }}",
                    "x": 0,
                    "y": 0,
                    "width": 1,
                    "height": 1,
                },
            },
        ],
        "outputs": {"out": "{{ nodes.nowhere.image }}"},
    }
    workflow_id = f"broken-{secrets.token_hex(4)}"
    with system.client() as c:
        r = c.put(f"/v1/workflows/{workflow_id}", json=bad)
        messages = " | ".join(
            f"{e['path']}: {e['message']}" for e in _assert_problem(r, 422)["errors"]
        )
        assert c.get(f"/v1/workflows/{workflow_id}").status_code == 404
    for expected in ("image.teleport", "cycle", "/nodes/1/params/width", "ghost", "nowhere"):
        assert expected in messages, messages


def test_another_tenants_uploaded_asset_cannot_be_used_as_an_input(system: Any) -> None:
    import io
    import subprocess
    import sys

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 40), "#123456").save(buf, format="PNG")
    with system.client() as c:
        ref = c.post(
            "/v1/assets", content=buf.getvalue(), headers={"Content-Type": "image/png"}
        ).json()["ref"]
    thief = subprocess.run(
        [sys.executable, "-m", "ingress.admin", "create-key", "--tenant", "thief"],
        env=system.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    definition = {
        "name": "copy",
        "inputSchema": {"type": "object", "properties": {"asset": {"type": "string"}}},
        "nodes": [
            {
                "id": "copy",
                "type": "image.convert",
                "params": {"image": "{{ inputs.asset }}", "format": "png"},
            }
        ],
        "outputs": {"image": "{{ nodes.copy.image }}"},
    }
    with system.client(key=thief) as c:
        workflow_id = f"copy-{secrets.token_hex(4)}"
        assert c.put(f"/v1/workflows/{workflow_id}", json=definition).status_code == 201
        run = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"asset": ref}}).json()
    assert run["status"] == "failed", run
    assert run["steps"][0]["error"]["code"] == "asset_not_found"
    assert run["outputs"] == []
