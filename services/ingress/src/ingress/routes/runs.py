"""Starting runs, waiting for them, reading them and cancelling them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from bus import logs, tracing
from contracts.api import ProblemItem, RunList, RunRequest
from contracts.events import RunCancelRequested, RunEventData, RunRequested
from contracts.run import RunResource, RunStatus
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pymongo.errors import DuplicateKeyError
from runview import from_event_data
from starlette.concurrency import run_in_threadpool
from storage.idempotency import IdempotencyRecord
from storage.ids import time_ordered_id
from storage.runs import RunRecord
from storage.workflows import WorkflowRecord
from workflow.limits import Limits, exceeded
from workflow.run import new_run_state
from workflow.state import RunStatus as DomainStatus
from workflow.state import is_terminal
from workflow.validation import json_size, validate_inputs

from ingress.auth import TenantId
from ingress.body import parse, read_json
from ingress.hub import wait_for_end
from ingress.prefer import Preference, parse_prefer
from ingress.problems import ProblemError
from ingress.quotas import Admission, admit_run
from ingress.routes.webhooks import check_webhook_target
from ingress.routes.workflows import WorkflowIdPath
from ingress.runtime import Runtime, RuntimeDep

log = logging.getLogger("ingress.runs")
router = APIRouter(tags=["runs"])

RunIdPath = Annotated[str, Path(pattern=r"^run_[0-9a-f]{28}$")]
CANCEL_WAIT_SECONDS = 5.0
# As in the documented contract: what does not match is a 422 before any work (a NUL byte in a
# workflow id would otherwise reach the store, which cannot take it: a 500).
WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
CANCEL_AFTER_PATTERN = r"^[0-9]{1,15}(\.[0-9]{1,9})?s?$"


def _run_response(resource: RunResource, *, finished: bool, applied: str | None) -> JSONResponse:
    headers = {} if finished else {"Location": f"/v1/runs/{resource.run_id}"}
    if applied:
        headers["Preference-Applied"] = applied
    return JSONResponse(
        resource.model_dump(mode="json", by_alias=True),
        status_code=200 if finished else 202,
        headers=headers,
    )


def _body_hash(workflow_id: str, raw: Any) -> str:
    canonical = json.dumps([workflow_id, raw], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _timeout(body: RunRequest, cancel_after: str | None, limits: Limits) -> float | None:
    """The run's timeout: finite, positive and at most MAX_RUN_TIMEOUT_SECONDS (422 else)."""
    maximum = limits.max_run_timeout_seconds
    if cancel_after is None:
        if body.timeout_seconds is not None and not body.timeout_seconds <= maximum:
            raise ProblemError(
                422,
                f"timeoutSeconds is over {exceeded('max_run_timeout_seconds', maximum)}",
                kind="invalid-request",
                errors=[ProblemItem(path="/timeoutSeconds", message="too large")],
            )
        return body.timeout_seconds
    try:
        seconds = float(cancel_after.strip().removesuffix("s"))
    except ValueError:
        seconds = math.nan  # refused below, like every non-finite value
    if not 0 < seconds <= maximum:  # False for NaN and infinity too
        raise ProblemError(
            422,
            f"Cancel-After must be a number of seconds above 0 and at most"
            f" {exceeded('max_run_timeout_seconds', maximum)}",
            kind="invalid-request",
            errors=[ProblemItem(path="/headers/Cancel-After", message="invalid duration")],
        )
    return seconds


def _size_problems(body: RunRequest, limits: Limits) -> list[ProblemItem]:
    """`inputs` and `metadata` over their limits: each must fit, with the rest of the run,
    one Kafka message and one stored document."""
    problems = []
    for name, value, limit in (
        ("inputs", body.inputs, "max_inputs_bytes"),
        ("metadata", body.metadata, "max_metadata_bytes"),
    ):
        size, maximum = json_size(value), getattr(limits, limit)
        if size > maximum:
            problems.append(
                ProblemItem(
                    path=f"/{name}",
                    message=f"{size} bytes as compact JSON is over {exceeded(limit, maximum)}",
                )
            )
    return problems


@router.post(
    "/v1/workflows/{workflow_id}/run",
    response_model=RunResource,
    responses={202: {"model": RunResource, "description": "Still running; see Location"}},
)
async def run_workflow(
    workflow_id: WorkflowIdPath,
    request: Request,
    tenant_id: TenantId,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    cancel_after: Annotated[
        str | None,
        Header(pattern=CANCEL_AFTER_PATTERN, description="Seconds, e.g. `300` or `300s`."),
    ] = None,
) -> JSONResponse:
    """Start a run. Waits for its end (up to the server maximum, or `Prefer: wait=N`) and answers
    200 with the finished run, else 202 with the run so far and `Location`.
    `Prefer: respond-async` answers 202 at once. The same `Idempotency-Key` with the same body
    returns the same run; with another body it is a 422. `Cancel-After: <seconds>` (or
    `timeoutSeconds` in the body) fails the run when it runs longer."""
    # The run's trace: the request's (an incoming `traceparent` is continued), or a new one.
    with tracing.ensure_trace():
        raw = await read_json(request, runtime.settings)
        body, timeout_seconds = _parse_request(raw, cancel_after, runtime.settings)
        workflow = await _workflow(runtime, tenant_id, workflow_id, body.version)
        defn = runtime.definitions.of(workflow)
        await _check_inputs(runtime, defn.input_schema, body.inputs)
        if body.webhook is not None:
            await check_webhook_target(str(body.webhook), runtime.settings.egress_policy())

        now = datetime.now(UTC)
        run_id, fresh = await _run_id(runtime, tenant_id, workflow_id, raw, idempotency_key, now)
        # A new run (or the repeat of one refused before it was stored) must fit the tenant's
        # runs per minute and concurrent runs; a refusal (429) stores nothing.
        admission = None
        if fresh or await runtime.runs.get(run_id) is None:
            admission = await admit_run(runtime, request, tenant_id, run_id)
        state = new_run_state(run_id, defn, body.inputs, timeout_seconds=timeout_seconds)
        record = RunRecord(
            run_id=run_id,
            tenant_id=tenant_id,
            workflow_id=workflow_id,
            workflow_version=workflow.version,
            status=state.status.value,
            revision=state.revision,
            created_at=now,
            state_json=state.model_dump_json(),
            metadata_json=json.dumps(body.metadata),
            traceparent=tracing.current_traceparent(),
            webhook_json=json.dumps({"url": str(body.webhook), "events": body.webhook_events})
            if body.webhook
            else None,
            # Should run.requested never arrive, the sweeper starts the run after this.
            due_at=now + timedelta(seconds=runtime.settings.watchdog_seconds),
        )
        logs.bind(runId=run_id, traceId=tracing.current_trace_id())
        prefer = parse_prefer(request.headers.getlist("prefer"))
        return await _store_and_start(runtime, record, admission, prefer)


def _parse_request(
    raw: Any, cancel_after: str | None, limits: Limits
) -> tuple[RunRequest, float | None]:
    """The run request and its timeout, or a 413/422 naming what is wrong."""
    body = parse(RunRequest, raw)
    too_large = _size_problems(body, limits)
    if too_large:
        raise ProblemError(
            413,
            "; ".join(f"{p.path}: {p.message}" for p in too_large),
            kind="too-large",
            errors=too_large,
        )
    return body, _timeout(body, cancel_after, limits)


async def _workflow(
    runtime: Runtime, tenant_id: str, workflow_id: str, version: int | None
) -> WorkflowRecord:
    workflow = (
        await runtime.cached_workflows.get(tenant_id, workflow_id, version)
        if version is not None
        else await runtime.cached_workflows.latest(tenant_id, workflow_id)
    )
    if workflow is None:
        which = f" version {version}" if version is not None else ""
        raise ProblemError(404, f"no workflow {workflow_id!r}{which}", kind="not-found")
    return workflow


async def _check_inputs(runtime: Runtime, schema: Mapping[str, Any], inputs: Any) -> None:
    # Evaluating a tenant's schema is CPU work (bounded: RE2 patterns, hashed uniqueItems,
    # vetted $refs): off the event loop, so other requests are answered meanwhile.
    problems = await run_in_threadpool(validate_inputs, schema, inputs, runtime.settings)
    if problems:
        raise ProblemError(
            422,
            "the inputs do not match the workflow's input schema",
            kind="invalid-inputs",
            errors=[ProblemItem(path=p.path, message=p.message) for p in problems],
        )


async def _run_id(
    runtime: Runtime,
    tenant_id: str,
    workflow_id: str,
    raw: Any,
    idempotency_key: str | None,
    now: datetime,
) -> tuple[str, bool]:
    """A fresh run id, or the one an earlier request with the same `Idempotency-Key` and body
    claimed (422 for the same key with another body); and whether it is fresh."""
    run_id = time_ordered_id("run")
    if idempotency_key is None:
        return run_id, True
    body_hash = _body_hash(workflow_id, raw)
    claimed = await runtime.idempotency.claim(
        IdempotencyRecord(
            tenant_id=tenant_id,
            key=idempotency_key,
            body_hash=body_hash,
            run_id=run_id,
            expires_at=now + timedelta(seconds=runtime.settings.idempotency_ttl_seconds),
        ),
        now=now,
    )
    if claimed.body_hash != body_hash:
        raise ProblemError(
            422,
            f"Idempotency-Key {idempotency_key!r} was used with a different request body "
            f"(run {claimed.run_id}); use a new key for a new request",
            kind="idempotency-conflict",
        )
    return claimed.run_id, claimed.run_id == run_id


async def _store_and_start(
    runtime: Runtime, record: RunRecord, admission: Admission | None, prefer: Preference
) -> JSONResponse:
    """Store the run, publish run.requested and answer as `prefer` asks."""
    run_id = record.run_id
    requested = RunRequested(
        run_id=run_id,
        tenant_id=record.tenant_id,
        workflow_id=record.workflow_id,
        workflow_version=record.workflow_version,
        requested_at=record.created_at,
    )
    with runtime.hub.listen(run_id, only_end=True) as events:
        try:
            await runtime.runs.create(record)
        except DuplicateKeyError:
            log.info("run %s: repeated idempotent request joins the existing run", run_id)
            existing = await runtime.runs.get(run_id)
            if existing is None or existing.status != RunStatus.QUEUED.value:
                return await _answer(runtime, run_id, prefer, events)
        except Exception:
            if admission is not None:
                await admission.release(runtime)
            raise
        try:
            # Bounded: with Kafka unreachable the request is answered 202 (the run is stored
            # and due, so the sweeper publishes it) instead of held until the client gives up.
            async with asyncio.timeout(runtime.settings.publish_timeout_seconds):
                await runtime.publisher.publish(requested, event_id=f"{run_id}:requested")
        except Exception:
            # Stored with its due time: the sweeper starts it. Answer with what we have.
            log.exception(
                "run %s: publishing run.requested failed; the sweeper will start it", run_id
            )
            return await _current(runtime, run_id, applied=None, force_pending=True)
        return await _answer(runtime, run_id, prefer, events, just_published=True)


async def _answer(
    runtime: Runtime,
    run_id: str,
    prefer: Preference,
    events: Any,
    *,
    just_published: bool = False,
) -> JSONResponse:
    if prefer.respond_async:
        return await _current(runtime, run_id, applied="respond-async")
    limit = runtime.settings.max_wait_seconds
    timeout = min(prefer.wait, limit) if prefer.wait is not None else limit
    applied = f"wait={timeout:g}" if prefer.wait else None
    # A run we just published cannot have ended unseen: listening began before the publish.
    current = None if just_published else await runtime.runs.get(run_id)
    if current is None or not is_terminal(DomainStatus(current.status)):
        end = await wait_for_end(events, timeout)
        if end is not None and isinstance(end.data, RunEventData):
            # The terminal event is the run resource the orchestrator stored before
            # publishing it: no need to read it back.
            resource = from_event_data(end.data, runtime.presign)
            return _run_response(resource, finished=True, applied=applied)
    return await _current(runtime, run_id, applied=applied)


async def _current(
    runtime: Runtime, run_id: str, *, applied: str | None, force_pending: bool = False
) -> JSONResponse:
    stored = await runtime.runs.get(run_id)
    if stored is None:  # pragma: no cover - we stored it ourselves moments ago
        raise ProblemError(500, f"run {run_id} vanished", kind="internal")
    finished = is_terminal(DomainStatus(stored.status)) and not force_pending
    return _run_response(await runtime.render(stored), finished=finished, applied=applied)


@router.get("/v1/runs/{run_id}", response_model=RunResource, response_model_by_alias=True)
async def get_run(run_id: RunIdPath, tenant_id: TenantId, runtime: RuntimeDep) -> RunResource:
    record = await runtime.runs.get_for_tenant(run_id, tenant_id)
    if record is None:
        raise ProblemError(404, f"no run {run_id!r}", kind="not-found")
    return await runtime.render(record)


@router.post(
    "/v1/runs/{run_id}/cancel",
    response_model=RunResource,
    responses={
        202: {"model": RunResource, "description": "Cancel requested; not yet confirmed"},
        409: {"description": "The run already completed or failed"},
    },
)
async def cancel_run(run_id: RunIdPath, tenant_id: TenantId, runtime: RuntimeDep) -> JSONResponse:
    """Cancel a queued or running run: running steps are told to stop and pending ones never
    start. Cancelling a canceled run returns it again; a completed or failed run is a 409."""
    record = await runtime.runs.get_for_tenant(run_id, tenant_id)
    if record is None:
        raise ProblemError(404, f"no run {run_id!r}", kind="not-found")
    status = RunStatus(record.status)
    if status in (RunStatus.COMPLETED, RunStatus.FAILED):
        raise ProblemError(
            409,
            f"run {run_id} already {status.value}; there is nothing to cancel",
            kind="run-finished",
        )
    if status is RunStatus.CANCELED:
        return await _current(runtime, run_id, applied=None)
    with runtime.hub.listen(run_id, only_end=True) as events:
        # Bounded like a run's start: with Kafka unreachable the TimeoutError is a 503 with
        # Retry-After (nothing was requested, so the caller retries), never a held request.
        async with asyncio.timeout(runtime.settings.publish_timeout_seconds):
            await runtime.publisher.publish(
                RunCancelRequested(
                    run_id=run_id, tenant_id=tenant_id, requested_at=datetime.now(UTC)
                )
            )
        await wait_for_end(events, CANCEL_WAIT_SECONDS)
    return await _current(runtime, run_id, applied=None)


@router.get("/v1/runs", response_model=RunList, response_model_by_alias=True)
async def list_runs(
    tenant_id: TenantId,
    runtime: RuntimeDep,
    workflow_id: Annotated[
        str | None, Query(alias="workflowId", pattern=WORKFLOW_ID_PATTERN)
    ] = None,
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
