"""Keys, tenant limits and usage counters on the real MongoDB-wire server: what the ingress's
rate limits, quotas and admin API rely on."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from devstack.api import Endpoints
from storage import mongo
from storage.keys import ApiKeyRepository, hash_key
from storage.tenants import TenantRepository
from storage.usage import UsageRepository

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(stack: Endpoints) -> AsyncIterator[Any]:
    name = f"it_tenancy_{secrets.token_hex(4)}"
    client = mongo.connect(stack.mongodb_url, app_name="it-tenancy")
    database = client[name]
    await mongo.ensure_indexes(database)
    yield database
    await client.drop_database(name)
    await client.close()


async def test_a_key_grants_its_scopes_until_revoked_and_lists_without_secrets(db: Any) -> None:
    keys = ApiKeyRepository(db)
    now = datetime.now(UTC)
    info, key = await keys.create(tenant_id="t", name="ci", scopes=["runs:read"], now=now)
    grant = await keys.grant(key)
    assert grant is not None
    assert (grant.tenant_id, grant.scopes) == ("t", frozenset({"runs:read"}))
    [listed] = await keys.list("t")
    assert listed.prefix == key[:12]
    assert key not in repr(listed)
    assert hash_key(key) not in repr(listed)
    assert (await keys.revoke(info.key_id, now=now)) is not None
    assert await keys.grant(key) is None
    assert await keys.revoke("key_000000000000000000000000dead", now=now) is None
    with pytest.raises(ValueError, match="unknown scopes"):
        await keys.create(tenant_id="t", name="x", scopes=["root"], now=now)


async def test_a_key_made_before_key_ids_keeps_every_scope_and_can_be_revoked(db: Any) -> None:
    key = "wfk_" + secrets.token_urlsafe(32)
    await db.api_keys.insert_one(
        {"_id": hash_key(key), "tenantId": "old", "name": "dev", "createdAt": datetime.now(UTC)}
    )
    grant = await ApiKeyRepository(db).grant(key)
    assert grant is not None
    assert grant.scopes == {"runs:write", "runs:read", "workflows:write"}
    [listed] = await ApiKeyRepository(db).list("old")
    assert listed.key_id.startswith("key_")
    assert await ApiKeyRepository(db).revoke(listed.key_id, now=datetime.now(UTC)) is not None
    assert await ApiKeyRepository(db).grant(key) is None


async def test_limits_first_then_a_signing_secret_on_the_same_tenant_document(db: Any) -> None:
    tenants = TenantRepository(db)
    assert await tenants.limits("t") == {}
    own = await tenants.set_limits("t", {"runsPerMinute": 5, "concurrentRuns": None})
    assert own == {"runsPerMinute": 5, "concurrentRuns": None}
    secret = await tenants.signing_secrets("t", now=datetime.now(UTC))
    assert secret.current.startswith("whsec_")
    assert await tenants.limits("t") == own, "adding the secret keeps the limits"
    assert (await tenants.signing_secrets("t", now=datetime.now(UTC))).current == secret.current


async def test_run_starts_are_counted_per_window_in_two_documents(db: Any) -> None:
    usage = UsageRepository(db)
    assert [await usage.count_start("t", 100) for _ in range(3)] == [1, 2, 3]
    assert await usage.count_start("t", 101) == 1
    assert await usage.starts_in("t", 100) == 3
    assert await usage.count_start("t", 102) == 1, "the window two back is reset"
    assert await usage.starts_in("t", 100) == 0
    await usage.uncount_start("t", 102)
    assert await usage.starts_in("t", 102) == 0
    assert await db.run_starts.count_documents({"tenantId": "t"}) == 2


async def test_markers_of_runs_that_ended_unseen_are_reconciled_away(db: Any) -> None:
    usage = UsageRepository(db)
    now = datetime.now(UTC)
    await db.runs.insert_many(
        [{"_id": "run_done", "status": "completed"}, {"_id": "run_live", "status": "running"}]
    )
    assert await usage.add_active("t", "run_done", now=now) == (True, 1)
    assert await usage.add_active("t", "run_live", now=now) == (True, 2)
    assert await usage.add_active("t", "run_live", now=now) == (False, 2), "idempotent"
    # Being created right now (no run yet): kept; left over from long ago: removed.
    await usage.add_active("t", "run_new", now=now)
    await usage.add_active("t", "run_lost", now=now - timedelta(minutes=5))
    assert await usage.reconcile("t", now=now) == 2
    assert {d["_id"] for d in await db.active_runs.find().to_list(None)} == {
        "run_live",
        "run_new",
    }
    await usage.remove_active(["run_live", "run_new"])
    assert await usage.active_count("t") == 0


async def test_stored_bytes_are_charged_per_tenant(db: Any) -> None:
    usage = UsageRepository(db)
    assert await usage.stored_bytes("t") == 0
    assert await usage.charge_bytes("t", 1000) == 1000
    assert await usage.charge_bytes("t", 24) == 1024
    assert await usage.stored_bytes("other") == 0
