"""Reads on every request that change rarely or never, kept in this process.

A workflow version never changes, so it is kept until evicted. Which version is a workflow's
latest, and which tenant a key belongs to, can change; they are kept for a short time
(`ttl`), and a registration through this process forgets the latest at once, so a client sees
the version it just registered.
"""

from __future__ import annotations

from cachetools import LRUCache, TTLCache
from storage.keys import ApiKeyRepository
from storage.workflows import WorkflowRecord, WorkflowRepository

MAX_ENTRIES = 10_000


class CachedKeys:
    def __init__(self, keys: ApiKeyRepository, *, ttl: float) -> None:
        self._keys = keys
        self._tenants: TTLCache[str, str] = TTLCache(maxsize=MAX_ENTRIES, ttl=ttl)

    async def tenant_of(self, key: str) -> str | None:
        tenant = self._tenants.get(key)
        if tenant is None:
            tenant = await self._keys.tenant_of(key)
            if tenant is not None:
                self._tenants[key] = tenant
        return tenant


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
