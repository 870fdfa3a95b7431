"""The run path end to end: register, run, get real images back."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_helpers import poll, register
from PIL import Image

pytestmark = pytest.mark.e2e

DEMO = json.loads((Path(__file__).parents[2] / "examples" / "studio-portrait.json").read_text())
DEMO_INPUTS = {"prompt": "Studio portrait, warm lighting", "options": {"quality": "high"}}


def _image(url: str) -> Image.Image:
    data = httpx.get(url, timeout=30).raise_for_status().content
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _text_workflow(template: str) -> dict[str, Any]:
    return {
        "name": "echo",
        "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        "nodes": [{"id": "say", "type": "text.template", "params": {"template": template}}],
        "outputs": {"text": "{{ nodes.say.text }}"},
    }


def test_demo_request_returns_completed_with_downloadable_images_of_the_declared_sizes(
    system: Any,
) -> None:
    with system.client() as c:
        workflow_id = register(c, DEMO)
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": DEMO_INPUTS, "metadata": {"campaign": "fall"}},
        )
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "completed"
    assert run["metadata"] == {"campaign": "fall"}
    outputs = {o["name"]: o for o in run["outputs"]}
    assert set(outputs) == {"square", "story"}
    for name, size in {"square": (512, 512), "story": (540, 960)}.items():
        out = outputs[name]
        assert out["type"] == "image"
        assert (out["width"], out["height"]) == size
        assert out["contentType"] == "image/png"
        img = _image(out["url"])
        assert img.size == size
        assert out["bytes"] > 1000
    assert {s["nodeId"]: s["status"] for s in run["steps"]} == dict.fromkeys(
        ("render", "warm", "square", "story"), "succeeded"
    )


def test_independent_branches_run_at_the_same_time(system: Any) -> None:
    definition = {
        "name": "two renders",
        "inputSchema": {
            "type": "object",
            "required": ["prompt"],
            "properties": {"prompt": {"type": "string"}},
        },
        "nodes": [
            {
                "id": "left",
                "type": "image.generate",
                "params": {"prompt": "left {{ inputs.prompt }}", "width": 1024, "height": 1024},
            },
            {
                "id": "right",
                "type": "image.generate",
                "params": {"prompt": "right {{ inputs.prompt }}", "width": 1024, "height": 1024},
            },
        ],
        "outputs": {"left": "{{ nodes.left.image }}", "right": "{{ nodes.right.image }}"},
    }
    with system.client() as c:
        workflow_id = register(c, definition)
        run = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"prompt": "p"}}).json()
    assert run["status"] == "completed", run
    steps = {s["nodeId"]: s for s in run["steps"]}
    left, right = steps["left"], steps["right"]
    start = max(
        datetime.fromisoformat(left["startedAt"]), datetime.fromisoformat(right["startedAt"])
    )
    end = min(
        datetime.fromisoformat(left["finishedAt"]), datetime.fromisoformat(right["finishedAt"])
    )
    assert start < end, f"no overlap: {left} / {right}"


def test_respond_async_answers_202_with_location_that_later_reads_completed(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, DEMO)
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": DEMO_INPUTS},
            headers={"Prefer": "respond-async"},
        )
        assert r.status_code == 202, r.text
        assert r.json()["status"] in ("queued", "running")
        location = r.headers["Location"]
        assert location == f"/v1/runs/{r.json()['runId']}"
        assert r.headers.get("Preference-Applied") == "respond-async"
        run = poll(c, location.rsplit("/", 1)[1])
    assert run["status"] == "completed"
    assert len(run["outputs"]) == 2


def test_a_short_wait_that_ends_first_answers_202_and_the_run_completes_later(
    system: Any,
) -> None:
    with system.client() as c:
        workflow_id = register(c, DEMO)
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": DEMO_INPUTS},
            headers={"Prefer": "wait=0.01"},
        )
        assert r.status_code == 202, r.text
        run = poll(c, r.headers["Location"].rsplit("/", 1)[1])
    assert run["status"] == "completed"


def test_a_pinned_older_version_runs_the_older_definition(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, _text_workflow("one {{ inputs.x }}"))
        r2 = c.put(f"/v1/workflows/{workflow_id}", json=_text_workflow("two {{ inputs.x }}"))
        assert r2.status_code == 201
        assert r2.json()["version"] == 2
        same = c.put(f"/v1/workflows/{workflow_id}", json=_text_workflow("two {{ inputs.x }}"))
        assert same.status_code == 200
        assert same.json()["version"] == 2
        old = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"x": "a"}, "version": 1})
        new = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"x": "a"}})
    assert old.status_code == 200
    assert new.status_code == 200
    assert old.json()["workflowVersion"] == 1
    assert old.json()["outputs"] == [{"name": "text", "type": "text", "value": "one a"}]
    assert new.json()["outputs"] == [{"name": "text", "type": "text", "value": "two a"}]


def test_runs_are_listed_newest_first_with_a_cursor(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, _text_workflow("{{ inputs.x }}"))
        ids = [
            c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"x": str(i)}}).json()[
                "runId"
            ]
            for i in range(3)
        ]
        first = c.get("/v1/runs", params={"workflowId": workflow_id, "limit": 2}).json()
        second = c.get(
            "/v1/runs",
            params={"workflowId": workflow_id, "limit": 2, "cursor": first["nextCursor"]},
        ).json()
        completed = c.get("/v1/runs", params={"workflowId": workflow_id, "status": "completed"})
    assert [r["runId"] for r in first["items"] + second["items"]] == ids[::-1]
    assert second["nextCursor"] is None
    assert len(completed.json()["items"]) == 3


def test_a_failing_node_fails_the_run_naming_the_node_and_the_reason(system: Any) -> None:
    definition = {
        "name": "resize an upload",
        "inputSchema": {
            "type": "object",
            "required": ["asset"],
            "properties": {"asset": {"type": "string"}},
        },
        "nodes": [
            {
                "id": "shrink",
                "type": "image.resize",
                "params": {"image": "{{ inputs.asset }}", "width": 64, "height": 64},
            }
        ],
        "outputs": {"image": "{{ nodes.shrink.image }}"},
    }
    with system.client() as c:
        workflow_id = register(c, definition)
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {"asset": "s3://workflow-uploads/nobody/missing.png"}},
        )
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "failed"
    assert run["error"]["nodeId"] == "shrink"
    assert "missing.png" in run["error"]["message"]


def test_an_uploaded_asset_can_be_used_as_an_input(system: Any) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), "#336699").save(buf, format="PNG")
    definition = {
        "name": "thumb",
        "inputSchema": {
            "type": "object",
            "required": ["asset"],
            "properties": {"asset": {"type": "string"}},
        },
        "nodes": [
            {
                "id": "thumb",
                "type": "image.resize",
                "params": {"image": "{{ inputs.asset }}", "width": 64, "height": 32, "fit": "fill"},
            }
        ],
        "outputs": {"thumb": "{{ nodes.thumb.image }}"},
    }
    with system.client() as c:
        up = c.post("/v1/assets", content=buf.getvalue(), headers={"Content-Type": "image/png"})
        assert up.status_code == 201, up.text
        assert up.json()["ref"].startswith("s3://")
        workflow_id = register(c, definition)
        run = c.post(
            f"/v1/workflows/{workflow_id}/run", json={"inputs": {"asset": up.json()["ref"]}}
        )
    assert run.json()["status"] == "completed", run.text
    assert _image(run.json()["outputs"][0]["url"]).size == (64, 32)
