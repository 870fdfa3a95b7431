"""Run records and their revisions.

The orchestrator is the only writer of a run after creation, and every change is a new
revision. A revision is claimed by inserting `run_revisions/{runId}@{revision}`: the unique
`_id` makes the claim atomic on every MongoDB-compatible server, so a stale writer cannot
overwrite newer state. The claim also holds the messages the change must publish (its outbox)
and the record it writes, so a crash after the claim is rolled forward, never lost.

Every hot-path access is by `_id` alone: FerretDB pushes only `{_id: value}` filters down to
its SQLite index and scans the collection for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

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
    trace_id: str | None = None
    webhook_json: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    published_revision: int = 0
    """The last revision whose actions were all carried out (read without another lookup)."""

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
        "state": r.state_json,
        "metadata": r.metadata_json,
        "assets": r.assets_json,
        "traceId": r.trace_id,
        "webhook": r.webhook_json,
        "publishedRevision": r.published_revision,
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
        state_json=d["state"],
        metadata_json=d.get("metadata", "{}"),
        assets_json=d.get("assets", "{}"),
        trace_id=d.get("traceId"),
        webhook_json=d.get("webhook"),
        published_revision=d["publishedRevision"] if "publishedRevision" in d else d["revision"],
    )


@dataclass(frozen=True)
class Revision:
    """A claimed revision: what it wrote and what it must publish."""

    run_id: str
    revision: int
    record: RunRecord
    outbox_json: str


def claim_id(run_id: str, revision: int) -> str:
    return f"{run_id}@{revision}"


class RunRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._runs = db.runs
        self._revisions = db.run_revisions

    async def create(self, record: RunRecord) -> None:
        await self._runs.insert_one(_to_doc(record))

    async def get(self, run_id: str) -> RunRecord | None:
        doc = await self._runs.find_one({"_id": run_id})
        return _from_doc(doc) if doc else None

    async def get_for_tenant(self, run_id: str, tenant_id: str) -> RunRecord | None:
        record = await self.get(run_id)
        return record if record is not None and record.tenant_id == tenant_id else None

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

    async def commit(self, record: RunRecord, *, outbox_json: str) -> bool:
        """Claim `record.revision` and store the record; False when another writer claimed
        that revision first (re-read with `catch_up` and decide again)."""
        doc = _to_doc(record)
        del doc["_id"]
        try:
            await self._revisions.insert_one(
                {
                    "_id": claim_id(record.run_id, record.revision),
                    "record": doc,
                    "outbox": outbox_json,
                }
            )
        except DuplicateKeyError:
            return False
        await self._runs.update_one({"_id": record.run_id}, {"$set": doc})
        # A writer that paused between its claim and this write may have just put an older
        # revision over a newer one; the newer claim exists, so roll forward over it again.
        await self.catch_up(record)
        return True

    async def revision(self, run_id: str, revision: int) -> Revision | None:
        doc = await self._revisions.find_one({"_id": claim_id(run_id, revision)})
        if doc is None:
            return None
        return Revision(
            run_id=run_id,
            revision=revision,
            record=_from_doc({"_id": run_id, **doc["record"]}),
            outbox_json=doc["outbox"],
        )

    async def mark_published(self, run_id: str, revision: int) -> None:
        """Record on the run that `revision`'s actions were carried out, so the next event
        needs no lookup to know (one writer per run: revisions are marked in order)."""
        await self._runs.update_one({"_id": run_id}, {"$set": {"publishedRevision": revision}})

    async def catch_up(self, record: RunRecord) -> RunRecord:
        """Roll the run forward over revisions claimed but not yet written to it (a writer
        died between its claim and its write)."""
        while True:
            ahead = await self.revision(record.run_id, record.revision + 1)
            if ahead is None:
                return record
            doc = _to_doc(ahead.record)
            del doc["_id"]
            await self._runs.update_one({"_id": record.run_id}, {"$set": doc})
            record = ahead.record
