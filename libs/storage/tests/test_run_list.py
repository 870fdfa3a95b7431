"""Listing runs by creation time, and what a rerun stores, against the real MongoDB-wire server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from contracts.run import RerunOf
from devstack.api import Endpoints
from pymongo.asynchronous.database import AsyncDatabase
from storage import mongo
from storage.ids import time_ordered_id
from storage.mongo import Document
from storage.runs import EPOCH, RunRecord, RunRepository, list_filter

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(stack: Endpoints) -> AsyncIterator[AsyncDatabase[Document]]:
    client = mongo.connect(stack.mongodb_url, app_name="tests")
    database = client[f"test_{secrets.token_hex(4)}"]
    await mongo.ensure_indexes(database)
    yield database
    await client.drop_database(database.name)
    await client.close()


def _ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


def _run(created_at: datetime, *, minted: datetime | None = None, tenant: str = "t") -> RunRecord:
    return RunRecord(
        run_id=time_ordered_id("run", _ms(minted or created_at)),
        tenant_id=tenant,
        workflow_id="w",
        workflow_version=1,
        status="completed",
        revision=3,
        created_at=created_at,
        state_json="{}",
    )


async def test_runs_created_in_a_range_are_listed_newest_first_start_included_end_excluded(
    db: AsyncDatabase[Document],
) -> None:
    runs = RunRepository(db)
    at = [T0 + timedelta(minutes=i) for i in range(6)]
    records = [_run(t) for t in at]
    # A child run's id comes from its parent's, minted long before the child was created.
    child = _run(at[3] + timedelta(seconds=1), minted=at[0] - timedelta(hours=2))
    other_tenant = _run(at[2], tenant="u")
    for record in [*records, child, other_tenant]:
        await runs.create(record)

    listed = await runs.list(tenant_id="t", created_after=at[1], created_before=at[4])

    assert [r.run_id for r in listed] == [
        records[3].run_id,
        records[2].run_id,
        records[1].run_id,
        child.run_id,  # the oldest id: listed by id like every page
    ]
    assert [r.run_id for r in await runs.list(tenant_id="t", created_before=at[1])] == [
        records[0].run_id
    ]
    newer = await runs.list(tenant_id="t", created_after=at[4], limit=1)
    assert [r.run_id for r in newer] == [records[5].run_id]
    page = await runs.list(tenant_id="t", created_after=at[4], before=newer[0].run_id)
    assert [r.run_id for r in page] == [records[4].run_id]


async def test_the_listing_filter_is_served_by_an_index(db: AsyncDatabase[Document]) -> None:
    runs = RunRepository(db)
    for i in range(40):
        await runs.create(_run(T0 + timedelta(seconds=i), tenant=f"t{i % 4}"))
    query = list_filter(
        tenant_id="t1",
        created_after=T0 + timedelta(seconds=5),
        created_before=T0 + timedelta(seconds=30),
    )

    plan = await db.command(
        "explain", {"find": "runs", "filter": query, "sort": {"_id": -1}, "limit": 21}
    )

    if "filterPushdown" in plan:  # FerretDB: PostgreSQL's plan of the pushed-down equality
        assert plan["filterPushdown"] is True
        assert "Bitmap Index Scan" in str(plan["queryPlanner"]), plan
    else:  # MongoDB: the winning plan walks an index
        assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"]), plan


async def test_a_reruns_origin_is_stored_with_it(db: AsyncDatabase[Document]) -> None:
    runs = RunRepository(db)
    rerun = _run(T0).evolve(rerun_of=RerunOf(run_id="run_original", from_node="warm"))
    plain = _run(T0 + timedelta(seconds=1))
    await runs.create(rerun)
    await runs.create(plain)

    stored = await runs.get(rerun.run_id)
    assert stored is not None
    assert stored.rerun_of == RerunOf(run_id="run_original", from_node="warm")
    assert (await runs.get(plain.run_id)) == plain
