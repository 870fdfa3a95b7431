"""Ending the run of a message the orchestrator had to dead-letter.

A message about a run that cannot be processed (undecodable, an unknown schema version, or
its handler failing every try) must not leave the run queued or running for ever: the run
ends `failed` with the code `poison_message` and a message naming the event type and the
error. First through the normal path (`Orchestrator.fail_run`: run event, webhook, parent
told, children canceled). When that fails too — the stored state cannot be read, or a change
of the run left a claim whose messages can never be sent — the run is failed by a direct
conditional write (over the revision read) that carries its own, small outbox: a `run.failed`
event without the run's steps and outputs (so it always fits a Kafka message), the parent's
`step.failed` and the children's cancels. The claims that wedged the run are removed.

Idempotent: a run that has ended is left as it is, so a message dead-lettered again (a
redelivery) changes nothing more.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from bus import tracing
from bus.consumer import is_transient
from bus.deadletter import DeadLetter
from bus.envelope import WEBHOOK
from bus.publisher import EventPublisher
from contracts.run import RunError as RunErrorView
from contracts.run import RunStatus as RunStatusView
from storage.runs import LIVE_STATUSES, RunRecord, RunRepository
from workflow.run import (
    CancelChildRun,
    Effect,
    NotifyParent,
    PublishRunEvent,
    RunError,
    RunState,
    fail_run,
)
from workflow.state import RunStatus

from contracts import events as ev
from orchestrator import outbox
from orchestrator.service import Orchestrator

log = logging.getLogger("orchestrator.poison")

POISON_CODE = "poison_message"
DIRECT_WRITE_TRIES = 3


def _now() -> datetime:
    return datetime.now(UTC)


class PoisonRuns:
    def __init__(
        self,
        service: Orchestrator,
        runs: RunRepository,
        publisher: EventPublisher,
        *,
        transient: tuple[type[BaseException], ...] = (),
        claim_grace: float = 30.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._service = service
        self._runs = runs
        self._publisher = publisher
        self._transient = transient
        self._claim_grace = claim_grace
        self._clock = clock

    async def on_dead_letter(self, letter: DeadLetter) -> None:
        """The `Dispatcher`'s hook: fail the run the parked message was about."""
        run_id = letter.run_id
        if run_id is None:
            log.error("a dead-lettered message from %s names no run; no run to end", letter.topic)
            return
        await self.fail(run_id, RunError(code=POISON_CODE, message=letter.describe()))

    async def fail(self, run_id: str, error: RunError) -> None:
        try:
            await self._service.fail_run(run_id, error)
            return
        except Exception as exc:
            if is_transient(exc, self._transient):
                raise  # a dependency is down: the dispatcher tries again while it lasts
            log.warning(
                "run %s: failing it the normal way failed too (%s: %s); writing it failed",
                run_id,
                type(exc).__name__,
                exc,
            )
        await self._fail_directly(run_id, error)

    async def _fail_directly(self, run_id: str, error: RunError) -> None:
        for _ in range(DIRECT_WRITE_TRIES):
            record = await self._runs.get(run_id)
            if record is None or record.status not in LIVE_STATUSES:
                return  # gone, or ended meanwhile: nothing to do
            now = self._clock()
            state, effects = _failed_state(record, error, now)
            updated = record.evolve(
                status=RunStatus.FAILED.value,
                revision=record.revision + 1,
                state_json=state.model_dump_json(),
                completed_at=now,
                timers_json="[]",
                due_at=None,
            )
            actions = self._actions(updated, state, effects, now)
            stale = [c.claim_id for c in await self._runs.claims(run_id)]
            claim = await self._runs.commit(
                updated,
                base_revision=record.revision,
                outbox_json=outbox.dump(list[outbox.Action](actions)),
                due_at=now + timedelta(seconds=self._claim_grace),
            )
            if claim is None:
                continue  # written meanwhile: read it again
            log.error("run %s: failed by a direct write: %s", run_id, error.message)
            with tracing.run_span("run failed directly", record.traceparent, runId=run_id):
                for action in actions:
                    await self._publisher.publish(
                        action.event,
                        event_id=action.event_id,
                        extensions=action.extensions,
                    )
            # The claims below our revision are what wedged the run (their messages can
            # never be sent); ours is carried out.
            await self._runs.release([*stale, claim.claim_id])
            return
        log.error("run %s: could not be written failed (%d conflicts)", run_id, DIRECT_WRITE_TRIES)

    def _actions(
        self, record: RunRecord, state: RunState, effects: Sequence[Effect], now: datetime
    ) -> list[outbox.Publish]:
        actions: list[outbox.Publish] = []
        for i, effect in enumerate(effects):
            event_id = f"{record.run_id}:{record.revision}:{i}"
            if isinstance(effect, PublishRunEvent):
                actions.append(
                    outbox.Publish(
                        event_id,
                        _run_failed(record, state, now),
                        {WEBHOOK: "true" if record.webhook_json else "false"},
                    )
                )
            elif isinstance(effect, CancelChildRun):
                actions.append(
                    outbox.Publish(
                        event_id,
                        ev.RunCancelRequested(
                            run_id=effect.child_run_id,
                            tenant_id=record.tenant_id,
                            requested_at=now,
                        ),
                    )
                )
            elif isinstance(effect, NotifyParent):
                reason = effect.error.message if effect.error else "failed"
                actions.append(
                    outbox.Publish(
                        event_id,
                        ev.StepFailed(
                            run_id=effect.parent_run_id,
                            node_id=effect.parent_node_id,
                            attempt=effect.parent_attempt,
                            error=ev.StepFailure(
                                code="child_failed",
                                message=f"child run {record.run_id} failed: {reason}",
                            ),
                            started_at=state.started_at or now,
                            finished_at=now,
                        ),
                    )
                )
        return actions


def _failed_state(
    record: RunRecord, error: RunError, now: datetime
) -> tuple[RunState, Sequence[Effect]]:
    """The run failed by the domain when its state can be read; otherwise a state of its
    own (the unreadable one cannot be kept: a stored run must stay readable)."""
    try:
        state = RunState.model_validate_json(record.state_json)
    except ValueError:
        log.error("run %s: its stored state cannot be read; replaced", record.run_id)
        state = RunState(run_id=record.run_id, revision=record.revision)
        failed = state.model_copy(
            update={
                "status": RunStatus.FAILED,
                "error": error,
                "started_at": record.started_at,
                "completed_at": now,
            }
        )
        return failed.model_copy(update={"revision": record.revision + 1}), (
            PublishRunEvent("failed"),
        )
    decision = fail_run(state, error, now)
    return decision.state.model_copy(update={"revision": record.revision + 1}), decision.effects


def _run_failed(record: RunRecord, state: RunState, now: datetime) -> ev.RunFailed:
    """The run event without the run's steps and outputs: whatever made the run's own event
    unsendable (its size, say) cannot make this one so."""
    error = state.error
    try:
        metadata = json.loads(record.metadata_json)
    except ValueError:
        metadata = {}
    return ev.RunFailed(
        run_id=record.run_id,
        tenant_id=record.tenant_id,
        workflow_id=record.workflow_id,
        workflow_version=record.workflow_version,
        status=RunStatusView.FAILED,
        error=RunErrorView(code=error.code, message=error.message) if error else None,
        metadata=metadata if isinstance(metadata, dict) else {},
        parent_run_id=state.parent_run_id,
        created_at=record.created_at,
        started_at=record.started_at,
        completed_at=now,
    )
