"""A run whose message was dead-lettered ends `failed` with the reason, against the real
MongoDB server; the publisher is an in-memory recorder that can refuse chosen event types the
way Kafka refuses a message that is too large."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from bus.deadletter import DeadLetter
from bus.envelope import encode
from devstack.api import Endpoints
from orchestrator.poison import POISON_CODE, PoisonRuns
from orchestrator.service import ClaimInFlight, Orchestrator
from pymongo.asynchronous.database import AsyncDatabase
from runview import load_view
from storage import mongo
from storage.mongo import Document
from storage.runs import RunRecord, RunRepository
from storage.workflows import WorkflowRepository
from workflow.definition import WorkflowDefinition, canonical_json, definition_hash
from workflow.run import RunError, RunState, new_run_state

from contracts import events as ev

pytestmark = pytest.mark.integration

DEFINITION = WorkflowDefinition.model_validate(
    {
        "name": "waits",
        "inputSchema": {"type": "object"},
        "nodes": [{"id": "pause", "type": "wait", "params": {"seconds": 600}}],
        "outputs": {},
    }
)


class Publisher:
    """Records what is published; event types in `refuse` fail as too large, every time."""

    def __init__(self, refuse: tuple[type[ev.EventData], ...] = ()) -> None:
        self.refuse = refuse
        self.published: list[tuple[str | None, ev.EventData]] = []

    async def publish(self, event: ev.EventData, **kw: Any) -> None:
        if isinstance(event, self.refuse):
            raise MessageSizeTooLargeError("The message is 2000000 bytes")
        self.published.append((kw.get("event_id"), event))


@pytest.fixture
async def db(stack: Endpoints) -> AsyncIterator[AsyncDatabase[Document]]:
    client = mongo.connect(stack.mongodb_url, app_name="tests")
    database = client[f"test_{secrets.token_hex(4)}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


async def _run(db: AsyncDatabase[Document], *, state_json: str | None = None) -> str:
    await WorkflowRepository(db).register(
        tenant_id="t",
        workflow_id="w",
        name="waits",
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
            state_json=state_json or state.model_dump_json(),
        )
    )
    return run_id


def _letter(run_id: str) -> DeadLetter:
    """A step.succeeded of an unknown schema, as the dispatcher parks it."""
    out = encode(
        ev.StepStarted(run_id=run_id, node_id="pause", attempt=1, started_at=datetime.now(UTC)),
        source="/test",
    )
    headers = {**out.headers, "ce_type": "com.sprello.workflow.step.succeeded.v9"}
    reason = "unknown event type 'com.sprello.workflow.step.succeeded.v9'"
    return DeadLetter("in", 0, 42, out.key, out.value, headers, reason, 1)


def _poison(db: AsyncDatabase[Document], publisher: Publisher) -> tuple[Orchestrator, PoisonRuns]:
    runs = RunRepository(db)
    service = Orchestrator(runs, WorkflowRepository(db), publisher)  # type: ignore[arg-type]
    poison = PoisonRuns(
        service,
        runs,
        publisher,  # type: ignore[arg-type]
        transient=(*mongo.TRANSIENT_ERRORS, ClaimInFlight),
    )
    return service, poison


def _published(publisher: Publisher) -> list[str]:
    return [type(e).__name__ for _, e in publisher.published]


async def test_a_queued_run_whose_message_is_dead_lettered_fails_with_the_reason(
    db: AsyncDatabase[Document],
) -> None:
    run_id = await _run(db)
    publisher = Publisher()
    service, poison = _poison(db, publisher)
    await poison.on_dead_letter(_letter(run_id))
    await service.release_claims()
    stored = await RunRepository(db).get(run_id)
    assert stored is not None
    assert stored.status == "failed"
    error = RunState.model_validate_json(stored.state_json).error
    assert error is not None
    assert error.code == POISON_CODE
    assert "step.succeeded.v9" in error.message
    assert "unknown event type" in error.message
    assert _published(publisher) == ["RunFailed"]
    failed = publisher.published[0][1]
    assert isinstance(failed, ev.RunFailed)
    assert failed.error is not None
    assert failed.error.code == POISON_CODE

    # Dead-lettered again (a redelivery): nothing more changes or goes out.
    await poison.on_dead_letter(_letter(run_id))
    assert _published(publisher) == ["RunFailed"]
    again = await RunRepository(db).get(run_id)
    assert again is not None
    assert again.revision == stored.revision


async def test_a_run_wedged_by_an_unsendable_change_is_failed_by_a_direct_write(
    db: AsyncDatabase[Document],
) -> None:
    run_id = await _run(db)
    publisher = Publisher(refuse=(ev.RunStarted,))
    service, poison = _poison(db, publisher)
    requested = ev.RunRequested(
        run_id=run_id,
        tenant_id="t",
        workflow_id="w",
        workflow_version=1,
        requested_at=datetime.now(UTC),
    )
    with pytest.raises(MessageSizeTooLargeError):
        await service.on_run_requested(requested)
    # The normal path fails too: every load carries the stuck claim out again.
    with pytest.raises(MessageSizeTooLargeError):
        await service.fail_run(run_id, RunError(code=POISON_CODE, message="x"))

    await poison.on_dead_letter(_letter(run_id))
    stored = await RunRepository(db).get(run_id)
    assert stored is not None
    assert (stored.status, stored.due_at, stored.timers_json) == ("failed", None, "[]")
    view = load_view(stored)
    assert view.state.error is not None
    assert view.state.error.code == POISON_CODE
    assert view.state.steps["pause"].status.value == "canceled"
    assert "RunFailed" in _published(publisher)
    assert await RunRepository(db).claims(run_id) == [], "the wedging claim is gone"

    # Later events of the run change nothing and no longer fail.
    await service.on_timer_fired(
        ev.TimerFired(run_id=run_id, kind="watchdog", due_at=datetime.now(UTC))
    )
    await poison.on_dead_letter(_letter(run_id))
    assert _published(publisher).count("RunFailed") == 1


async def test_a_run_whose_stored_state_cannot_be_read_is_failed_and_readable_again(
    db: AsyncDatabase[Document],
) -> None:
    run_id = await _run(db, state_json='{"runId": 5, "status": ')
    publisher = Publisher()
    _, poison = _poison(db, publisher)
    await poison.on_dead_letter(_letter(run_id))
    stored = await RunRepository(db).get(run_id)
    assert stored is not None
    assert stored.status == "failed"
    view = load_view(stored)  # raised before
    assert view.state.error is not None
    assert view.state.error.code == POISON_CODE
    assert _published(publisher) == ["RunFailed"]


async def test_a_dead_letter_naming_no_run_ends_nothing(db: AsyncDatabase[Document]) -> None:
    publisher = Publisher()
    _, poison = _poison(db, publisher)
    await poison.on_dead_letter(DeadLetter("in", 0, 1, None, b"?", {}, "not a CloudEvent", 1))
    assert publisher.published == []
