"""The run resource exactly as `GET /v1/runs/{runId}` renders it, URLs presigned now."""

from __future__ import annotations

from datetime import timedelta

from contracts.run import RunResource
from runview import load_view, to_resource
from storage.assets import AssetStore
from storage.runs import RunRecord
from storage.workflows import WorkflowRepository
from workflow.definition import WorkflowDefinition


class RunRenderer:
    def __init__(self, workflows: WorkflowRepository, store: AssetStore, expiry: timedelta) -> None:
        self._workflows = workflows
        self._store = store
        self._expiry = expiry
        self._definitions: dict[tuple[str, str, int], WorkflowDefinition] = {}

    async def render(self, record: RunRecord) -> RunResource:
        key = (record.tenant_id, record.workflow_id, record.workflow_version)
        if key not in self._definitions:  # versions are immutable
            found = await self._workflows.get(*key)
            if found is None:
                raise LookupError(f"workflow {key} of run {record.run_id} does not exist")
            self._definitions[key] = WorkflowDefinition.model_validate_json(found.definition_json)
        return to_resource(load_view(record), self._definitions[key], self._presign)

    def _presign(self, ref: str) -> str:
        return self._store.presign(ref, expires=self._expiry)
