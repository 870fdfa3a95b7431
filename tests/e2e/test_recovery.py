"""Nothing stalls: lost messages, dead executors, per-run limits and cancel across a chain."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bus.topics import Topic
from e2e_helpers import committed_to_end, poll, register
from e2e_receiver import Receiver, Reply
from storage import mongo
from storage.ids import time_ordered_id
from storage.runs import RunRecord, RunRepository
from workflow.definition import WorkflowDefinition
from workflow.run import new_run_state

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


ECHO = {
    "name": "echo",
    "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "{{ inputs.x }}"}}],
    "outputs": {"text": "{{ nodes.say.text }}"},
}


def _pause(seconds: float) -> dict[str, Any]:
    return {
        "name": "pause",
        "inputSchema": {"type": "object"},
        "nodes": [{"id": "pause", "type": "wait", "params": {"seconds": seconds}}],
        "outputs": {"waited": "{{ nodes.pause.waited }}"},
    }


def test_a_run_whose_request_message_was_lost_is_started_when_it_is_due(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, ECHO)
        definition = c.get(f"/v1/workflows/{workflow_id}").json()["definition"]

    async def store_without_publishing() -> str:
        client = mongo.connect(system.env["MONGODB_URL"], app_name="tests")
        db = client[system.env["MONGODB_DATABASE"]]
        run_id = time_ordered_id("run")
        defn = WorkflowDefinition.model_validate(definition)
        state = new_run_state(run_id, defn, {"x": "found again"})
        now = datetime.now(UTC)
        await RunRepository(db).create(
            RunRecord(
                run_id=run_id,
                tenant_id="e2e",
                workflow_id=workflow_id,
                workflow_version=1,
                status=state.status.value,
                revision=state.revision,
                created_at=now,
                state_json=state.model_dump_json(),
                metadata_json=json.dumps({}),
                # as ingress stores it: due for the sweeper if run.requested never arrives
                due_at=now + timedelta(seconds=1),
            )
        )
        await client.close()
        return run_id

    run_id = asyncio.run(store_without_publishing())
    with system.client() as c:
        run = poll(c, run_id, timeout=30)
    assert run["status"] == "completed", run
    assert run["outputs"][0]["value"] == "found again"


def test_a_step_lost_with_its_executor_is_re_driven_after_its_timeout_without_a_retry_policy(
    system: Any, receiver: Receiver
) -> None:
    receiver.on("/hang", Reply(200, delay=30), Reply(200, {"second": True}))
    definition = {
        "name": "call",
        "inputSchema": {"type": "object"},
        "nodes": [
            {
                "id": "call",
                "type": "http.request",
                "params": {"url": f"{receiver.url}/hang"},
                "timeoutSeconds": 10,
            }
        ],
        "outputs": {"body": "{{ nodes.call.body }}"},
    }
    with system.client() as c:
        workflow_id = register(c, definition)
        run = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {}},
            headers={"Prefer": "respond-async"},
        ).json()
        assert receiver.wait_for(lambda: len(receiver.calls("/hang")) == 1, timeout=30)
        # Once the step request is committed, a new executor does not get it again: only the
        # orchestrator's timeout can bring the step back.
        committed_to_end(system, system.env["EXECUTOR_GROUP_ID"], Topic.STEP_REQUESTED)
        executor = system.procs["executor"]
        os.kill(executor.pid, signal.SIGKILL)
        executor.wait(10)
        system.start("executor")
        final = poll(c, run["runId"], timeout=90)
    assert final["status"] == "completed", final
    step = final["steps"][0]
    assert step["attempt"] == 2
    assert [a["error"]["code"] for a in step["attempts"]] == ["timeout"]
    assert final["outputs"][0]["value"] == {"second": True}
    assert len(receiver.calls("/hang")) == 2


def test_cancel_after_fails_a_run_that_runs_longer(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, _pause(30))
        started = time.monotonic()
        r = c.post(
            f"/v1/workflows/{workflow_id}/run", json={"inputs": {}}, headers={"Cancel-After": "1"}
        )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "failed"
    assert r.json()["error"]["code"] == "timeout"
    assert time.monotonic() - started < 10


def test_cancelling_a_parent_cancels_its_running_child(system: Any) -> None:
    with system.client() as c:
        child_id = register(c, _pause(30))
        parent_id = register(
            c,
            {
                "name": "parent",
                "inputSchema": {"type": "object"},
                "nodes": [
                    {"id": "child", "type": "workflow.run", "params": {"workflowId": child_id}}
                ],
                "outputs": {"waited": "{{ nodes.child.waited }}"},
            },
        )
        parent = c.post(
            f"/v1/workflows/{parent_id}/run",
            json={"inputs": {}},
            headers={"Prefer": "respond-async"},
        ).json()
        deadline = time.monotonic() + 20
        child_run_id = None
        while child_run_id is None:
            assert time.monotonic() < deadline, "the child never started"
            step = c.get(f"/v1/runs/{parent['runId']}").json()["steps"][0]
            child_run_id = step.get("childRunId")
            time.sleep(0.1)
        assert poll(c, child_run_id, until=("running",), timeout=20)["status"] == "running"
        canceled = c.post(f"/v1/runs/{parent['runId']}/cancel").json()
        child = poll(c, child_run_id, timeout=20)
    assert canceled["status"] == "canceled"
    assert child["status"] == "canceled"
