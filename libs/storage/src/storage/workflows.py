"""Workflow definitions: immutable versions, the definition stored as opaque JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.mongo import Document


@dataclass(frozen=True)
class WorkflowRecord:
    tenant_id: str
    workflow_id: str
    version: int
    name: str
    definition_json: str
    definition_hash: str
    created_at: datetime


def _from_doc(d: Document) -> WorkflowRecord:
    return WorkflowRecord(
        tenant_id=d["tenantId"],
        workflow_id=d["workflowId"],
        version=d["version"],
        name=d["name"],
        definition_json=d["definition"],
        definition_hash=d["hash"],
        created_at=d["createdAt"],
    )


class WorkflowRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._workflows = db.workflows

    async def latest(self, tenant_id: str, workflow_id: str) -> WorkflowRecord | None:
        cursor = (
            self._workflows.find({"tenantId": tenant_id, "workflowId": workflow_id})
            .sort("version", -1)
            .limit(1)
        )
        docs = [d async for d in cursor]
        return _from_doc(docs[0]) if docs else None

    async def get(self, tenant_id: str, workflow_id: str, version: int) -> WorkflowRecord | None:
        doc = await self._workflows.find_one(
            {"tenantId": tenant_id, "workflowId": workflow_id, "version": version}
        )
        return _from_doc(doc) if doc else None

    async def list_latest(self, tenant_id: str, *, limit: int = 1000) -> list[WorkflowRecord]:
        cursor = (
            self._workflows.find({"tenantId": tenant_id})
            .sort([("workflowId", 1), ("version", -1)])
            .limit(limit * 10)
        )
        latest: dict[str, WorkflowRecord] = {}
        async for doc in cursor:
            latest.setdefault(doc["workflowId"], _from_doc(doc))
        return list(latest.values())[:limit]

    async def register(
        self,
        *,
        tenant_id: str,
        workflow_id: str,
        name: str,
        definition_json: str,
        definition_hash: str,
        now: datetime,
    ) -> tuple[WorkflowRecord, bool]:
        """The current version when the definition is unchanged, else a new one (created=True).

        Concurrent registrations race on the unique (tenant, workflow, version) index; the loser
        re-reads and tries the next version.
        """
        while True:
            current = await self.latest(tenant_id, workflow_id)
            if current is not None and current.definition_hash == definition_hash:
                return current, False
            record = WorkflowRecord(
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                version=(current.version + 1) if current else 1,
                name=name,
                definition_json=definition_json,
                definition_hash=definition_hash,
                created_at=now,
            )
            try:
                await self._workflows.insert_one(
                    {
                        "_id": f"{tenant_id}/{workflow_id}/{record.version}",
                        "tenantId": tenant_id,
                        "workflowId": workflow_id,
                        "version": record.version,
                        "name": name,
                        "definition": definition_json,
                        "hash": definition_hash,
                        "createdAt": now,
                    }
                )
            except DuplicateKeyError:
                continue
            return record, True
