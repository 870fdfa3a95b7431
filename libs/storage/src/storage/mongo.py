"""Connecting to MongoDB (or any server speaking its wire protocol) and its indexes.

Only portable features are used (DESIGN.md §7): CRUD, unique/compound indexes, conditional
updates. No transactions, change streams or TTL indexes.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure

Document = dict[str, Any]

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (ConnectionFailure,)
"""Failures of the server (unreachable, timed out, stepped down) rather than of a request."""


def connect(
    url: str, *, app_name: str, timeout_ms: int = 5000, socket_timeout_ms: int | None = None
) -> AsyncMongoClient[Document]:
    """A client that fails within `timeout_ms` when the server is unreachable (PyMongo's
    default waits 30 s), and, with `socket_timeout_ms`, when an answer takes longer than that
    (an HTTP request should not wait on a server that stopped answering)."""
    return AsyncMongoClient(
        url,
        appname=app_name,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=socket_timeout_ms,
        tz_aware=True,
    )


async def ping(db: AsyncDatabase[Document]) -> None:
    await db.command("ping")


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    await db.workflows.create_index(
        [("tenantId", ASCENDING), ("workflowId", ASCENDING), ("version", ASCENDING)],
        unique=True,
        name="tenant_workflow_version",
    )
    await db.runs.create_index(
        [("tenantId", ASCENDING), ("_id", DESCENDING)], name="tenant_newest_first"
    )
    await db.runs.create_index(
        [("tenantId", ASCENDING), ("workflowId", ASCENDING), ("_id", DESCENDING)],
        name="tenant_workflow_newest_first",
    )
    await db.runs.create_index(
        [("tenantId", ASCENDING), ("status", ASCENDING), ("_id", DESCENDING)],
        name="tenant_status_newest_first",
    )
    # The sweeper: live runs whose due time has passed (`RunRepository.due_runs`).
    await db.runs.create_index([("status", ASCENDING), ("dueAt", ASCENDING)], name="status_due")
    await db.run_claims.create_index([("runId", ASCENDING)], name="run")
    await db.run_claims.create_index([("dueAt", ASCENDING)], name="due")
    await db.api_keys.create_index([("tenantId", ASCENDING)], name="tenant")
    await db.workflow_heads.create_index([("tenantId", ASCENDING)], name="tenant")
    await db.idempotency_keys.create_index([("expiresAt", ASCENDING)], name="expiry")
    # The notifier's poll for attempts due (`DeliveryRepository.due`).
    await db.webhook_schedule.create_index([("dueAt", ASCENDING)], name="due")
    # A root run's descendants budget (`storage.budgets`): its slots, by equality on the root.
    await db.run_budgets.create_index([("root", ASCENDING)], name="root")
    # Tenancy (`storage.keys`, `storage.usage`): revoking by key id, a tenant's active runs.
    await db.api_keys.create_index([("keyId", ASCENDING)], name="key_id")
    await db.active_runs.create_index([("tenantId", ASCENDING)], name="tenant")
    # Tenants' provider credentials (`storage.providers`): one document per tenant and provider.
    await db.provider_credentials.create_index(
        [("tenantId", ASCENDING), ("name", ASCENDING)], unique=True, name="tenant_name"
    )
