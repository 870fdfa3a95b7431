"""Reads on every request that change rarely or never, kept in this process.

A workflow version never changes, so it is kept until evicted. Which version is a workflow's
latest, what a key grants and a tenant's limits can change; they are kept for a short time
(`ttl`, 1 s by default: a revoked key is refused within that on every replica), and a
registration through this process forgets the latest at once, so a client sees the version it
just registered. An unknown key is remembered as unknown for the same time, so a client
retrying a wrong key costs one read a second, not one per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from cachetools import LRUCache, TTLCache
from storage.keys import ApiKeyRepository, KeyGrant
from storage.tenants import TenantRepository
from storage.workflows import WorkflowRecord, WorkflowRepository
from workflow.limits import Limits

from ingress.ratelimit import TenantLimits, resolve

MAX_ENTRIES = 10_000


_MISSING = object()


class CachedKeys:
    def __init__(
        self, keys: ApiKeyRepository, *, ttl: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._keys = keys
        self._grants: TTLCache[str, KeyGrant | None] = TTLCache(
            maxsize=MAX_ENTRIES, ttl=ttl, timer=timer
        )

    async def grant(self, key: str) -> KeyGrant | None:
        # One lookup: an entry found by `in` may expire before it is read (a 500 seen by
        # schemathesis), and None is a cached answer (an unknown key), not a miss.
        cached = self._grants.get(key, _MISSING)
        if cached is not _MISSING:
            return cast("KeyGrant | None", cached)
        found = await self._keys.grant(key)
        self._grants[key] = found
        return found

    async def tenant_of(self, key: str) -> str | None:
        found = await self.grant(key)
        return found.tenant_id if found else None


class CachedTenantLimits:
    def __init__(self, tenants: TenantRepository, defaults: Limits, *, ttl: float) -> None:
        self._tenants = tenants
        self._defaults = defaults
        self._limits: TTLCache[str, TenantLimits] = TTLCache(maxsize=MAX_ENTRIES, ttl=ttl)

    async def of(self, tenant_id: str) -> TenantLimits:
        found = self._limits.get(tenant_id)
        if found is None:
            found = resolve(self._defaults, await self._tenants.limits(tenant_id))
            self._limits[tenant_id] = found
        return found


class CachedWorkflows:
    def __init__(self, workflows: WorkflowRepository, *, ttl: float) -> None:
        self._workflows = workflows
        self._versions: LRUCache[tuple[str, str, int], WorkflowRecord] = LRUCache(MAX_ENTRIES)
        self._latest: TTLCache[tuple[str, str], WorkflowRecord] = TTLCache(MAX_ENTRIES, ttl)

    async def get(self, tenant_id: str, workflow_id: str, version: int) -> WorkflowRecord | None:
        key = (tenant_id, workflow_id, version)
        found = self._versions.get(key)
        if found is None:
            found = await self._workflows.get(tenant_id, workflow_id, version)
            if found is not None:
                self._versions[key] = found
        return found

    async def latest(self, tenant_id: str, workflow_id: str) -> WorkflowRecord | None:
        found = self._latest.get((tenant_id, workflow_id))
        if found is None:
            found = await self._workflows.latest(tenant_id, workflow_id)
            if found is not None:
                self._latest[(tenant_id, workflow_id)] = found
                self._versions[(tenant_id, workflow_id, found.version)] = found
        return found

    def forget(self, tenant_id: str, workflow_id: str) -> None:
        self._latest.pop((tenant_id, workflow_id), None)
