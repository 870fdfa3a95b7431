"""Idempotency keys of run requests: the same key and body give the same run.

`_id` = `{tenant}:{key}` makes the first request's claim atomic on every server. Keys expire
in code (no TTL indexes here): an expired key is replaced on use and removed by the sweeper.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.mongo import Document


@dataclass(frozen=True)
class IdempotencyRecord:
    tenant_id: str
    key: str
    body_hash: str
    run_id: str
    expires_at: datetime


def _id(tenant_id: str, key: str) -> str:
    return f"{tenant_id}:{key}"


class IdempotencyKeys:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._keys = db.idempotency_keys

    async def claim(self, record: IdempotencyRecord, *, now: datetime) -> IdempotencyRecord:
        """Store `record` unless a live key exists; return the record that holds the key."""
        while True:
            try:
                await self._keys.insert_one(
                    {
                        "_id": _id(record.tenant_id, record.key),
                        "bodyHash": record.body_hash,
                        "runId": record.run_id,
                        "expiresAt": record.expires_at,
                    }
                )
            except DuplicateKeyError:
                doc = await self._keys.find_one({"_id": _id(record.tenant_id, record.key)})
                if doc is None:
                    continue
                if doc["expiresAt"] <= now:
                    # Only the expired key: a fresh claim made meanwhile must stay.
                    await self._keys.delete_one({"_id": doc["_id"], "expiresAt": {"$lte": now}})
                    continue
                return IdempotencyRecord(
                    tenant_id=record.tenant_id,
                    key=record.key,
                    body_hash=doc["bodyHash"],
                    run_id=doc["runId"],
                    expires_at=doc["expiresAt"],
                )
            return record

    async def remove_expired(self, now: datetime, *, limit: int = 1000) -> int:
        expired = [
            d["_id"]
            async for d in self._keys.find({"expiresAt": {"$lte": now}}, {"_id": 1}).limit(limit)
        ]
        for key_id in expired:
            await self._keys.delete_one({"_id": key_id, "expiresAt": {"$lte": now}})
        return len(expired)
