"""Workflow definitions: immutable versions, the definition stored as opaque JSON.

Versions are addressed by `_id` = `{tenant}/{workflow}/{version}` (the only filter FerretDB
answers from an index). A head document per workflow remembers the latest version as a hint;
the hint may lag a concurrent registration, never lead it, so `latest` probes upward from it.
"""

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


def _head_id(tenant_id: str, workflow_id: str) -> str:
    return f"{tenant_id}/{workflow_id}"


def _version_id(tenant_id: str, workflow_id: str, version: int) -> str:
    return f"{tenant_id}/{workflow_id}/{version}"


class WorkflowRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._workflows = db.workflows
        self._heads = db.workflow_heads

    async def get(self, tenant_id: str, workflow_id: str, version: int) -> WorkflowRecord | None:
        doc = await self._workflows.find_one({"_id": _version_id(tenant_id, workflow_id, version)})
        return _from_doc(doc) if doc else None

    async def latest(self, tenant_id: str, workflow_id: str) -> WorkflowRecord | None:
        head = await self._heads.find_one({"_id": _head_id(tenant_id, workflow_id)})
        if head is None:
            return None
        found = await self.get(tenant_id, workflow_id, head["version"])
        while found is not None:
            newer = await self.get(tenant_id, workflow_id, found.version + 1)
            if newer is None:
                return found
            found = newer
        return None  # pragma: no cover - versions are never deleted

    async def list_latest(self, tenant_id: str, *, limit: int = 1000) -> list[WorkflowRecord]:
        cursor = self._heads.find({"tenantId": tenant_id}).sort("_id", 1).limit(limit)
        records = [await self.latest(tenant_id, h["workflowId"]) async for h in cursor]
        return [r for r in records if r is not None]

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

        Concurrent registrations race on the unique `_id` of the next version; the loser
        re-reads and tries the version after.
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
                        "_id": _version_id(tenant_id, workflow_id, record.version),
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
                # That version exists (a concurrent registration, or a head never written after
                # a crash): point the hint at it and look again.
                await self._point_head(tenant_id, workflow_id, record.version)
                continue
            await self._point_head(tenant_id, workflow_id, record.version)
            return record, True

    async def _point_head(self, tenant_id: str, workflow_id: str, version: int) -> None:
        await self._heads.update_one(
            {"_id": _head_id(tenant_id, workflow_id)},
            {
                "$set": {"version": version},
                "$setOnInsert": {"tenantId": tenant_id, "workflowId": workflow_id},
            },
            upsert=True,
        )
