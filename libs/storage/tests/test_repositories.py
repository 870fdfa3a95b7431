"""The repositories against the real MongoDB-wire server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from devstack.api import Endpoints
from pymongo.asynchronous.database import AsyncDatabase
from storage import mongo
from storage.mongo import Document
from storage.runs import RunRecord, RunRepository, to_document
from storage.workflows import WorkflowRepository

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(stack: Endpoints) -> AsyncIterator[AsyncDatabase[Document]]:
    client = mongo.connect(stack.mongodb_url, app_name="tests")
    database = client[f"test_{secrets.token_hex(4)}"]
    await mongo.ensure_indexes(database)
    yield database
    await client.drop_database(database.name)
    await client.close()


def _run(run_id: str, revision: int, status: str = "queued") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        tenant_id="t",
        workflow_id="w",
        workflow_version=1,
        status=status,
        revision=revision,
        created_at=datetime.now(UTC),
        state_json=f'{{"revision": {revision}}}',
    )


def _later(seconds: float = 30) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def test_of_two_writers_deciding_on_the_same_revision_only_one_writes(
    db: AsyncDatabase[Document],
) -> None:
    runs = RunRepository(db)
    await runs.create(_run("run_a", 0))
    first = await runs.commit(
        _run("run_a", 1, "running"), base_revision=0, outbox_json="[1]", due_at=_later()
    )
    second = await runs.commit(
        _run("run_a", 1, "failed"), base_revision=0, outbox_json="[2]", due_at=_later()
    )
    assert first is not None
    assert second is None
    stored = await runs.get("run_a")
    assert stored is not None
    assert (stored.revision, stored.status, stored.claim) == (1, "running", first.nonce)


async def test_a_writer_whose_claim_another_rolled_forward_keeps_it(
    db: AsyncDatabase[Document],
) -> None:
    class RolledForwardMeanwhile(RunRepository):
        async def _write(self, record: RunRecord, base_revision: int) -> bool:
            if record.revision == 1 and record.status == "running":
                # Another instance found our claim and wrote it to the run before us.
                [claim] = await self.claims(record.run_id)
                assert await RunRepository(db).roll_forward(claim, base_revision)
            return await super()._write(record, base_revision)

    runs = RolledForwardMeanwhile(db)
    await runs.create(_run("run_w", 0))
    claim = await runs.commit(
        _run("run_w", 1, "running"), base_revision=0, outbox_json="[1]", due_at=_later()
    )
    assert claim is not None, "the run holds our revision: its actions are ours to send"
    assert [c.claim_id for c in await runs.claims("run_w")] == [claim.claim_id]


async def test_a_stale_writer_whose_claim_was_already_removed_loses_and_leaves_no_claim(
    db: AsyncDatabase[Document],
) -> None:
    runs = RunRepository(db)
    await runs.create(_run("run_s", 0))
    done = await runs.commit(
        _run("run_s", 1, "running"), base_revision=0, outbox_json="[]", due_at=_later()
    )
    assert done is not None
    await runs.release([done.claim_id])
    moved = await runs.commit(
        _run("run_s", 2, "completed"), base_revision=1, outbox_json="[]", due_at=_later()
    )
    assert moved is not None
    await runs.release([moved.claim_id])
    # A writer still holding revision 0 decides again: its claim id is free, the run is not.
    stale = await runs.commit(
        _run("run_s", 1, "failed"), base_revision=0, outbox_json="[]", due_at=_later()
    )
    assert stale is None
    stored = await runs.get("run_s")
    assert stored is not None
    assert (stored.revision, stored.status) == (2, "completed")
    assert await runs.claims("run_s") == []


async def test_a_claim_never_written_to_the_run_is_rolled_forward(
    db: AsyncDatabase[Document],
) -> None:
    runs = RunRepository(db)
    await runs.create(_run("run_b", 0))
    # A writer that died between its claim of revision 1 and its write to the run:
    await db.run_claims.insert_one(
        {
            "_id": "run_b@1",
            "runId": "run_b",
            "revision": 1,
            "nonce": "n1",
            "record": _doc(_run("run_b", 1, "completed").evolve(claim="n1")),
            "outbox": '["message"]',
            "dueAt": _later(),
        }
    )
    [claim] = await runs.claims("run_b")
    assert (claim.revision, claim.outbox_json) == (1, '["message"]')
    assert await runs.roll_forward(claim, 0)
    stored = await runs.get("run_b")
    assert stored is not None
    assert (stored.revision, stored.status, stored.claim) == (1, "completed", "n1")


def _doc(record: RunRecord) -> Document:
    doc = to_document(record)
    del doc["_id"]
    return doc


async def test_released_claims_are_gone_and_overdue_ones_are_listed(
    db: AsyncDatabase[Document],
) -> None:
    runs = RunRepository(db)
    for name in ("run_r1", "run_r2", "run_r3"):
        await runs.create(_run(name, 0))
    c1 = await runs.commit(_run("run_r1", 1), base_revision=0, outbox_json="[]", due_at=_later())
    c2 = await runs.commit(_run("run_r2", 1), base_revision=0, outbox_json="[]", due_at=_later())
    overdue = datetime.now(UTC) - timedelta(seconds=1)
    c3 = await runs.commit(_run("run_r3", 1), base_revision=0, outbox_json="[]", due_at=overdue)
    assert c1 is not None
    assert c2 is not None
    assert c3 is not None
    await runs.release([c1.claim_id, c2.claim_id])
    assert await runs.claims("run_r1") == []
    assert await runs.claims("run_r2") == []
    assert [r for r, _ in await runs.overdue_claims(datetime.now(UTC))] == ["run_r3"]


async def test_only_live_runs_past_their_due_time_are_due(db: AsyncDatabase[Document]) -> None:
    runs = RunRepository(db)
    past = datetime.now(UTC) - timedelta(seconds=5)
    await runs.create(_run("run_q", 0, "queued").evolve(due_at=past))
    await runs.create(_run("run_f", 0, "running").evolve(due_at=_later()))
    await runs.create(_run("run_p", 0, "running").evolve(due_at=past))
    await runs.create(_run("run_x", 0, "completed").evolve(due_at=past))
    await runs.create(_run("run_n", 0, "running"))
    due = await runs.due_runs(datetime.now(UTC))
    assert sorted(r for r, _ in due) == ["run_p", "run_q"]


async def test_a_run_of_another_tenant_is_not_found(db: AsyncDatabase[Document]) -> None:
    runs = RunRepository(db)
    await runs.create(_run("run_d", 0))
    assert await runs.get_for_tenant("run_d", "t") is not None
    assert await runs.get_for_tenant("run_d", "someone-else") is None


async def test_registering_versions_and_finding_the_latest(db: AsyncDatabase[Document]) -> None:
    workflows = WorkflowRepository(db)
    now = datetime.now(UTC)

    async def register(body: str) -> tuple[int, bool]:
        record, created = await workflows.register(
            tenant_id="t",
            workflow_id="w",
            name="n",
            definition_json=body,
            definition_hash=body,
            now=now,
        )
        return record.version, created

    assert await register("a") == (1, True)
    assert await register("a") == (1, False)
    assert await register("b") == (2, True)
    latest = await workflows.latest("t", "w")
    assert latest is not None
    assert latest.definition_json == "b"
    old = await workflows.get("t", "w", 1)
    assert old is not None
    assert old.definition_json == "a"
    assert [r.version for r in await workflows.list_latest("t")] == [2]
    assert await workflows.latest("other", "w") is None


async def test_a_version_written_without_its_head_is_still_found(
    db: AsyncDatabase[Document],
) -> None:
    workflows = WorkflowRepository(db)
    now = datetime.now(UTC)
    await workflows.register(
        tenant_id="t", workflow_id="w", name="n", definition_json="a", definition_hash="a", now=now
    )
    # A registration that died after inserting version 2 and before moving the head:
    await db.workflows.insert_one(
        {
            "_id": "t/w/2",
            "tenantId": "t",
            "workflowId": "w",
            "version": 2,
            "name": "n",
            "definition": "b",
            "hash": "b",
            "createdAt": now,
        }
    )
    latest = await workflows.latest("t", "w")
    assert latest is not None
    assert latest.version == 2
    record, created = await workflows.register(
        tenant_id="t",
        workflow_id="w",
        name="n",
        definition_json="c",
        definition_hash="c",
        now=now,
    )
    assert (record.version, created) == (3, True)


async def test_an_idempotency_key_returns_the_first_run_until_it_expires(
    db: AsyncDatabase[Document],
) -> None:
    from datetime import timedelta

    from storage.idempotency import IdempotencyKeys, IdempotencyRecord

    keys = IdempotencyKeys(db)
    now = datetime.now(UTC)

    def record(run_id: str, expires: datetime) -> IdempotencyRecord:
        return IdempotencyRecord(
            tenant_id="t", key="k", body_hash="h", run_id=run_id, expires_at=expires
        )

    first = await keys.claim(record("run_1", now + timedelta(hours=1)), now=now)
    again = await keys.claim(record("run_2", now + timedelta(hours=1)), now=now)
    assert (first.run_id, again.run_id) == ("run_1", "run_1")
    later = now + timedelta(hours=2)
    replaced = await keys.claim(record("run_3", later + timedelta(hours=1)), now=later)
    assert replaced.run_id == "run_3"
    assert await keys.remove_expired(later + timedelta(hours=2)) == 1
    assert await db.idempotency_keys.count_documents({}) == 0
