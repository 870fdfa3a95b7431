"""API keys: only a SHA-256 hash is stored; the key itself is shown once, at creation.

A key document: `_id` = the hash (so authenticating is one read by `_id`), `keyId` (a public
name for the key, used to list and revoke it), `prefix` (the first characters, enough to
recognise a key, never enough to use it), `tenantId`, `name`, `scopes`, `createdAt` and,
once revoked, `revokedAt`. A revoked key is kept (who had access when) but never accepted.
Keys stored before scopes existed have no `scopes` field and keep every scope.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from storage.ids import time_ordered_id
from storage.mongo import Document

KEY_PREFIX = "wfk_"
SHOWN_PREFIX_CHARS = 12
"""`wfk_` and 8 characters of the secret part: recognisable in a list, useless as a key."""

SCOPES = ("runs:write", "runs:read", "workflows:write")
"""What a key may do. Reading the workflow registry needs only a valid key (a caller that
starts runs must see the input schema)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyGrant:
    """What a valid key grants: its tenant and scopes."""

    tenant_id: str
    key_id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class KeyInfo:
    """A key as an operator sees it: never the key or its hash."""

    key_id: str
    tenant_id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


def _info(doc: Document) -> KeyInfo:
    return KeyInfo(
        key_id=str(doc["keyId"]),
        tenant_id=str(doc["tenantId"]),
        name=str(doc.get("name", "")),
        prefix=str(doc.get("prefix", KEY_PREFIX)),
        scopes=tuple(doc.get("scopes", SCOPES)),
        created_at=doc["createdAt"],
        revoked_at=doc.get("revokedAt"),
    )


class ApiKeyRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._keys = db.api_keys

    async def create(
        self,
        *,
        tenant_id: str,
        name: str,
        now: datetime,
        scopes: Iterable[str] = SCOPES,
    ) -> tuple[KeyInfo, str]:
        """A new key: its description and the key itself (shown this once)."""
        unknown = set(scopes) - set(SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes {sorted(unknown)}; known: {', '.join(SCOPES)}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        doc: Document = {
            "_id": hash_key(key),
            "keyId": time_ordered_id("key"),
            "prefix": key[:SHOWN_PREFIX_CHARS],
            "tenantId": tenant_id,
            "name": name,
            "scopes": sorted(set(scopes)),
            "createdAt": now,
        }
        await self._keys.insert_one(doc)
        return _info(doc), key

    async def grant(self, key: str) -> KeyGrant | None:
        """What `key` grants, or None when it is unknown or revoked."""
        doc = await self._keys.find_one({"_id": hash_key(key)})
        if doc is None or doc.get("revokedAt") is not None:
            return None
        return KeyGrant(
            tenant_id=str(doc["tenantId"]),
            key_id=str(doc.get("keyId", "")),
            scopes=frozenset(doc.get("scopes", SCOPES)),
        )

    async def tenant_of(self, key: str) -> str | None:
        found = await self.grant(key)
        return found.tenant_id if found else None

    async def list(self, tenant_id: str) -> list[KeyInfo]:
        """The tenant's keys, revoked ones too, oldest first."""
        docs = await self._keys.find({"tenantId": tenant_id}).to_list(None)
        for doc in docs:
            if "keyId" not in doc:
                # A key made before keys had ids: give it one, so it can be revoked.
                doc["keyId"] = time_ordered_id("key")
                await self._keys.update_one(
                    {"_id": doc["_id"], "keyId": {"$exists": False}},
                    {"$set": {"keyId": doc["keyId"]}},
                )
                fresh = await self._keys.find_one({"_id": doc["_id"]})
                doc["keyId"] = fresh["keyId"] if fresh else doc["keyId"]
        return sorted((_info(d) for d in docs), key=lambda k: (k.created_at, k.key_id))

    async def revoke(self, key_id: str, *, now: datetime) -> KeyInfo | None:
        """Revoke the key (idempotent: a second revocation keeps the first time); None if no
        key has that id."""
        doc = await self._keys.find_one({"keyId": key_id})
        if doc is None:
            return None
        if doc.get("revokedAt") is None:
            await self._keys.update_one({"_id": doc["_id"]}, {"$set": {"revokedAt": now}})
            doc["revokedAt"] = now
        return _info(doc)
