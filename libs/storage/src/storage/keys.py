"""API keys: only a SHA-256 hash is stored; the key itself is shown once, at creation."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from storage.mongo import Document

KEY_PREFIX = "wfk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._keys = db.api_keys

    async def create(self, *, tenant_id: str, name: str, now: datetime) -> str:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        await self._keys.insert_one(
            {"_id": hash_key(key), "tenantId": tenant_id, "name": name, "createdAt": now}
        )
        return key

    async def tenant_of(self, key: str) -> str | None:
        doc = await self._keys.find_one({"_id": hash_key(key)})
        return str(doc["tenantId"]) if doc else None
