"""The orchestrator's decision core: given a run and what just happened, decide what happens next.

Every function is pure: it returns the new run state and the effects to carry out (dispatch a
step, publish a run event). A decision that changes nothing returns the same state, same
revision, and no effects, so duplicate and stale messages are harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from workflow.catalog import get_node_type
from workflow.dag import dependencies
from workflow.definition import NodeSpec, WorkflowDefinition
from workflow.state import RunStatus, StepStatus, is_terminal, transition
from workflow.template import ResolutionError, TemplateSyntaxError, resolve
from workflow.validation import ParamsError, validate_params


class RunModel(BaseModel):
    """Frozen, camelCase on the wire; unknown fields ignored so newer records still load."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,
    )


class StepError(RunModel):
    code: str
    message: str
    retryable: bool = False


class RunError(RunModel):
    code: str
    message: str
    node_id: str | None = None


class StepState(RunModel):
    node_id: str
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    """The attempt last dispatched; 0 before the first dispatch."""
    outputs: dict[str, Any] | None = None
    error: StepError | None = None
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunState(RunModel):
    run_id: str
    status: RunStatus = RunStatus.QUEUED
    inputs: dict[str, Any] = {}
    steps: dict[str, StepState] = {}
    outputs: dict[str, Any] | None = None
    error: RunError | None = None
    revision: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True)
class DispatchStep:
    node_id: str
    node_type: str
    attempt: int
    params: dict[str, Any]
    """Resolved and validated, defaults filled in, camelCase keys."""
    timeout_seconds: float | None


RunEventKind = Literal["started", "completed", "failed", "canceled"]


@dataclass(frozen=True)
class PublishRunEvent:
    kind: RunEventKind


Effect: TypeAlias = DispatchStep | PublishRunEvent


@dataclass(frozen=True)
class Decision:
    state: RunState
    effects: tuple[Effect, ...] = ()


def new_run_state(run_id: str, defn: WorkflowDefinition, inputs: Mapping[str, Any]) -> RunState:
    return RunState(
        run_id=run_id,
        status=RunStatus.QUEUED,
        inputs=dict(inputs),
        steps={node.id: StepState(node_id=node.id) for node in defn.nodes},
    )


def start_run(defn: WorkflowDefinition, run: RunState, now: datetime) -> Decision:
    if run.status is not RunStatus.QUEUED:
        return Decision(run)
    started = run.model_copy(
        update={"status": transition(run.status, RunStatus.RUNNING), "started_at": now}
    )
    return _advance(defn, started, run, now, (PublishRunEvent("started"),))


def step_succeeded(
    defn: WorkflowDefinition,
    run: RunState,
    node_id: str,
    attempt: int,
    outputs: Mapping[str, Any],
    now: datetime,
) -> Decision:
    step = _current_step(run, node_id, attempt)
    if step is None:
        return Decision(run)
    node_type = get_node_type(_node(defn, node_id).type)
    missing = [name for name in (node_type.outputs if node_type else ()) if name not in outputs]
    if missing:
        error = StepError(
            code="missing_outputs", message=f"finished without output(s): {', '.join(missing)}"
        )
        return step_failed(defn, run, node_id, attempt, error, now)
    succeeded = step.model_copy(
        update={
            "status": transition(step.status, StepStatus.SUCCEEDED),
            "outputs": dict(outputs),
            "finished_at": now,
        }
    )
    return _advance(defn, _with_step(run, succeeded), run, now, ())


def step_failed(
    defn: WorkflowDefinition,
    run: RunState,
    node_id: str,
    attempt: int,
    error: StepError,
    now: datetime,
) -> Decision:
    """Fail the step and with it the run. (Retries, when they come, decide here first.)"""
    step = _current_step(run, node_id, attempt)
    if step is None:
        return Decision(run)
    node = _node(defn, node_id)
    failed = step.model_copy(
        update={
            "status": transition(step.status, StepStatus.FAILED),
            "error": error,
            "finished_at": now,
        }
    )
    run_error = RunError(
        code="step_failed",
        message=f"node {node_id!r} ({node.type}) failed: {error.message}",
        node_id=node_id,
    )
    return _fail(_with_step(run, failed), run, run_error, now, ())


def cancel_run(run: RunState, now: datetime) -> Decision:
    if is_terminal(run.status):
        return Decision(run)
    canceled = run.model_copy(
        update={
            "status": transition(run.status, RunStatus.CANCELED),
            "steps": _cancel_unfinished(run.steps, now),
            "completed_at": now,
            "revision": run.revision + 1,
        }
    )
    return Decision(canceled, (PublishRunEvent("canceled"),))


def _current_step(run: RunState, node_id: str, attempt: int) -> StepState | None:
    """The step a step message is about, or None if the message is a duplicate or stale."""
    step = run.steps.get(node_id)
    if (
        run.status is not RunStatus.RUNNING
        or step is None
        or step.status is not StepStatus.DISPATCHED
        or step.attempt != attempt
    ):
        return None
    return step


def _advance(
    defn: WorkflowDefinition,
    run: RunState,
    before: RunState,
    now: datetime,
    effects: tuple[Effect, ...],
) -> Decision:
    """Dispatch every node that became ready; complete the run when every node succeeded."""
    steps = dict(run.steps)
    context = _context(run)
    graph = dependencies(defn)
    done = {node_id for node_id, step in steps.items() if step.status is StepStatus.SUCCEEDED}
    dispatches: list[Effect] = []
    for node in defn.nodes:
        step = steps[node.id]
        if step.status is not StepStatus.PENDING or not graph[node.id] <= done:
            continue
        params, error = _dispatch_params(node, context)
        if error is not None:
            failed = step.model_copy(
                update={
                    "status": transition(step.status, StepStatus.FAILED),
                    "error": error,
                    "finished_at": now,
                }
            )
            run_error = RunError(
                code=error.code,
                message=f"node {node.id!r} ({node.type}) could not start: {error.message}",
                node_id=node.id,
            )
            return _fail(_with_step(run, failed), before, run_error, now, effects)
        steps[node.id] = step.model_copy(
            update={
                "status": transition(step.status, StepStatus.DISPATCHED),
                "attempt": step.attempt + 1,
                "dispatched_at": now,
            }
        )
        dispatches.append(
            DispatchStep(node.id, node.type, step.attempt + 1, params, node.timeout_seconds)
        )
    run = run.model_copy(update={"steps": steps})
    if all(step.status is StepStatus.SUCCEEDED for step in steps.values()):
        return _complete(defn, run, before, now, effects)
    return Decision(_revised(run, before), (*effects, *dispatches))


def _dispatch_params(
    node: NodeSpec, context: Mapping[str, Any]
) -> tuple[dict[str, Any], StepError | None]:
    node_type = get_node_type(node.type)
    if node_type is None:
        return {}, StepError(code="unknown_node_type", message=f"unknown node type {node.type!r}")
    try:
        resolved = resolve(node.params, context)
    except (ResolutionError, TemplateSyntaxError) as exc:
        return {}, StepError(code="params_unresolvable", message=str(exc))
    try:
        model = validate_params(node_type, resolved)
    except ParamsError as exc:
        details = "; ".join(f"{p.path}: {p.message}" for p in exc.problems)
        return {}, StepError(code="params_invalid", message=f"invalid params: {details}")
    return model.model_dump(mode="json", by_alias=True), None


def _complete(
    defn: WorkflowDefinition,
    run: RunState,
    before: RunState,
    now: datetime,
    effects: tuple[Effect, ...],
) -> Decision:
    try:
        outputs = resolve(defn.outputs, _context(run))
    except (ResolutionError, TemplateSyntaxError) as exc:
        error = RunError(code="outputs_unresolvable", message=f"workflow outputs: {exc}")
        return _fail(run, before, error, now, effects)
    completed = run.model_copy(
        update={
            "status": transition(run.status, RunStatus.COMPLETED),
            "outputs": outputs,
            "completed_at": now,
        }
    )
    return Decision(_revised(completed, before), (*effects, PublishRunEvent("completed")))


def _fail(
    run: RunState,
    before: RunState,
    error: RunError,
    now: datetime,
    effects: tuple[Effect, ...],
) -> Decision:
    """Fail the run and cancel its unfinished steps."""
    failed = run.model_copy(
        update={
            "status": transition(run.status, RunStatus.FAILED),
            "steps": _cancel_unfinished(run.steps, now),
            "error": error,
            "completed_at": now,
        }
    )
    return Decision(_revised(failed, before), (*effects, PublishRunEvent("failed")))


def _cancel_unfinished(steps: Mapping[str, StepState], now: datetime) -> dict[str, StepState]:
    return {
        node_id: step
        if is_terminal(step.status)
        else step.model_copy(
            update={"status": transition(step.status, StepStatus.CANCELED), "finished_at": now}
        )
        for node_id, step in steps.items()
    }


def _context(run: RunState) -> dict[str, Any]:
    nodes = {
        node_id: step.outputs or {}
        for node_id, step in run.steps.items()
        if step.status is StepStatus.SUCCEEDED
    }
    return {"inputs": run.inputs, "nodes": nodes}


def _with_step(run: RunState, step: StepState) -> RunState:
    return run.model_copy(update={"steps": {**run.steps, step.node_id: step}})


def _revised(run: RunState, before: RunState) -> RunState:
    return run.model_copy(update={"revision": before.revision + 1})


def _node(defn: WorkflowDefinition, node_id: str) -> NodeSpec:
    node = defn.node(node_id)
    if node is None:
        raise KeyError(f"node {node_id!r} is not in the workflow definition")
    return node
