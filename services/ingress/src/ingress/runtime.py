"""Everything a request handler needs, built once per process in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from bus.publisher import EventPublisher
from contracts.run import RunResource
from fastapi import Depends, Request
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase
from runview import Definitions, RunRenderer
from storage.assets import AssetStore
from storage.deliveries import DeliveryRepository
from storage.idempotency import IdempotencyKeys
from storage.keys import ApiKeyRepository
from storage.mongo import Document
from storage.providers import ProviderCredentials
from storage.runs import RunRecord, RunRepository
from storage.tenants import TenantRepository
from storage.usage import UsageRepository
from storage.workflows import WorkflowRepository

from ingress.caches import CachedKeys, CachedTenantLimits, CachedWorkflows
from ingress.hub import Hub
from ingress.ratelimit import MarkedRuns, RequestRate
from ingress.settings import IngressSettings


@dataclass
class Runtime:
    settings: IngressSettings
    db: AsyncDatabase[Document]
    broker: KafkaBroker
    publisher: EventPublisher
    store: AssetStore
    runs: RunRepository
    workflows: WorkflowRepository
    keys: ApiKeyRepository
    hub: Hub
    idempotency: IdempotencyKeys
    marked_runs: MarkedRuns = field(default_factory=MarkedRuns)
    deliveries: DeliveryRepository = field(init=False)
    tenants: TenantRepository = field(init=False)
    providers: ProviderCredentials = field(init=False)
    usage: UsageRepository = field(init=False)
    request_rate: RequestRate = field(init=False)
    cached_limits: CachedTenantLimits = field(init=False)
    definitions: Definitions = field(init=False)
    renderer: RunRenderer = field(init=False)
    cached_keys: CachedKeys = field(init=False)
    cached_workflows: CachedWorkflows = field(init=False)

    def __post_init__(self) -> None:
        self.deliveries = DeliveryRepository(self.db)
        self.tenants = TenantRepository(self.db)
        # A PROVIDER_CREDENTIALS_KEYS that is no Fernet key stops the start here, named.
        self.providers = ProviderCredentials(self.db, self.settings.provider_fernet())
        self.usage = UsageRepository(self.db)
        self.request_rate = RequestRate()
        self.definitions = Definitions(self.workflows)
        self.renderer = RunRenderer(self.definitions, self.presign)
        ttl = self.settings.cache_seconds
        self.cached_keys = CachedKeys(self.keys, ttl=ttl)
        self.cached_workflows = CachedWorkflows(self.workflows, ttl=ttl)
        self.cached_limits = CachedTenantLimits(self.tenants, self.settings, ttl=ttl)

    def presign(self, ref: str) -> str:
        return self.store.presign(ref, expires=self.settings.s3_url_expiry)

    async def render(self, record: RunRecord) -> RunResource:
        return await self.renderer.render(record)


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
