"""Workflow definitions as the services read them, and runs rendered with them.

Versions are immutable, so a definition once read (or parsed from a record already read) is
kept for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from contracts.run import RunDetail, RunResource
from storage.runs import RunRecord
from storage.workflows import WorkflowRecord, WorkflowRepository
from workflow.definition import WorkflowDefinition
from workflow.limits import Limits
from workflow.run import RunState

from runview.render import load_view, to_detail, to_resource

Key = tuple[str, str, int]


class Definitions:
    def __init__(self, workflows: WorkflowRepository) -> None:
        self._workflows = workflows
        self._parsed: dict[Key, WorkflowDefinition] = {}

    def of(self, record: WorkflowRecord) -> WorkflowDefinition:
        """The definition of a version the caller has already read."""
        key = (record.tenant_id, record.workflow_id, record.version)
        if key not in self._parsed:
            self._parsed[key] = WorkflowDefinition.model_validate_json(record.definition_json)
        return self._parsed[key]

    async def get(self, tenant_id: str, workflow_id: str, version: int) -> WorkflowDefinition:
        key = (tenant_id, workflow_id, version)
        if key in self._parsed:
            return self._parsed[key]
        record = await self._workflows.get(*key)
        if record is None:
            raise LookupError(f"workflow {workflow_id} version {version} does not exist")
        return self.of(record)


class RunRenderer:
    """The run resource exactly as `GET /v1/runs/{runId}` returns it, URLs presigned now."""

    def __init__(self, definitions: Definitions, presign: Callable[[str], str]) -> None:
        self._definitions = definitions
        self._presign = presign

    async def render(self, record: RunRecord) -> RunResource:
        defn = await self._definitions.get(
            record.tenant_id, record.workflow_id, record.workflow_version
        )
        return to_resource(load_view(record), defn, self._presign)

    async def render_detail(
        self,
        record: RunRecord,
        limits: Limits,
        load: Callable[[str], Awaitable[RunRecord | None]],
    ) -> RunDetail:
        """The run's full detail (`GET /v1/runs/{runId}?detail=full`): `load` reads each run
        its reused steps came from (one read per such run, usually one), for their params."""
        defn = await self._definitions.get(
            record.tenant_id, record.workflow_id, record.workflow_version
        )
        view = load_view(record)
        sources: dict[str, RunState] = {}
        for run_id in sorted({s.reused_from for s in view.state.steps.values() if s.reused_from}):
            source = await load(run_id)
            if source is not None:
                sources[run_id] = RunState.model_validate_json(source.state_json)
        # Resolving every step's params is CPU work proportional to the run: off the loop.
        return await asyncio.to_thread(to_detail, view, defn, self._presign, limits, sources)
