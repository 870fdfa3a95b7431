"""Several ingress replicas (the cluster profile): each hears every run's events, so a request
waiting on a run, or following it, is answered by whichever replica holds it, whichever
replica started the run. `make test-cluster` runs these; `make test` deselects them."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from devstack import apps
from e2e_helpers import register

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

NAP_THEN_SAY = {
    "name": "nap, then say",
    "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
    "nodes": [
        {"id": "nap", "type": "wait", "params": {"seconds": 2}},
        {
            "id": "say",
            "type": "text.template",
            "params": {"template": "{{ inputs.x }} after {{ nodes.nap.waited }} s"},
        },
    ],
    "outputs": {"text": "{{ nodes.say.text }}"},
}
WOKEN_WITHIN = 30.0
"""Well below MAX_WAIT_SECONDS (60) and the event stream's own 60 s look at the stored run:
an answer within it was woken by the run's end event reaching that replica."""


@contextmanager
def _replica(system: Any, n: int) -> Iterator[httpx.Client]:
    """A client of ingress replica `n` itself, past the load balancer."""
    instance = apps.Instance("ingress", n, system.replicas["ingress"])
    port = apps.instance_env(system.env, instance)["INGRESS_PORT"]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {system.key}"},
        timeout=90,
    ) as client:
        yield client


def test_a_repeated_request_on_another_replica_waits_for_the_run_the_first_started(
    system: Any,
) -> None:
    assert system.replicas["ingress"] >= 2, system.replicas
    body = {"inputs": {"x": "hello"}}
    key = f"replicas-{secrets.token_hex(8)}"
    with _replica(system, 1) as one, _replica(system, 2) as two:
        workflow_id = register(one, NAP_THEN_SAY)
        started = one.post(
            f"/v1/workflows/{workflow_id}/run",
            json=body,
            headers={"Idempotency-Key": key, "Prefer": "respond-async"},
        )
        assert started.status_code == 202, started.text
        t0 = time.monotonic()
        again = two.post(
            f"/v1/workflows/{workflow_id}/run", json=body, headers={"Idempotency-Key": key}
        )
        waited = time.monotonic() - t0
    assert again.status_code == 200, again.text
    run = again.json()
    assert run["runId"] == started.json()["runId"]
    assert run["status"] == "completed", run
    assert run["outputs"][0]["value"] == "hello after 2.0 s", run
    assert waited < WOKEN_WITHIN, f"answered after {waited:.1f} s: by the deadline, not the event"


def test_an_event_stream_on_another_replica_follows_the_run_to_its_end(system: Any) -> None:
    with _replica(system, 1) as one, _replica(system, 2) as two:
        workflow_id = register(one, NAP_THEN_SAY)
        started = one.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {"x": "hi"}},
            headers={"Prefer": "respond-async"},
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["runId"]
        t0 = time.monotonic()
        events: list[tuple[str, dict[str, Any]]] = []
        with two.stream("GET", f"/v1/runs/{run_id}/events") as response:
            assert response.status_code == 200
            name = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    events.append((name, json.loads(line.removeprefix("data:"))))
        followed = time.monotonic() - t0
    names = [name for name, _ in events]
    assert "step.succeeded" in names, names
    assert "run.completed" in names, names
    assert names[-1] == "run"
    assert events[-1][1]["status"] == "completed"
    assert followed < WOKEN_WITHIN, f"the stream ended after {followed:.1f} s"
