"""Run limits the orchestrator enforces with storage: the descendants budget of a root run
(shared by every instance) and the size of a run's state. Against the real MongoDB server; the
publisher is an in-memory recorder standing in for Kafka."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from devstack.api import Endpoints
from orchestrator.service import Orchestrator, Policy
from pymongo.asynchronous.database import AsyncDatabase
from storage import mongo
from storage.budgets import RunBudgets
from storage.mongo import Document
from storage.runs import RunRecord, RunRepository
from storage.workflows import WorkflowRepository
from workflow.definition import WorkflowDefinition, canonical_json, definition_hash
from workflow.run import DEFAULT_LIMITS, RunState, child_run_id, new_run_state
from workflow.state import RunStatus

from contracts import events as ev

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 1, tzinfo=UTC)

LEAF = WorkflowDefinition.model_validate(
    {
        "name": "leaf",
        "inputSchema": {"type": "object"},
        "nodes": [{"id": "say", "type": "text.template", "params": {"template": "hi"}}],
        "outputs": {"text": "{{ nodes.say.text }}"},
    }
)

FAN_OUT = WorkflowDefinition.model_validate(
    {
        "name": "fan out",
        "inputSchema": {"type": "object"},
        "nodes": [
            {"id": f"c{i}", "type": "workflow.run", "params": {"workflowId": "leaf"}}
            for i in range(3)
        ],
        "outputs": {},
    }
)


class Recorder:
    def __init__(self) -> None:
        self.published: list[ev.EventData] = []

    async def publish(self, event: ev.EventData, **_: Any) -> None:
        self.published.append(event)


@pytest.fixture
async def db(stack: Endpoints) -> AsyncIterator[AsyncDatabase[Document]]:
    client = mongo.connect(stack.mongodb_url, app_name="tests")
    database = client[f"test_{secrets.token_hex(4)}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


async def _register(
    db: AsyncDatabase[Document], workflow_id: str, defn: WorkflowDefinition
) -> None:
    await WorkflowRepository(db).register(
        tenant_id="t",
        workflow_id=workflow_id,
        name=defn.name,
        definition_json=canonical_json(defn),
        definition_hash=definition_hash(defn),
        now=NOW,
    )


async def _run(db: AsyncDatabase[Document], workflow_id: str, defn: WorkflowDefinition) -> str:
    run_id = "run_" + secrets.token_hex(14)
    state = new_run_state(run_id, defn, {})
    await RunRepository(db).create(
        RunRecord(
            run_id=run_id,
            tenant_id="t",
            workflow_id=workflow_id,
            workflow_version=1,
            status=state.status.value,
            revision=0,
            created_at=NOW,
            state_json=state.model_dump_json(),
        )
    )
    return run_id


def _requested(run_id: str, workflow_id: str) -> ev.RunRequested:
    return ev.RunRequested(
        run_id=run_id, tenant_id="t", workflow_id=workflow_id, workflow_version=1, requested_at=NOW
    )


async def _state(db: AsyncDatabase[Document], run_id: str) -> RunState:
    record = await RunRepository(db).get(run_id)
    assert record is not None
    return RunState.model_validate_json(record.state_json)


async def test_no_more_slots_than_the_budget_are_taken_however_many_writers_race(
    db: AsyncDatabase[Document],
) -> None:
    budgets = RunBudgets(db)

    taken = await asyncio.gather(*(budgets.take("run_root", f"c{i}", 20, NOW) for i in range(50)))

    assert sum(taken) == 20
    assert await budgets.taken("run_root") == 20
    assert await budgets.taken("run_other") == 0


async def test_taking_again_for_the_same_child_takes_nothing_more(
    db: AsyncDatabase[Document],
) -> None:
    budgets = RunBudgets(db)
    assert await budgets.take("run_root", "c0", 2, NOW)
    assert await budgets.take("run_root", "c1", 2, NOW)

    # A redelivered action for a child that holds a slot is not refused by its own slot.
    assert await budgets.take("run_root", "c1", 2, NOW)
    assert not await budgets.take("run_root", "c2", 2, NOW)
    assert await budgets.taken("run_root") == 2


async def test_a_child_over_the_descendants_budget_is_not_created_and_fails_its_step(
    db: AsyncDatabase[Document],
) -> None:
    await _register(db, "leaf", LEAF)
    await _register(db, "fan", FAN_OUT)
    run_id = await _run(db, "fan", FAN_OUT)
    recorder = Recorder()
    limits = DEFAULT_LIMITS.model_copy(update={"max_descendants_per_root": 2})
    orchestrator = Orchestrator(
        RunRepository(db),
        WorkflowRepository(db),
        recorder,  # type: ignore[arg-type]
        Policy(limits=limits),
        budgets=RunBudgets(db),
    )

    await orchestrator.on_run_requested(_requested(run_id, "fan"))

    children = [child_run_id(run_id, f"c{i}", 1) for i in range(3)]
    created = [await RunRepository(db).get(c) is not None for c in children]
    assert created == [True, True, False]
    refusals = [e for e in recorder.published if isinstance(e, ev.StepFailed)]
    assert [(e.node_id, e.error.code) for e in refusals] == [("c2", "descendants_exceeded")]
    assert "the limit MAX_DESCENDANTS_PER_ROOT (2)" in refusals[0].error.message
    # The children know their root, so their own children take from the same budget.
    assert (await _state(db, children[0])).root_run_id == run_id

    await orchestrator.on_step_failed(refusals[0])

    parent = await _state(db, run_id)
    assert parent.status is RunStatus.FAILED
    assert parent.error is not None
    assert parent.error.code == "descendants_exceeded"
    canceled = {e.run_id for e in recorder.published if isinstance(e, ev.RunCancelRequested)}
    assert canceled == set(children[:2])


async def test_a_decision_whose_state_would_not_fit_a_message_fails_the_run_instead(
    db: AsyncDatabase[Document],
) -> None:
    await _register(db, "leaf", LEAF)
    run_id = await _run(db, "leaf", LEAF)
    recorder = Recorder()
    limits = DEFAULT_LIMITS.model_copy(update={"max_run_state_bytes": 64 * 1024})
    orchestrator = Orchestrator(
        RunRepository(db),
        WorkflowRepository(db),
        recorder,  # type: ignore[arg-type]
        Policy(limits=limits),
    )
    await orchestrator.on_run_requested(_requested(run_id, "leaf"))

    # Under the step's own output limit (256 KiB), but the state would hold it twice (the
    # step's outputs and the run's): over 64 KiB.
    text = "z" * 40_000
    await orchestrator.on_step_succeeded(
        ev.StepSucceeded(
            run_id=run_id,
            node_id="say",
            attempt=1,
            outputs={"text": text},
            started_at=NOW,
            finished_at=NOW,
        )
    )

    state = await _state(db, run_id)
    assert state.status is RunStatus.FAILED
    assert state.error is not None
    assert state.error.code == "outputs_too_large"
    assert "the limit MAX_RUN_STATE_BYTES (65536)" in state.error.message
    assert state.outputs is None
    failed = [e for e in recorder.published if isinstance(e, ev.RunFailed)]
    assert len(failed) == 1
