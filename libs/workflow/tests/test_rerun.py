"""Rerunning a run, from a chosen node or from the start: what is reused, what runs again."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from workflow.dag import dependents
from workflow.definition import WorkflowDefinition
from workflow.limits import Limits
from workflow.rerun import NotReusable, UnknownNode, rerun_nodes, reused_steps
from workflow.run import (
    Decision,
    DispatchStep,
    PublishRunEvent,
    ReusedStep,
    RunState,
    StepError,
    new_run_state,
    omitted_param,
    start_run,
    step_failed,
    step_params,
    step_succeeded,
)
from workflow.state import RunStatus, StepStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
INPUTS = {"prompt": "Studio portrait"}


@pytest.fixture
def defn(studio_portrait: dict[str, Any]) -> WorkflowDefinition:
    """render → warm → (square, story)."""
    return WorkflowDefinition.model_validate(studio_portrait)


def image(run_id: str, node_id: str) -> dict[str, Any]:
    ref = f"s3://outputs/runs/{run_id}/{node_id}/1/image.png"
    if node_id == "render":  # image.generate also lists its images and who made them
        return {"image": ref, "images": [ref], "provider": {"name": "offline"}}
    return {"image": ref}


def finished(defn: WorkflowDefinition, run_id: str = "run_a") -> RunState:
    """A completed run of `defn` in which every step succeeded with an image."""
    run = start_run(defn, new_run_state(run_id, defn, INPUTS), T0).state
    for node in defn.nodes:
        run = step_succeeded(defn, run, node.id, 1, image(run_id, node.id), T1).state
    assert run.status is RunStatus.COMPLETED
    return run


def dispatched(decision: Decision) -> dict[str, DispatchStep]:
    return {e.node_id: e for e in decision.effects if isinstance(e, DispatchStep)}


def events(decision: Decision) -> list[str]:
    return [e.kind for e in decision.effects if isinstance(e, PublishRunEvent)]


def chain(*ids: str) -> WorkflowDefinition:
    """Each node's text is the previous node's plus its own id."""
    nodes = []
    for i, node_id in enumerate(ids):
        template = f"{{{{ nodes.{ids[i - 1]}.text }}}}{node_id}" if i else node_id
        nodes.append({"id": node_id, "type": "text.template", "params": {"template": template}})
    return WorkflowDefinition.model_validate(
        {"name": "chain", "nodes": nodes, "outputs": {"last": f"{{{{ nodes.{ids[-1]}.text }}}}"}}
    )


# --- which nodes run again ---------------------------------------------------------------------


def test_dependents_are_found_through_other_nodes(defn: WorkflowDefinition) -> None:
    assert dependents(defn, "render") == {"warm", "square", "story"}
    assert dependents(defn, "warm") == {"square", "story"}
    assert dependents(defn, "square") == frozenset()


def test_a_rerun_runs_the_chosen_node_and_what_depends_on_it_and_reuses_the_rest(
    defn: WorkflowDefinition,
) -> None:
    original = finished(defn)

    assert rerun_nodes(defn, "warm") == {"warm", "square", "story"}
    assert reused_steps(defn, original, "warm") == {
        "render": ReusedStep(outputs=image("run_a", "render"), run_id="run_a")
    }
    assert set(reused_steps(defn, original, "square")) == {"render", "warm", "story"}


def test_a_node_that_does_not_exist_cannot_be_rerun_from(defn: WorkflowDefinition) -> None:
    with pytest.raises(UnknownNode) as raised:
        reused_steps(defn, finished(defn), "nope")

    assert raised.value.node_id == "nope"


def test_a_node_of_a_maps_template_is_no_node_to_rerun_from() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            "name": "m",
            "nodes": [
                {
                    "id": "each",
                    "type": "map",
                    "params": {
                        "items": ["a", "b"],
                        "node": {"type": "text.template", "params": {"template": "{{ item }}"}},
                    },
                }
            ],
            "outputs": {"all": "{{ nodes.each.results }}"},
        }
    )

    with pytest.raises(UnknownNode):
        rerun_nodes(defn, "text.template")
    assert rerun_nodes(defn, "each") == {"each"}


def test_steps_to_reuse_that_did_not_succeed_are_named_in_definition_order() -> None:
    defn = chain("a", "b", "c", "d")
    run = start_run(defn, new_run_state("run_a", defn, {}), T0).state
    run = step_succeeded(defn, run, "a", 1, {"text": "a"}, T1).state
    failed = step_failed(defn, run, "b", 1, StepError(code="boom", message="no"), T1).state
    assert failed.status is RunStatus.FAILED

    with pytest.raises(NotReusable) as raised:
        reused_steps(defn, failed, "d")

    assert raised.value.node_ids == ("b", "c")
    assert reused_steps(defn, failed, "b") == {"a": ReusedStep({"text": "a"}, "run_a")}


def test_a_step_the_original_reused_names_the_run_that_produced_it(
    defn: WorkflowDefinition,
) -> None:
    original = finished(defn, "run_a")
    reused = reused_steps(defn, original, "warm")
    rerun = start_run(defn, new_run_state("run_b", defn, INPUTS, reused=reused), T0).state
    for node_id in ("warm", "square", "story"):
        rerun = step_succeeded(defn, rerun, node_id, 1, image("run_b", node_id), T1).state

    again = reused_steps(defn, rerun, "square")

    assert again["render"].run_id == "run_a"
    assert again["warm"] == ReusedStep(image("run_b", "warm"), "run_b")


# --- the new run -------------------------------------------------------------------------------


def test_reused_steps_start_succeeded_with_their_outputs_and_the_rest_pending(
    defn: WorkflowDefinition,
) -> None:
    reused = {"render": ReusedStep(image("run_a", "render"), "run_a")}

    run = new_run_state("run_b", defn, INPUTS, reused=reused)

    render = run.steps["render"]
    assert (render.status, render.outputs, render.reused_from) == (
        StepStatus.SUCCEEDED,
        image("run_a", "render"),
        "run_a",
    )
    assert render.attempt == 0
    assert render.dispatched_at is None
    assert {n: s.status for n, s in run.steps.items() if n != "render"} == dict.fromkeys(
        ("warm", "square", "story"), StepStatus.PENDING
    )
    assert all(s.reused_from is None for n, s in run.steps.items() if n != "render")


def test_a_reused_step_that_is_not_a_node_is_refused(defn: WorkflowDefinition) -> None:
    with pytest.raises(ValueError, match="ghost"):
        new_run_state("run_b", defn, INPUTS, reused={"ghost": ReusedStep({}, "run_a")})


def test_start_dispatches_only_the_chosen_node_with_the_reused_outputs_in_its_params(
    defn: WorkflowDefinition,
) -> None:
    reused = reused_steps(defn, finished(defn), "warm")

    decision = start_run(defn, new_run_state("run_b", defn, INPUTS, reused=reused), T0)

    assert events(decision) == ["started"]
    assert set(dispatched(decision)) == {"warm"}
    assert dispatched(decision)["warm"].params["image"] == image("run_a", "render")["image"]


def test_with_every_node_reused_but_a_leaf_only_the_leaf_runs_then_the_run_completes(
    defn: WorkflowDefinition,
) -> None:
    reused = reused_steps(defn, finished(defn), "square")
    start = start_run(defn, new_run_state("run_b", defn, INPUTS, reused=reused), T0)
    assert set(dispatched(start)) == {"square"}
    assert start.state.status is RunStatus.RUNNING

    done = step_succeeded(defn, start.state, "square", 1, image("run_b", "square"), T1)

    assert done.state.status is RunStatus.COMPLETED
    assert events(done) == ["completed"]
    assert done.state.outputs == {
        "square": image("run_b", "square")["image"],
        "story": image("run_a", "story")["image"],
    }


def test_outputs_resolvable_from_reused_steps_still_wait_for_the_node_that_runs_again() -> None:
    # `extra` is in no output: the outputs resolve from reused steps alone, yet the run ends
    # only once the node it was rerun from has run.
    defn = WorkflowDefinition.model_validate(
        {
            "name": "side",
            "nodes": [
                {"id": "main", "type": "text.template", "params": {"template": "m"}},
                {"id": "extra", "type": "text.template", "params": {"template": "x"}},
            ],
            "outputs": {"main": "{{ nodes.main.text }}"},
        }
    )
    original = start_run(defn, new_run_state("run_a", defn, {}), T0).state
    for node_id in ("main", "extra"):
        original = step_succeeded(defn, original, node_id, 1, {"text": node_id}, T1).state

    start = start_run(
        defn,
        new_run_state("run_b", defn, {}, reused=reused_steps(defn, original, "extra")),
        T0,
    )

    assert set(dispatched(start)) == {"extra"}
    assert start.state.status is RunStatus.RUNNING
    assert start.state.outputs is None
    done = step_succeeded(defn, start.state, "extra", 1, {"text": "again"}, T1).state
    assert done.status is RunStatus.COMPLETED
    assert done.outputs == {"main": "main"}


def test_a_run_with_every_step_reused_completes_as_it_starts(defn: WorkflowDefinition) -> None:
    original = finished(defn)
    every = {
        node_id: ReusedStep(step.outputs or {}, "run_a") for node_id, step in original.steps.items()
    }

    decision = start_run(defn, new_run_state("run_b", defn, INPUTS, reused=every), T0)

    assert events(decision) == ["started", "completed"]
    assert dispatched(decision) == {}
    assert decision.state.outputs == original.outputs


# --- the params a step was dispatched with -------------------------------------------------------


def test_step_params_are_resolved_and_complete_like_the_dispatched_ones(
    defn: WorkflowDefinition,
) -> None:
    start = start_run(defn, new_run_state("run_a", defn, INPUTS), T0)
    after_render = step_succeeded(defn, start.state, "render", 1, image("run_a", "render"), T1)

    assert step_params(defn, start.state, "render") == dispatched(start)["render"].params
    assert step_params(defn, after_render.state, "warm") == dispatched(after_render)["warm"].params
    assert step_params(defn, start.state, "ghost") is None


def test_a_maps_params_show_its_items_resolved_and_its_template_as_written() -> None:
    template = {"type": "text.template", "params": {"template": "{{ item }}!"}}
    defn = WorkflowDefinition.model_validate(
        {
            "name": "m",
            "nodes": [
                {
                    "id": "each",
                    "type": "map",
                    "params": {"items": "{{ inputs.words }}", "node": template},
                }
            ],
            "outputs": {"all": "{{ nodes.each.results }}"},
        }
    )
    run = start_run(defn, new_run_state("run_a", defn, {"words": ["a", "b"]}), T0).state

    params = step_params(defn, run, "each")

    assert params is not None
    assert params["items"] == ["a", "b"]
    assert params["concurrency"] == 4  # the default, filled in
    assert params["node"]["params"] == {"template": "{{ item }}!"}


def test_a_param_larger_than_the_resolved_value_limit_is_shown_as_omitted() -> None:
    limits = Limits.model_construct(max_resolved_value_bytes=1024)
    defn = WorkflowDefinition.model_validate(
        {
            "name": "big",
            "nodes": [
                {
                    "id": "say",
                    "type": "text.template",
                    "params": {"template": "{{ inputs.big }}"},
                }
            ],
            "outputs": {"said": "{{ nodes.say.text }}"},
        }
    )
    run = new_run_state("run_a", defn, {"big": "x" * 4096})

    assert step_params(defn, run, "say", limits) == {"template": omitted_param(1024)}
