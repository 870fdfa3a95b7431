"""Rerunning a run, from the start or from a chosen node, end to end on the real stack."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from bus.topics import Topic
from e2e_helpers import committed_to_end, poll, register
from e2e_receiver import Receiver, Reply

pytestmark = pytest.mark.e2e

DEMO = json.loads((Path(__file__).parents[2] / "examples" / "studio-portrait.json").read_text())
DEMO_INPUTS = {"prompt": "Studio portrait, warm lighting", "options": {"quality": "high"}}
ECHO = {
    "name": "echo",
    "inputSchema": {
        "type": "object",
        "required": ["x"],
        "properties": {"x": {"type": "string", "maxLength": 20}},
    },
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "hi {{ inputs.x }}"}}],
    "outputs": {"text": "{{ nodes.say.text }}"},
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _call_then_say(url: str) -> dict[str, Any]:
    """`call` asks the receiver (a side effect a rerun must not repeat), `say` uses its answer."""
    return {
        "name": "call then say",
        "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        "nodes": [
            {
                "id": "call",
                "type": "http.request",
                "params": {"url": url, "method": "POST", "body": {"x": "{{ inputs.x }}"}},
            },
            {
                "id": "say",
                "type": "text.template",
                "params": {"template": "{{ nodes.call.body.answer }} for {{ inputs.x }}"},
            },
        ],
        "outputs": {"text": "{{ nodes.say.text }}", "status": "{{ nodes.call.status }}"},
    }


def _run(c: httpx.Client, workflow_id: str, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post(f"/v1/workflows/{workflow_id}/run", json=body)
    assert r.status_code == 200, r.text
    run: dict[str, Any] = r.json()
    return run


def _rerun(c: httpx.Client, run_id: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return (
        c.post(f"/v1/runs/{run_id}/rerun", json=body)
        if body is not None
        else c.post(f"/v1/runs/{run_id}/rerun")
    )


def _steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["nodeId"]: s for s in run["steps"]}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _shape(run: dict[str, Any]) -> list[tuple[str, Any, str]]:
    return [(o["name"], o.get("index"), o["type"]) for o in run["outputs"]]


def test_a_rerun_is_a_new_run_of_the_same_version_that_names_its_original(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, ECHO)
        original = _run(c, workflow_id, {"inputs": {"x": "ada"}, "metadata": {"ticket": 7}})
        # A newer version does not change what a rerun runs.
        changed = {**ECHO, "nodes": [{**ECHO["nodes"][0], "params": {"template": "bye"}}]}
        assert register(c, changed, workflow_id) == workflow_id

        r = _rerun(c, original["runId"])
        listed = c.get("/v1/runs", params={"workflowId": workflow_id}).json()["items"]

    assert r.status_code == 200, r.text
    rerun = r.json()
    assert rerun["runId"] != original["runId"]
    assert rerun["status"] == "completed"
    assert rerun["rerunOf"] == {"runId": original["runId"], "fromNode": None}
    assert original["rerunOf"] is None
    assert rerun["workflowVersion"] == original["workflowVersion"] == 1
    assert _shape(rerun) == _shape(original)
    assert rerun["outputs"] == original["outputs"]  # same version, same inputs
    assert rerun["metadata"] == {"ticket": 7}
    assert [s["reusedFrom"] for s in rerun["steps"]] == [None]
    assert [(i["runId"], i["rerunOf"]) for i in listed[:2]] == [
        (rerun["runId"], {"runId": original["runId"], "fromNode": None}),
        (original["runId"], None),
    ]


def test_a_rerun_with_other_inputs_checks_them_against_the_versions_schema(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, ECHO)
        original = _run(c, workflow_id, {"inputs": {"x": "ada"}})

        edited = _rerun(c, original["runId"], {"inputs": {"x": "grace"}, "metadata": {"a": 1}})
        refused = _rerun(c, original["runId"], {"inputs": {"x": "y" * 50}})
        unknown_field = _rerun(c, original["runId"], {"input": {"x": "grace"}})

    assert edited.status_code == 200, edited.text
    assert edited.json()["outputs"][0]["value"] == "hi grace"
    assert edited.json()["metadata"] == {"a": 1}
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith("/invalid-inputs")
    assert [e["path"] for e in refused.json()["errors"]] == ["/inputs/x"]
    assert unknown_field.status_code == 422, unknown_field.text
    assert unknown_field.json()["errors"][0]["path"] == "/input"


def test_a_rerun_from_the_second_step_reuses_the_first_without_calling_out_again(
    system: Any, receiver: Receiver
) -> None:
    receiver.on("/answer", Reply(200, {"answer": 42}))
    with system.client() as c:
        workflow_id = register(c, _call_then_say(f"{receiver.url}/answer"))
        original = _run(c, workflow_id, {"inputs": {"x": "ada"}})
        assert original["status"] == "completed", original

        r = _rerun(c, original["runId"], {"fromNode": "say", "inputs": {"x": "grace"}})
        assert r.status_code == 200, r.text
        rerun = r.json()
        detail = c.get(f"/v1/runs/{rerun['runId']}", params={"detail": "full"}).json()

    assert len(receiver.calls("/answer")) == 1, "the reused step did not run again"
    assert rerun["status"] == "completed", rerun
    assert rerun["rerunOf"] == {"runId": original["runId"], "fromNode": "say"}
    call, say = _steps(rerun)["call"], _steps(rerun)["say"]
    assert (call["status"], call["reusedFrom"], call["attempt"]) == (
        "succeeded",
        original["runId"],
        0,
    )
    assert call["dispatchedAt"] is None
    assert (say["status"], say["reusedFrom"], say["attempt"]) == ("succeeded", None, 1)
    assert _at(say["startedAt"]) > _at(original["completedAt"]), "say ran again, in the rerun"
    outputs = {o["name"]: o["value"] for o in rerun["outputs"]}
    assert outputs == {"text": "42 for grace", "status": 200}
    # The reused step shows the params it ran with (the original's inputs) and its outputs.
    detailed = _steps(detail)
    assert detailed["call"]["params"]["body"] == {"x": "ada"}
    assert {o["name"]: o["value"] for o in detailed["call"]["outputs"]}["status"] == 200
    assert detailed["say"]["params"] == {"template": "42 for grace"}


def test_a_rerun_keeps_the_originals_webhook_and_its_events_name_the_original(
    system: Any, receiver: Receiver
) -> None:
    receiver.on("/answer", Reply(200, {"answer": 1}))
    receiver.on("/hooks", Reply(200))
    with system.client() as c:
        workflow_id = register(c, _call_then_say(f"{receiver.url}/answer"))
        original = _run(c, workflow_id, {"inputs": {"x": "a"}, "webhook": f"{receiver.url}/hooks"})
        rerun = _rerun(c, original["runId"], {"fromNode": "say"}).json()
        muted = _rerun(c, original["runId"], {"webhook": None}).json()
        # Every run event published so far is handled: a delivery it asked for exists.
        committed_to_end(system, system.env["NOTIFIER_GROUP_ID"], Topic.RUN_EVENTS)
        muted_deliveries = c.get(f"/v1/runs/{muted['runId']}/webhook-deliveries").json()

    def completed(run_id: str) -> list[dict[str, Any]]:
        return [
            json.loads(r.body)
            for r in receiver.calls("/hooks")
            if r.headers.get("webhook-id") == f"{run_id}:completed"
        ]

    assert receiver.wait_for(lambda: len(completed(rerun["runId"])) == 1)
    (payload,) = completed(rerun["runId"])
    data = payload["data"]
    assert data["rerunOf"] == {"runId": original["runId"], "fromNode": "say"}
    assert [(s["nodeId"], s["reusedFrom"]) for s in data["steps"]] == [
        ("call", original["runId"]),
        ("say", None),
    ]
    for step in data["steps"]:
        assert not {"params", "outputs", "items"} & set(step), "webhooks carry no step detail"
    # A rerun told `"webhook": null` sends none.
    assert muted_deliveries == {"items": []}


def test_a_rerun_from_a_node_needs_the_steps_before_it_to_have_succeeded(
    system: Any, receiver: Receiver
) -> None:
    receiver.on("/answer", Reply(400, {"error": "not now"}), Reply(200, {"answer": 2}))
    with system.client() as c:
        workflow_id = register(c, _call_then_say(f"{receiver.url}/answer"))
        failed = _run(c, workflow_id, {"inputs": {"x": "a"}})
        assert failed["status"] == "failed", failed

        refused = _rerun(c, failed["runId"], {"fromNode": "say"})
        from_start = _rerun(c, failed["runId"], {"fromNode": "call"})

    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/steps-not-reusable")
    assert "call" in problem["detail"]
    assert [e["path"] for e in problem["errors"]] == ["/steps/call"]
    assert from_start.status_code == 200, from_start.text
    assert from_start.json()["status"] == "completed"
    assert len(receiver.calls("/answer")) == 2


def test_a_rerun_from_a_node_the_workflow_does_not_have_is_a_422_naming_it(system: Any) -> None:
    with system.client() as c:
        original = _run(c, register(c, ECHO), {"inputs": {"x": "a"}})
        r = _rerun(c, original["runId"], {"fromNode": "nowhere"})

    assert r.status_code == 422, r.text
    assert "nowhere" in r.json()["detail"]
    assert r.json()["errors"] == [{"path": "/fromNode", "message": "unknown node 'nowhere'"}]


def test_another_tenants_run_cannot_be_rerun_or_read(system: Any) -> None:
    admin = system.client(key=system.env["ADMIN_API_KEY"], timeout=30)
    with admin:
        created = admin.post(
            "/v1/admin/keys", json={"tenantId": f"rerun-{secrets.token_hex(4)}", "name": "t"}
        )
    assert created.status_code == 201, created.text
    with system.client() as c:
        original = _run(c, register(c, ECHO), {"inputs": {"x": "a"}})
    with system.client(created.json()["key"]) as other:
        rerun = _rerun(other, original["runId"])
        detail = other.get(f"/v1/runs/{original['runId']}", params={"detail": "full"})

    assert rerun.status_code == 404, rerun.text
    assert detail.status_code == 404, detail.text


def test_a_rerun_answers_like_a_run_start_async_and_idempotent(system: Any) -> None:
    pause = {
        "name": "pause",
        "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        "nodes": [{"id": "nap", "type": "wait", "params": {"seconds": 1}}],
        "outputs": {"waited": "{{ nodes.nap.waited }}"},
    }
    with system.client() as c:
        original = _run(c, register(c, pause), {"inputs": {"x": "a"}})
        key = {"Idempotency-Key": secrets.token_hex(8), "Prefer": "respond-async"}
        first = c.post(f"/v1/runs/{original['runId']}/rerun", json={}, headers=key)
        again = c.post(f"/v1/runs/{original['runId']}/rerun", json={}, headers=key)
        other_body = c.post(
            f"/v1/runs/{original['runId']}/rerun", json={"inputs": {"x": "b"}}, headers=key
        )
        finished = poll(c, first.json()["runId"])

    assert first.status_code == 202, first.text
    assert first.headers["Location"] == f"/v1/runs/{first.json()['runId']}"
    assert again.status_code == 202, again.text
    assert again.json()["runId"] == first.json()["runId"]
    assert other_body.status_code == 422, other_body.text
    assert other_body.json()["type"].endswith("/idempotency-conflict")
    assert finished["status"] == "completed"


def test_a_rerun_counts_against_the_tenants_runs_per_minute(system: Any) -> None:
    tenant = f"rerun-{secrets.token_hex(4)}"
    with system.client(key=system.env["ADMIN_API_KEY"], timeout=30) as admin:
        limits = {"runsPerMinute": 1, "concurrentRuns": None}
        assert admin.put(f"/v1/admin/tenants/{tenant}/limits", json=limits).status_code == 200
        created = admin.post("/v1/admin/keys", json={"tenantId": tenant, "name": "t"})
    with system.client(created.json()["key"]) as c:
        original = _run(c, register(c, ECHO), {"inputs": {"x": "a"}})
        refused = _rerun(c, original["runId"])

    assert refused.status_code == 429, refused.text
    assert "TENANT_RUNS_PER_MINUTE (1)" in refused.json()["detail"]


def test_the_demo_rerun_from_warm_reuses_render_and_renders_every_image(system: Any) -> None:
    with system.client() as c:
        original = _run(c, register(c, DEMO), {"inputs": DEMO_INPUTS})
        r = _rerun(c, original["runId"], {"fromNode": "warm"})
        assert r.status_code == 200, r.text
        rerun = r.json()
        detail = c.get(f"/v1/runs/{rerun['runId']}", params={"detail": "full"}).json()

    assert rerun["status"] == "completed", rerun
    steps = _steps(rerun)
    assert steps["render"]["reusedFrom"] == original["runId"]
    assert steps["render"]["startedAt"] is None
    assert {n: s["reusedFrom"] for n, s in steps.items() if n != "render"} == dict.fromkeys(
        ("warm", "square", "story")
    )
    assert all(s["attempt"] == 1 for n, s in steps.items() if n != "render")
    assert _shape(rerun) == _shape(original)
    for output in rerun["outputs"]:
        assert httpx.get(output["url"], timeout=30).status_code == 200
        assert f"/runs/{rerun['runId']}/" in output["ref"], "square and story were made again"
    render = _steps(detail)["render"]
    (image,) = [o for o in render["outputs"] if o["name"] == "image"]
    assert f"/runs/{original['runId']}/render/" in image["ref"]
    assert (image["width"], image["height"], image["contentType"]) == (768, 768, "image/png")
    assert httpx.get(image["url"], timeout=30).status_code == 200
    assert render["params"]["prompt"] == DEMO_INPUTS["prompt"]
