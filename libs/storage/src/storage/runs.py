"""Run records. The orchestrator is the only writer after creation; every write is a
compare-and-set on `revision`, so a duplicate or stale event cannot overwrite newer state."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from storage.mongo import Document


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    tenant_id: str
    workflow_id: str
    workflow_version: int
    status: str
    revision: int
    created_at: datetime
    state_json: str
    """The domain's run state, serialized: client JSON (inputs, outputs) is stored opaque."""
    metadata_json: str = "{}"
    assets_json: str = "{}"
    """s3 ref → asset description, for outputs of steps."""
    outbox_json: str = "[]"
    """Messages decided but not yet acknowledged by Kafka; re-published until cleared."""
    trace_id: str | None = None
    webhook_json: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    due_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def evolve(self, **changes: Any) -> RunRecord:
        return replace(self, **changes)


def _to_doc(r: RunRecord) -> Document:
    return {
        "_id": r.run_id,
        "tenantId": r.tenant_id,
        "workflowId": r.workflow_id,
        "workflowVersion": r.workflow_version,
        "status": r.status,
        "revision": r.revision,
        "createdAt": r.created_at,
        "startedAt": r.started_at,
        "completedAt": r.completed_at,
        "dueAt": r.due_at,
        "state": r.state_json,
        "metadata": r.metadata_json,
        "assets": r.assets_json,
        "outbox": r.outbox_json,
        "traceId": r.trace_id,
        "webhook": r.webhook_json,
    }


def _from_doc(d: Document) -> RunRecord:
    return RunRecord(
        run_id=d["_id"],
        tenant_id=d["tenantId"],
        workflow_id=d["workflowId"],
        workflow_version=d["workflowVersion"],
        status=d["status"],
        revision=d["revision"],
        created_at=d["createdAt"],
        started_at=d.get("startedAt"),
        completed_at=d.get("completedAt"),
        due_at=d.get("dueAt"),
        state_json=d["state"],
        metadata_json=d.get("metadata", "{}"),
        assets_json=d.get("assets", "{}"),
        outbox_json=d.get("outbox", "[]"),
        trace_id=d.get("traceId"),
        webhook_json=d.get("webhook"),
    )


class RunRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._runs = db.runs

    async def create(self, record: RunRecord) -> None:
        await self._runs.insert_one(_to_doc(record))

    async def get(self, run_id: str, *, tenant_id: str | None = None) -> RunRecord | None:
        query: Document = {"_id": run_id}
        if tenant_id is not None:
            query["tenantId"] = tenant_id
        doc = await self._runs.find_one(query)
        return _from_doc(doc) if doc else None

    async def list(
        self,
        *,
        tenant_id: str,
        workflow_id: str | None = None,
        status: str | None = None,
        before: str | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """Newest first: run ids are time-ordered, so `before` (a run id) is the cursor."""
        query: Document = {"tenantId": tenant_id}
        if workflow_id is not None:
            query["workflowId"] = workflow_id
        if status is not None:
            query["status"] = status
        if before is not None:
            query["_id"] = {"$lt": before}
        cursor = self._runs.find(query).sort("_id", -1).limit(limit)
        return [_from_doc(d) async for d in cursor]

    async def save(self, record: RunRecord, *, expected_revision: int) -> bool:
        """Store `record` only if nobody moved the run past `expected_revision`."""
        doc = _to_doc(record)
        doc.pop("_id")
        result = await self._runs.update_one(
            {"_id": record.run_id, "revision": expected_revision}, {"$set": doc}
        )
        return result.matched_count == 1

    async def clear_outbox(self, run_id: str, *, revision: int) -> bool:
        """Forget published messages, unless a newer decision replaced the outbox meanwhile."""
        result = await self._runs.update_one(
            {"_id": run_id, "revision": revision}, {"$set": {"outbox": "[]"}}
        )
        return result.matched_count == 1
