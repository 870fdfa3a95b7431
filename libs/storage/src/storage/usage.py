"""What tenants use, shared by every ingress replica: runs started per minute, runs active now,
bytes stored. The decisions (limits, retry times) are the caller's; this module counts.

- Runs started: one counter per tenant and window parity (`run_starts`, `_id`
  `{tenant}|{window % 2}`, `window` = the minute number): the current window's counter is
  incremented in one round trip; at a new window the older document is reset. Two documents
  per tenant, whatever the history.
- Active runs: one marker per run started over the API (`active_runs`, `_id` = runId,
  `tenantId`), inserted before the run is stored and deleted when its terminal event is seen.
  Markers are idempotent (a repeated insert or delete changes nothing); a marker whose delete
  was missed is removed by `reconcile`, which looks at the runs themselves.
- Stored bytes: a counter per tenant (`usage`, `_id` = tenantId, `storedBytes`) charged after
  each upload.

Every query is an equality on top-level fields, which FerretDB pushes down to an index.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.mongo import Document

TERMINAL = frozenset({"completed", "failed", "canceled"})
MISSING_RUN_GRACE = timedelta(seconds=60)
"""A marker whose run is not stored yet may belong to a request still being handled; only an
older one is treated as left over."""


class UsageRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._starts = db.run_starts
        self._active = db.active_runs
        self._usage = db.usage
        self._runs = db.runs

    # --- runs started per window ---------------------------------------------------------
    async def count_start(self, tenant_id: str, window: int) -> int:
        """Count one run start in `window` (a window number); the window's count after it."""
        doc_id = f"{tenant_id}|{window % 2}"
        for _ in range(3):
            doc = await self._starts.find_one_and_update(
                {"_id": doc_id, "window": window},
                {"$inc": {"count": 1}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return int(doc["count"])
            # First start in this window: reset the document two windows old (or create it).
            # Of two replicas doing so at once, one matches nothing and its upsert fails on
            # the `_id`; it then increments the reset document.
            with contextlib.suppress(DuplicateKeyError):
                result = await self._starts.update_one(
                    {"_id": doc_id, "window": {"$ne": window}},
                    {"$set": {"window": window, "count": 1, "tenantId": tenant_id}},
                    upsert=True,
                )
                if result.modified_count or result.upserted_id is not None:
                    return 1
        raise RuntimeError(f"could not count a run start of {tenant_id!r}")  # pragma: no cover

    async def uncount_start(self, tenant_id: str, window: int) -> None:
        """Take back a start that was refused after it was counted."""
        await self._starts.update_one(
            {"_id": f"{tenant_id}|{window % 2}", "window": window}, {"$inc": {"count": -1}}
        )

    async def starts_in(self, tenant_id: str, window: int) -> int:
        doc = await self._starts.find_one({"_id": f"{tenant_id}|{window % 2}", "window": window})
        return int(doc["count"]) if doc else 0

    # --- active runs ---------------------------------------------------------------------
    async def add_active(self, tenant_id: str, run_id: str, *, now: datetime) -> tuple[bool, int]:
        """Mark `run_id` active: whether this call added the marker (a repeat finds it), and
        the tenant's active runs after it (this one included)."""
        try:
            await self._active.insert_one({"_id": run_id, "tenantId": tenant_id, "createdAt": now})
            added = True
        except DuplicateKeyError:
            added = False
        return added, await self.active_count(tenant_id)

    async def active_count(self, tenant_id: str) -> int:
        return await self._active.count_documents({"tenantId": tenant_id})

    async def remove_active(self, run_ids: Iterable[str]) -> None:
        ids = list(run_ids)
        if len(ids) == 1:
            await self._active.delete_one({"_id": ids[0]})
        elif ids:
            # `$in` is filtered after fetching on FerretDB, but this collection only ever
            # holds the runs active right now.
            await self._active.delete_many({"_id": {"$in": ids}})

    async def reconcile(self, tenant_id: str, *, now: datetime) -> int:
        """Remove the tenant's markers whose run has ended (or never got stored); the count
        left. Called only when a tenant is at its quota, so a missed event costs a few reads
        then rather than locking the tenant out."""
        markers = await self._active.find({"tenantId": tenant_id}).to_list(None)
        stale: list[str] = []
        for marker in markers:
            run = await self._runs.find_one({"_id": marker["_id"]}, {"status": 1})
            if run is None:
                created = marker.get("createdAt")
                if created is not None and now - created > MISSING_RUN_GRACE:
                    stale.append(marker["_id"])
            elif run.get("status") in TERMINAL:
                stale.append(marker["_id"])
        for run_id in stale:
            await self._active.delete_one({"_id": run_id})
        return len(markers) - len(stale)

    # --- stored bytes --------------------------------------------------------------------
    async def stored_bytes(self, tenant_id: str) -> int:
        doc = await self._usage.find_one({"_id": tenant_id})
        return int(doc.get("storedBytes", 0)) if doc else 0

    async def charge_bytes(self, tenant_id: str, n: int) -> int:
        """Add `n` stored bytes to the tenant; its total after."""
        for _ in range(2):
            with contextlib.suppress(DuplicateKeyError):  # two first uploads: retry the $inc
                doc = await self._usage.find_one_and_update(
                    {"_id": tenant_id},
                    {"$inc": {"storedBytes": n}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                return int(doc["storedBytes"]) if doc else n
        return await self.stored_bytes(tenant_id)  # pragma: no cover
