"""Traces end to end: the services export OTLP/HTTP to the session's receiver (conftest.py);
one run is one trace, from the HTTP request through every Kafka hop to the webhook."""

from __future__ import annotations

import secrets
import time

import pytest
from e2e_helpers import register
from e2e_otlp import OtlpReceiver, Span
from e2e_receiver import Receiver

from conftest import System

pytestmark = pytest.mark.e2e

TWO_NODES = {
    "name": "two steps",
    "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
    "nodes": [
        {"id": "first", "type": "text.template", "params": {"template": "a {{ inputs.x }}"}},
        {
            # An image is written to S3: its request is a span of the trace too.
            "id": "second",
            "type": "image.generate",
            "params": {"prompt": "{{ nodes.first.text }} b", "width": 64, "height": 64},
        },
    ],
    "outputs": {"image": "{{ nodes.second.image }}"},
}


def _wait_for_spans(
    otlp: OtlpReceiver, trace_id: str, caller_span: str, timeout: float = 30
) -> list[Span]:
    """The trace's spans once the webhook attempt and both node executions are in it, every
    service has exported, and every span's parent has arrived (services export in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = otlp.trace(trace_id)
        names = [s.name for s in spans]
        ids = {s.span_id for s in spans} | {caller_span}
        done = (
            "webhook attempt" in names
            and "node text.template" in names
            and "node image.generate" in names
            and {"ingress", "orchestrator", "executor", "notifier"} <= {s.service for s in spans}
            and all(s.parent_span_id in ids for s in spans)
        )
        if done or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def test_one_run_is_one_trace_from_the_request_to_the_webhook(
    system: System, otlp: OtlpReceiver
) -> None:
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    receiver = Receiver()
    try:
        with system.client() as c:
            workflow_id = register(c, TWO_NODES)
            r = c.post(
                f"/v1/workflows/{workflow_id}/run",
                json={"inputs": {"x": "z"}, "webhook": receiver.url + "/hook"},
                headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "completed"
        assert receiver.wait_for(lambda: bool(receiver.calls("/hook")))
        spans = _wait_for_spans(otlp, trace_id, caller_span)
    finally:
        receiver.close()

    # The webhook request carries the run's trace, so its receiver can join it.
    [call] = receiver.calls("/hook")
    traceparent = {k.lower(): v for k, v in call.headers.items()}["traceparent"]
    assert traceparent.split("-")[1] == trace_id

    # Every service took part in the one trace the caller's `traceparent` started.
    by_service = {s.service for s in spans}
    assert {"ingress", "orchestrator", "executor", "notifier"} <= by_service, by_service
    names = {(s.service, s.name) for s in spans}
    assert ("notifier", "webhook attempt") in names
    assert {s.service for s in spans if s.name.startswith("node ")} == {"executor"}
    assert any(s.service == "ingress" and s.kind == 2 for s in spans)  # the HTTP server span
    nodes = {s.attributes.get("workflow.node_id") for s in spans if s.name.startswith("node ")}
    assert nodes == {"first", "second"}
    # MongoDB commands (PyMongo's command monitoring) and S3 requests (urllib3, under minio).
    for service in ("ingress", "orchestrator"):
        assert any(
            s.service == service and s.attributes.get("db.system") == "mongodb" for s in spans
        ), service
    s3 = [s for s in spans if s.service == "executor" and s.name == "PUT" and s.kind == 3]
    assert s3, sorted(names)
    # Kafka publishes and consumes of each service: producer (4) and consumer (5) spans.
    for service in ("ingress", "orchestrator", "executor"):
        assert any(s.service == service and s.kind == 4 for s in spans), service
    for service in ("orchestrator", "executor", "notifier"):
        assert any(s.service == service and s.kind == 5 for s in spans), service

    # Parent links: each span's parent is in the trace, but for the request's server span,
    # whose parent is the caller's.
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_span_id not in ids]
    assert roots, spans
    assert {(s.service, s.parent_span_id) for s in roots} == {("ingress", caller_span)}, roots


def test_a_child_run_and_map_items_are_in_their_parents_trace(
    system: System, otlp: OtlpReceiver
) -> None:
    child = {
        "name": "child",
        "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        "nodes": [
            {"id": "say", "type": "text.template", "params": {"template": "c {{ inputs.x }}"}}
        ],
        "outputs": {"text": "{{ nodes.say.text }}"},
    }
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    with system.client() as c:
        child_id = register(c, child)
        parent = {
            "name": "parent",
            "inputSchema": {"type": "object", "properties": {"xs": {"type": "array"}}},
            "nodes": [
                {
                    "id": "each",
                    "type": "map",
                    "params": {
                        "items": "{{ inputs.xs }}",
                        "node": {"type": "text.template", "params": {"template": "{{ item }}!"}},
                    },
                },
                {
                    "id": "child",
                    "type": "workflow.run",
                    "params": {"workflowId": child_id, "inputs": {"x": "from parent"}},
                },
            ],
            "outputs": {"text": "{{ nodes.child.text }}"},
        }
        parent_id = register(c, parent)
        r = c.post(
            f"/v1/workflows/{parent_id}/run",
            json={"inputs": {"xs": ["a", "b", "c"]}},
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
        assert r.status_code == 200, r.text
        run = r.json()
        assert run["status"] == "completed", run
        child_run = next(s["childRunId"] for s in run["steps"] if s["nodeId"] == "child")

    def spans_of_both_runs() -> list[Span]:
        deadline = time.monotonic() + 30
        while True:
            spans = otlp.trace(trace_id)
            runs = {s.attributes.get("workflow.run_id") for s in spans}
            items = [
                s for s in spans if s.attributes.get("workflow.node_id", "").startswith("each[")
            ]
            if (
                {run["runId"], child_run} <= runs and len(items) >= 3
            ) or time.monotonic() > deadline:
                return spans
            time.sleep(0.1)

    spans = spans_of_both_runs()
    # Every node execution of the parent, its map items and its child run is in one trace.
    nodes = {
        (s.attributes.get("workflow.run_id"), s.attributes.get("workflow.node_id"))
        for s in spans
        if s.name.startswith("node ")
    }
    assert {(run["runId"], f"each[{i}]") for i in range(3)} <= nodes, nodes
    assert (child_run, "say") in nodes, nodes
