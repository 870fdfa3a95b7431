"""Webhook deliveries and tenant secrets against the real MongoDB-wire server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from devstack.api import Endpoints
from pymongo.asynchronous.database import AsyncDatabase
from storage import mongo
from storage.deliveries import (
    Attempt,
    Delivery,
    DeliveryConflict,
    DeliveryRepository,
    DeliveryStatus,
    delivery_id,
)
from storage.mongo import Document
from storage.tenants import TenantRepository

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
async def db(stack: Endpoints) -> AsyncIterator[AsyncDatabase[Document]]:
    client = mongo.connect(stack.mongodb_url, app_name="tests")
    database = client[f"test_{secrets.token_hex(4)}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


def _delivery(run_id: str = "run_1", event: str = "completed") -> Delivery:
    return Delivery(
        delivery_id=delivery_id(run_id, event),
        run_id=run_id,
        tenant_id="t",
        event=event,
        url="https://hooks.example.com:8443/x",
        status=DeliveryStatus.PENDING,
        created_at=NOW,
        occurred_at=NOW,
        next_attempt_at=NOW,
    )


async def test_a_duplicate_event_creates_no_second_delivery(db: AsyncDatabase[Document]) -> None:
    repo = DeliveryRepository(db)
    assert await repo.create(_delivery())
    assert not await repo.create(_delivery())
    due = await repo.due(NOW, limit=10)
    assert [(d.delivery_id, d.attempt, d.position, d.host) for d in due] == [
        ("run_1:completed", 1, 0, "hooks.example.com:8443")
    ]
    assert [d.delivery_id for d in await repo.for_run("run_1")] == ["run_1:completed"]


async def test_an_attempt_is_claimed_once_until_its_lease_ends(
    db: AsyncDatabase[Document],
) -> None:
    repo = DeliveryRepository(db)
    await repo.create(_delivery())
    [due] = await repo.due(NOW, limit=10)
    first = await repo.claim(due, owner="a", now=NOW, lease=LEASE)
    assert first is not None
    assert await repo.claim(due, owner="b", now=NOW + timedelta(seconds=1), lease=LEASE) is None
    assert await repo.due(NOW + timedelta(seconds=1), limit=10) == []  # ours for the lease
    later = NOW + LEASE + timedelta(seconds=1)
    [again] = await repo.due(later, limit=10)  # the claimant died: due again
    taken = await repo.claim(again, owner="b", now=later, lease=LEASE)
    assert taken is not None
    assert taken.claim_id != first.claim_id
    # The dead claimant's claim is gone; only the live one remains, until it is released.
    assert [d["_id"] async for d in db.webhook_claims.find({})] == [taken.claim_id]
    await repo.release(taken)
    assert await db.webhook_claims.count_documents({}) == 0


async def test_recorded_attempts_and_schedule_moves(db: AsyncDatabase[Document]) -> None:
    repo = DeliveryRepository(db)
    await repo.create(_delivery())
    [due] = await repo.due(NOW, limit=10)
    next_at = NOW + timedelta(seconds=5)
    await repo.record_attempt(
        due.delivery_id,
        Attempt(number=1, at=NOW, duration_ms=12, status_code=500, next_attempt_at=next_at),
        status=DeliveryStatus.PENDING,
    )
    await repo.reschedule(due, at=next_at)
    [second] = await repo.due(next_at, limit=10)
    assert (second.attempt, second.position) == (2, 1)
    await repo.record_attempt(
        due.delivery_id,
        Attempt(number=2, at=next_at, duration_ms=3, status_code=200),
        status=DeliveryStatus.SUCCEEDED,
    )
    await repo.unschedule(due.delivery_id)
    stored = await repo.get(due.delivery_id)
    assert stored is not None
    assert stored.status is DeliveryStatus.SUCCEEDED
    assert [a.status_code for a in stored.attempts] == [500, 200]
    assert await repo.due(NOW + timedelta(days=1), limit=10) == []
    # A duplicate event after the end schedules nothing.
    assert not await repo.create(_delivery())
    assert await repo.due(NOW + timedelta(days=1), limit=10) == []

    again = await repo.redeliver(stored, now=NOW)
    assert again.status is DeliveryStatus.PENDING
    [third] = await repo.due(NOW, limit=10)
    assert (third.attempt, third.position) == (3, 0)
    with pytest.raises(DeliveryConflict):
        await repo.redeliver(again, now=NOW)


async def test_busy_hosts_are_left_out_of_the_poll(db: AsyncDatabase[Document]) -> None:
    repo = DeliveryRepository(db)
    await repo.create(_delivery("run_1"))
    await repo.create(replace(_delivery("run_2"), url="https://other.example/"))
    due = await repo.due(NOW, limit=10, skip_hosts={"hooks.example.com:8443"})
    assert [d.host for d in due] == ["other.example:443"]


async def test_secrets_are_created_once_and_rotation_keeps_the_previous_for_the_grace(
    db: AsyncDatabase[Document],
) -> None:
    tenants = TenantRepository(db)
    first = await tenants.signing_secrets("t", now=NOW)
    assert first.current.startswith("whsec_")
    assert (await tenants.signing_secrets("t", now=NOW)).current == first.current
    rotated = await tenants.rotate("t", now=NOW, grace=timedelta(hours=24))
    assert rotated.current != first.current
    assert rotated.valid(NOW + timedelta(hours=1)) == [rotated.current, first.current]
    assert rotated.valid(NOW + timedelta(hours=25)) == [rotated.current]
