"""The tenant document: webhook signing secrets (Standard Webhooks `whsec_<base64>`) and limits.

One document per tenant, `_id` = tenantId, created on first use. Rotation keeps the previous
secret valid until `previousValidUntil`; until then deliveries are signed with both.

`limits` holds the tenant's own rate limits and quotas (`requestsPerSecond`, `runsPerMinute`,
`concurrentRuns`, `storedBytes`): a number is that limit, `null` means none, a missing field
means the service default (`workflow.limits.Limits`). A document made for limits alone has no
secret yet; the first delivery or `GET /v1/webhooks/secret` adds one.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.mongo import Document

SECRET_PREFIX = "whsec_"
LIMIT_FIELDS = ("requestsPerSecond", "runsPerMinute", "concurrentRuns", "storedBytes")


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class SigningSecrets:
    current: str
    created_at: datetime
    previous: str | None = None
    previous_valid_until: datetime | None = None

    def valid(self, now: datetime) -> list[str]:
        """The secrets a delivery made at `now` is signed with, newest first."""
        keep_previous = (
            self.previous is not None
            and self.previous_valid_until is not None
            and now < self.previous_valid_until
        )
        return [self.current, self.previous] if keep_previous and self.previous else [self.current]


def _from_doc(d: Document) -> SigningSecrets:
    return SigningSecrets(
        current=d["webhookSecret"],
        created_at=d["secretCreatedAt"],
        previous=d.get("previousSecret"),
        previous_valid_until=d.get("previousValidUntil"),
    )


class TenantRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._tenants = db.tenants

    async def signing_secrets(self, tenant_id: str, *, now: datetime) -> SigningSecrets:
        """The tenant's secrets, creating the first one when there is none yet."""
        doc = await self._tenants.find_one({"_id": tenant_id})
        if doc is not None and "webhookSecret" in doc:
            return _from_doc(doc)
        # The document may exist already (limits set first): add the secret unless another
        # writer did; an upsert racing another upsert loses on the `_id` and reads the winner.
        with contextlib.suppress(DuplicateKeyError):
            await self._tenants.update_one(
                {"_id": tenant_id, "webhookSecret": {"$exists": False}},
                {"$set": {"webhookSecret": new_secret(), "secretCreatedAt": now}},
                upsert=True,
            )
        doc = await self._tenants.find_one({"_id": tenant_id})
        assert doc is not None
        return _from_doc(doc)

    async def rotate(self, tenant_id: str, *, now: datetime, grace: timedelta) -> SigningSecrets:
        """A new current secret; the old one stays valid for `grace`.

        Rotation is rare and manual, so a plain read-then-write by `_id` is enough: of two
        concurrent rotations the later write wins and both callers see the stored result.
        """
        old = await self.signing_secrets(tenant_id, now=now)
        await self._tenants.update_one(
            {"_id": tenant_id},
            {
                "$set": {
                    "webhookSecret": new_secret(),
                    "secretCreatedAt": now,
                    "previousSecret": old.current,
                    "previousValidUntil": now + grace,
                }
            },
        )
        return await self.signing_secrets(tenant_id, now=now)

    async def limits(self, tenant_id: str) -> dict[str, float | None]:
        """The tenant's own limits (see the module's docstring); empty when it has none."""
        doc = await self._tenants.find_one({"_id": tenant_id}, {"limits": 1})
        stored = (doc or {}).get("limits") or {}
        return {k: stored[k] for k in LIMIT_FIELDS if k in stored}

    async def set_limits(
        self, tenant_id: str, limits: Mapping[str, float | None]
    ) -> dict[str, float | None]:
        """Replace the tenant's own limits (fields left out fall back to the defaults)."""
        unknown = set(limits) - set(LIMIT_FIELDS)
        if unknown:
            raise ValueError(f"unknown limits {sorted(unknown)}; known: {', '.join(LIMIT_FIELDS)}")
        with contextlib.suppress(DuplicateKeyError):  # two first writes: one wins, both valid
            await self._tenants.update_one(
                {"_id": tenant_id}, {"$set": {"limits": dict(limits)}}, upsert=True
            )
        return await self.limits(tenant_id)
