"""The orchestrator's decision core: given a run and what just happened, decide what happens next.

Every function is pure: it returns the new run state and the effects to carry out (dispatch a
step, schedule a timer, start or cancel a child run, notify a parent run, publish a run event).
Time and randomness come from the caller (``now``, ``jitter``). A decision that changes nothing
returns the same state, same revision, and no effects, so duplicate and stale messages and
timers are harmless; a decision that changes something bumps the revision by exactly one.

Control nodes are interpreted here rather than dispatched to an executor:

- ``wait`` schedules a ``wait`` timer and succeeds with ``waited`` when it fires;
- ``workflow.run`` starts a child run (:class:`StartChildRun`), whose end the orchestrator reports
  back through :func:`step_succeeded` / :func:`step_failed` with the child's outputs or error;
- ``map`` dispatches its template once per item, as steps named ``<map id>[<index>]``, at most
  ``concurrency`` at a time; results and failures of those item steps come back through the same
  :func:`step_succeeded` / :func:`step_failed` / :func:`timer_fired` as any step's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from workflow.catalog import MapParams, MapTemplate, NodeKind, NodeType, get_node_type
from workflow.dag import dependencies
from workflow.definition import Backoff, NodeSpec, WorkflowDefinition
from workflow.limits import JITTER_MAX, JITTER_MIN, Limits, exceeded
from workflow.state import RunStatus, StepStatus, is_terminal, transition
from workflow.template import (
    ResolutionError,
    TemplateError,
    TemplateSyntaxError,
    ValueTooLarge,
    resolve,
)
from workflow.validation import ParamsError, validate_params

# The defaults live in workflow.limits. `model_construct` takes the fields' defaults without
# reading the environment: the domain sees only the limits its caller passes.
DEFAULT_LIMITS = Limits.model_construct()
DEFAULT_STEP_TIMEOUT = DEFAULT_LIMITS.default_step_timeout_seconds
DEFAULT_MAX_DEPTH = DEFAULT_LIMITS.max_chain_depth

LIMIT_CODES = frozenset(
    {
        "value_too_large",
        "map_too_large",
        "children_exceeded",
        "descendants_exceeded",
        "outputs_too_large",
        "depth_exceeded",
        "wait_too_long",
    }
)
"""Error codes of a refusal by a limit: a run failing because of one carries the code itself
(not ``step_failed``), up to its root run, so a caller sees which limit stopped it."""


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
    retry_after_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """The failure's own hint (a provider's ``Retry-After``) of how long to wait before the
    next attempt; see :func:`retry_delay`."""


class RunError(RunModel):
    code: str
    message: str
    node_id: str | None = None


class AttemptRecord(RunModel):
    """One failed attempt of a step or of a map item."""

    attempt: int
    error: StepError | None = None
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class MapItemState(RunModel):
    """One item of a map step: its template dispatched as step ``<map id>[<index>]``."""

    index: int
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    """The attempt last dispatched; 0 before the first dispatch."""
    item: Any = None
    """The item's value, ``{{ item }}`` in the template's params."""
    outputs: dict[str, Any] | None = None
    error: StepError | None = None
    attempts: list[AttemptRecord] = []
    """Every failed attempt, oldest first."""
    next_attempt_at: datetime | None = None
    """When a retrying item is dispatched again."""
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class StepState(RunModel):
    node_id: str
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    """The attempt last dispatched; 0 before the first dispatch."""
    outputs: dict[str, Any] | None = None
    error: StepError | None = None
    """The last attempt's error (while retrying too); None while an attempt is in flight."""
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: list[AttemptRecord] = []
    """Every failed attempt, oldest first; the current (or successful) attempt is the step."""
    next_attempt_at: datetime | None = None
    """When a retrying step is dispatched again."""
    child_run_id: str | None = None
    """A ``workflow.run`` step's child run for its current attempt."""
    items_total: int | None = None
    """A map step's number of items."""
    concurrency: int | None = None
    """A map step's limit on items in flight (dispatched or retrying) at once."""
    items: list[MapItemState] | None = None
    """A map step's items, in input order."""
    reused_from: str | None = None
    """A rerun's step that was not run again: succeeded from the start with the outputs it
    had in this run (see :func:`new_run_state`), never dispatched."""


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
    timeout_seconds: float | None = None
    """This run's timeout; overrides the definition's ``timeoutSeconds`` when set."""
    parent_run_id: str | None = None
    """The run whose ``workflow.run`` step started this one, if any."""
    parent_node_id: str | None = None
    parent_attempt: int | None = None
    depth: int = 0
    """0 for a run started directly; a child run is one deeper than its parent."""
    root_run_id: str | None = None
    """The run started over the API this one descends from; None for that run itself. The
    descendants budget (``MAX_DESCENDANTS_PER_ROOT``) is kept per root run."""

    @property
    def root(self) -> str:
        return self.root_run_id or self.run_id


TimerKind = Literal["retry", "step_timeout", "run_timeout", "wait", "watchdog"]


class Timer(RunModel):
    """A timer that fired: what :class:`ScheduleTimer` asked for, less its due time."""

    kind: TimerKind
    node_id: str | None = None
    """The step (or map item, ``<map id>[<index>]``) it is about; None for run timers."""
    attempt: int | None = None
    """The attempt it is about: the one to dispatch for ``retry``, else the one in flight."""


@dataclass(frozen=True)
class DispatchStep:
    node_id: str
    """The node id, or ``<map id>[<index>]`` for a map item."""
    node_type: str
    attempt: int
    params: dict[str, Any]
    """Resolved and validated, defaults filled in, camelCase keys."""
    timeout_seconds: float | None


RunEventKind = Literal["started", "completed", "failed", "canceled"]


@dataclass(frozen=True)
class PublishRunEvent:
    kind: RunEventKind


@dataclass(frozen=True)
class ScheduleTimer:
    """Call :func:`timer_fired` with :attr:`timer` at ``due_at`` (or as soon as possible after)."""

    kind: TimerKind
    node_id: str | None
    attempt: int | None
    due_at: datetime

    @property
    def timer(self) -> Timer:
        return Timer(kind=self.kind, node_id=self.node_id, attempt=self.attempt)


@dataclass(frozen=True)
class StartChildRun:
    """Create and start run ``child_run_id`` (idempotently: the id is deterministic)."""

    node_id: str
    attempt: int
    child_run_id: str
    workflow_id: str
    version: int | None
    """None means the workflow's latest version."""
    inputs: dict[str, Any]
    """Resolved; to be validated against the child workflow's input schema."""
    depth: int
    """The child's depth: the parent's plus one."""
    root_run_id: str
    """The root run whose descendants budget the child is taken from."""


@dataclass(frozen=True)
class CancelChildRun:
    child_run_id: str


@dataclass(frozen=True)
class NotifyParent:
    """This run ended: report it to step ``parent_node_id`` (attempt ``parent_attempt``) of the
    parent run, as ``step_succeeded`` (completed, with ``outputs``) or ``step_failed``."""

    parent_run_id: str
    parent_node_id: str
    parent_attempt: int
    status: RunStatus
    outputs: dict[str, Any] | None
    error: RunError | None


Effect: TypeAlias = (
    DispatchStep | PublishRunEvent | ScheduleTimer | StartChildRun | CancelChildRun | NotifyParent
)


@dataclass(frozen=True)
class Decision:
    state: RunState
    effects: tuple[Effect, ...] = ()


def retry_delay(
    backoff: Backoff, attempt: int, jitter: float = 1.0, *, retry_after: float | None = None
) -> float:
    """Seconds between failed attempt ``attempt`` (1-based) and the next one.

    ``min(max_seconds, initial_seconds * factor ** (attempt - 1)) * jitter``, where ``jitter``
    is the caller's random factor in [0.5, 1.5]; with ``retry_after`` (the failure's own hint,
    a provider's ``Retry-After``) at least ``min(retry_after, max_seconds)``.
    """
    if not JITTER_MIN <= jitter <= JITTER_MAX:
        raise ValueError(f"jitter must be between {JITTER_MIN} and {JITTER_MAX}, not {jitter}")
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    exponential = backoff.initial_seconds * backoff.factor ** (attempt - 1)
    delay = min(backoff.max_seconds, exponential) * jitter
    if retry_after is None:
        return delay
    # Honour the failure's own hint (a provider's Retry-After: retrying sooner is refused
    # again), but never beyond the node's own maximum backoff: the workflow's author, not the
    # provider, bounds how long a step waits between attempts (a provider asking for an hour
    # must not hold the run for an hour).
    return max(delay, min(retry_after, backoff.max_seconds))


_HEX12 = re.compile(r"[0-9a-f]{12}")


def child_run_id(parent_run_id: str, node_id: str, attempt: int) -> str:
    """The id of the child run a ``workflow.run`` step's attempt starts: the same every time.

    ``run_`` + the parent id's 12-hex time prefix (so children sort with their parent) + 16 hex
    of ``sha256("<parent>/<node>/<attempt>")``: the ``^run_[0-9a-f]{28}$`` shape of run ids.
    """
    digest = hashlib.sha256(f"{parent_run_id}/{node_id}/{attempt}".encode()).hexdigest()
    prefix = parent_run_id[4:16]
    if not _HEX12.fullmatch(prefix):  # not a generated run id: keep the shape regardless
        prefix = hashlib.sha256(parent_run_id.encode()).hexdigest()[:12]
    return f"run_{prefix}{digest[:16]}"


_ITEM_ID = re.compile(r"^(?P<map>[^\[\]]+)\[(?P<index>0|[1-9][0-9]*)\]$")


def item_node_id(map_id: str, index: int) -> str:
    """The step name a map item is dispatched as."""
    return f"{map_id}[{index}]"


@dataclass(frozen=True)
class ReusedStep:
    """A step a rerun takes as done: the outputs it stored in run ``run_id``."""

    outputs: Mapping[str, Any]
    run_id: str
    """The run whose execution of the step produced ``outputs``."""


def new_run_state(
    run_id: str,
    defn: WorkflowDefinition,
    inputs: Mapping[str, Any],
    *,
    timeout_seconds: float | None = None,
    parent_run_id: str | None = None,
    parent_node_id: str | None = None,
    parent_attempt: int | None = None,
    depth: int = 0,
    root_run_id: str | None = None,
    reused: Mapping[str, ReusedStep] | None = None,
) -> RunState:
    """A queued run. Steps in ``reused`` (a rerun's, see ``workflow.rerun``) start succeeded
    with their stored outputs: :func:`start_run` dispatches only what is left, as it would
    after those steps had succeeded in this run."""
    parent = (parent_run_id, parent_node_id, parent_attempt)
    if any(part is not None for part in parent) and any(part is None for part in parent):
        raise ValueError("a child run needs parent_run_id, parent_node_id and parent_attempt")
    if depth < 0:
        raise ValueError(f"depth cannot be negative ({depth})")
    if timeout_seconds is not None and timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds must be positive ({timeout_seconds})")
    reused = reused or {}
    unknown = sorted(set(reused) - {node.id for node in defn.nodes})
    if unknown:
        raise ValueError(f"reused steps that are not nodes of the workflow: {unknown}")
    return RunState(
        run_id=run_id,
        status=RunStatus.QUEUED,
        inputs=dict(inputs),
        steps={
            node.id: StepState(
                node_id=node.id,
                status=StepStatus.SUCCEEDED,
                outputs=dict(reused[node.id].outputs),
                reused_from=reused[node.id].run_id,
            )
            if node.id in reused
            else StepState(node_id=node.id)
            for node in defn.nodes
        },
        timeout_seconds=timeout_seconds,
        parent_run_id=parent_run_id,
        parent_node_id=parent_node_id,
        parent_attempt=parent_attempt,
        depth=depth,
        root_run_id=root_run_id,
    )


def _limits(limits: Limits, default_step_timeout: float | None, max_depth: int | None) -> Limits:
    """`limits`, with the older keyword arguments (when given) taking precedence."""
    update: dict[str, Any] = {}
    if default_step_timeout is not None:
        update["default_step_timeout_seconds"] = default_step_timeout
    if max_depth is not None:
        update["max_chain_depth"] = max_depth
    return limits.model_copy(update=update) if update else limits


def start_run(
    defn: WorkflowDefinition,
    run: RunState,
    now: datetime,
    *,
    default_step_timeout: float | None = None,
    max_depth: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Decision:
    """Start a queued run: dispatch its ready nodes and schedule its run timeout, if any."""
    limits = _limits(limits, default_step_timeout, max_depth)
    max_depth = limits.max_chain_depth
    if run.status is not RunStatus.QUEUED:
        return Decision(run)
    if run.depth > max_depth:
        where = f"run {run.run_id} is {run.depth} levels below its root run"
        if run.parent_run_id is not None:
            where += f" (started by node {run.parent_node_id!r} of run {run.parent_run_id})"
        error = RunError(
            code="depth_exceeded",
            message=f"workflow chain deeper than {exceeded('max_chain_depth', max_depth)}: {where}",
        )
        return _fail(run, run, error, now, ())
    started = run.model_copy(
        update={"status": transition(run.status, RunStatus.RUNNING), "started_at": now}
    )
    decision = _advance(defn, started, run, now, (PublishRunEvent("started"),), limits)
    timeout = _run_timeout(defn, run)
    if timeout is None or is_terminal(decision.state.status):
        return decision
    timer = ScheduleTimer("run_timeout", None, None, now + timedelta(seconds=timeout))
    first, *rest = decision.effects
    return Decision(decision.state, (first, timer, *rest))


def step_succeeded(
    defn: WorkflowDefinition,
    run: RunState,
    node_id: str,
    attempt: int,
    outputs: Mapping[str, Any],
    now: datetime,
    *,
    default_step_timeout: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Decision:
    """A dispatched step, map item (``<map id>[<i>]``) or child run finished with ``outputs``.

    Outputs larger than ``MAX_STEP_OUTPUT_BYTES`` fail the step (``outputs_too_large``).
    """
    limits = _limits(limits, default_step_timeout, None)
    map_id, index = _split_item_id(node_id)
    if index is not None:
        return _item_succeeded(defn, run, map_id, index, attempt, outputs, now, limits)
    step = _current_step(run, node_id, attempt)
    if step is None:
        return Decision(run)
    node = _node(defn, node_id)
    if not _reports_back(node):
        return Decision(run)
    node_type = get_node_type(node.type)
    missing = [name for name in (node_type.outputs if node_type else ()) if name not in outputs]
    if missing:
        error = StepError(
            code="missing_outputs", message=f"finished without output(s): {', '.join(missing)}"
        )
        return _step_attempt_failed(run, node, step, error, now, 1.0, None, ())
    too_large = _outputs_too_large(outputs, limits)
    if too_large is not None:
        return _step_attempt_failed(run, node, step, too_large, now, 1.0, None, ())
    succeeded = step.model_copy(
        update={
            "status": transition(step.status, StepStatus.SUCCEEDED),
            "outputs": dict(outputs),
            "finished_at": now,
        }
    )
    return _advance(defn, _with_step(run, succeeded), run, now, (), limits)


def step_failed(
    defn: WorkflowDefinition,
    run: RunState,
    node_id: str,
    attempt: int,
    error: StepError,
    now: datetime,
    *,
    jitter: float = 1.0,
    default_step_timeout: float | None = None,
    started_at: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Decision:
    """A dispatched step, map item or child run failed.

    A retryable error with attempts left (the node's — or for a map item, the template's —
    ``retry.maxAttempts``) puts it in ``retrying`` and schedules a ``retry`` timer after the
    backoff delay times ``jitter``, or after the error's ``retry_after_seconds`` when that is
    longer (capped at the backoff's ``max_seconds``, see :func:`retry_delay`); otherwise the
    step fails and the run with it.
    ``started_at`` (when the executor began the attempt) goes into the attempt's record.
    ``default_step_timeout`` and ``limits`` are accepted so every decision function takes the
    same keywords.
    """
    map_id, index = _split_item_id(node_id)
    if index is not None:
        found = _current_item(defn, run, map_id, index, attempt)
        if found is None:
            return Decision(run)
        map_node, map_step, item = found
        return _item_attempt_failed(
            run, map_node, map_step, item, error, now, jitter, started_at, ()
        )
    step = _current_step(run, node_id, attempt)
    if step is None:
        return Decision(run)
    node = _node(defn, node_id)
    if not _reports_back(node):
        return Decision(run)
    return _step_attempt_failed(run, node, step, error, now, jitter, started_at, ())


def cancel_run(run: RunState, now: datetime) -> Decision:
    """Cancel a run that has not ended, and every child run it has running."""
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
    return Decision(
        canceled,
        (
            PublishRunEvent("canceled"),
            *_cancel_children(run, canceled),
            *_notify_parent(canceled),
        ),
    )


def fail_run(run: RunState, error: RunError, now: datetime) -> Decision:
    """Fail a run that has not ended with `error` (say, a message about it could not be
    processed): its unfinished steps are canceled, its child runs too, its parent is told."""
    if is_terminal(run.status):
        return Decision(run)
    return _fail(run, run, error, now, ())


def timer_fired(
    defn: WorkflowDefinition,
    run: RunState,
    timer: Timer,
    now: datetime,
    *,
    jitter: float = 1.0,
    default_step_timeout: float | None = None,
    max_depth: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Decision:
    """A timer fired. One that no longer matches the run (stale, duplicate) changes nothing.

    - ``retry``: dispatch the retrying step (or map item) again, as attempt ``timer.attempt``;
    - ``step_timeout``: the step (or item) still in flight with that attempt failed with a
      retryable ``timeout`` error (its child run, if any, is canceled);
    - ``run_timeout``: a run that has not ended fails with a ``timeout`` error;
    - ``wait``: the wait step succeeds with ``waited``;
    - ``watchdog``: starts the run if it is still queued; otherwise changes nothing.
    """
    limits = _limits(limits, default_step_timeout, max_depth)
    if timer.kind == "watchdog":
        if run.status is RunStatus.QUEUED:
            return start_run(defn, run, now, limits=limits)
        return Decision(run)
    if timer.kind == "run_timeout":
        return _run_timed_out(defn, run, now)
    if run.status is not RunStatus.RUNNING or timer.node_id is None or timer.attempt is None:
        return Decision(run)
    map_id, index = _split_item_id(timer.node_id)
    node = defn.node(map_id)
    step = run.steps.get(map_id)
    if node is None or step is None:
        return Decision(run)
    if index is not None:
        return _item_timer_fired(run, node, step, index, timer, now, jitter, limits)
    if (
        timer.kind == "retry"
        and step.status is StepStatus.RETRYING
        and step.attempt + 1 == timer.attempt
    ):
        started = _start_node(run, node, step, _context(run), now, limits)
        if started.run_error is not None:
            return _fail(_with_step(run, started.step), run, started.run_error, now, ())
        return Decision(_revised(_with_step(run, started.step), run), started.effects)
    if step.status is not StepStatus.DISPATCHED or step.attempt != timer.attempt:
        return Decision(run)
    if timer.kind == "step_timeout" and _has_step_timeout(node):
        seconds = _step_timeout(node, limits)
        error = StepError(
            code="timeout",
            message=f"node {node.id!r} exceeded its timeout of {_format_seconds(seconds)}s",
            retryable=True,
        )
        cancel = (CancelChildRun(step.child_run_id),) if step.child_run_id else ()
        return _step_attempt_failed(
            run, node, step, error, now, jitter, None, cancel, redrive_lost=True
        )
    if timer.kind == "wait" and node.type == "wait":
        params, problem = _dispatch_params(node, _context(run), limits)
        if problem is not None:  # resolved when the wait began, so it does again
            return _step_attempt_failed(run, node, step, problem, now, jitter, None, ())
        waited = step.model_copy(
            update={
                "status": transition(step.status, StepStatus.SUCCEEDED),
                "outputs": {"waited": params["seconds"]},
                "finished_at": now,
            }
        )
        return _advance(defn, _with_step(run, waited), run, now, (), limits)
    return Decision(run)


# --- steps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Started:
    """A step (or map item) dispatched, or failed with the run error to fail the run with."""

    step: StepState
    effects: tuple[Effect, ...] = ()
    run_error: RunError | None = None


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


def _reports_back(node: NodeSpec) -> bool:
    """Whether results for the node come from outside: an executor's, or a child run's."""
    node_type = get_node_type(node.type)
    return node_type is not None and (
        node_type.kind is NodeKind.EXECUTABLE or node_type.name == "workflow.run"
    )


def _advance(
    defn: WorkflowDefinition,
    run: RunState,
    before: RunState,
    now: datetime,
    effects: tuple[Effect, ...],
    limits: Limits,
) -> Decision:
    """Dispatch every node that became ready; complete the run when every node succeeded.

    A node can succeed as it starts (a map over no items), which can make others ready.
    If a node cannot start, the run fails and nothing else this decision started is kept.
    """
    graph = dependencies(defn)
    emitted = list(effects)
    unstarted: dict[str, StepState] = {}
    progressed = True
    while progressed:
        progressed = False
        context = _context(run)
        done = {n for n, step in run.steps.items() if step.status is StepStatus.SUCCEEDED}
        for node in defn.nodes:
            step = run.steps[node.id]
            if step.status is not StepStatus.PENDING or not graph[node.id] <= done:
                continue
            started = _start_node(run, node, step, context, now, limits)
            if started.run_error is not None:
                steps = {**run.steps, **unstarted, node.id: started.step}
                failed = run.model_copy(update={"steps": steps})
                return _fail(failed, before, started.run_error, now, effects)
            unstarted[node.id] = step
            run = _with_step(run, started.step)
            emitted.extend(started.effects)
            progressed = progressed or started.step.status is StepStatus.SUCCEEDED
    if all(step.status is StepStatus.SUCCEEDED for step in run.steps.values()):
        return _complete(defn, run, before, now, tuple(emitted), limits)
    return Decision(_revised(run, before), tuple(emitted))


def _start_node(
    run: RunState,
    node: NodeSpec,
    step: StepState,
    context: Mapping[str, Any],
    now: datetime,
    limits: Limits,
) -> _Started:
    """Dispatch a pending or retrying step as its next attempt, as its node type asks."""
    node_type = get_node_type(node.type)
    if node_type is not None and node.type == "map":
        return _start_map(run, node, node_type, step, context, now, limits)
    if node.type == "workflow.run" and children_started(run) >= limits.max_children_per_run:
        refusal = StepError(
            code="children_exceeded",
            message=f"run {run.run_id} already started {children_started(run)} child runs: "
            f"{exceeded('max_children_per_run', limits.max_children_per_run)}",
        )
        return _could_not_start(node, step, refusal, now)
    params, error = _dispatch_params(node, context, limits)
    if node_type is None or error is not None:
        error = error or StepError(code="unknown_node_type", message=f"unknown {node.type!r}")
        return _could_not_start(node, step, error, now)
    if node.type == "wait" and params["seconds"] > limits.max_wait_node_seconds:
        # Registration checks a literal; a referenced value is only known now.
        refusal = StepError(
            code="wait_too_long",
            message=f"wait of {_format_seconds(params['seconds'])}s, longer than "
            f"{exceeded('max_wait_node_seconds', limits.max_wait_node_seconds)}",
        )
        return _could_not_start(node, step, refusal, now)
    attempt = step.attempt + 1
    dispatched = _dispatched(step, attempt, now)
    effects: list[Effect] = []
    if node.type == "wait":
        due = now + timedelta(seconds=params["seconds"])
        effects.append(ScheduleTimer("wait", node.id, attempt, due))
    elif node.type == "workflow.run":
        child = child_run_id(run.run_id, node.id, attempt)
        dispatched = dispatched.model_copy(update={"child_run_id": child})
        effects.append(
            StartChildRun(
                node_id=node.id,
                attempt=attempt,
                child_run_id=child,
                workflow_id=params["workflowId"],
                version=params["version"],
                inputs=params["inputs"],
                depth=run.depth + 1,
                root_run_id=run.root,
            )
        )
    else:
        effects.append(DispatchStep(node.id, node.type, attempt, params, node.timeout_seconds))
    if _has_step_timeout(node):
        due = now + timedelta(seconds=_step_timeout(node, limits))
        effects.append(ScheduleTimer("step_timeout", node.id, attempt, due))
    return _Started(dispatched, tuple(effects))


def _could_not_start(node: NodeSpec, step: StepState, error: StepError, now: datetime) -> _Started:
    run_error = RunError(
        code=error.code,
        message=f"node {node.id!r} ({node.type}) could not start: {error.message}",
        node_id=node.id,
    )
    return _Started(_failed_to_dispatch(step, error, now), (), run_error)


def children_started(run: RunState) -> int:
    """Child runs this run has started: one per dispatched attempt of a ``workflow.run`` step
    (retries included). Map items never start child runs (a map's template is executable)."""
    return sum(step.attempt for step in run.steps.values() if step.child_run_id is not None)


def _dispatch_params(
    node: NodeSpec, context: Mapping[str, Any], limits: Limits
) -> tuple[dict[str, Any], StepError | None]:
    node_type = get_node_type(node.type)
    if node_type is None:
        return {}, StepError(code="unknown_node_type", message=f"unknown node type {node.type!r}")
    return _resolved_params(node_type, node.params, context, limits)


def step_params(
    defn: WorkflowDefinition, run: RunState, node_id: str, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any] | None:
    """The params step ``node_id`` is dispatched with, for people to read: its node's params
    resolved against the run's inputs and the outputs of the steps it references, validated,
    defaults filled in. Stored outputs never change, so this is what the orchestrator resolved
    when it dispatched the step. A map step shows its own params and its template (``node``)
    as written (each item resolves it with its own ``item``). None for a node that is not in
    the definition or of a type the catalog does not know.

    Should the whole not resolve (a step that could not start), each param is shown on its
    own: as written when it cannot be resolved, and as :func:`omitted_param` when it resolves
    to more than ``MAX_RESOLVED_VALUE_BYTES``.
    """
    node = defn.node(node_id)
    node_type = get_node_type(node.type) if node is not None else None
    if node is None or node_type is None:
        return None
    context = _context(run)
    limit = limits.max_resolved_value_bytes
    if node.type == "map":
        own = {name: value for name, value in node.params.items() if name != "node"}
        try:
            resolved = resolve(own, context, max_bytes=limit)
            model = validate_params(node_type, {**resolved, "node": node.params.get("node")})
        except (TemplateError, ParamsError):
            return {**_each_param(own, context, limit), "node": node.params.get("node")}
        return model.model_dump(mode="json", by_alias=True)
    params, error = _resolved_params(node_type, node.params, context, limits)
    return params if error is None else _each_param(node.params, context, limit)


def omitted_param(limit: int) -> dict[str, Any]:
    """What :func:`step_params` shows for a param larger than ``limit`` bytes resolved."""
    return {"omitted": "value_too_large", "maxBytes": limit}


def _each_param(
    params: Mapping[str, Any], context: Mapping[str, Any], limit: int
) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for name, value in params.items():
        try:
            shown[name] = resolve(value, context, max_bytes=limit)
        except ValueTooLarge:
            shown[name] = omitted_param(limit)
        except TemplateError:
            shown[name] = value  # it never resolved: as written
    return shown


def _resolved_params(
    node_type: NodeType, params: Mapping[str, Any], context: Mapping[str, Any], limits: Limits
) -> tuple[dict[str, Any], StepError | None]:
    limit = limits.max_resolved_value_bytes
    try:
        # Bounded while resolving: many references to a large value stop at the limit
        # instead of building the whole (possibly gigabytes large) result first.
        resolved = resolve(params, context, max_bytes=limit)
    except ValueTooLarge:
        return {}, _value_too_large(limit)
    except (ResolutionError, TemplateSyntaxError) as exc:
        return {}, StepError(code="params_unresolvable", message=str(exc))
    try:
        model = validate_params(node_type, resolved)
    except ParamsError as exc:
        return {}, _invalid(exc)
    dumped = model.model_dump(mode="json", by_alias=True)
    # The resolution's count is an estimate (it skips JSON escapes); this is the exact size.
    if json_size(dumped) > limit:
        return {}, _value_too_large(limit)
    return dumped, None


def _value_too_large(limit: int) -> StepError:
    return StepError(
        code="value_too_large",
        message=f"params resolve to more bytes than {exceeded('max_resolved_value_bytes', limit)}",
    )


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: how limits on values measure them."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _outputs_too_large(outputs: Mapping[str, Any], limits: Limits) -> StepError | None:
    size = json_size(outputs)
    if size <= limits.max_step_output_bytes:
        return None
    return StepError(
        code="outputs_too_large",
        message=f"finished with {size} bytes of outputs, more than "
        f"{exceeded('max_step_output_bytes', limits.max_step_output_bytes)}",
    )


def _invalid(exc: ParamsError) -> StepError:
    details = "; ".join(f"{p.path}: {p.message}" for p in exc.problems)
    return StepError(code="params_invalid", message=f"invalid params: {details}")


def _step_attempt_failed(
    run: RunState,
    node: NodeSpec,
    step: StepState,
    error: StepError,
    now: datetime,
    jitter: float,
    started_at: datetime | None,
    effects: tuple[Effect, ...],
    *,
    redrive_lost: bool = False,
) -> Decision:
    """Retry the step if its policy allows; otherwise fail it, and the run with it.

    A map step is never retried as a whole: its items are, each on its own. With
    `redrive_lost` (no result arrived before the step's timeout: its message or its executor
    may have been lost), an executable step is dispatched once more even without a retry
    policy, the first time this happens to it.
    """
    policy = None if node.type == "map" else node.retry
    record = _attempt_record(step, error, now, started_at)
    if policy is not None and error.retryable and step.attempt < policy.max_attempts:
        delay = retry_delay(
            policy.backoff, step.attempt, jitter, retry_after=error.retry_after_seconds
        )
        due = now + timedelta(seconds=delay)
        retrying = _retrying(step, error, record, due)
        timer = ScheduleTimer("retry", node.id, step.attempt + 1, due)
        return Decision(_revised(_with_step(run, retrying), run), (*effects, timer))
    node_type = get_node_type(node.type)
    first_loss = not any(a.error is not None and a.error.code == "timeout" for a in step.attempts)
    if (
        redrive_lost
        and first_loss
        and node_type is not None
        and node_type.kind is NodeKind.EXECUTABLE
    ):
        retrying = _retrying(step, error, record, now)
        timer = ScheduleTimer("retry", node.id, step.attempt + 1, now)
        return Decision(_revised(_with_step(run, retrying), run), (*effects, timer))
    failed = _cancel_items(_failed(step, error, record, now), now)
    run_error = RunError(
        code=_run_error_code(error),
        message=_failure_message(node.id, node.type, step.attempt, error),
        node_id=node.id,
    )
    return _fail(_with_step(run, failed), run, run_error, now, effects)


def _run_error_code(error: StepError) -> str:
    """A step's failure fails its run as ``step_failed``, unless a limit refused it."""
    return error.code if error.code in LIMIT_CODES else "step_failed"


def _has_step_timeout(node: NodeSpec) -> bool:
    """Executable steps always time out (by default after ``DEFAULT_STEP_TIMEOUT_SECONDS``),
    and so does a ``workflow.run`` (by default after ``MAX_RUN_TIMEOUT_SECONDS``: a child run
    that never ends must not hold its parent forever); other control steps only with their own
    ``timeoutSeconds`` (a map's bounds all its items together)."""
    node_type = get_node_type(node.type)
    return (
        node.timeout_seconds is not None
        or node.type == "workflow.run"
        or (node_type is not None and node_type.kind is NodeKind.EXECUTABLE)
    )


def _step_timeout(node: NodeSpec, limits: Limits) -> float:
    if node.timeout_seconds is not None:
        return node.timeout_seconds
    if node.type == "workflow.run":
        return limits.max_run_timeout_seconds
    return limits.default_step_timeout_seconds


def _failure_message(name: str, node_type: str, attempts: int, error: StepError) -> str:
    failed = "failed" if attempts <= 1 else f"failed after {attempts} attempts"
    return f"node {name!r} ({node_type}) {failed}: {error.message}"


# --- map ---------------------------------------------------------------------------------------


def _start_map(
    run: RunState,
    node: NodeSpec,
    node_type: NodeType,
    step: StepState,
    context: Mapping[str, Any],
    now: datetime,
    limits: Limits,
) -> _Started:
    """Resolve the items and dispatch the first ``concurrency`` of them (none: done at once).

    The template's params are resolved per item, when the item is dispatched.
    """
    own = {name: value for name, value in node.params.items() if name != "node"}
    try:
        # The items are kept in the run's state: bounded like any resolved value.
        resolved = resolve(own, context, max_bytes=limits.max_resolved_value_bytes)
    except ValueTooLarge:
        return _could_not_start(node, step, _value_too_large(limits.max_resolved_value_bytes), now)
    except (ResolutionError, TemplateSyntaxError) as exc:
        error = StepError(code="params_unresolvable", message=str(exc))
        return _could_not_start(node, step, error, now)
    try:
        params = validate_params(node_type, {**resolved, "node": node.params.get("node")})
    except ParamsError as exc:
        return _could_not_start(node, step, _invalid(exc), now)
    if not isinstance(params, MapParams):  # pragma: no cover - the catalog says otherwise
        raise TypeError(f"map params are {type(params).__name__}, not MapParams")
    if not isinstance(params.items, list):
        kind = type(params.items).__name__
        error = StepError(code="params_invalid", message=f"map items must be a list, not {kind}")
        return _could_not_start(node, step, error, now)
    template_type = get_node_type(params.node.type)
    if template_type is None or template_type.kind is not NodeKind.EXECUTABLE:
        error = StepError(
            code="params_invalid",
            message=f"a map template must be an executable node type, not {params.node.type!r}",
        )
        return _could_not_start(node, step, error, now)
    if len(params.items) > limits.max_map_items:
        error = StepError(
            code="map_too_large",
            message=f"map over {len(params.items)} items, more than "
            f"{exceeded('max_map_items', limits.max_map_items)}",
        )
        return _could_not_start(node, step, error, now)
    attempt = step.attempt + 1
    dispatched = _dispatched(step, attempt, now).model_copy(
        update={
            "items_total": len(params.items),
            # Clamped rather than refused: a smaller limit than the catalog's bound must not
            # break definitions registered before it was set.
            "concurrency": min(params.concurrency, limits.max_map_concurrency),
            "items": [MapItemState(index=i, item=item) for i, item in enumerate(params.items)],
        }
    )
    if not params.items:
        return _Started(_map_completed(dispatched, template_type, now))
    filled = _fill_map(run, node, params.node, dispatched, context, now, limits)
    if filled.run_error is not None or node.timeout_seconds is None:
        return filled
    due = now + timedelta(seconds=node.timeout_seconds)
    timer = ScheduleTimer("step_timeout", node.id, attempt, due)
    return _Started(filled.step, (*filled.effects, timer))


def _fill_map(
    run: RunState,
    node: NodeSpec,
    template: MapTemplate,
    step: StepState,
    context: Mapping[str, Any],
    now: datetime,
    limits: Limits,
) -> _Started:
    """Dispatch pending items, in order, while fewer than ``concurrency`` are in flight."""
    items = list(step.items or ())
    in_flight = sum(item.status in (StepStatus.DISPATCHED, StepStatus.RETRYING) for item in items)
    effects: list[Effect] = []
    for position, item in enumerate(items):
        if in_flight >= (step.concurrency or 1):
            break
        if item.status is not StepStatus.PENDING:
            continue
        started, item_effects, error = _start_item(node, template, item, context, now, limits)
        items[position] = started
        if error is not None:
            return _map_item_failed(node, step, template, started, now, could_not_start=True)
        effects.extend(item_effects)
        in_flight += 1
    return _Started(step.model_copy(update={"items": items}), tuple(effects))


def _start_item(
    node: NodeSpec,
    template: MapTemplate,
    item: MapItemState,
    context: Mapping[str, Any],
    now: datetime,
    limits: Limits,
) -> tuple[MapItemState, tuple[Effect, ...], StepError | None]:
    """Dispatch a pending or retrying item as its next attempt."""
    template_type = _template_type(template)
    params, error = _resolved_params(
        template_type, template.params, {**context, "item": item.item}, limits
    )
    if error is not None:
        return _failed_to_dispatch(item, error, now), (), error
    attempt = item.attempt + 1
    name = item_node_id(node.id, item.index)
    timeout = (
        template.timeout_seconds
        if template.timeout_seconds is not None
        else limits.default_step_timeout_seconds
    )
    effects = (
        DispatchStep(name, template.type, attempt, params, template.timeout_seconds),
        ScheduleTimer("step_timeout", name, attempt, now + timedelta(seconds=timeout)),
    )
    return _dispatched(item, attempt, now), effects, None


def _item_succeeded(
    defn: WorkflowDefinition,
    run: RunState,
    map_id: str,
    index: int,
    attempt: int,
    outputs: Mapping[str, Any],
    now: datetime,
    limits: Limits,
) -> Decision:
    found = _current_item(defn, run, map_id, index, attempt)
    if found is None:
        return Decision(run)
    node, step, item = found
    template = _map_template(node)
    template_type = _template_type(template)
    missing = [name for name in template_type.outputs if name not in outputs]
    if missing:
        error = StepError(
            code="missing_outputs", message=f"finished without output(s): {', '.join(missing)}"
        )
        return _item_attempt_failed(run, node, step, item, error, now, 1.0, None, ())
    too_large = _outputs_too_large(outputs, limits)
    if too_large is not None:
        return _item_attempt_failed(run, node, step, item, too_large, now, 1.0, None, ())
    succeeded = item.model_copy(
        update={
            "status": transition(item.status, StepStatus.SUCCEEDED),
            "outputs": dict(outputs),
            "finished_at": now,
        }
    )
    step = _with_item(step, succeeded)
    if all(item.status is StepStatus.SUCCEEDED for item in step.items or ()):
        completed = _map_completed(step, template_type, now)
        return _advance(defn, _with_step(run, completed), run, now, (), limits)
    filled = _fill_map(run, node, template, step, _context(run), now, limits)
    if filled.run_error is not None:
        return _fail(_with_step(run, filled.step), run, filled.run_error, now, ())
    return Decision(_revised(_with_step(run, filled.step), run), filled.effects)


def _item_attempt_failed(
    run: RunState,
    node: NodeSpec,
    step: StepState,
    item: MapItemState,
    error: StepError,
    now: datetime,
    jitter: float,
    started_at: datetime | None,
    effects: tuple[Effect, ...],
) -> Decision:
    """Retry the item with the template's policy if it allows; otherwise fail map and run."""
    template = _map_template(node)
    record = _attempt_record(item, error, now, started_at)
    policy = template.retry
    if policy is not None and error.retryable and item.attempt < policy.max_attempts:
        delay = retry_delay(
            policy.backoff, item.attempt, jitter, retry_after=error.retry_after_seconds
        )
        due = now + timedelta(seconds=delay)
        retrying = _with_item(step, _retrying(item, error, record, due))
        timer = ScheduleTimer("retry", item_node_id(node.id, item.index), item.attempt + 1, due)
        return Decision(_revised(_with_step(run, retrying), run), (*effects, timer))
    failed = _failed(item, error, record, now)
    outcome = _map_item_failed(node, step, template, failed, now, could_not_start=False)
    assert outcome.run_error is not None
    return _fail(_with_step(run, outcome.step), run, outcome.run_error, now, effects)


def _item_timer_fired(
    run: RunState,
    node: NodeSpec,
    step: StepState,
    index: int,
    timer: Timer,
    now: datetime,
    jitter: float,
    limits: Limits,
) -> Decision:
    if step.status is not StepStatus.DISPATCHED or not step.items or index >= len(step.items):
        return Decision(run)
    item = step.items[index]
    template = _map_template(node)
    if (
        timer.kind == "retry"
        and item.status is StepStatus.RETRYING
        and item.attempt + 1 == timer.attempt
    ):
        started, effects, error = _start_item(node, template, item, _context(run), now, limits)
        if error is not None:
            outcome = _map_item_failed(node, step, template, started, now, could_not_start=True)
            assert outcome.run_error is not None
            return _fail(_with_step(run, outcome.step), run, outcome.run_error, now, ())
        return Decision(_revised(_with_step(run, _with_item(step, started)), run), effects)
    if (
        timer.kind == "step_timeout"
        and item.status is StepStatus.DISPATCHED
        and item.attempt == timer.attempt
    ):
        seconds = (
            template.timeout_seconds
            if template.timeout_seconds is not None
            else limits.default_step_timeout_seconds
        )
        name = item_node_id(node.id, index)
        error = StepError(
            code="timeout",
            message=f"node {name!r} exceeded its timeout of {_format_seconds(seconds)}s",
            retryable=True,
        )
        return _item_attempt_failed(run, node, step, item, error, now, jitter, None, ())
    return Decision(run)


def _map_item_failed(
    node: NodeSpec,
    step: StepState,
    template: MapTemplate,
    item: MapItemState,
    now: datetime,
    *,
    could_not_start: bool,
) -> _Started:
    """An item failed for good: the map step fails (other items canceled), naming the item."""
    error = item.error or StepError(code="step_failed", message="failed")
    name = item_node_id(node.id, item.index)
    step_error = StepError(code=error.code, message=f"item {item.index} failed: {error.message}")
    failed = _with_item(step, item).model_copy(
        update={
            "status": transition(step.status, StepStatus.FAILED),
            "error": step_error,
            "finished_at": now,
        }
    )
    if could_not_start:
        run_error = RunError(
            code=error.code,
            message=f"node {name!r} ({template.type}) could not start: {error.message}",
            node_id=node.id,
        )
    else:
        run_error = RunError(
            code=_run_error_code(error),
            message=_failure_message(name, template.type, item.attempt, error),
            node_id=node.id,
        )
    return _Started(_cancel_items(failed, now), (), run_error)


def _map_completed(step: StepState, template_type: NodeType, now: datetime) -> StepState:
    """``outputs``: each item's outputs; ``results``: each item's first declared output."""
    outputs = [dict(item.outputs or {}) for item in step.items or ()]
    first = template_type.first_output
    results = [item_outputs.get(first) if first else None for item_outputs in outputs]
    return step.model_copy(
        update={
            "status": transition(step.status, StepStatus.SUCCEEDED),
            "outputs": {"results": results, "outputs": outputs},
            "finished_at": now,
        }
    )


def _current_item(
    defn: WorkflowDefinition, run: RunState, map_id: str, index: int, attempt: int
) -> tuple[NodeSpec, StepState, MapItemState] | None:
    """The map item a step message is about, or None if the message is a duplicate or stale."""
    step = run.steps.get(map_id)
    if (
        run.status is not RunStatus.RUNNING
        or step is None
        or step.status is not StepStatus.DISPATCHED
        or not step.items
        or index >= len(step.items)
    ):
        return None
    item = step.items[index]
    if item.status is not StepStatus.DISPATCHED or item.attempt != attempt:
        return None
    return _node(defn, map_id), step, item


def _map_template(node: NodeSpec) -> MapTemplate:
    return MapTemplate.model_validate(node.params.get("node"))


def _template_type(template: MapTemplate) -> NodeType:
    node_type = get_node_type(template.type)
    if node_type is None:  # the map checked it when it started
        raise KeyError(f"map template type {template.type!r} is not in the catalog")
    return node_type


def _with_item(step: StepState, item: MapItemState) -> StepState:
    items = list(step.items or ())
    items[item.index] = item
    return step.model_copy(update={"items": items})


def _cancel_items(step: StepState, now: datetime) -> StepState:
    if not step.items:
        return step
    items = [item if is_terminal(item.status) else _canceled(item, now) for item in step.items]
    return step.model_copy(update={"items": items})


def _split_item_id(node_id: str) -> tuple[str, int | None]:
    match = _ITEM_ID.match(node_id)
    if match is None:
        return node_id, None
    return match["map"], int(match["index"])


# --- steps and items alike -------------------------------------------------------------------

Unit = TypeVar("Unit", StepState, MapItemState)


def _dispatched(unit: Unit, attempt: int, now: datetime) -> Unit:
    return unit.model_copy(
        update={
            "status": transition(unit.status, StepStatus.DISPATCHED),
            "attempt": attempt,
            "error": None,
            "next_attempt_at": None,
            "dispatched_at": now,
            "started_at": None,
            "finished_at": None,
        }
    )


def _failed_to_dispatch(unit: Unit, error: StepError, now: datetime) -> Unit:
    """A pending step fails outright; a retrying one fails as the attempt it could not start."""
    if unit.status is StepStatus.RETRYING:
        unit = _dispatched(unit, unit.attempt + 1, now)
    return unit.model_copy(
        update={
            "status": transition(unit.status, StepStatus.FAILED),
            "error": error,
            "next_attempt_at": None,
            "finished_at": now,
        }
    )


def _attempt_record(
    unit: Unit, error: StepError, now: datetime, started_at: datetime | None
) -> AttemptRecord:
    return AttemptRecord(
        attempt=unit.attempt,
        error=error,
        dispatched_at=unit.dispatched_at,
        started_at=started_at or unit.started_at,
        finished_at=now,
    )


def _retrying(unit: Unit, error: StepError, record: AttemptRecord, due: datetime) -> Unit:
    return unit.model_copy(
        update={
            "status": transition(unit.status, StepStatus.RETRYING),
            "error": error,
            "attempts": [*unit.attempts, record],
            "next_attempt_at": due,
        }
    )


def _failed(unit: Unit, error: StepError, record: AttemptRecord, now: datetime) -> Unit:
    return unit.model_copy(
        update={
            "status": transition(unit.status, StepStatus.FAILED),
            "error": error,
            "attempts": [*unit.attempts, record],
            "next_attempt_at": None,
            "finished_at": now,
        }
    )


def _canceled(unit: Unit, now: datetime) -> Unit:
    return unit.model_copy(
        update={
            "status": transition(unit.status, StepStatus.CANCELED),
            "next_attempt_at": None,
            "finished_at": now,
        }
    )


# --- the run -----------------------------------------------------------------------------------


def _run_timed_out(defn: WorkflowDefinition, run: RunState, now: datetime) -> Decision:
    timeout = _run_timeout(defn, run)
    if is_terminal(run.status) or timeout is None:
        return Decision(run)
    error = RunError(
        code="timeout", message=f"the run exceeded its timeout of {_format_seconds(timeout)}s"
    )
    return _fail(run, run, error, now, ())


def _run_timeout(defn: WorkflowDefinition, run: RunState) -> float | None:
    return run.timeout_seconds if run.timeout_seconds is not None else defn.timeout_seconds


def _complete(
    defn: WorkflowDefinition,
    run: RunState,
    before: RunState,
    now: datetime,
    effects: tuple[Effect, ...],
    limits: Limits,
) -> Decision:
    limit = limits.max_run_state_bytes
    try:
        # Bounded: the outputs become part of the run's state and of its events.
        outputs = resolve(defn.outputs, _context(run), max_bytes=limit)
    except ValueTooLarge:
        error = RunError(
            code="outputs_too_large",
            message=f"workflow outputs are larger than {exceeded('max_run_state_bytes', limit)}",
        )
        return _fail(run, before, error, now, effects)
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
    return Decision(
        _revised(completed, before),
        (*effects, PublishRunEvent("completed"), *_notify_parent(completed)),
    )


def run_too_large(
    run: RunState, now: datetime, size: int, limits: Limits = DEFAULT_LIMITS
) -> Decision:
    """A decision would have made the state of ``run`` ``size`` bytes, over
    ``MAX_RUN_STATE_BYTES``: fail the run as it was before that decision (that state fits)
    instead, so every event about the run still fits one Kafka message."""
    if is_terminal(run.status):
        return Decision(run)
    error = RunError(
        code="outputs_too_large",
        message=f"the run's state would grow to {size} bytes, more than "
        f"{exceeded('max_run_state_bytes', limits.max_run_state_bytes)}",
    )
    return _fail(run, run, error, now, ())


def _fail(
    run: RunState,
    before: RunState,
    error: RunError,
    now: datetime,
    effects: tuple[Effect, ...],
) -> Decision:
    """Fail the run, cancel its unfinished steps and the child runs of those."""
    failed = run.model_copy(
        update={
            "status": transition(run.status, RunStatus.FAILED),
            "steps": _cancel_unfinished(run.steps, now),
            "error": error,
            "completed_at": now,
        }
    )
    return Decision(
        _revised(failed, before),
        (
            *effects,
            PublishRunEvent("failed"),
            *_cancel_children(before, failed),
            *_notify_parent(failed),
        ),
    )


def _cancel_unfinished(steps: Mapping[str, StepState], now: datetime) -> dict[str, StepState]:
    return {
        node_id: step if is_terminal(step.status) else _cancel_items(_canceled(step, now), now)
        for node_id, step in steps.items()
    }


def _cancel_children(before: RunState, after: RunState) -> list[CancelChildRun]:
    """A child run for every ``workflow.run`` step that was running and now is canceled."""
    return [
        CancelChildRun(step.child_run_id)
        for node_id, step in before.steps.items()
        if step.child_run_id is not None
        and step.status is StepStatus.DISPATCHED
        and after.steps[node_id].status is StepStatus.CANCELED
    ]


def _notify_parent(run: RunState) -> Sequence[NotifyParent]:
    if run.parent_run_id is None or run.parent_node_id is None or run.parent_attempt is None:
        return ()
    return (
        NotifyParent(
            parent_run_id=run.parent_run_id,
            parent_node_id=run.parent_node_id,
            parent_attempt=run.parent_attempt,
            status=run.status,
            outputs=run.outputs,
            error=run.error,
        ),
    )


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


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _node(defn: WorkflowDefinition, node_id: str) -> NodeSpec:
    node = defn.node(node_id)
    if node is None:
        raise KeyError(f"node {node_id!r} is not in the workflow definition")
    return node
