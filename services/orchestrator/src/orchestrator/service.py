"""The orchestrator's application layer: load a run, let the domain decide, store, publish.

Every handler is idempotent. The domain returns an unchanged state (same revision) for a
duplicate or stale event; the write is a compare-and-set on the revision; messages go out
through the run's outbox.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from bus.envelope import new_traceparent
from bus.publisher import EventPublisher
from runview import load_view, to_event_data
from storage.runs import RunRecord, RunRepository
from storage.workflows import WorkflowRepository
from workflow.definition import WorkflowDefinition
from workflow.run import (
    Decision,
    DispatchStep,
    PublishRunEvent,
    RunState,
    StepError,
    cancel_run,
    start_run,
    step_failed,
    step_succeeded,
)

from contracts import events as ev
from orchestrator import outbox

log = logging.getLogger("orchestrator")

Decide = Callable[[WorkflowDefinition, RunState], Decision]
Patch = Callable[[RunState], RunState]

RUN_EVENT_OF_KIND: dict[str, type[ev.RunEventData]] = {
    "started": ev.RunStarted,
    "completed": ev.RunCompleted,
    "failed": ev.RunFailed,
    "canceled": ev.RunCanceled,
}

MAX_CONFLICT_RETRIES = 5


def _now() -> datetime:
    return datetime.now(UTC)


class Orchestrator:
    def __init__(
        self,
        runs: RunRepository,
        workflows: WorkflowRepository,
        publisher: EventPublisher,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._runs = runs
        self._workflows = workflows
        self._publisher = publisher
        self._clock = clock
        self._definitions: dict[tuple[str, str, int], WorkflowDefinition] = {}

    async def on_run_requested(self, event: ev.RunRequested) -> None:
        await self._apply(event.run_id, lambda d, s: start_run(d, s, self._clock()))

    async def on_step_succeeded(self, event: ev.StepSucceeded) -> None:
        assets = {a.ref: a for a in event.assets}
        await self._apply(
            event.run_id,
            lambda d, s: step_succeeded(
                d, s, event.node_id, event.attempt, event.outputs, self._clock()
            ),
            timing=(event.node_id, event.started_at),
            assets=assets,
        )

    async def on_step_failed(self, event: ev.StepFailed) -> None:
        error = StepError(
            code=event.error.code, message=event.error.message, retryable=event.error.retryable
        )
        await self._apply(
            event.run_id,
            lambda d, s: step_failed(d, s, event.node_id, event.attempt, error, self._clock()),
            timing=(event.node_id, event.started_at),
        )

    async def on_cancel_requested(self, event: ev.RunCancelRequested) -> None:
        await self._apply(event.run_id, lambda _d, s: cancel_run(s, self._clock()))

    async def _definition(self, record: RunRecord) -> WorkflowDefinition:
        key = (record.tenant_id, record.workflow_id, record.workflow_version)
        if key not in self._definitions:
            wf = await self._workflows.get(*key)
            if wf is None:
                raise LookupError(f"run {record.run_id}: workflow {key} is missing")
            self._definitions[key] = WorkflowDefinition.model_validate_json(wf.definition_json)
        return self._definitions[key]

    async def _apply(
        self,
        run_id: str,
        decide: Decide,
        *,
        timing: tuple[str, datetime] | None = None,
        assets: dict[str, ev.AssetInfo] | None = None,
    ) -> None:
        record = await self._runs.get(run_id)
        if record is None:
            log.error("run %s: event for a run that does not exist; ignored", run_id)
            return
        record = await self._runs.catch_up(record)
        for _ in range(MAX_CONFLICT_RETRIES):
            defn = await self._definition(record)
            state = RunState.model_validate_json(record.state_json)
            decision = decide(defn, state)
            if decision.state.revision == state.revision:
                await self._flush(record)
                return
            new_state = decision.state
            if timing is not None and timing[0] in new_state.steps:
                node_id, started_at = timing
                step = new_state.steps[node_id].model_copy(update={"started_at": started_at})
                new_state = new_state.model_copy(
                    update={"steps": {**new_state.steps, node_id: step}}
                )
            updated = self._record_for(record, new_state, assets)
            messages = outbox.dump(self._messages(updated, decision))
            if await self._runs.commit(updated, outbox_json=messages):
                await self._publish(updated, outbox.load(messages))
                return
            log.info(
                "run %s: revision %d was claimed meanwhile; deciding again",
                run_id,
                updated.revision,
            )
            record = await self._runs.catch_up(record)
        raise RuntimeError(f"run {run_id}: gave up after {MAX_CONFLICT_RETRIES} write conflicts")

    def _record_for(
        self, record: RunRecord, state: RunState, assets: dict[str, ev.AssetInfo] | None
    ) -> RunRecord:
        merged = json.loads(record.assets_json)
        for ref, info in (assets or {}).items():
            merged[ref] = info.model_dump(mode="json", by_alias=True)
        return record.evolve(
            status=state.status.value,
            revision=state.revision,
            state_json=state.model_dump_json(),
            assets_json=json.dumps(merged),
            started_at=state.started_at,
            completed_at=state.completed_at,
        )

    def _messages(self, record: RunRecord, decision: Decision) -> list[outbox.OutboxMessage]:
        messages: list[outbox.OutboxMessage] = []
        view = load_view(record)
        for i, effect in enumerate(decision.effects):
            event_id = f"{record.run_id}:{record.revision}:{i}"
            event: ev.EventData
            if isinstance(effect, DispatchStep):
                event = ev.StepRequested(
                    run_id=record.run_id,
                    tenant_id=record.tenant_id,
                    node_id=effect.node_id,
                    node_type=effect.node_type,
                    attempt=effect.attempt,
                    params=effect.params,
                    timeout_seconds=effect.timeout_seconds,
                )
            elif isinstance(effect, PublishRunEvent):
                data = to_event_data(view).model_dump()
                event = RUN_EVENT_OF_KIND[effect.kind].model_validate(data)
            else:  # pragma: no cover - the domain's effect union is closed
                raise TypeError(f"unknown effect {effect!r}")
            messages.append(outbox.OutboxMessage(event_id=event_id, event=event))
        return messages

    async def _flush(self, record: RunRecord) -> None:
        """Publish what the run's current revision decided, if Kafka never acknowledged it."""
        claimed = await self._runs.revision(record.run_id, record.revision)
        if claimed is not None and not claimed.published:
            await self._publish(record, outbox.load(claimed.outbox_json))

    async def _publish(self, record: RunRecord, messages: list[outbox.OutboxMessage]) -> None:
        traceparent = new_traceparent(record.trace_id)
        for message in messages:
            await self._publisher.publish(
                message.event, event_id=message.event_id, traceparent=traceparent
            )
        await self._runs.mark_published(record.run_id, record.revision)
