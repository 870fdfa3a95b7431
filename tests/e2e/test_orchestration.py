"""Composable orchestration and run control, end to end on the real stack."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import poll, register
from e2e_receiver import Receiver, Reply

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _echo(template: str = "{{ inputs.x }}") -> dict[str, Any]:
    return {
        "name": "echo",
        "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        "nodes": [{"id": "say", "type": "text.template", "params": {"template": template}}],
        "outputs": {"text": "{{ nodes.say.text }}"},
    }


def _chain(child_id: str) -> dict[str, Any]:
    return {
        "name": "parent",
        "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        "nodes": [
            {
                "id": "child",
                "type": "workflow.run",
                "params": {"workflowId": child_id, "inputs": {"x": "from parent: {{ inputs.x }}"}},
            },
        ],
        "outputs": {"text": "{{ nodes.child.text }}"},
    }


def test_a_parent_chaining_a_child_completes_with_the_childs_outputs(system: Any) -> None:
    with system.client() as c:
        child_id = register(c, _echo("child says {{ inputs.x }}"))
        parent_id = register(c, _chain(child_id))
        r = c.post(f"/v1/workflows/{parent_id}/run", json={"inputs": {"x": "hi"}})
        assert r.status_code == 200, r.text
        run = r.json()
        assert run["status"] == "completed", run
        assert run["outputs"] == [
            {"name": "text", "type": "text", "value": "child says from parent: hi"}
        ]
        step = run["steps"][0]
        assert step["childRunId"]
        child = c.get(f"/v1/runs/{step['childRunId']}").json()
    assert child["parentRunId"] == run["runId"]
    assert child["workflowId"] == child_id
    assert child["status"] == "completed"


def test_a_chain_that_loops_back_is_rejected_at_registration(system: Any) -> None:
    with system.client() as c:
        a = register(c, _echo())
        b = register(c, _chain(a))
        r = c.put(f"/v1/workflows/{a}", json=_chain(b))
        assert r.status_code == 422, r.text
        messages = " ".join(e["message"] for e in r.json()["errors"])
        assert a in messages
        assert b in messages
        assert c.get(f"/v1/workflows/{a}").json()["version"] == 1


def test_a_map_over_three_aspect_ratios_yields_three_images_in_order(system: Any) -> None:
    definition = {
        "name": "formats",
        "inputSchema": {"type": "object", "properties": {"sizes": {"type": "array"}}},
        "nodes": [
            {
                "id": "render",
                "type": "image.generate",
                "params": {"prompt": "a product shot", "width": 256, "height": 256, "seed": 3},
            },
            {
                "id": "formats",
                "type": "map",
                "params": {
                    "items": "{{ inputs.sizes }}",
                    "concurrency": 2,
                    "node": {
                        "type": "image.resize",
                        "params": {
                            "image": "{{ nodes.render.image }}",
                            "width": "{{ item.w }}",
                            "height": "{{ item.h }}",
                            "fit": "cover",
                        },
                    },
                },
            },
        ],
        "outputs": {"variants": "{{ nodes.formats.results }}"},
    }
    sizes = [{"w": 300, "h": 100}, {"w": 100, "h": 300}, {"w": 150, "h": 150}]
    with system.client() as c:
        workflow_id = register(c, definition)
        run = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"sizes": sizes}}).json()
        empty = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"sizes": []}}).json()
    assert run["status"] == "completed", run
    variants = [o for o in run["outputs"] if o["name"] == "variants"]
    assert [o["index"] for o in variants] == [0, 1, 2]
    assert [(o["width"], o["height"]) for o in variants] == [(s["w"], s["h"]) for s in sizes]
    assert empty["status"] == "completed", empty
    assert [o for o in empty["outputs"] if o.get("index") is not None] == []


def _http_flow(url: str, **node: Any) -> dict[str, Any]:
    return {
        "name": "call out",
        "inputSchema": {"type": "object"},
        "nodes": [
            {
                "id": "call",
                "type": "http.request",
                "params": {"url": url, "method": "POST", "body": {"hello": "world"}},
                **node,
            }
        ],
        "outputs": {"status": "{{ nodes.call.status }}"},
    }


def test_a_node_failing_twice_then_succeeding_completes_with_three_attempts(
    system: Any, receiver: Receiver
) -> None:
    receiver.on("/flaky", Reply(503), Reply(500), Reply(200, {"done": True}))
    retry = {"maxAttempts": 3, "backoff": {"initialSeconds": 0.2, "factor": 2, "maxSeconds": 1}}
    with system.client() as c:
        workflow_id = register(c, _http_flow(f"{receiver.url}/flaky", retry=retry))
        run = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {}}).json()
    assert run["status"] == "completed", run
    step = run["steps"][0]
    assert step["attempt"] == 3
    assert [a["error"]["code"] for a in step["attempts"][:2]] == ["http_error", "http_error"]
    assert len(receiver.calls("/flaky")) == 3


def test_a_permanent_failure_is_not_retried(system: Any, receiver: Receiver) -> None:
    receiver.on("/bad", Reply(400, {"error": "nope"}))
    retry = {"maxAttempts": 3, "backoff": {"initialSeconds": 0.2}}
    with system.client() as c:
        workflow_id = register(c, _http_flow(f"{receiver.url}/bad", retry=retry))
        run = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {}}).json()
    assert run["status"] == "failed", run
    assert run["steps"][0]["attempt"] == 1
    assert len(receiver.calls("/bad")) == 1


def test_a_node_exceeding_its_timeout_fails_the_run_with_a_timeout_error(
    system: Any, receiver: Receiver
) -> None:
    receiver.on("/slow", Reply(200, delay=5))
    with system.client() as c:
        workflow_id = register(c, _http_flow(f"{receiver.url}/slow", timeoutSeconds=1))
        started = time.monotonic()
        run = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {}}).json()
    assert run["status"] == "failed", run
    assert run["steps"][0]["error"]["code"] == "timeout"
    assert "timeout" in run["error"]["message"]
    assert time.monotonic() - started < 5


def _wait_then_echo(seconds: float) -> dict[str, Any]:
    return {
        "name": "pause",
        "inputSchema": {"type": "object"},
        "nodes": [
            {"id": "pause", "type": "wait", "params": {"seconds": seconds}},
            {
                "id": "after",
                "type": "text.template",
                "params": {"template": "waited {{ nodes.pause.waited }}"},
            },
        ],
        "outputs": {"text": "{{ nodes.after.text }}"},
    }


def test_a_wait_node_pauses_and_reports_what_it_waited(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, _wait_then_echo(1))
        started = time.monotonic()
        run = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {}}).json()
    assert run["status"] == "completed", run
    assert run["outputs"][0]["value"] == "waited 1.0"
    assert time.monotonic() - started >= 1


def test_a_run_canceled_during_a_wait_ends_canceled_at_once_and_runs_nothing_more(
    system: Any,
) -> None:
    with system.client() as c:
        workflow_id = register(c, _wait_then_echo(30))
        run = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {}},
            headers={"Prefer": "respond-async"},
        ).json()
        deadline = time.monotonic() + 10
        while c.get(f"/v1/runs/{run['runId']}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        canceled = c.post(f"/v1/runs/{run['runId']}/cancel")
        elapsed = time.monotonic() - started
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "canceled"
        assert elapsed < 2
        again = c.post(f"/v1/runs/{run['runId']}/cancel")
        assert again.status_code == 200
        # The pending step is marked canceled by the same change; wait for it to be stored.
        deadline = time.monotonic() + 10
        while True:
            final = c.get(f"/v1/runs/{run['runId']}").json()
            after = {s["nodeId"]: s for s in final["steps"]}["after"]
            if after["status"] == "canceled" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    steps = {s["nodeId"]: s for s in final["steps"]}
    assert final["status"] == "canceled"
    assert steps["after"]["status"] == "canceled"
    assert steps["after"]["startedAt"] is None


def test_cancelling_a_finished_run_is_a_409_naming_its_status(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, _echo())
        run = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"x": "a"}}).json()
        r = c.post(f"/v1/runs/{run['runId']}/cancel")
    assert r.status_code == 409
    assert "completed" in r.json()["detail"]


def test_the_same_idempotency_key_twice_yields_one_run(system: Any) -> None:
    key = secrets.token_hex(8)
    with system.client() as c:
        workflow_id = register(c, _echo())
        first = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {"x": "a"}},
            headers={"Idempotency-Key": key},
        )
        second = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {"x": "a"}},
            headers={"Idempotency-Key": key},
        )
        other = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {"x": "b"}},
            headers={"Idempotency-Key": key},
        )
        runs = c.get("/v1/runs", params={"workflowId": workflow_id}).json()["items"]
    assert first.status_code == 200
    assert second.status_code == 200
    assert second.json()["runId"] == first.json()["runId"]
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]
    assert len(runs) == 1


def test_the_event_stream_of_a_two_node_run_shows_both_steps_and_the_end(system: Any) -> None:
    definition = {
        "name": "two steps",
        "inputSchema": {"type": "object"},
        "nodes": [
            {"id": "pause", "type": "wait", "params": {"seconds": 2}},
            {
                "id": "say",
                "type": "text.template",
                "params": {"template": "after {{ nodes.pause.waited }}"},
            },
        ],
        "outputs": {"text": "{{ nodes.say.text }}"},
    }
    with system.client() as c:
        workflow_id = register(c, definition)
        run = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {}},
            headers={"Prefer": "respond-async"},
        ).json()
        events: list[tuple[str, dict[str, Any]]] = []
        with c.stream("GET", f"/v1/runs/{run['runId']}/events", timeout=30) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            name = ""
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((name, json.loads(line.split(":", 1)[1])))
        finished = c.get(f"/v1/runs/{run['runId']}/events", timeout=10)
    names = [n for n, _ in events]
    assert names[0] == "run"
    assert names[-1] == "run"
    assert events[-1][1]["status"] == "completed"
    assert "run.completed" in names
    assert any(n == "step.succeeded" and d["nodeId"] == "say" for n, d in events)
    assert any(n == "step.started" and d["nodeId"] == "say" for n, d in events)
    # A finished run's stream sends the final state and closes.
    assert finished.text.count("event: run") == 1
    assert '"status":"completed"' in finished.text


def test_killing_the_orchestrator_during_a_retry_delay_still_ends_the_run(
    system: Any, receiver: Receiver
) -> None:
    receiver.on("/later", Reply(503), Reply(200, {"ok": True}))
    retry = {"maxAttempts": 2, "backoff": {"initialSeconds": 3, "factor": 1, "maxSeconds": 3}}
    with system.client() as c:
        workflow_id = register(c, _http_flow(f"{receiver.url}/later", retry=retry))
        run = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {}},
            headers={"Prefer": "respond-async"},
        ).json()
        assert receiver.wait_for(lambda: len(receiver.calls("/later")) == 1, timeout=30)
        # Kill it once the failure reached the orchestrator and a retry is scheduled.
        retrying = c.get(f"/v1/runs/{run['runId']}").json()
        deadline = time.monotonic() + 30
        while retrying["steps"][0]["status"] != "retrying" and time.monotonic() < deadline:
            time.sleep(0.05)
            retrying = c.get(f"/v1/runs/{run['runId']}").json()
        assert retrying["steps"][0]["status"] == "retrying", retrying
        orchestrator = system.procs["orchestrator"]
        os.kill(orchestrator.pid, signal.SIGKILL)
        orchestrator.wait(10)
        system.start("orchestrator")
        final = poll(c, run["runId"], timeout=60)
    assert final["status"] == "completed", final
    assert final["steps"][0]["attempt"] == 2
    assert len(receiver.calls("/later")) == 2


def test_a_map_reports_its_progress_on_the_event_stream(system: Any) -> None:
    definition = {
        "name": "texts",
        "inputSchema": {"type": "object", "properties": {"words": {"type": "array"}}},
        "nodes": [
            {"id": "pause", "type": "wait", "params": {"seconds": 2}},
            {
                "id": "each",
                "type": "map",
                "params": {
                    "items": "{{ inputs.words }}",
                    "concurrency": 1,
                    "node": {"type": "text.template", "params": {"template": "{{ item }}!"}},
                },
            },
        ],
        "outputs": {"texts": "{{ nodes.each.results }}"},
    }
    with system.client() as c:
        workflow_id = register(c, definition)
        run = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {"words": ["a", "b", "c"]}},
            headers={"Prefer": "respond-async"},
        ).json()
        progress: list[float] = []
        with c.stream("GET", f"/v1/runs/{run['runId']}/events", timeout=30) as stream:
            name = ""
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and name == "step.progress":
                    progress.append(json.loads(line.split(":", 1)[1])["progress"])
        final = c.get(f"/v1/runs/{run['runId']}").json()
    assert final["outputs"][0]["value"] == ["a!", "b!", "c!"]
    assert progress == pytest.approx([1 / 3, 2 / 3, 1.0])
    each = next(s for s in final["steps"] if s["nodeId"] == "each")
    assert (each["itemsDone"], each["itemsTotal"]) == (3, 3)
