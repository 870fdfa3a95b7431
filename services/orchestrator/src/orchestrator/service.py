"""The orchestrator's application layer: load a run, let the domain decide, store, act.

Every handler is idempotent. The domain returns an unchanged state (same revision) for a
duplicate or stale event; each change claims the next revision of the run together with the
actions it decided (its outbox) and writes the run (`RunRepository.commit`); the actions are
then carried out and the claim released. The latest state of hot runs stays in memory, so an
event normally costs no read; a change whose claim is left over is finished in `_recover`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from bus import logs, tracing
from bus.envelope import WEBHOOK
from bus.publisher import EventPublisher
from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError
from runview import Definitions, RunView, load_view, to_event_data
from storage.budgets import RunBudgets
from storage.runs import RunRecord, RunRepository
from storage.workflows import WorkflowRepository
from workflow.definition import WorkflowDefinition
from workflow.limits import JITTER_MAX, JITTER_MIN, Limits, exceeded
from workflow.run import (
    DEFAULT_LIMITS,
    LIMIT_CODES,
    CancelChildRun,
    Decision,
    DispatchStep,
    NotifyParent,
    PublishRunEvent,
    RunError,
    RunState,
    ScheduleTimer,
    StartChildRun,
    StepError,
    Timer,
    cancel_run,
    fail_run,
    new_run_state,
    run_too_large,
    start_run,
    step_failed,
    step_succeeded,
    timer_fired,
)
from workflow.state import RunStatus, StepStatus
from workflow.validation import validate_inputs

from contracts import events as ev
from orchestrator import outbox, timers

log = logging.getLogger("orchestrator")

Decide = Callable[[WorkflowDefinition, RunState], Decision]

RUN_EVENT_OF_KIND: dict[str, type[ev.RunEventData]] = {
    "started": ev.RunStarted,
    "completed": ev.RunCompleted,
    "failed": ev.RunFailed,
    "canceled": ev.RunCanceled,
}

MAX_CONFLICT_RETRIES = 5


def _now() -> datetime:
    return datetime.now(UTC)


def _jitter() -> float:
    return random.uniform(JITTER_MIN, JITTER_MAX)


def step_error(failure: ev.StepFailure) -> StepError:
    """The run record's error of a failed step: everything the executor said, including its
    hint of when to try again (``retry_after_seconds``), which the retry delay honours."""
    return StepError(
        code=failure.code,
        message=failure.message,
        retryable=failure.retryable,
        retry_after_seconds=failure.retry_after_seconds,
    )


@dataclass(frozen=True)
class Policy:
    step_timeout_grace: float = 5.0
    """The executor enforces a step's timeout itself and reports it; the orchestrator's own
    timer fires this much later, for a step whose result was lost."""
    claim_grace: float = 30.0
    """A change not carried out this long after it was written is re-driven by the sweeper;
    a run still queued this long after it was created is started by it."""
    hot_runs: int = 10_000
    """Runs whose latest state this process keeps parsed, most recently used first."""
    limits: Limits = field(default_factory=lambda: DEFAULT_LIMITS)
    """What a run may use (the service's settings): sizes, map items, children, descendants."""


class ClaimInFlight(Exception):
    """Another writer claimed the run's next revision moments ago; handle the event later."""


@dataclass(frozen=True)
class _Hot:
    """A run as last written by this process, parsed once."""

    record: RunRecord
    state: RunState


class Orchestrator:
    def __init__(
        self,
        runs: RunRepository,
        workflows: WorkflowRepository,
        publisher: EventPublisher,
        policy: Policy = Policy(),
        clock: Callable[[], datetime] = _now,
        jitter: Callable[[], float] = _jitter,
        budgets: RunBudgets | None = None,
    ) -> None:
        self._runs = runs
        self._budgets = budgets
        self._workflows = workflows
        self._publisher = publisher
        self._policy = policy
        self._clock = clock
        self._jitter = jitter
        self._definitions = Definitions(workflows)
        self._hot: OrderedDict[str, _Hot] = OrderedDict()
        self._to_release: dict[str, None] = {}
        """Claims whose actions this process carried out and has not removed yet: a fresh
        load (a watchdog, a redelivered event) before their removal must not repeat them."""

    def forget(self) -> None:
        """Drop every cached run: after a rebalance another instance may have changed them."""
        self._hot.clear()

    async def release_claims(self) -> None:
        """Remove the claims of changes carried out since the last call, in one request."""
        ids, self._to_release = self._to_release, {}
        try:
            await self._runs.release(list(ids))
        except BaseException:
            self._to_release.update(ids)
            raise

    async def on_run_requested(self, event: ev.RunRequested) -> None:
        p = self._policy
        await self._apply(
            event.run_id,
            lambda d, s: start_run(
                d,
                s,
                self._clock(),
                max_depth=p.limits.max_chain_depth,
                default_step_timeout=p.limits.default_step_timeout_seconds,
                limits=p.limits,
            ),
        )

    async def on_step_succeeded(self, event: ev.StepSucceeded) -> None:
        await self._apply(
            event.run_id,
            lambda d, s: step_succeeded(
                d,
                s,
                event.node_id,
                event.attempt,
                event.outputs,
                self._clock(),
                default_step_timeout=self._policy.limits.default_step_timeout_seconds,
                limits=self._policy.limits,
            ),
            timing=(event.node_id, event.started_at),
            assets={a.ref: a for a in event.assets},
        )

    async def on_step_failed(self, event: ev.StepFailed) -> None:
        error = step_error(event.error)
        await self._apply(
            event.run_id,
            lambda d, s: step_failed(
                d,
                s,
                event.node_id,
                event.attempt,
                error,
                self._clock(),
                jitter=self._jitter(),
                default_step_timeout=self._policy.limits.default_step_timeout_seconds,
                started_at=event.started_at,
                limits=self._policy.limits,
            ),
            timing=(event.node_id, event.started_at),
        )

    async def on_cancel_requested(self, event: ev.RunCancelRequested) -> None:
        await self._apply(event.run_id, lambda _d, s: cancel_run(s, self._clock()))

    async def fail_run(self, run_id: str, error: RunError) -> RunRecord | None:
        """End a run that has not ended `failed` with `error` through the normal path (run
        event, webhook, parent told); a run that has ended is left as it is."""
        return await self._apply(
            run_id, lambda _d, s: fail_run(s, error, self._clock()), fresh=True
        )

    async def on_timer_fired(self, event: ev.TimerFired) -> None:
        """The sweeper's nudge (kind ``watchdog``): look at the stored run afresh, carry out
        what a crashed writer left, start it if it is still queued, fire what is due. Any
        other kind fires that one timer."""
        try:
            timer = Timer(kind=event.kind, node_id=event.node_id, attempt=event.attempt)
        except ValidationError:
            log.error("run %s: timer of unknown kind %r ignored", event.run_id, event.kind)
            return
        await self._apply(
            event.run_id, lambda d, s: self._fire(d, s, timer), fire_due=True, fresh=True
        )

    def _fire(self, defn: WorkflowDefinition, state: RunState, timer: Timer) -> Decision:
        p = self._policy
        return timer_fired(
            defn,
            state,
            timer,
            self._clock(),
            jitter=self._jitter(),
            default_step_timeout=p.limits.default_step_timeout_seconds,
            max_depth=p.limits.max_chain_depth,
            limits=p.limits,
        )

    async def _apply(
        self,
        run_id: str,
        decide: Decide,
        *,
        timing: tuple[str, datetime] | None = None,
        assets: dict[str, ev.AssetInfo] | None = None,
        fire_due: bool = False,
        fresh: bool = False,
    ) -> RunRecord | None:
        for _ in range(MAX_CONFLICT_RETRIES):
            hot = await self._load(run_id, fresh=fresh)
            if hot is None:
                log.error("run %s: event for a run that does not exist; ignored", run_id)
                return None
            record, state = hot.record, hot.state
            logs.bind(tenantId=record.tenant_id, traceId=tracing.trace_id_of(record.traceparent))
            defn = await self._definitions.get(
                record.tenant_id, record.workflow_id, record.workflow_version
            )
            now = self._clock()
            before = timers.load(record.timers_json)
            decision, new_pending = self._decide(defn, state, before, decide, now, fire_due)
            new_state = decision.state
            if new_state.revision == state.revision and new_pending == before:
                return record
            new_state = new_state.model_copy(update={"revision": state.revision + 1})
            if timing is not None and timing[0] in new_state.steps:
                node_id, started_at = timing
                step = new_state.steps[node_id].model_copy(update={"started_at": started_at})
                new_state = new_state.model_copy(
                    update={"steps": {**new_state.steps, node_id: step}}
                )
            updated = self._record_for(record, new_state, assets, new_pending)
            size = _utf8_size(updated.state_json)
            if size > self._policy.limits.max_run_state_bytes:
                # Written, this state would make events (which carry the run) larger than a
                # Kafka message: publishing them would fail on every retry and wedge the run.
                # The run fails as it was before this decision instead.
                log.warning("run %s: state of %d bytes refused; run failed", run_id, size)
                decision = run_too_large(state, now, size, self._policy.limits)
                new_pending = timers.pruned(before, decision.state)
                new_state = decision.state.model_copy(update={"revision": state.revision + 1})
                updated = self._record_for(record, new_state, None, new_pending)
            actions = self._actions(updated, decision, defn)
            actions += self._map_progress(updated, state, new_state)
            claim = await self._runs.commit(
                updated,
                base_revision=record.revision,
                outbox_json=outbox.dump(actions),
                due_at=now + timedelta(seconds=self._policy.claim_grace),
            )
            if claim is None:
                log.info(
                    "run %s: revision %d was written meanwhile; deciding again",
                    run_id,
                    updated.revision,
                )
                self._hot.pop(run_id, None)
                fresh = True
                continue
            self._remember(claim.record, new_state)
            _log_progress(record, state, new_state, defn)
            try:
                await self._carry_out(claim.record, actions)
            except BaseException:
                # Not released: the claim is carried out again by the next event or the sweeper.
                self._hot.pop(run_id, None)
                raise
            self._to_release[claim.claim_id] = None
            return claim.record
        raise RuntimeError(f"run {run_id}: gave up after {MAX_CONFLICT_RETRIES} write conflicts")

    def _decide(
        self,
        defn: WorkflowDefinition,
        state: RunState,
        pending: list[timers.Pending],
        decide: Decide,
        now: datetime,
        fire_due: bool,
    ) -> tuple[Decision, list[timers.Pending]]:
        """The domain's decision (with the run's due timers fired, when asked) and the
        timers the run has pending after it."""
        decision = decide(defn, state)
        if fire_due:
            due, pending = timers.split_due(pending, now)
            for p in due:
                fired = self._fire(defn, decision.state, p.timer())
                decision = Decision(fired.state, decision.effects + fired.effects)
        grace = timedelta(seconds=self._policy.step_timeout_grace)
        schedules = [
            replace(e, due_at=e.due_at + grace) if e.kind == "step_timeout" else e
            for e in decision.effects
            if isinstance(e, ScheduleTimer)
        ]
        return decision, timers.pruned(timers.scheduled(pending, schedules), decision.state)

    def _remember(self, record: RunRecord, state: RunState) -> _Hot:
        hot = _Hot(record, state)
        self._hot[record.run_id] = hot
        self._hot.move_to_end(record.run_id)
        while len(self._hot) > self._policy.hot_runs:
            self._hot.popitem(last=False)
        return hot

    async def _load(self, run_id: str, *, fresh: bool) -> _Hot | None:
        hot = None if fresh else self._hot.get(run_id)
        if hot is not None:
            self._hot.move_to_end(run_id)
            return hot
        record = await self._runs.get(run_id)
        if record is None:
            return None
        # A run no orchestrator has written yet has no claims: its first event needs one read.
        if fresh or record.revision > 0:
            record = await self._recover(record)
        return self._remember(record, RunState.model_validate_json(record.state_json))

    async def _recover(self, record: RunRecord) -> RunRecord:
        """Finish what writers before us left: a claim never written to the run is rolled
        forward; the claim that wrote the current revision is carried out again (its actions
        may not all have gone out); any other claim is stale and only removed. Nothing is
        decided on top of a revision whose actions were never carried out."""
        now = self._clock()
        for claim in await self._runs.claims(record.run_id):
            overdue = claim.due_at is None or claim.due_at <= now
            if claim.revision > record.revision + 1:
                if overdue:  # cannot happen while writers keep the rules; never leave it due
                    log.error(
                        "run %s: claim %s is ahead of the run; removed",
                        record.run_id,
                        claim.claim_id,
                    )
                    self._to_release[claim.claim_id] = None
                continue
            if claim.revision == record.revision + 1:
                if not overdue:
                    # Its writer may be between its claim and its write: rolling forward now
                    # would make two writers on one revision (updates are not atomic on
                    # FerretDB). Try again later; by its due time the writer is done or dead.
                    raise ClaimInFlight(f"run {record.run_id}: {claim.claim_id} is in flight")
                if await self._runs.roll_forward(claim, record.revision):
                    log.info("run %s: rolled revision %d forward", record.run_id, claim.revision)
                    record = claim.record
                else:
                    record = await self._runs.get(record.run_id) or record
            if (
                claim.revision == record.revision
                and claim.nonce == record.claim
                and claim.claim_id not in self._to_release
            ):
                log.info(
                    "run %s: carrying out revision %d's actions again",
                    record.run_id,
                    claim.revision,
                )
                await self._carry_out(record, outbox.load(claim.outbox_json))
            if claim.revision <= record.revision:
                self._to_release[claim.claim_id] = None
        return record

    def _record_for(
        self,
        record: RunRecord,
        state: RunState,
        assets: dict[str, ev.AssetInfo] | None,
        pending: list[timers.Pending],
    ) -> RunRecord:
        merged = json.loads(record.assets_json)
        for ref, info in (assets or {}).items():
            merged[ref] = info.model_dump(mode="json", by_alias=True)
        return record.evolve(
            status=state.status.value,
            revision=state.revision,
            # Fields at their defaults are left out (they load back the same): every change
            # rewrites the whole state, a map's items in particular, so its size is the cost.
            state_json=state.model_dump_json(exclude_defaults=True),
            assets_json=json.dumps(merged),
            started_at=state.started_at,
            completed_at=state.completed_at,
            timers_json=timers.dump(pending),
            due_at=timers.next_due(pending),
        )

    def _map_progress(
        self, record: RunRecord, before: RunState, after: RunState
    ) -> list[outbox.Action]:
        """Progress of `map` steps whose items finished in this decision (for SSE)."""
        progress: list[outbox.Action] = []
        for node_id, step in after.steps.items():
            if not step.items_total or step.items is None:
                continue
            done = sum(1 for item in step.items if item.status is StepStatus.SUCCEEDED)
            old = before.steps.get(node_id)
            old_done = (
                sum(1 for item in (old.items or []) if item.status is StepStatus.SUCCEEDED)
                if old is not None
                else 0
            )
            if done > old_done:
                progress.append(
                    outbox.Publish(
                        f"{record.run_id}:{record.revision}:progress:{node_id}",
                        ev.StepProgress(
                            run_id=record.run_id,
                            node_id=node_id,
                            attempt=step.attempt,
                            progress=done / step.items_total,
                            message=f"{done} of {step.items_total} items done",
                        ),
                    )
                )
        return progress

    def _actions(
        self, record: RunRecord, decision: Decision, defn: WorkflowDefinition
    ) -> list[outbox.Action]:
        actions: list[outbox.Action] = []
        # Parsing the stored run again is only needed for events that carry the run.
        view: RunView | None = None
        for i, effect in enumerate(decision.effects):
            event_id = f"{record.run_id}:{record.revision}:{i}"
            if isinstance(effect, DispatchStep):
                actions.append(
                    outbox.Publish(
                        event_id,
                        ev.StepRequested(
                            run_id=record.run_id,
                            tenant_id=record.tenant_id,
                            node_id=effect.node_id,
                            node_type=effect.node_type,
                            attempt=effect.attempt,
                            params=effect.params,
                            timeout_seconds=effect.timeout_seconds,
                        ),
                    )
                )
            elif isinstance(effect, PublishRunEvent):
                view = view or load_view(record)
                data = to_event_data(view, defn).model_dump()
                actions.append(
                    outbox.Publish(
                        event_id,
                        RUN_EVENT_OF_KIND[effect.kind].model_validate(data),
                        {WEBHOOK: "true" if record.webhook_json else "false"},
                    )
                )
            elif isinstance(effect, ScheduleTimer):
                pass  # kept on the run record with the state (see `timers`)
            elif isinstance(effect, StartChildRun):
                actions.append(
                    outbox.StartChild(
                        node_id=effect.node_id,
                        attempt=effect.attempt,
                        child_run_id=effect.child_run_id,
                        workflow_id=effect.workflow_id,
                        version=effect.version,
                        inputs=dict(effect.inputs),
                        depth=effect.depth,
                        root_run_id=effect.root_run_id,
                    )
                )
            elif isinstance(effect, CancelChildRun):
                actions.append(
                    outbox.Publish(
                        event_id,
                        ev.RunCancelRequested(
                            run_id=effect.child_run_id,
                            tenant_id=record.tenant_id,
                            requested_at=self._clock(),
                        ),
                    )
                )
            elif isinstance(effect, NotifyParent):
                view = view or load_view(record)
                actions.append(outbox.Publish(event_id, self._parent_event(view, effect)))
            else:  # pragma: no cover - the domain's effect union is closed
                raise TypeError(f"unknown effect {effect!r}")
        return actions

    def _parent_event(self, view: RunView, effect: NotifyParent) -> ev.EventData:
        """A finished child run answers its parent's `workflow.run` step like an executor."""
        state = view.state
        now = self._clock()
        started = state.started_at or now
        if effect.status is RunStatus.COMPLETED:
            outputs = dict(effect.outputs or {})
            refs = {v for v in _strings(outputs) if v in view.assets}
            return ev.StepSucceeded(
                run_id=effect.parent_run_id,
                node_id=effect.parent_node_id,
                attempt=effect.parent_attempt,
                outputs=outputs,
                assets=[view.assets[r] for r in sorted(refs)],
                started_at=started,
                finished_at=state.completed_at or now,
            )
        reason = effect.error.message if effect.error else effect.status.value
        # A limit that stopped the child stops the parent with the same code, up to the root.
        limited = effect.error is not None and effect.error.code in LIMIT_CODES
        return ev.StepFailed(
            run_id=effect.parent_run_id,
            node_id=effect.parent_node_id,
            attempt=effect.parent_attempt,
            error=ev.StepFailure(
                code=effect.error.code
                if limited and effect.error is not None
                else f"child_{effect.status.value}",
                message=f"child run {view.record.run_id} {effect.status.value}: {reason}",
            ),
            started_at=started,
            finished_at=state.completed_at or now,
        )

    async def _carry_out(self, record: RunRecord, actions: list[outbox.Action]) -> None:
        # In the run's trace whoever carries it out: a handler of one of its events, the
        # sweeper, a timer or a restarted process (the trace stored on the run).
        with tracing.run_span("run carry-out", record.traceparent, runId=record.run_id):
            for action in actions:
                if isinstance(action, outbox.Publish):
                    await self._publisher.publish(
                        action.event,
                        event_id=action.event_id,
                        extensions=action.extensions,
                    )
                else:
                    await self._start_child(record, action)

    async def _start_child(self, parent: RunRecord, action: outbox.StartChild) -> None:
        now = self._clock()
        workflow = (
            await self._workflows.get(parent.tenant_id, action.workflow_id, action.version)
            if action.version is not None
            else await self._workflows.latest(parent.tenant_id, action.workflow_id)
        )
        problem: str | None = None
        if workflow is None:
            which = f" version {action.version}" if action.version is not None else ""
            problem = f"workflow {action.workflow_id!r}{which} does not exist"
        else:
            defn = self._definitions.of(workflow)
            problems = validate_inputs(defn.input_schema, action.inputs)
            if problems:
                problem = "child inputs invalid: " + "; ".join(
                    f"{p.path}: {p.message}" for p in problems
                )
        code = "invalid_child"
        root = action.root_run_id or parent.run_id
        limit = self._policy.limits.max_descendants_per_root
        if (
            problem is None
            and self._budgets is not None
            and not await self._budgets.take(root, action.child_run_id, limit, now)
        ):
            # Taken before the child run exists, and idempotent per child: a redelivered
            # action neither takes a second slot nor is refused by its own.
            code = "descendants_exceeded"
            problem = (
                f"run {root} and the runs below it already started "
                f"{exceeded('max_descendants_per_root', limit)} runs"
            )
        if problem is not None or workflow is None:
            await self._publisher.publish(
                ev.StepFailed(
                    run_id=parent.run_id,
                    node_id=action.node_id,
                    attempt=action.attempt,
                    error=ev.StepFailure(code=code, message=problem or "unknown"),
                    started_at=now,
                    finished_at=now,
                ),
                event_id=f"{action.child_run_id}:rejected",
            )
            return
        state = new_run_state(
            action.child_run_id,
            defn,
            action.inputs,
            parent_run_id=parent.run_id,
            parent_node_id=action.node_id,
            parent_attempt=action.attempt,
            depth=action.depth,
            root_run_id=root,
        )
        child = RunRecord(
            run_id=action.child_run_id,
            tenant_id=parent.tenant_id,
            workflow_id=workflow.workflow_id,
            workflow_version=workflow.version,
            status=state.status.value,
            revision=state.revision,
            created_at=now,
            state_json=state.model_dump_json(),
            # One trace for the run and the runs below it.
            traceparent=tracing.current_traceparent() or parent.traceparent,
            due_at=now + timedelta(seconds=self._policy.claim_grace),
        )
        with contextlib.suppress(DuplicateKeyError):  # created by an earlier attempt
            await self._runs.create(child)
        await self._publisher.publish(
            ev.RunRequested(
                run_id=child.run_id,
                tenant_id=child.tenant_id,
                workflow_id=child.workflow_id,
                workflow_version=child.workflow_version,
                requested_at=now,
            ),
            event_id=f"{child.run_id}:requested",
        )


_STEP_RESULTS = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELED, StepStatus.RETRYING}
)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


def _log_progress(
    record: RunRecord, before: RunState, after: RunState, defn: WorkflowDefinition
) -> None:
    """One INFO line per run transition and per step result, written once (after the commit
    that made it): what `make run` shows a person, and what a log search finds by runId."""
    types = {node.id: node.type for node in defn.nodes}
    # Named on each line too: the sweeper decides outside any event's bound context.
    run = {
        "runId": record.run_id,
        "tenantId": record.tenant_id,
        "traceId": tracing.trace_id_of(record.traceparent),
    }
    for node_id, step in after.steps.items():
        old = before.steps.get(node_id)
        if step.status not in _STEP_RESULTS or (old is not None and old.status == step.status):
            continue
        took = _seconds(step.started_at or step.dispatched_at, step.finished_at)
        failed = step.error is not None and step.status != StepStatus.SUCCEEDED
        why = f": {step.error.message}" if failed and step.error else ""
        log.info(
            "step %s (%s) %s%s%s",
            node_id,
            types.get(node_id, "?"),
            step.status.value,
            f" in {took:.2f} s" if took is not None else "",
            why[:300],
            extra={
                **run,
                "event": f"step.{step.status.value}",
                "nodeId": node_id,
                "nodeType": types.get(node_id),
                "attempt": step.attempt,
                "durationMs": None if took is None else round(took * 1000),
            },
        )
    if after.status == before.status:
        return
    if after.status == RunStatus.RUNNING:
        log.info(
            "run started: %s v%d",
            record.workflow_id,
            record.workflow_version,
            extra={
                **run,
                "nodeId": None,
                "event": "run.started",
                "workflowId": record.workflow_id,
            },
        )
        return
    took = _seconds(after.started_at or record.created_at, after.completed_at)
    why = f": {after.error.message}" if after.error else ""
    log.info(
        "run %s%s%s",
        after.status.value,
        f" in {took:.2f} s" if took is not None else "",
        why[:300],
        extra={
            **run,
            "nodeId": None,  # not the step whose event ended the run
            "event": f"run.{after.status.value}",
            "workflowId": record.workflow_id,
            "durationMs": None if took is None else round(took * 1000),
        },
    )


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
