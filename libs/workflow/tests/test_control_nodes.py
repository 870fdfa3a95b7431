import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from workflow.definition import WorkflowDefinition
from workflow.run import (
    CancelChildRun,
    Decision,
    DispatchStep,
    NotifyParent,
    PublishRunEvent,
    RunState,
    ScheduleTimer,
    StartChildRun,
    StepError,
    Timer,
    cancel_run,
    child_run_id,
    new_run_state,
    start_run,
    step_failed,
    step_succeeded,
    timer_fired,
)
from workflow.state import RunStatus, StepStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PARENT_ID = "run_0190a1b2c3d4" + "e5f6a7b8c9d0e1f2"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def dispatches(decision: Decision) -> list[DispatchStep]:
    return [e for e in decision.effects if isinstance(e, DispatchStep)]


def unchanged(decision: Decision, run: RunState) -> bool:
    return decision.state is run and decision.effects == ()


def workflow(*nodes: dict[str, Any], outputs: dict[str, str]) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {"name": "t", "nodes": list(nodes), "outputs": outputs}
    )


def started(defn: WorkflowDefinition, inputs: dict[str, Any] | None = None) -> RunState:
    return start_run(defn, new_run_state(PARENT_ID, defn, inputs or {}), T0).state


# --- wait --------------------------------------------------------------------------------------

WAIT_THEN_TEXT = workflow(
    {"id": "pause", "type": "wait", "params": {"seconds": "{{ inputs.delay }}"}},
    {
        "id": "after",
        "type": "text.template",
        "params": {"template": "waited {{ nodes.pause.waited }}s"},
    },
    outputs={"text": "{{ nodes.after.text }}"},
)


def test_a_wait_node_schedules_a_timer_instead_of_dispatching() -> None:
    decision = start_run(WAIT_THEN_TEXT, new_run_state("r", WAIT_THEN_TEXT, {"delay": 90}), T0)

    assert decision.effects == (
        PublishRunEvent("started"),
        ScheduleTimer("wait", "pause", 1, at(90)),
    )
    pause = decision.state.steps["pause"]
    assert (pause.status, pause.attempt) == (StepStatus.DISPATCHED, 1)


def test_a_wait_succeeds_with_waited_when_its_timer_fires_and_the_run_advances() -> None:
    run = start_run(WAIT_THEN_TEXT, new_run_state("r", WAIT_THEN_TEXT, {"delay": 90}), T0).state

    decision = timer_fired(
        WAIT_THEN_TEXT, run, Timer(kind="wait", node_id="pause", attempt=1), at(90)
    )

    pause = decision.state.steps["pause"]
    assert (pause.status, pause.outputs) == (StepStatus.SUCCEEDED, {"waited": 90})
    (after,) = dispatches(decision)
    assert after.params == {"template": "waited 90.0s"}
    assert decision.state.revision == run.revision + 1


def test_a_duplicate_wait_timer_changes_nothing() -> None:
    run = start_run(WAIT_THEN_TEXT, new_run_state("r", WAIT_THEN_TEXT, {"delay": 5}), T0).state
    timer = Timer(kind="wait", node_id="pause", attempt=1)
    once = timer_fired(WAIT_THEN_TEXT, run, timer, at(5))

    assert unchanged(timer_fired(WAIT_THEN_TEXT, once.state, timer, at(6)), once.state)


def test_canceled_during_a_wait_the_wait_timer_later_changes_nothing() -> None:
    run = start_run(WAIT_THEN_TEXT, new_run_state("r", WAIT_THEN_TEXT, {"delay": 60}), T0).state
    canceled = cancel_run(run, at(10))

    late = timer_fired(
        WAIT_THEN_TEXT, canceled.state, Timer(kind="wait", node_id="pause", attempt=1), at(60)
    )

    assert canceled.state.steps["pause"].status is StepStatus.CANCELED
    assert canceled.effects == (PublishRunEvent("canceled"),)
    assert unchanged(late, canceled.state)


def test_a_wait_is_not_completed_by_a_step_message() -> None:
    run = start_run(WAIT_THEN_TEXT, new_run_state("r", WAIT_THEN_TEXT, {"delay": 60}), T0).state

    assert unchanged(step_succeeded(WAIT_THEN_TEXT, run, "pause", 1, {"waited": 1}, at(1)), run)
    failure = StepError(code="x", message="y")
    assert unchanged(step_failed(WAIT_THEN_TEXT, run, "pause", 1, failure, at(1)), run)


# --- map ---------------------------------------------------------------------------------------


def map_workflow(concurrency: int = 2, **template: Any) -> WorkflowDefinition:
    return workflow(
        {
            "id": "formats",
            "type": "map",
            "params": {
                "items": "{{ inputs.sizes }}",
                "concurrency": concurrency,
                "node": {
                    "type": "image.resize",
                    "params": {
                        "image": "{{ inputs.image }}",
                        "width": "{{ item.w }}",
                        "height": "{{ item.h }}",
                    },
                    **template,
                },
            },
        },
        outputs={"images": "{{ nodes.formats.results }}"},
    )


SIZES = [{"w": 100, "h": 100}, {"w": 200, "h": 100}, {"w": 300, "h": 100}]
MAP_INPUTS = {"image": "s3://assets/in.png", "sizes": SIZES}


def resized(index: int) -> dict[str, str]:
    return {"image": f"s3://outputs/formats/{index}.png"}


def test_map_over_3_items_with_concurrency_2_dispatches_2_then_the_third() -> None:
    defn = map_workflow(concurrency=2)

    start = start_run(defn, new_run_state("r", defn, MAP_INPUTS), T0)
    after_second = step_succeeded(defn, start.state, "formats[1]", 1, resized(1), at(1))

    first_two = dispatches(start)
    assert [(d.node_id, d.node_type, d.attempt) for d in first_two] == [
        ("formats[0]", "image.resize", 1),
        ("formats[1]", "image.resize", 1),
    ]
    assert first_two[1].params["width"] == 200
    assert first_two[1].params["image"] == "s3://assets/in.png"
    assert ScheduleTimer("step_timeout", "formats[0]", 1, at(900)) in start.effects
    formats = start.state.steps["formats"]
    assert (formats.status, formats.items_total, formats.concurrency) == (
        StepStatus.DISPATCHED,
        3,
        2,
    )
    assert [i.status for i in formats.items or ()] == [
        StepStatus.DISPATCHED,
        StepStatus.DISPATCHED,
        StepStatus.PENDING,
    ]
    (third,) = dispatches(after_second)
    assert (third.node_id, third.params["width"]) == ("formats[2]", 300)
    assert after_second.state.revision == start.state.revision + 1


def test_map_results_are_in_input_order_when_items_finish_out_of_order() -> None:
    defn = map_workflow(concurrency=2)
    run = start_run(defn, new_run_state("r", defn, MAP_INPUTS), T0).state

    run = step_succeeded(defn, run, "formats[1]", 1, resized(1), at(1)).state
    run = step_succeeded(defn, run, "formats[2]", 1, resized(2), at(2)).state
    done = step_succeeded(defn, run, "formats[0]", 1, resized(0), at(3))

    assert done.state.status is RunStatus.COMPLETED
    images = [resized(i)["image"] for i in range(3)]
    assert done.state.steps["formats"].outputs == {
        "results": images,
        "outputs": [resized(i) for i in range(3)],
    }
    assert done.state.outputs == {"images": images}
    assert done.effects == (PublishRunEvent("completed"),)


def test_a_map_over_no_items_succeeds_at_once_with_empty_results() -> None:
    defn = map_workflow()

    decision = start_run(defn, new_run_state("r", defn, {**MAP_INPUTS, "sizes": []}), T0)

    formats = decision.state.steps["formats"]
    assert formats.status is StepStatus.SUCCEEDED
    assert formats.outputs == {"results": [], "outputs": []}
    assert decision.state.status is RunStatus.COMPLETED
    assert decision.state.outputs == {"images": []}
    assert decision.effects == (PublishRunEvent("started"), PublishRunEvent("completed"))
    assert decision.state.revision == 1


def test_map_items_that_are_not_a_list_fail_the_run() -> None:
    defn = map_workflow()

    decision = start_run(defn, new_run_state("r", defn, {**MAP_INPUTS, "sizes": "big"}), T0)

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.error is not None
    assert decision.state.error.node_id == "formats"
    assert "map items must be a list" in decision.state.error.message
    assert decision.state.steps["formats"].status is StepStatus.FAILED


def test_a_map_item_failure_fails_the_run_naming_the_item() -> None:
    defn = map_workflow(concurrency=2)
    run = start_run(defn, new_run_state("r", defn, MAP_INPUTS), T0).state
    error = StepError(code="decode_error", message="cannot decode image")

    decision = step_failed(defn, run, "formats[1]", 1, error, at(1))

    state = decision.state
    assert state.status is RunStatus.FAILED
    assert state.error is not None
    assert state.error.node_id == "formats"
    assert state.error.message == "node 'formats[1]' (image.resize) failed: cannot decode image"
    formats = state.steps["formats"]
    assert formats.status is StepStatus.FAILED
    assert [i.status for i in formats.items or ()] == [
        StepStatus.CANCELED,
        StepStatus.FAILED,
        StepStatus.CANCELED,
    ]
    assert dispatches(decision) == []
    late = step_succeeded(defn, state, "formats[0]", 1, resized(0), at(2))
    assert unchanged(late, state)


def test_a_map_item_is_retried_on_its_own_with_the_templates_policy() -> None:
    defn = map_workflow(concurrency=2, retry={"maxAttempts": 2}, timeoutSeconds=20)
    run = start_run(defn, new_run_state("r", defn, MAP_INPUTS), T0).state
    flaky = StepError(code="unavailable", message="busy", retryable=True)

    retrying = step_failed(defn, run, "formats[0]", 1, flaky, at(1))
    redispatched = timer_fired(
        defn, retrying.state, Timer(kind="retry", node_id="formats[0]", attempt=2), at(2)
    )
    timed_out = timer_fired(
        defn,
        redispatched.state,
        Timer(kind="step_timeout", node_id="formats[0]", attempt=2),
        at(22),
    )

    assert retrying.effects == (ScheduleTimer("retry", "formats[0]", 2, at(2)),)
    item = (retrying.state.steps["formats"].items or [])[0]
    assert (item.status, item.next_attempt_at) == (StepStatus.RETRYING, at(2))
    assert dispatches(retrying) == []  # a retrying item keeps its slot
    assert redispatched.effects == (
        DispatchStep("formats[0]", "image.resize", 2, dispatches(redispatched)[0].params, 20),
        ScheduleTimer("step_timeout", "formats[0]", 2, at(22)),
    )
    assert timed_out.state.status is RunStatus.FAILED
    assert timed_out.state.error is not None
    assert timed_out.state.error.message == (
        "node 'formats[0]' (image.resize) failed after 2 attempts:"
        " node 'formats[0]' exceeded its timeout of 20s"
    )
    stale = Timer(kind="step_timeout", node_id="formats[0]", attempt=1)
    assert unchanged(timer_fired(defn, redispatched.state, stale, at(30)), redispatched.state)


def test_messages_for_unknown_or_stale_map_items_change_nothing() -> None:
    defn = map_workflow(concurrency=2)
    run = start_run(defn, new_run_state("r", defn, MAP_INPUTS), T0).state

    for node_id, attempt in [("formats[2]", 1), ("formats[7]", 1), ("formats[0]", 2)]:
        assert unchanged(step_succeeded(defn, run, node_id, attempt, resized(0), at(1)), run)
    once = step_succeeded(defn, run, "formats[0]", 1, resized(0), at(1))
    assert unchanged(
        step_succeeded(defn, once.state, "formats[0]", 1, resized(0), at(2)), once.state
    )


def test_a_map_item_without_its_declared_output_fails() -> None:
    defn = map_workflow()
    run = start_run(defn, new_run_state("r", defn, MAP_INPUTS), T0).state

    decision = step_succeeded(defn, run, "formats[0]", 1, {"img": "s3://x/y"}, at(1))

    assert decision.state.status is RunStatus.FAILED
    item = (decision.state.steps["formats"].items or [])[0]
    assert item.error is not None
    assert item.error.code == "missing_outputs"


def test_map_item_params_that_do_not_resolve_fail_the_run_naming_the_item() -> None:
    defn = map_workflow()
    sizes = [{"w": 100, "h": 100}, {"w": 100}]

    decision = start_run(defn, new_run_state("r", defn, {**MAP_INPUTS, "sizes": sizes}), T0)

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.error is not None
    assert decision.state.error.code == "params_unresolvable"
    assert "'formats[1]'" in decision.state.error.message
    assert decision.effects == (PublishRunEvent("started"), PublishRunEvent("failed"))


def test_canceling_a_run_cancels_its_map_items() -> None:
    defn = map_workflow()
    run = start_run(defn, new_run_state("r", defn, MAP_INPUTS), T0).state

    canceled = cancel_run(run, at(1)).state

    assert {i.status for i in canceled.steps["formats"].items or ()} == {StepStatus.CANCELED}
    late = Timer(kind="step_timeout", node_id="formats[0]", attempt=1)
    assert unchanged(timer_fired(defn, canceled, late, at(900)), canceled)


def test_map_results_feed_later_nodes_as_a_list() -> None:
    defn = workflow(
        {
            "id": "captions",
            "type": "map",
            "params": {
                "items": "{{ inputs.names }}",
                "node": {"type": "text.template", "params": {"template": "Hi {{ item }}"}},
            },
        },
        {
            "id": "joined",
            "type": "text.template",
            "params": {"template": "all: {{ nodes.captions.results }}"},
        },
        outputs={"text": "{{ nodes.joined.text }}"},
    )
    run = start_run(defn, new_run_state("r", defn, {"names": ["Ada", "Bo"]}), T0)
    assert [d.params for d in dispatches(run)] == [{"template": "Hi Ada"}, {"template": "Hi Bo"}]

    state = step_succeeded(defn, run.state, "captions[0]", 1, {"text": "Hi Ada"}, at(1)).state
    decision = step_succeeded(defn, state, "captions[1]", 1, {"text": "Hi Bo"}, at(2))

    assert dispatches(decision)[0].params == {"template": 'all: ["Hi Ada","Hi Bo"]'}


# --- workflow.run ------------------------------------------------------------------------------

CHAIN = workflow(
    {
        "id": "brand",
        "type": "workflow.run",
        "params": {
            "workflowId": "brand-kit",
            "version": 3,
            "inputs": {"prompt": "{{ inputs.prompt }}", "fixed": 1},
        },
    },
    {
        "id": "caption",
        "type": "text.template",
        "params": {"template": "logo: {{ nodes.brand.logo }}"},
    },
    outputs={"logo": "{{ nodes.brand.logo }}", "caption": "{{ nodes.caption.text }}"},
)


def test_child_run_ids_are_deterministic_and_keep_the_run_id_shape() -> None:
    first = child_run_id(PARENT_ID, "brand", 1)

    assert first == child_run_id(PARENT_ID, "brand", 1)
    assert first != child_run_id(PARENT_ID, "brand", 2)
    assert re.fullmatch(r"run_[0-9a-f]{28}", first)
    digest = hashlib.sha256(f"{PARENT_ID}/brand/1".encode()).hexdigest()
    assert first == "run_0190a1b2c3d4" + digest[:16]
    assert re.fullmatch(r"run_[0-9a-f]{28}", child_run_id("run_1", "brand", 1))


def test_workflow_run_starts_a_child_run_with_resolved_inputs() -> None:
    decision = start_run(CHAIN, new_run_state(PARENT_ID, CHAIN, {"prompt": "cat"}), T0)

    child = child_run_id(PARENT_ID, "brand", 1)
    assert decision.effects == (
        PublishRunEvent("started"),
        StartChildRun(
            node_id="brand",
            attempt=1,
            child_run_id=child,
            workflow_id="brand-kit",
            version=3,
            inputs={"prompt": "cat", "fixed": 1},
            depth=1,
            root_run_id=PARENT_ID,
        ),
        # Without its own timeoutSeconds a child run is bounded by MAX_RUN_TIMEOUT_SECONDS.
        ScheduleTimer("step_timeout", "brand", 1, T0 + timedelta(days=7)),
    )
    brand = decision.state.steps["brand"]
    assert (brand.status, brand.child_run_id) == (StepStatus.DISPATCHED, child)


def test_the_childs_outputs_become_the_nodes_outputs() -> None:
    run = started(CHAIN, {"prompt": "cat"})

    decision = step_succeeded(CHAIN, run, "brand", 1, {"logo": "s3://b/logo.png", "n": 2}, at(5))

    assert decision.state.steps["brand"].outputs == {"logo": "s3://b/logo.png", "n": 2}
    assert dispatches(decision)[0].params == {"template": "logo: s3://b/logo.png"}


def test_a_child_failure_fails_the_parent_step() -> None:
    run = started(CHAIN, {"prompt": "cat"})
    error = StepError(code="child_failed", message="run run_x failed: boom")

    decision = step_failed(CHAIN, run, "brand", 1, error, at(5))

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.error is not None
    assert decision.state.error.node_id == "brand"
    assert not any(isinstance(e, CancelChildRun) for e in decision.effects)  # it has ended


def test_a_retried_workflow_run_step_starts_a_new_child() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            **CHAIN.model_dump(by_alias=True, exclude_none=True),
            "nodes": [
                {**CHAIN.nodes[0].model_dump(by_alias=True), "retry": {"maxAttempts": 2}},
                CHAIN.nodes[1].model_dump(by_alias=True),
            ],
        }
    )
    run = started(defn, {"prompt": "cat"})
    flaky = StepError(code="child_failed", message="boom", retryable=True)
    retrying = step_failed(defn, run, "brand", 1, flaky, at(5)).state

    decision = timer_fired(defn, retrying, Timer(kind="retry", node_id="brand", attempt=2), at(6))

    (start,) = [e for e in decision.effects if isinstance(e, StartChildRun)]
    assert start.child_run_id == child_run_id(PARENT_ID, "brand", 2)
    assert decision.state.steps["brand"].child_run_id == start.child_run_id


def test_a_timed_out_workflow_run_step_cancels_its_child() -> None:
    defn = workflow(
        {
            "id": "brand",
            "type": "workflow.run",
            "timeoutSeconds": 60,
            "params": {"workflowId": "brand-kit"},
        },
        outputs={"logo": "{{ nodes.brand.logo }}"},
    )
    start = start_run(defn, new_run_state(PARENT_ID, defn, {}), T0)
    assert ScheduleTimer("step_timeout", "brand", 1, at(60)) in start.effects

    decision = timer_fired(
        defn, start.state, Timer(kind="step_timeout", node_id="brand", attempt=1), at(60)
    )

    assert decision.effects == (
        CancelChildRun(child_run_id(PARENT_ID, "brand", 1)),
        PublishRunEvent("failed"),
    )


def test_cancel_cancels_running_child_runs() -> None:
    run = started(CHAIN, {"prompt": "cat"})

    decision = cancel_run(run, at(1))

    assert decision.effects == (
        PublishRunEvent("canceled"),
        CancelChildRun(child_run_id(PARENT_ID, "brand", 1)),
    )


def test_a_failing_run_cancels_its_running_child_runs() -> None:
    defn = workflow(
        {"id": "brand", "type": "workflow.run", "params": {"workflowId": "brand-kit"}},
        {"id": "a", "type": "text.template", "params": {"template": "x"}},
        outputs={"logo": "{{ nodes.brand.logo }}", "a": "{{ nodes.a.text }}"},
    )
    run = started(defn)

    decision = step_failed(defn, run, "a", 1, StepError(code="x", message="boom"), at(1))

    assert decision.effects == (
        PublishRunEvent("failed"),
        CancelChildRun(child_run_id(PARENT_ID, "brand", 1)),
    )


def child_state(defn: WorkflowDefinition, depth: int = 1) -> RunState:
    return new_run_state(
        "run_child",
        defn,
        {},
        parent_run_id=PARENT_ID,
        parent_node_id="brand",
        parent_attempt=2,
        depth=depth,
    )


ONE = workflow(
    {"id": "a", "type": "text.template", "params": {"template": "x"}},
    outputs={"text": "{{ nodes.a.text }}"},
)


def test_a_completed_child_run_notifies_its_parent() -> None:
    run = start_run(ONE, child_state(ONE), T0).state

    decision = step_succeeded(ONE, run, "a", 1, {"text": "hi"}, at(1))

    assert decision.effects == (
        PublishRunEvent("completed"),
        NotifyParent(PARENT_ID, "brand", 2, RunStatus.COMPLETED, {"text": "hi"}, None),
    )


def test_a_failed_child_run_notifies_its_parent_with_the_error() -> None:
    run = start_run(ONE, child_state(ONE), T0).state

    decision = step_failed(ONE, run, "a", 1, StepError(code="x", message="boom"), at(1))

    (notify,) = [e for e in decision.effects if isinstance(e, NotifyParent)]
    assert (notify.status, notify.outputs) == (RunStatus.FAILED, None)
    assert notify.error == decision.state.error


def test_a_canceled_child_run_notifies_its_parent() -> None:
    run = start_run(ONE, child_state(ONE), T0).state

    decision = cancel_run(run, at(1))

    assert decision.effects == (
        PublishRunEvent("canceled"),
        NotifyParent(PARENT_ID, "brand", 2, RunStatus.CANCELED, None, None),
    )
    assert unchanged(cancel_run(decision.state, at(2)), decision.state)


def test_a_run_without_a_parent_notifies_nobody() -> None:
    run = start_run(ONE, new_run_state("r", ONE, {}), T0).state

    decision = step_succeeded(ONE, run, "a", 1, {"text": "hi"}, at(1))

    assert not any(isinstance(e, NotifyParent) for e in decision.effects)


def test_a_child_deeper_than_the_limit_fails_at_start() -> None:
    at_limit = start_run(ONE, child_state(ONE, depth=5), T0)
    too_deep = start_run(ONE, child_state(ONE, depth=6), T0)
    custom = start_run(ONE, child_state(ONE, depth=3), T0, max_depth=2)

    assert at_limit.state.status is RunStatus.RUNNING
    assert too_deep.state.status is RunStatus.FAILED
    error = too_deep.state.error
    assert error is not None
    assert error.code == "depth_exceeded"
    assert error.message.startswith("workflow chain deeper than the limit MAX_CHAIN_DEPTH (5): ")
    assert too_deep.effects == (
        PublishRunEvent("failed"),
        NotifyParent(PARENT_ID, "brand", 2, RunStatus.FAILED, None, error),
    )
    assert custom.state.error is not None
    assert custom.state.error.message.startswith(
        "workflow chain deeper than the limit MAX_CHAIN_DEPTH (2): "
    )
    assert too_deep.state.revision == 1


def test_a_child_run_needs_its_whole_parent_address() -> None:
    with pytest.raises(ValueError, match="parent"):
        new_run_state("r", ONE, {}, parent_run_id=PARENT_ID)


def test_child_run_state_round_trips_through_json() -> None:
    run = start_run(ONE, child_state(ONE), T0).state

    document = run.model_dump(mode="json", by_alias=True)

    assert (document["parentRunId"], document["parentAttempt"], document["depth"]) == (
        PARENT_ID,
        2,
        1,
    )
    assert RunState.model_validate(document) == run


def test_a_map_with_its_own_timeout_fails_as_a_whole_when_it_fires() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            **map_workflow().model_dump(by_alias=True, exclude_none=True),
            "nodes": [{**map_workflow().nodes[0].model_dump(by_alias=True), "timeoutSeconds": 50}],
        }
    )
    start = start_run(defn, new_run_state("r", defn, MAP_INPUTS), T0)
    assert ScheduleTimer("step_timeout", "formats", 1, at(50)) in start.effects

    decision = timer_fired(
        defn, start.state, Timer(kind="step_timeout", node_id="formats", attempt=1), at(50)
    )

    assert decision.state.status is RunStatus.FAILED
    formats = decision.state.steps["formats"]
    assert formats.status is StepStatus.FAILED
    assert {i.status for i in formats.items or ()} == {StepStatus.CANCELED}


def test_a_wait_without_its_own_timeout_ignores_a_step_timeout() -> None:
    run = start_run(WAIT_THEN_TEXT, new_run_state("r", WAIT_THEN_TEXT, {"delay": 60}), T0).state

    timer = Timer(kind="step_timeout", node_id="pause", attempt=1)
    assert unchanged(timer_fired(WAIT_THEN_TEXT, run, timer, at(900)), run)


# --- at least once: every message twice --------------------------------------------------------

EVERYTHING = workflow(
    {"id": "pause", "type": "wait", "params": {"seconds": 5}},
    {
        "id": "brand",
        "type": "workflow.run",
        "params": {"workflowId": "brand-kit", "inputs": {"after": "{{ nodes.pause.waited }}"}},
    },
    {
        "id": "formats",
        "type": "map",
        "params": {
            "items": "{{ inputs.sizes }}",
            "concurrency": 1,
            "node": {
                "type": "image.resize",
                "retry": {"maxAttempts": 2},
                "params": {"image": "{{ nodes.brand.logo }}", "width": "{{ item.w }}", "height": 9},
            },
        },
    },
    outputs={"images": "{{ nodes.formats.results }}"},
)


def test_every_message_delivered_twice_changes_nothing_the_second_time() -> None:
    flaky = StepError(code="busy", message="busy", retryable=True)
    logo = {"logo": "s3://brand/logo.png"}
    messages = [
        lambda run: timer_fired(
            EVERYTHING, run, Timer(kind="wait", node_id="pause", attempt=1), at(5)
        ),
        lambda run: step_succeeded(EVERYTHING, run, "brand", 1, logo, at(6)),
        lambda run: step_failed(EVERYTHING, run, "formats[0]", 1, flaky, at(7)),
        lambda run: timer_fired(
            EVERYTHING, run, Timer(kind="retry", node_id="formats[0]", attempt=2), at(8)
        ),
        lambda run: step_succeeded(EVERYTHING, run, "formats[0]", 2, resized(0), at(9)),
        lambda run: step_succeeded(EVERYTHING, run, "formats[1]", 1, resized(1), at(10)),
    ]
    inputs = {"sizes": [{"w": 10}, {"w": 20}]}
    run = start_run(EVERYTHING, new_run_state(PARENT_ID, EVERYTHING, inputs), T0).state

    for deliver in messages:
        first = deliver(run)
        second = deliver(first.state)
        assert first.state.revision == run.revision + 1
        assert first.effects != ()
        assert unchanged(second, first.state)
        run = first.state

    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"images": [resized(0)["image"], resized(1)["image"]]}
    item = (run.steps["formats"].items or [])[0]
    assert (item.attempt, [a.attempt for a in item.attempts]) == (2, [1])
