"""A StepFailed event's error, as the orchestrator folds it into the run (no servers needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from orchestrator.service import step_error
from runview import load_view, to_resource
from storage.runs import RunRecord
from workflow.definition import WorkflowDefinition
from workflow.run import RunState, new_run_state, start_run, step_failed
from workflow.state import StepStatus

from contracts import events as ev

T0 = datetime(2026, 1, 1, tzinfo=UTC)

FLAKY_PROVIDER = WorkflowDefinition.model_validate(
    {
        "name": "one",
        "nodes": [
            {
                "id": "draw",
                "type": "text.template",
                "params": {"template": "x"},
                "retry": {"maxAttempts": 3, "backoff": {"initialSeconds": 1, "maxSeconds": 60}},
            }
        ],
        "outputs": {"text": "{{ nodes.draw.text }}"},
    }
)


def _failed(error: dict[str, object]) -> ev.StepFailed:
    """The event as it arrives on the wire (camelCase JSON)."""
    wire = {
        "runId": "run_1",
        "nodeId": "draw",
        "attempt": 1,
        "error": error,
        "startedAt": "2026-01-01T00:00:00Z",
        "finishedAt": "2026-01-01T00:00:01Z",
    }
    return ev.StepFailed.model_validate_json(json.dumps(wire))


def _record(state: RunState) -> RunRecord:
    return RunRecord(
        run_id=state.run_id,
        tenant_id="t",
        workflow_id="w",
        workflow_version=1,
        status=state.status.value,
        revision=state.revision,
        created_at=T0,
        state_json=state.model_dump_json(exclude_defaults=True),  # as the orchestrator stores it
    )


def test_retry_after_of_a_step_failed_event_reaches_the_stored_run_and_its_view() -> None:
    event = _failed(
        {"code": "rate_limited", "message": "429", "retryable": True, "retryAfterSeconds": 30}
    )
    run = start_run(FLAKY_PROVIDER, new_run_state("run_1", FLAKY_PROVIDER, {}), T0).state
    now = T0 + timedelta(seconds=1)

    decision = step_failed(FLAKY_PROVIDER, run, "draw", 1, step_error(event.error), now)
    view = load_view(_record(decision.state))
    resource = to_resource(view, FLAKY_PROVIDER, None).model_dump(mode="json", by_alias=True)

    stored = view.state.steps["draw"]
    assert stored.status is StepStatus.RETRYING
    assert stored.error is not None
    assert stored.error.retry_after_seconds == 30
    assert stored.next_attempt_at == now + timedelta(seconds=30)
    (step,) = resource["steps"]
    assert step["error"]["retryAfterSeconds"] == 30
    assert step["attempts"][0]["error"]["retryAfterSeconds"] == 30
    assert step["nextAttemptAt"] == "2026-01-01T00:00:31Z"


def test_a_step_failed_event_without_retry_after_keeps_the_backoff() -> None:
    event = _failed({"code": "unavailable", "message": "503", "retryable": True})
    run = start_run(FLAKY_PROVIDER, new_run_state("run_1", FLAKY_PROVIDER, {}), T0).state
    now = T0 + timedelta(seconds=1)

    decision = step_failed(FLAKY_PROVIDER, run, "draw", 1, step_error(event.error), now)

    step = decision.state.steps["draw"]
    assert step.error is not None
    assert step.error.retry_after_seconds is None
    assert step.next_attempt_at == now + timedelta(seconds=1)
