"""The orchestrator's application layer against the real MongoDB server.

The publisher here is an in-memory recorder standing in for Kafka so that a failed publish can
be injected at an exact point; the Kafka path itself is covered end to end in tests/e2e.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from devstack.api import Endpoints
from orchestrator.service import ClaimInFlight, Orchestrator, Policy
from pymongo.asynchronous.database import AsyncDatabase
from storage import mongo
from storage.mongo import Document
from storage.runs import RunRecord, RunRepository
from storage.workflows import WorkflowRepository
from workflow.definition import WorkflowDefinition, canonical_json, definition_hash
from workflow.run import new_run_state

from contracts import events as ev

pytestmark = pytest.mark.integration

DEFINITION = WorkflowDefinition.model_validate(
    {
        "name": "echo",
        "inputSchema": {"type": "object"},
        "nodes": [{"id": "say", "type": "text.template", "params": {"template": "hi"}}],
        "outputs": {"text": "{{ nodes.say.text }}"},
    }
)


class FlakyPublisher:
    """Records what is published; the first `failures` publishes fail like a broker outage."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.published: list[tuple[str | None, ev.EventData]] = []

    async def publish(self, event: ev.EventData, **kw: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.published.append((kw.get("event_id"), event))


@pytest.fixture
async def db(stack: Endpoints) -> AsyncIterator[AsyncDatabase[Document]]:
    client = mongo.connect(stack.mongodb_url, app_name="tests")
    database = client[f"test_{secrets.token_hex(4)}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


async def _run(db: AsyncDatabase[Document]) -> str:
    await WorkflowRepository(db).register(
        tenant_id="t",
        workflow_id="w",
        name="echo",
        definition_json=canonical_json(DEFINITION),
        definition_hash=definition_hash(DEFINITION),
        now=datetime.now(UTC),
    )
    run_id = "run_" + secrets.token_hex(14)
    state = new_run_state(run_id, DEFINITION, {})
    await RunRepository(db).create(
        RunRecord(
            run_id=run_id,
            tenant_id="t",
            workflow_id="w",
            workflow_version=1,
            status=state.status.value,
            revision=0,
            created_at=datetime.now(UTC),
            state_json=state.model_dump_json(),
        )
    )
    return run_id


def _orchestrator(db: AsyncDatabase[Document], publisher: FlakyPublisher) -> Orchestrator:
    return Orchestrator(
        RunRepository(db),
        WorkflowRepository(db),
        publisher,  # type: ignore[arg-type]
    )


class StopsAfterClaim(RunRepository):
    """A writer that claims its revision, then never writes the run (dead, or paused)."""

    async def _write(self, record: RunRecord, base_revision: int) -> bool:
        raise ConnectionError("stopped between the claim and the write")


def _stops_after_claim(db: AsyncDatabase[Document], policy: Policy) -> Orchestrator:
    return Orchestrator(
        StopsAfterClaim(db),
        WorkflowRepository(db),
        FlakyPublisher(failures=0),  # type: ignore[arg-type]
        policy,
    )


def _requested(run_id: str) -> ev.RunRequested:
    return ev.RunRequested(
        run_id=run_id,
        tenant_id="t",
        workflow_id="w",
        workflow_version=1,
        requested_at=datetime.now(UTC),
    )


def _succeeded(run_id: str) -> ev.StepSucceeded:
    now = datetime.now(UTC)
    return ev.StepSucceeded(
        run_id=run_id,
        node_id="say",
        attempt=1,
        outputs={"text": "hi"},
        started_at=now,
        finished_at=now,
    )


async def test_messages_decided_before_a_failed_publish_go_out_with_the_next_event(
    db: AsyncDatabase[Document],
) -> None:
    run_id = await _run(db)
    publisher = FlakyPublisher(failures=1)
    orchestrator = _orchestrator(db, publisher)
    requested = ev.RunRequested(
        run_id=run_id,
        tenant_id="t",
        workflow_id="w",
        workflow_version=1,
        requested_at=datetime.now(UTC),
    )
    with pytest.raises(ConnectionError):
        await orchestrator.on_run_requested(requested)
    stored = await RunRepository(db).get(run_id)
    assert stored is not None
    assert stored.status == "running"
    assert publisher.published == []

    # The redelivered event (its offset was never committed) decides nothing new but sends
    # what the stored revision decided, with the same ids.
    await orchestrator.on_run_requested(requested)
    types = [type(e).__name__ for _, e in publisher.published]
    assert types == ["RunStarted", "StepRequested"]
    ids = [i for i, _ in publisher.published]
    assert ids == [f"{run_id}:1:0", f"{run_id}:1:1"]

    await orchestrator.on_run_requested(requested)
    assert len(publisher.published) == 2


async def test_a_watchdog_sends_what_a_crashed_orchestrator_left_unsent(
    db: AsyncDatabase[Document],
) -> None:
    run_id = await _run(db)
    crashed = FlakyPublisher(failures=1)
    with pytest.raises(ConnectionError):
        await _orchestrator(db, crashed).on_run_requested(
            ev.RunRequested(
                run_id=run_id,
                tenant_id="t",
                workflow_id="w",
                workflow_version=1,
                requested_at=datetime.now(UTC),
            )
        )
    fresh = FlakyPublisher(failures=0)
    rescuer = _orchestrator(db, fresh)
    await rescuer.on_timer_fired(
        ev.TimerFired(run_id=run_id, kind="watchdog", due_at=datetime.now(UTC))
    )
    assert [type(e).__name__ for _, e in fresh.published] == ["RunStarted", "StepRequested"]
    stored = await RunRepository(db).get(run_id)
    assert stored is not None
    assert stored.status == "running"
    assert stored.due_at is not None, "a running run is due when its step times out"
    await rescuer.release_claims()
    assert await RunRepository(db).claims(run_id) == []


async def test_watchdogs_before_claims_are_removed_send_nothing_this_process_sent(
    db: AsyncDatabase[Document],
) -> None:
    # After a restart a watchdog and redelivered events each load the run afresh; until the
    # claims are removed (every claim_release_interval_seconds) they are still there, and
    # the actions this process already carried out must not go out again (a repeated step
    # request reaches an executor that may have finished that attempt: a second HTTP call).
    run_id = await _run(db)
    crashed = FlakyPublisher(failures=1)
    with pytest.raises(ConnectionError):
        await _orchestrator(db, crashed).on_run_requested(_requested(run_id))
    fresh = FlakyPublisher(failures=0)
    rescuer = _orchestrator(db, fresh)
    watchdog = ev.TimerFired(run_id=run_id, kind="watchdog", due_at=datetime.now(UTC))
    await rescuer.on_timer_fired(watchdog)
    await rescuer.on_timer_fired(watchdog)
    await rescuer.on_run_requested(_requested(run_id))
    assert [type(e).__name__ for _, e in fresh.published] == ["RunStarted", "StepRequested"]

    # A revision this process wrote and carried out is not repeated by a fresh load either.
    await rescuer.on_step_succeeded(_succeeded(run_id))
    sent = len(fresh.published)
    await rescuer.on_timer_fired(watchdog)
    assert len(fresh.published) == sent
    await rescuer.release_claims()
    assert await RunRepository(db).claims(run_id) == []


async def test_a_change_carried_out_leaves_no_claim_behind(db: AsyncDatabase[Document]) -> None:
    run_id = await _run(db)
    publisher = FlakyPublisher(failures=0)
    orchestrator = _orchestrator(db, publisher)
    await orchestrator.on_run_requested(_requested(run_id))
    await orchestrator.on_step_succeeded(_succeeded(run_id))
    await orchestrator.release_claims()
    stored = await RunRepository(db).get(run_id)
    assert stored is not None
    assert (stored.status, stored.due_at, stored.timers_json) == ("completed", None, "[]")
    assert await db.run_claims.count_documents({}) == 0
    types = [type(e).__name__ for _, e in publisher.published]
    assert types == ["RunStarted", "StepRequested", "RunCompleted"]


async def test_an_instance_with_a_stale_copy_of_a_run_changes_nothing(
    db: AsyncDatabase[Document],
) -> None:
    run_id = await _run(db)
    first, second = FlakyPublisher(failures=0), FlakyPublisher(failures=0)
    a, b = _orchestrator(db, first), _orchestrator(db, second)
    await a.on_run_requested(_requested(run_id))
    await a.release_claims()
    await b.on_run_requested(_requested(run_id))  # b now holds the running run in memory
    assert second.published == []
    # The partition moves back to a, which finishes the run; b still holds its old copy.
    await a.on_step_succeeded(_succeeded(run_id))
    await a.release_claims()
    # A duplicate of the step's result reaches b: its write on top of the old revision fails,
    # it re-reads the run, finds the step done, and publishes nothing.
    await b.on_step_succeeded(_succeeded(run_id))
    assert second.published == []
    stored = await RunRepository(db).get(run_id)
    assert stored is not None
    assert (stored.status, stored.revision) == ("completed", 2)


async def test_a_change_whose_writer_died_before_writing_the_run_is_rolled_forward(
    db: AsyncDatabase[Document],
) -> None:
    run_id = await _run(db)
    runs = RunRepository(db)

    crashed = _stops_after_claim(db, Policy(claim_grace=0))  # its claim is due at once
    with pytest.raises(ConnectionError):
        await crashed.on_run_requested(_requested(run_id))
    stored = await runs.get(run_id)
    assert stored is not None
    assert stored.status == "queued"
    assert len(await runs.claims(run_id)) == 1

    fresh = FlakyPublisher(failures=0)
    await _orchestrator(db, fresh).on_timer_fired(
        ev.TimerFired(run_id=run_id, kind="watchdog", due_at=datetime.now(UTC))
    )
    assert [type(e).__name__ for _, e in fresh.published] == ["RunStarted", "StepRequested"]
    stored = await runs.get(run_id)
    assert stored is not None
    assert (stored.status, stored.revision) == ("running", 1)


async def test_a_claim_whose_writer_may_still_be_at_work_is_not_rolled_forward_before_due(
    db: AsyncDatabase[Document],
) -> None:
    run_id = await _run(db)

    slow = _stops_after_claim(db, Policy())
    with pytest.raises(ConnectionError):
        await slow.on_run_requested(_requested(run_id))
    other = FlakyPublisher(failures=0)
    with pytest.raises(ClaimInFlight):
        await _orchestrator(db, other).on_run_requested(_requested(run_id))
    assert other.published == []
    stored = await RunRepository(db).get(run_id)
    assert stored is not None
    assert stored.revision == 0, "nobody wrote over the writer still at work"
