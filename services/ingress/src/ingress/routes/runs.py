"""Starting runs, waiting for them, and reading them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from datetime import UTC, datetime
from typing import Annotated

from contracts.api import ProblemItem, RunList, RunRequest
from contracts.events import RunRequested
from contracts.run import RunResource, RunStatus
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from storage.ids import time_ordered_id
from storage.runs import RunRecord
from workflow.run import new_run_state
from workflow.state import RunStatus as DomainStatus
from workflow.state import is_terminal
from workflow.validation import validate_inputs

from ingress.auth import TenantId
from ingress.body import parse, read_json
from ingress.prefer import parse_prefer
from ingress.problems import ProblemError
from ingress.routes.workflows import WorkflowIdPath
from ingress.runtime import Runtime, RuntimeDep

log = logging.getLogger("ingress.runs")
router = APIRouter(tags=["runs"])


def _run_response(resource: RunResource, *, finished: bool, applied: str | None) -> JSONResponse:
    headers = {} if finished else {"Location": f"/v1/runs/{resource.run_id}"}
    if applied:
        headers["Preference-Applied"] = applied
    return JSONResponse(
        resource.model_dump(mode="json", by_alias=True),
        status_code=200 if finished else 202,
        headers=headers,
    )


@router.post(
    "/v1/workflows/{workflow_id}/run",
    response_model=RunResource,
    responses={202: {"model": RunResource, "description": "Still running; see Location"}},
)
async def run_workflow(
    workflow_id: WorkflowIdPath, request: Request, tenant_id: TenantId, runtime: RuntimeDep
) -> JSONResponse:
    """Start a run. Waits for its end (up to the server maximum, or `Prefer: wait=N`) and answers
    200 with the finished run, else 202 with the run so far and `Location`.
    `Prefer: respond-async` answers 202 at once."""
    body = parse(RunRequest, await read_json(request, runtime.settings.max_body_bytes))
    workflow = (
        await runtime.workflows.get(tenant_id, workflow_id, body.version)
        if body.version is not None
        else await runtime.workflows.latest(tenant_id, workflow_id)
    )
    if workflow is None:
        which = f" version {body.version}" if body.version is not None else ""
        raise ProblemError(404, f"no workflow {workflow_id!r}{which}", kind="not-found")
    defn = await runtime.definition(tenant_id, workflow_id, workflow.version)
    problems = validate_inputs(defn.input_schema, body.inputs)
    if problems:
        raise ProblemError(
            422,
            "the inputs do not match the workflow's input schema",
            kind="invalid-inputs",
            errors=[ProblemItem(path=p.path, message=p.message) for p in problems],
        )

    run_id = time_ordered_id("run")
    state = new_run_state(run_id, defn, body.inputs)
    record = RunRecord(
        run_id=run_id,
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        workflow_version=workflow.version,
        status=state.status.value,
        revision=state.revision,
        created_at=datetime.now(UTC),
        state_json=state.model_dump_json(),
        metadata_json=json.dumps(body.metadata),
        trace_id=secrets.token_hex(16),
        webhook_json=json.dumps({"url": str(body.webhook), "events": body.webhook_events})
        if body.webhook
        else None,
    )
    prefer = parse_prefer(request.headers.getlist("prefer"))
    waiter = None if prefer.respond_async else runtime.waiters.register(run_id)
    try:
        await runtime.runs.create(record)
        await runtime.publisher.publish(
            RunRequested(
                run_id=run_id,
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                workflow_version=workflow.version,
                requested_at=record.created_at,
            )
        )
        if waiter is None:
            return _run_response(
                await runtime.render(record), finished=False, applied="respond-async"
            )
        limit = runtime.settings.max_wait_seconds
        timeout = min(prefer.wait, limit) if prefer.wait is not None else limit
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), timeout=timeout)
    finally:
        if waiter is not None:
            runtime.waiters.discard(run_id, waiter)
    return await _current(runtime, run_id, applied=f"wait={timeout:g}" if prefer.wait else None)


async def _current(runtime: Runtime, run_id: str, *, applied: str | None) -> JSONResponse:
    stored = await runtime.runs.get(run_id)
    if stored is None:  # pragma: no cover - we stored it ourselves moments ago
        raise ProblemError(500, f"run {run_id} vanished", kind="internal")
    finished = is_terminal(DomainStatus(stored.status))
    return _run_response(await runtime.render(stored), finished=finished, applied=applied)


RunIdPath = Annotated[str, Path(pattern=r"^run_[0-9a-f]{28}$")]


@router.get("/v1/runs/{run_id}", response_model=RunResource, response_model_by_alias=True)
async def get_run(run_id: RunIdPath, tenant_id: TenantId, runtime: RuntimeDep) -> RunResource:
    record = await runtime.runs.get_for_tenant(run_id, tenant_id)
    if record is None:
        raise ProblemError(404, f"no run {run_id!r}", kind="not-found")
    return await runtime.render(record)


@router.get("/v1/runs", response_model=RunList, response_model_by_alias=True)
async def list_runs(
    tenant_id: TenantId,
    runtime: RuntimeDep,
    response: Response,
    workflow_id: Annotated[str | None, Query(alias="workflowId")] = None,
    status: RunStatus | None = None,
    cursor: Annotated[str | None, Query(pattern=r"^run_[0-9a-f]{28}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> RunList:
    """Your runs, newest first. Pass `nextCursor` back as `cursor` for the next page."""
    records = await runtime.runs.list(
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        status=status.value if status else None,
        before=cursor,
        limit=limit + 1,
    )
    page = records[:limit]
    next_cursor = page[-1].run_id if len(records) > limit else None
    items = [await runtime.render(r) for r in page]
    return RunList(items=items, next_cursor=next_cursor)
