"""Failing a run from outside its steps (a message about it could not be processed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflow.definition import WorkflowDefinition
from workflow.run import (
    NotifyParent,
    PublishRunEvent,
    RunError,
    fail_run,
    new_run_state,
    start_run,
)
from workflow.state import RunStatus, StepStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POISON = RunError(code="poison_message", message="step.succeeded could not be processed: boom")
WAITS = WorkflowDefinition.model_validate(
    {
        "name": "t",
        "nodes": [{"id": "pause", "type": "wait", "params": {"seconds": 60}}],
        "outputs": {},
    }
)


def test_a_queued_run_fails_with_the_error_and_publishes_its_end() -> None:
    run = new_run_state("run_1", WAITS, {})
    decision = fail_run(run, POISON, T0)
    assert decision.state.status is RunStatus.FAILED
    assert decision.state.error == POISON
    assert decision.state.revision == run.revision + 1
    assert decision.state.completed_at == T0
    assert decision.effects == (PublishRunEvent("failed"),)


def test_a_running_run_fails_and_its_unfinished_steps_are_canceled() -> None:
    run = start_run(WAITS, new_run_state("run_1", WAITS, {}), T0).state
    decision = fail_run(run, POISON, T0 + timedelta(seconds=1))
    assert decision.state.status is RunStatus.FAILED
    assert decision.state.steps["pause"].status is StepStatus.CANCELED


def test_a_child_run_that_fails_tells_its_parent() -> None:
    run = new_run_state(
        "run_child", WAITS, {}, parent_run_id="run_p", parent_node_id="n", parent_attempt=2
    )
    effects = fail_run(run, POISON, T0).effects
    (notify,) = [e for e in effects if isinstance(e, NotifyParent)]
    assert notify.parent_run_id == "run_p"
    assert notify.status is RunStatus.FAILED
    assert notify.error == POISON


def test_a_run_that_has_ended_is_left_as_it_is() -> None:
    failed = fail_run(new_run_state("run_1", WAITS, {}), POISON, T0).state
    again = fail_run(failed, RunError(code="other", message="x"), T0)
    assert again.state is failed
    assert again.effects == ()
