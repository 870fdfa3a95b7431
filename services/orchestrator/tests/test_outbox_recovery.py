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
from orchestrator.service import Orchestrator
from pymongo.asynchronous.database import AsyncDatabase
from storage import mongo
from storage.mongo import Document
from storage.runs import RunRecord, RunRepository
from storage.timers import TimerRepository
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
        TimerRepository(db),
        publisher,  # type: ignore[arg-type]
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
    await _orchestrator(db, fresh).on_timer_fired(
        ev.TimerFired(run_id=run_id, kind="watchdog", due_at=datetime.now(UTC))
    )
    assert [type(e).__name__ for _, e in fresh.published] == ["RunStarted", "StepRequested"]
    timers = await db.timers.find({"runId": run_id, "kind": "watchdog"}).to_list()
    assert len(timers) == 1, "a running run keeps a watchdog"
