"""Limits the run state machine enforces while a run goes: resolved values, maps, children,
outputs and the run's whole state. Each refusal fails cleanly and names its limit."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from workflow.definition import WorkflowDefinition
from workflow.limits import Limits
from workflow.run import (
    DEFAULT_LIMITS,
    Decision,
    DispatchStep,
    NotifyParent,
    PublishRunEvent,
    RunState,
    StartChildRun,
    StepError,
    Timer,
    children_started,
    json_size,
    new_run_state,
    run_too_large,
    start_run,
    step_failed,
    step_succeeded,
    timer_fired,
)
from workflow.state import RunStatus, StepStatus
from workflow.template import ValueTooLarge, resolve

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RUN_ID = "run_0190a1b2c3d4" + "e5f6a7b8c9d0e1f2"


def limits(**changes: Any) -> Limits:
    # model_copy, not Limits(...): the test must not depend on the environment.
    return DEFAULT_LIMITS.model_copy(update=changes)


def workflow(*nodes: dict[str, Any], outputs: dict[str, str] | None = None) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {"name": "t", "nodes": list(nodes), "outputs": outputs or {}}
    )


def dispatches(decision: Decision) -> list[DispatchStep]:
    return [e for e in decision.effects if isinstance(e, DispatchStep)]


def children(decision: Decision) -> list[StartChildRun]:
    return [e for e in decision.effects if isinstance(e, StartChildRun)]


def start(defn: WorkflowDefinition, inputs: dict[str, Any], bounds: Limits) -> Decision:
    return start_run(defn, new_run_state(RUN_ID, defn, inputs), T0, limits=bounds)


def text(node_id: str, template: str) -> dict[str, Any]:
    return {"id": node_id, "type": "text.template", "params": {"template": template}}


# --- resolved values ---------------------------------------------------------------------------


def test_resolution_stops_at_the_limit_however_many_references_point_at_a_large_value() -> None:
    big = "x" * 900_000
    # 80,000 references to a 900 KB value: 72 GB if built before measuring.
    interpolated = "{{ inputs.big }}" * 80_000
    whole = ["{{ inputs.big }}"] * 80_000

    with pytest.raises(ValueTooLarge):
        resolve({"text": interpolated}, {"inputs": {"big": big}}, max_bytes=256 * 1024)
    with pytest.raises(ValueTooLarge):
        resolve({"list": whole}, {"inputs": {"big": big}}, max_bytes=256 * 1024)


def test_resolution_stops_inside_a_huge_referenced_container() -> None:
    many = list(range(10_000_000))
    with pytest.raises(ValueTooLarge):
        resolve("{{ inputs.many }}", {"inputs": {"many": many}}, max_bytes=1024)


def test_resolution_under_the_limit_is_unchanged() -> None:
    context = {"inputs": {"name": "Ada", "tags": ["a", "b"], "n": 3}}
    value = {"greeting": "hi {{ inputs.name }} {{ inputs.tags }}", "n": "{{ inputs.n }}"}

    bounded = resolve(value, context, max_bytes=json_size(resolve(value, context)))

    assert bounded == resolve(value, context) == {"greeting": 'hi Ada ["a","b"]', "n": 3}


def test_a_step_whose_params_resolve_over_the_limit_fails_before_dispatch() -> None:
    defn = workflow(text("say", "{{ inputs.big }}{{ inputs.big }}"))
    decision = start(defn, {"big": "y" * 3000}, limits(max_resolved_value_bytes=4096))

    assert dispatches(decision) == []
    assert decision.state.status is RunStatus.FAILED
    step = decision.state.steps["say"]
    assert step.status is StepStatus.FAILED
    assert step.error is not None
    assert step.error.code == "value_too_large"
    error = decision.state.error
    assert error is not None
    assert error.code == "value_too_large"
    assert "the limit MAX_RESOLVED_VALUE_BYTES (4096)" in error.message


def test_the_exact_size_counts_json_escapes_the_estimate_skips() -> None:
    # 1,500 quotes: 1,500 bytes estimated, 3,000 once escaped in JSON.
    defn = workflow(text("say", "{{ inputs.quotes }}"))
    decision = start(defn, {"quotes": '"' * 1500}, limits(max_resolved_value_bytes=2048))

    assert dispatches(decision) == []
    assert decision.state.error is not None
    assert decision.state.error.code == "value_too_large"


def test_a_wait_resolved_longer_than_the_limit_fails_before_its_timer() -> None:
    defn = workflow({"id": "pause", "type": "wait", "params": {"seconds": "{{ inputs.s }}"}})
    decision = start(defn, {"s": 7200}, limits(max_wait_node_seconds=3600))

    assert decision.state.status is RunStatus.FAILED
    error = decision.state.error
    assert error is not None
    assert error.code == "wait_too_long"
    assert "the limit MAX_WAIT_NODE_SECONDS (3600" in error.message


# --- map ---------------------------------------------------------------------------------------

MAP = workflow(
    {
        "id": "each",
        "type": "map",
        "params": {
            "items": "{{ inputs.words }}",
            "concurrency": 8,
            "node": {"type": "text.template", "params": {"template": "{{ item }}!"}},
        },
    },
    outputs={"texts": "{{ nodes.each.results }}"},
)


def test_a_map_over_more_items_than_the_limit_fails_before_any_item_starts() -> None:
    decision = start(MAP, {"words": ["w"] * 6}, limits(max_map_items=5))

    assert dispatches(decision) == []
    assert decision.state.status is RunStatus.FAILED
    error = decision.state.error
    assert error is not None
    assert error.code == "map_too_large"
    assert "map over 6 items" in error.message
    assert "the limit MAX_MAP_ITEMS (5)" in error.message
    assert decision.state.steps["each"].items is None


def test_a_map_at_the_item_limit_starts() -> None:
    decision = start(MAP, {"words": ["w"] * 5}, limits(max_map_items=5))

    assert decision.state.status is RunStatus.RUNNING
    assert len(dispatches(decision)) == 5


def test_a_map_runs_no_more_items_at_once_than_the_concurrency_limit() -> None:
    decision = start(MAP, {"words": ["w"] * 20}, limits(max_map_concurrency=3))

    assert decision.state.steps["each"].concurrency == 3
    assert [d.node_id for d in dispatches(decision)] == ["each[0]", "each[1]", "each[2]"]
    done = step_succeeded(
        MAP, decision.state, "each[0]", 1, {"text": "w!"}, T0, limits=limits(max_map_concurrency=3)
    )
    assert [d.node_id for d in dispatches(done)] == ["each[3]"]


def test_map_items_whose_resolved_list_is_over_the_value_limit_fail_the_map() -> None:
    decision = start(MAP, {"words": ["w" * 100] * 50}, limits(max_resolved_value_bytes=1024))

    assert dispatches(decision) == []
    assert decision.state.error is not None
    assert decision.state.error.code == "value_too_large"


def test_a_map_item_reporting_outputs_over_the_limit_fails_the_map_and_the_run() -> None:
    bounds = limits(max_step_output_bytes=1024)
    run = start(MAP, {"words": ["a", "b"]}, bounds).state

    decision = step_succeeded(MAP, run, "each[1]", 1, {"text": "z" * 2000}, T0, limits=bounds)

    assert decision.state.status is RunStatus.FAILED
    item = (decision.state.steps["each"].items or [])[1]
    assert item.status is StepStatus.FAILED
    assert item.error is not None
    assert item.error.code == "outputs_too_large"
    error = decision.state.error
    assert error is not None
    assert error.code == "outputs_too_large"
    assert "the limit MAX_STEP_OUTPUT_BYTES (1024)" in error.message


# --- child runs --------------------------------------------------------------------------------


def child(node_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "workflow.run", "params": {"workflowId": "leaf"}, **extra}


def test_a_run_starting_more_children_than_the_limit_fails_and_starts_none_of_them() -> None:
    defn = workflow(child("a"), child("b"), child("c"))
    decision = start(defn, {}, limits(max_children_per_run=2))

    # A decision that fails the run keeps nothing it started (so no child is created).
    assert children(decision) == []
    assert decision.state.status is RunStatus.FAILED
    step = decision.state.steps["c"]
    assert step.error is not None
    assert step.error.code == "children_exceeded"
    error = decision.state.error
    assert error is not None
    assert error.code == "children_exceeded"
    assert "the limit MAX_CHILDREN_PER_RUN (2)" in error.message


def test_children_at_the_limit_start() -> None:
    defn = workflow(child("a"), child("b"))
    decision = start(defn, {}, limits(max_children_per_run=2))

    assert [c.node_id for c in children(decision)] == ["a", "b"]
    assert children_started(decision.state) == 2


def test_retries_of_a_child_run_count_towards_the_children_limit() -> None:
    retry = {"retry": {"maxAttempts": 5, "backoff": {"initialSeconds": 1}}}
    defn = workflow(child("a", **retry))
    bounds = limits(max_children_per_run=2)
    run = start(defn, {}, bounds).state
    lost = StepError(code="child_failed", message="flaky", retryable=True)

    for attempt in (1, 2):
        run = step_failed(defn, run, "a", attempt, lost, T0, limits=bounds).state
        assert run.steps["a"].status is StepStatus.RETRYING
        fired = timer_fired(
            defn, run, Timer(kind="retry", node_id="a", attempt=attempt + 1), T0, limits=bounds
        )
        run = fired.state
        if attempt == 1:
            assert [c.attempt for c in children(fired)] == [2]

    assert children(fired) == []
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.code == "children_exceeded"


def test_children_carry_their_root_run_so_the_budget_is_kept_per_root() -> None:
    defn = workflow(child("a"))
    root = start(defn, {}, DEFAULT_LIMITS)
    assert [c.root_run_id for c in children(root)] == [RUN_ID]

    grandchild_of = new_run_state(
        "run_child",
        defn,
        {},
        parent_run_id=RUN_ID,
        parent_node_id="a",
        parent_attempt=1,
        depth=1,
        root_run_id=RUN_ID,
    )
    below = start_run(defn, grandchild_of, T0)
    assert [(c.root_run_id, c.depth) for c in children(below)] == [(RUN_ID, 2)]


def test_a_child_refused_by_the_descendants_budget_fails_its_parent_with_that_code() -> None:
    defn = workflow(child("a"), child("b"))
    run = start(defn, {}, DEFAULT_LIMITS).state
    refused = StepError(
        code="descendants_exceeded",
        message="the limit MAX_DESCENDANTS_PER_ROOT (20) is used up",
    )

    decision = step_failed(defn, run, "b", 1, refused, T0)

    assert decision.state.status is RunStatus.FAILED
    error = decision.state.error
    assert error is not None
    assert error.code == "descendants_exceeded"
    assert "MAX_DESCENDANTS_PER_ROOT (20)" in error.message


def test_a_child_run_without_a_timeout_is_bounded_by_the_run_timeout_limit() -> None:
    defn = workflow(child("a"))
    bounds = limits(max_run_timeout_seconds=60)
    run = start(defn, {}, bounds).state

    fired = timer_fired(
        defn, run, Timer(kind="step_timeout", node_id="a", attempt=1), T0, limits=bounds
    )

    assert fired.state.status is RunStatus.FAILED
    assert fired.state.steps["a"].error is not None
    assert fired.state.steps["a"].error.code == "timeout"
    assert "timeout of 60s" in fired.state.steps["a"].error.message


# --- outputs and the run's state ---------------------------------------------------------------


def test_a_step_reporting_outputs_over_the_limit_fails_the_run() -> None:
    defn = workflow(text("say", "hi"), outputs={"text": "{{ nodes.say.text }}"})
    bounds = limits(max_step_output_bytes=1024)
    run = start(defn, {}, bounds).state

    decision = step_succeeded(defn, run, "say", 1, {"text": "z" * 5000}, T0, limits=bounds)

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.steps["say"].outputs is None
    error = decision.state.error
    assert error is not None
    assert error.code == "outputs_too_large"
    assert "node 'say' (text.template) failed: finished with 5011 bytes of outputs" in error.message
    assert "the limit MAX_STEP_OUTPUT_BYTES (1024)" in error.message
    assert PublishRunEvent("failed") in decision.effects


def test_workflow_outputs_over_the_state_limit_fail_the_run() -> None:
    refs = {f"o{i}": "{{ nodes.say.text }}" for i in range(100)}
    defn = workflow(text("say", "hi"), outputs=refs)
    bounds = limits(max_run_state_bytes=64 * 1024)
    run = start(defn, {}, bounds).state

    decision = step_succeeded(defn, run, "say", 1, {"text": "z" * 1000}, T0, limits=bounds)

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.outputs is None
    error = decision.state.error
    assert error is not None
    assert error.code == "outputs_too_large"
    assert "the limit MAX_RUN_STATE_BYTES (65536)" in error.message


def test_a_run_whose_state_would_outgrow_the_limit_fails_as_it_was_before() -> None:
    defn = workflow(text("say", "hi"))
    child_run = new_run_state(
        "run_child", defn, {}, parent_run_id=RUN_ID, parent_node_id="n", parent_attempt=1
    )
    run = start_run(defn, child_run, T0).state

    decision = run_too_large(run, T0 + timedelta(seconds=1), 900_000)

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.revision == run.revision + 1
    assert decision.state.steps["say"].status is StepStatus.CANCELED
    error = decision.state.error
    assert error is not None
    assert error.code == "outputs_too_large"
    assert "would grow to 900000 bytes" in error.message
    assert "the limit MAX_RUN_STATE_BYTES (786432)" in error.message
    # Its parent hears of it like of any failure.
    notify = [e for e in decision.effects if isinstance(e, NotifyParent)]
    assert notify
    assert notify[0].error == error


def test_a_run_already_ended_is_not_failed_again_for_its_size() -> None:
    ended = RunState(run_id="r", status=RunStatus.COMPLETED)
    assert run_too_large(ended, T0, 10**7).state is ended
