"""Everything a request handler needs, built once per process in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from bus.publisher import EventPublisher
from contracts.run import RunResource
from fastapi import Depends, Request
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase
from runview import load_view, to_resource
from storage.assets import AssetStore
from storage.deliveries import DeliveryRepository
from storage.idempotency import IdempotencyKeys
from storage.keys import ApiKeyRepository
from storage.mongo import Document
from storage.runs import RunRecord, RunRepository
from storage.tenants import TenantRepository
from storage.timers import TimerRepository
from storage.workflows import WorkflowRepository
from workflow.definition import WorkflowDefinition

from ingress.hub import Hub
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
    timers: TimerRepository
    _definitions: dict[tuple[str, str, int], WorkflowDefinition] = field(default_factory=dict)
    deliveries: DeliveryRepository = field(init=False)
    tenants: TenantRepository = field(init=False)

    def __post_init__(self) -> None:
        self.deliveries = DeliveryRepository(self.db)
        self.tenants = TenantRepository(self.db)

    async def definition(
        self, tenant_id: str, workflow_id: str, version: int
    ) -> WorkflowDefinition:
        """Versions are immutable, so a definition once read is cached for good."""
        key = (tenant_id, workflow_id, version)
        if key not in self._definitions:
            record = await self.workflows.get(tenant_id, workflow_id, version)
            if record is None:
                raise LookupError(f"workflow {workflow_id} version {version} does not exist")
            self._definitions[key] = WorkflowDefinition.model_validate_json(record.definition_json)
        return self._definitions[key]

    def presign(self, ref: str) -> str:
        return self.store.presign(ref, expires=self.settings.s3_url_expiry)

    async def render(self, record: RunRecord) -> RunResource:
        defn = await self.definition(record.tenant_id, record.workflow_id, record.workflow_version)
        return to_resource(load_view(record), defn, self.presign)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
