"""The services' logs, read from the files the e2e services write (`system.logs`): JSON lines,
the run's context on each of its lines, no secret anywhere."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import register
from e2e_receiver import Receiver

pytestmark = pytest.mark.e2e

SERVICES = ("ingress", "orchestrator", "executor", "notifier")
TWO_NODES = {
    "name": "two steps",
    "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
    "nodes": [
        {"id": "first", "type": "text.template", "params": {"template": "hi {{ inputs.x }}"}},
        {
            "id": "second",
            "type": "text.template",
            "params": {"template": "{{ nodes.first.text }}!"},
        },
    ],
    "outputs": {"text": "{{ nodes.second.text }}"},
}


def _new_lines(logs: Path, offsets: dict[str, int]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in SERVICES:
        with (logs / f"{name}.log").open("rb") as f:
            f.seek(offsets[name])
            out[name] = f.read().decode(errors="replace").splitlines()
    return out


def _of_run(lines: list[str], run_id: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in lines if run_id in line]
    return [p for p in parsed if p.get("runId") == run_id]


def test_a_runs_lines_are_json_with_its_run_tenant_node_and_trace_and_no_secret(
    system: Any,
) -> None:
    logs: Path = system.logs
    offsets = {n: (logs / f"{n}.log").stat().st_size for n in SERVICES}
    token = "tok-" + secrets.token_hex(12)
    receiver = Receiver()
    try:
        with system.client() as c:
            workflow_id = register(c, TWO_NODES)
            r = c.post(
                f"/v1/workflows/{workflow_id}/run",
                json={"inputs": {"x": "logs"}, "webhook": f"{receiver.url}/hook?token={token}"},
            )
            assert r.status_code == 200, r.text
            run = r.json()
        run_id = run["runId"]
        assert run["status"] == "completed"

        def complete() -> bool:
            got = _new_lines(logs, offsets)
            orchestrated = {p.get("event") for p in _of_run(got["orchestrator"], run_id)}
            notified = {p.get("event") for p in _of_run(got["notifier"], run_id)}
            return "run.completed" in orchestrated and "webhook.attempt" in notified

        assert receiver.wait_for(complete, timeout=30), _new_lines(logs, offsets)
    finally:
        receiver.close()

    got = _new_lines(logs, offsets)
    # Every line every service wrote meanwhile is one JSON object with the base fields.
    for name, lines in got.items():
        for line in lines:
            try:
                fields = json.loads(line)
            except ValueError:
                pytest.fail(f"{name} wrote a line that is not JSON: {line!r}")
            assert {"time", "level", "logger", "message"} <= set(fields), (name, line)

    orchestrator = _of_run(got["orchestrator"], run_id)
    executor = _of_run(got["executor"], run_id)
    notifier = _of_run(got["notifier"], run_id)
    # One trace id for the run, on every line of it in every service.
    trace_ids = {p.get("traceId") for p in orchestrator + executor + notifier}
    assert len(trace_ids) == 1, trace_ids
    assert len(next(iter(trace_ids)) or "") == 32
    assert {p.get("tenantId") for p in orchestrator + executor + notifier} == {"e2e"}

    # The orchestrator: one line per run transition and step result, with durations.
    events = [p["event"] for p in orchestrator if "event" in p]
    assert events == ["run.started", "step.succeeded", "step.succeeded", "run.completed"]
    steps = [p for p in orchestrator if p.get("event") == "step.succeeded"]
    assert [p["nodeId"] for p in steps] == ["first", "second"]
    assert all(isinstance(p["durationMs"], int) for p in steps)
    (done,) = [p for p in orchestrator if p.get("event") == "run.completed"]
    assert isinstance(done["durationMs"], int)
    assert done["message"].startswith("run completed in ")
    assert all("nodeId" not in p for p in orchestrator if p.get("event", "").startswith("run."))
    # The executor: its lines of a step name the step.
    assert {p.get("nodeId") for p in executor} == {"first", "second"}

    # No secret: not the caller's API key, the admin key, nor the webhook URL's query string.
    everything = "\n".join(line for lines in got.values() for line in lines)
    assert system.key not in everything
    assert system.env["ADMIN_API_KEY"] not in everything
    assert token not in everything
    assert "X-Amz-Signature=" not in everything.replace("X-Amz-Signature=[redacted]", "")
