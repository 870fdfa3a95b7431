"""Per-tenant webhook signing secrets (Standard Webhooks `whsec_<base64>`).

One document per tenant, `_id` = tenantId, created on first use. Rotation keeps the previous
secret valid until `previousValidUntil`; until then deliveries are signed with both.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.mongo import Document

SECRET_PREFIX = "whsec_"


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
        if doc is not None:
            return _from_doc(doc)
        with contextlib.suppress(DuplicateKeyError):  # created concurrently: the stored wins
            await self._tenants.insert_one(
                {"_id": tenant_id, "webhookSecret": new_secret(), "secretCreatedAt": now}
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
