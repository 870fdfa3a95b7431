"""The repositories against the real MongoDB-wire server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from devstack.api import Endpoints
from pymongo.asynchronous.database import AsyncDatabase
from storage import mongo
from storage.mongo import Document
from storage.runs import RunRecord, RunRepository
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


async def test_a_revision_can_be_claimed_once_so_a_stale_writer_loses(
    db: AsyncDatabase[Document],
) -> None:
    runs = RunRepository(db)
    await runs.create(_run("run_a", 0))
    assert await runs.commit(_run("run_a", 1, "running"), outbox_json="[1]")
    assert not await runs.commit(_run("run_a", 1, "failed"), outbox_json="[2]")
    stored = await runs.get("run_a")
    assert stored is not None
    assert (stored.revision, stored.status) == (1, "running")


async def test_a_claimed_revision_never_written_to_the_run_is_rolled_forward(
    db: AsyncDatabase[Document],
) -> None:
    runs = RunRepository(db)
    await runs.create(_run("run_b", 0))
    assert await runs.commit(_run("run_b", 1, "running"), outbox_json="[]")
    # A writer that died between its claim of revision 2 and its write to the run:
    await db.run_revisions.insert_one(
        {
            "_id": "run_b@2",
            "record": {**_doc(_run("run_b", 2, "completed"))},
            "outbox": "[]",
        }
    )
    stale = await runs.get("run_b")
    assert stale is not None
    assert stale.revision == 1
    current = await runs.catch_up(stale)
    assert (current.revision, current.status) == (2, "completed")
    stored = await runs.get("run_b")
    assert stored is not None
    assert stored.status == "completed"


def _doc(record: RunRecord) -> Document:
    from storage.runs import _to_doc

    doc = _to_doc(record)
    del doc["_id"]
    return doc


async def test_an_unpublished_revision_keeps_its_outbox_until_marked(
    db: AsyncDatabase[Document],
) -> None:
    runs = RunRepository(db)
    await runs.create(_run("run_c", 0))
    await runs.commit(_run("run_c", 1), outbox_json='["message"]')
    claimed = await runs.revision("run_c", 1)
    assert claimed is not None
    assert claimed.outbox_json == '["message"]'
    stored = await runs.get("run_c")
    assert stored is not None
    assert stored.published_revision == 0
    await runs.mark_published("run_c", 1)
    marked = await runs.get("run_c")
    assert marked is not None
    assert marked.published_revision == 1


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
