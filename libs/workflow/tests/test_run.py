from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from workflow.definition import WorkflowDefinition
from workflow.run import (
    Decision,
    DispatchStep,
    PublishRunEvent,
    RunState,
    StepError,
    cancel_run,
    new_run_state,
    start_run,
    step_failed,
    step_succeeded,
)
from workflow.state import RunStatus, StepStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
T2 = T0 + timedelta(seconds=2)
T3 = T0 + timedelta(seconds=3)
T4 = T0 + timedelta(seconds=4)

INPUTS = {"prompt": "Studio portrait"}


@pytest.fixture
def defn(studio_portrait: dict[str, Any]) -> WorkflowDefinition:
    """render → warm → (square, story): a diamond below warm."""
    return WorkflowDefinition.model_validate(studio_portrait)


@pytest.fixture
def started(defn: WorkflowDefinition) -> RunState:
    return start_run(defn, new_run_state("run_1", defn, INPUTS), T0).state


def image(name: str) -> dict[str, Any]:
    ref = f"s3://outputs/runs/run_1/{name}/1/image.png"
    if name == "render":  # image.generate also lists its images and who made them
        return {"image": ref, "images": [ref], "provider": {"name": "offline"}}
    return {"image": ref}


def dispatched(decision: Decision) -> dict[str, DispatchStep]:
    return {e.node_id: e for e in decision.effects if isinstance(e, DispatchStep)}


def events(decision: Decision) -> list[str]:
    return [e.kind for e in decision.effects if isinstance(e, PublishRunEvent)]


def succeed(defn: WorkflowDefinition, run: RunState, *names: str) -> RunState:
    for name in names:
        run = step_succeeded(defn, run, name, 1, image(name), T1).state
    return run


def test_new_run_is_queued_with_every_node_pending(defn: WorkflowDefinition) -> None:
    run = new_run_state("run_1", defn, INPUTS)

    assert run.status is RunStatus.QUEUED
    assert run.revision == 0
    assert {n: s.status for n, s in run.steps.items()} == dict.fromkeys(
        ["render", "warm", "square", "story"], StepStatus.PENDING
    )


def test_start_publishes_started_and_dispatches_roots_with_resolved_params(
    defn: WorkflowDefinition,
) -> None:
    run = new_run_state("run_1", defn, INPUTS)

    decision = start_run(defn, run, T0)

    assert decision.state.status is RunStatus.RUNNING
    assert decision.state.started_at == T0
    assert decision.state.revision == 1
    assert events(decision) == ["started"]
    assert decision.effects[0] == PublishRunEvent("started")
    (dispatch,) = dispatched(decision).values()
    assert dispatch.node_id == "render"
    assert dispatch.node_type == "image.generate"
    assert dispatch.attempt == 1
    assert dispatch.params["prompt"] == "Studio portrait"
    assert dispatch.params["width"] == 768
    assert dispatch.params["quality"] == "high"  # defaults filled in
    render = decision.state.steps["render"]
    assert (render.status, render.attempt, render.dispatched_at) == (StepStatus.DISPATCHED, 1, T0)


def test_independent_roots_are_all_dispatched_at_start() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            "name": "two",
            "nodes": [
                {"id": "a", "type": "text.template", "params": {"template": "a"}},
                {"id": "b", "type": "text.template", "params": {"template": "b"}},
            ],
            "outputs": {"ab": "{{ nodes.a.text }}{{ nodes.b.text }}"},
        }
    )

    decision = start_run(defn, new_run_state("r", defn, {}), T0)

    assert set(dispatched(decision)) == {"a", "b"}


def test_start_of_a_started_run_changes_nothing(
    defn: WorkflowDefinition, started: RunState
) -> None:
    decision = start_run(defn, started, T1)

    assert decision.state is started
    assert decision.effects == ()


def test_diamond_dispatches_both_branches_at_once(
    defn: WorkflowDefinition, started: RunState
) -> None:
    run = succeed(defn, started, "render")

    decision = step_succeeded(defn, run, "warm", 1, image("warm"), T2)

    assert set(dispatched(decision)) == {"square", "story"}
    assert dispatched(decision)["square"].params["image"] == image("warm")["image"]
    assert dispatched(decision)["story"].params["height"] == 960
    assert decision.state.revision == run.revision + 1
    assert events(decision) == []


def test_step_success_records_outputs_and_time(defn: WorkflowDefinition, started: RunState) -> None:
    decision = step_succeeded(defn, started, "render", 1, image("render"), T1)

    render = decision.state.steps["render"]
    assert render.status is StepStatus.SUCCEEDED
    assert render.outputs == image("render")
    assert render.finished_at == T1
    assert set(dispatched(decision)) == {"warm"}


def test_a_node_waits_until_all_its_dependencies_succeed() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            "name": "join",
            "nodes": [
                {"id": "a", "type": "text.template", "params": {"template": "a"}},
                {"id": "b", "type": "text.template", "params": {"template": "b"}},
                {
                    "id": "j",
                    "type": "text.template",
                    "params": {"template": "{{ nodes.a.text }}+{{ nodes.b.text }}"},
                },
            ],
            "outputs": {"joined": "{{ nodes.j.text }}"},
        }
    )
    run = start_run(defn, new_run_state("r", defn, {}), T0).state

    after_a = step_succeeded(defn, run, "a", 1, {"text": "A"}, T1)
    after_b = step_succeeded(defn, after_a.state, "b", 1, {"text": "B"}, T2)

    assert dispatched(after_a) == {}
    assert dispatched(after_b)["j"].params == {"template": "A+B"}


def test_duplicate_step_succeeded_changes_nothing_and_emits_nothing(
    defn: WorkflowDefinition, started: RunState
) -> None:
    once = step_succeeded(defn, started, "render", 1, image("render"), T1)

    twice = step_succeeded(defn, once.state, "render", 1, image("render"), T2)

    assert twice.state is once.state
    assert twice.effects == ()


def test_stale_attempt_is_ignored(defn: WorkflowDefinition, started: RunState) -> None:
    assert step_succeeded(defn, started, "render", 0, image("render"), T1).state is started
    assert step_succeeded(defn, started, "render", 2, image("render"), T1).state is started
    stale_failure = step_failed(defn, started, "render", 7, StepError(code="x", message="y"), T1)
    assert stale_failure.state is started
    assert stale_failure.effects == ()


def test_events_for_steps_not_dispatched_are_ignored(
    defn: WorkflowDefinition, started: RunState
) -> None:
    assert step_succeeded(defn, started, "warm", 1, image("warm"), T1).state is started
    assert step_succeeded(defn, started, "ghost", 1, image("ghost"), T1).state is started


def test_step_events_before_the_run_started_are_ignored(defn: WorkflowDefinition) -> None:
    queued = new_run_state("run_1", defn, INPUTS)

    assert step_succeeded(defn, queued, "render", 1, image("render"), T1).state is queued


def test_run_completes_with_resolved_outputs_exactly_once(
    defn: WorkflowDefinition, started: RunState
) -> None:
    run = succeed(defn, started, "render", "warm", "square")

    done = step_succeeded(defn, run, "story", 1, image("story"), T4)
    again = step_succeeded(defn, done.state, "story", 1, image("story"), T4)

    assert done.state.status is RunStatus.COMPLETED
    assert done.state.outputs == {
        "square": image("square")["image"],
        "story": image("story")["image"],
    }
    assert done.state.completed_at == T4
    assert done.effects == (PublishRunEvent("completed"),)
    assert done.state.revision == started.revision + 4
    assert again.state is done.state
    assert again.effects == ()


def test_outputs_keep_types_and_interpolate_text() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            "name": "t",
            "nodes": [{"id": "a", "type": "text.template", "params": {"template": "x"}}],
            "outputs": {"raw": "{{ inputs.n }}", "text": "n={{ inputs.n }} {{ nodes.a.text }}"},
        }
    )
    run = start_run(defn, new_run_state("r", defn, {"n": 3}), T0).state

    done = step_succeeded(defn, run, "a", 1, {"text": "x"}, T1)

    assert done.state.outputs == {"raw": 3, "text": "n=3 x"}


def test_output_resolution_error_fails_the_run() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            "name": "t",
            "nodes": [{"id": "a", "type": "text.template", "params": {"template": "x"}}],
            "outputs": {"o": "{{ inputs.missing }}"},
        }
    )
    run = start_run(defn, new_run_state("r", defn, {}), T0).state

    done = step_succeeded(defn, run, "a", 1, {"text": "x"}, T1)

    assert done.state.status is RunStatus.FAILED
    assert done.state.error is not None
    assert done.state.error.code == "outputs_unresolvable"
    assert "inputs.missing" in done.state.error.message
    assert done.effects == (PublishRunEvent("failed"),)


def test_step_failure_fails_the_run_naming_the_node(
    defn: WorkflowDefinition, started: RunState
) -> None:
    run = succeed(defn, started, "render", "warm")
    error = StepError(code="decode_error", message="cannot decode image")

    decision = step_failed(defn, run, "square", 1, error, T3)

    state = decision.state
    assert state.status is RunStatus.FAILED
    assert state.error is not None
    assert state.error.node_id == "square"
    assert state.error.code == "step_failed"
    assert state.error.message == "node 'square' (image.resize) failed: cannot decode image"
    assert state.completed_at == T3
    assert state.steps["square"].status is StepStatus.FAILED
    assert state.steps["square"].error == error
    assert state.steps["story"].status is StepStatus.CANCELED
    assert state.steps["render"].status is StepStatus.SUCCEEDED
    assert decision.effects == (PublishRunEvent("failed"),)
    assert state.revision == run.revision + 1


def test_pending_steps_are_canceled_when_a_step_fails(
    defn: WorkflowDefinition, started: RunState
) -> None:
    decision = step_failed(defn, started, "render", 1, StepError(code="x", message="boom"), T1)

    assert {n: s.status for n, s in decision.state.steps.items()} == {
        "render": StepStatus.FAILED,
        "warm": StepStatus.CANCELED,
        "square": StepStatus.CANCELED,
        "story": StepStatus.CANCELED,
    }
    assert dispatched(decision) == {}


def test_success_without_a_declared_output_fails_the_step(
    defn: WorkflowDefinition, started: RunState
) -> None:
    decision = step_succeeded(defn, started, "render", 1, {"img": "s3://x/y"}, T1)

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.steps["render"].error is not None
    assert decision.state.steps["render"].error.code == "missing_outputs"


def test_unresolvable_params_at_dispatch_fail_the_run_naming_the_node() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            "name": "t",
            "nodes": [
                {"id": "ok", "type": "text.template", "params": {"template": "fine"}},
                {"id": "gen", "type": "image.generate", "params": {"prompt": "{{ inputs.nope }}"}},
            ],
            "outputs": {"o": "{{ nodes.gen.image }}"},
        }
    )

    decision = start_run(defn, new_run_state("r", defn, {}), T0)

    state = decision.state
    assert state.status is RunStatus.FAILED
    assert state.error is not None
    assert state.error.node_id == "gen"
    assert state.error.code == "params_unresolvable"
    assert "'gen'" in state.error.message
    assert state.steps["gen"].status is StepStatus.FAILED
    assert state.steps["ok"].status is StepStatus.CANCELED  # its dispatch is never sent
    assert decision.effects == (PublishRunEvent("started"), PublishRunEvent("failed"))
    assert state.revision == 1


def test_invalid_resolved_params_fail_the_run() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            "name": "t",
            "nodes": [
                {
                    "id": "r",
                    "type": "image.resize",
                    "params": {
                        "image": "{{ inputs.asset }}",
                        "width": "{{ inputs.w }}",
                        "height": 10,
                    },
                }
            ],
            "outputs": {"o": "{{ nodes.r.image }}"},
        }
    )
    run = new_run_state("r", defn, {"asset": "s3://bucket/a.png", "w": "wide"})

    decision = start_run(defn, run, T0)

    assert decision.state.error is not None
    assert decision.state.error.code == "params_invalid"
    assert "/params/width" in decision.state.error.message


def test_unknown_node_type_at_dispatch_fails_the_run() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            "name": "t",
            "nodes": [{"id": "a", "type": "image.blur"}],
            "outputs": {"o": "{{ nodes.a.image }}"},
        }
    )

    decision = start_run(defn, new_run_state("r", defn, {}), T0)

    assert decision.state.error is not None
    assert decision.state.error.code == "unknown_node_type"


def test_cancel_cancels_unfinished_steps_and_publishes(
    defn: WorkflowDefinition, started: RunState
) -> None:
    run = succeed(defn, started, "render")

    decision = cancel_run(run, T2)

    assert decision.state.status is RunStatus.CANCELED
    assert decision.state.completed_at == T2
    assert decision.effects == (PublishRunEvent("canceled"),)
    assert decision.state.revision == run.revision + 1
    assert {n: s.status for n, s in decision.state.steps.items()} == {
        "render": StepStatus.SUCCEEDED,
        "warm": StepStatus.CANCELED,
        "square": StepStatus.CANCELED,
        "story": StepStatus.CANCELED,
    }


def test_a_queued_run_can_be_canceled(defn: WorkflowDefinition) -> None:
    decision = cancel_run(new_run_state("r", defn, {}), T0)

    assert decision.state.status is RunStatus.CANCELED
    assert start_run(defn, decision.state, T1).state is decision.state


def test_cancel_on_a_terminal_run_changes_nothing(
    defn: WorkflowDefinition, started: RunState
) -> None:
    canceled = cancel_run(started, T1).state
    failed = step_failed(defn, started, "render", 1, StepError(code="x", message="y"), T1).state

    for run in (canceled, failed):
        decision = cancel_run(run, T2)
        assert decision.state is run
        assert decision.effects == ()


def test_results_after_cancel_are_ignored(defn: WorkflowDefinition, started: RunState) -> None:
    canceled = cancel_run(started, T1).state

    decision = step_succeeded(defn, canceled, "render", 1, image("render"), T2)

    assert decision.state is canceled
    assert decision.effects == ()


def test_run_state_round_trips_through_camel_case_json(
    defn: WorkflowDefinition, started: RunState
) -> None:
    run = succeed(defn, started, "render")

    document = run.model_dump(mode="json", by_alias=True)

    assert document["runId"] == "run_1"
    assert document["steps"]["render"]["finishedAt"] == "2026-01-01T00:00:01Z"
    assert RunState.model_validate(document) == run
    assert RunState.model_validate({**document, "addedLater": 1}) == run


def test_a_run_from_another_definition_is_a_programming_error(
    defn: WorkflowDefinition, started: RunState
) -> None:
    other = WorkflowDefinition.model_validate(
        {"name": "o", "nodes": [{"id": "x", "type": "text.template"}]}
    )

    with pytest.raises(KeyError, match="render"):
        step_succeeded(other, started, "render", 1, image("render"), T1)
