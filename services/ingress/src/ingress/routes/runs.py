"""Starting runs (and rerunning them), waiting for them, reading them and cancelling them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from bus import logs, tracing
from contracts.api import ProblemItem, RerunRequest, RunList, RunRequest
from contracts.events import RunCancelRequested, RunEventData, RunRequested
from contracts.run import RerunOf, RunDetail, RunResource, RunStatus
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema
from pymongo.errors import DuplicateKeyError
from runview import from_event_data
from starlette.concurrency import run_in_threadpool
from storage.idempotency import IdempotencyRecord
from storage.ids import time_ordered_id
from storage.runs import EPOCH, RunRecord
from storage.workflows import WorkflowRecord
from workflow.limits import Limits, exceeded
from workflow.rerun import NotReusable, UnknownNode, reused_steps
from workflow.run import ReusedStep, RunState, new_run_state
from workflow.state import RunStatus as DomainStatus
from workflow.state import is_terminal
from workflow.validation import json_size, validate_inputs

from ingress.auth import TenantId
from ingress.body import loads_limited, parse, read_json, read_limited
from ingress.hub import wait_for_end
from ingress.prefer import Preference, parse_prefer
from ingress.problems import ProblemError
from ingress.quotas import Admission, admit_run
from ingress.routes.webhooks import check_webhook_target
from ingress.routes.workflows import WorkflowIdPath
from ingress.runtime import Runtime, RuntimeDep
from ingress.workflow_openapi import CANCEL_AFTER_PATTERN

log = logging.getLogger("ingress.runs")
router = APIRouter(tags=["runs"])

RunIdPath = Annotated[str, Path(pattern=r"^run_[0-9a-f]{28}$")]
CANCEL_WAIT_SECONDS = 5.0
# As in the documented contract: what does not match is a 422 before any work (a NUL byte in a
# workflow id would otherwise reach the store, which cannot take it: a 500).
WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
IdempotencyKey = Annotated[str | None, Header(max_length=255)]
CancelAfter = Annotated[
    str | None,
    Header(pattern=CANCEL_AFTER_PATTERN, description="Seconds, e.g. `300` or `300s`."),
]
RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<hms>\d{2}:\d{2}):(?P<s>\d{2})(?P<frac>\.\d+)?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})$"
)
DateTimeText = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""Checked by `_timestamp` (a 422 problem naming the parameter), documented as a date-time."""
PARSE_OFF_LOOP_BYTES = 64 * 1024
"""A JSON body larger than this is parsed in a worker thread (as `body.read_json` does)."""


def _run_response(resource: RunResource, *, finished: bool, applied: str | None) -> JSONResponse:
    headers = {} if finished else {"Location": f"/v1/runs/{resource.run_id}"}
    if applied:
        headers["Preference-Applied"] = applied
    return JSONResponse(
        resource.model_dump(mode="json", by_alias=True),
        status_code=200 if finished else 202,
        headers=headers,
    )


def _body_hash(scope: str, raw: Any) -> str:
    canonical = json.dumps([scope, raw], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _timeout(
    timeout_seconds: float | None, cancel_after: str | None, limits: Limits
) -> float | None:
    """The run's timeout (the body's `timeoutSeconds`, or `Cancel-After`): finite, positive
    and at most MAX_RUN_TIMEOUT_SECONDS (422 else)."""
    maximum = limits.max_run_timeout_seconds
    if cancel_after is None:
        if timeout_seconds is not None and not timeout_seconds <= maximum:
            raise ProblemError(
                422,
                f"timeoutSeconds is over {exceeded('max_run_timeout_seconds', maximum)}",
                kind="invalid-request",
                errors=[ProblemItem(path="/timeoutSeconds", message="too large")],
            )
        return timeout_seconds
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


def _check_sizes(inputs: Any, metadata: Any, limits: Limits) -> None:
    """`inputs` and `metadata` over their limits are a 413: each must fit, with the rest of
    the run, one Kafka message and one stored document."""
    problems = []
    for name, value, limit in (
        ("inputs", inputs, "max_inputs_bytes"),
        ("metadata", metadata, "max_metadata_bytes"),
    ):
        if value is None:  # a rerun's: the original's, which fit
            continue
        size, maximum = json_size(value), getattr(limits, limit)
        if size > maximum:
            problems.append(
                ProblemItem(
                    path=f"/{name}",
                    message=f"{size} bytes as compact JSON is over {exceeded(limit, maximum)}",
                )
            )
    if problems:
        raise ProblemError(
            413,
            "; ".join(f"{p.path}: {p.message}" for p in problems),
            kind="too-large",
            errors=problems,
        )


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
    idempotency_key: IdempotencyKey = None,
    cancel_after: CancelAfter = None,
) -> JSONResponse:
    """Start a run. Waits for its end (up to the server maximum, or `Prefer: wait=N`) and answers
    200 with the finished run, else 202 with the run so far and `Location`.
    `Prefer: respond-async` answers 202 at once. The same `Idempotency-Key` with the same body
    returns the same run; with another body it is a 422. `Cancel-After: <seconds>` (or
    `timeoutSeconds` in the body) fails the run when it runs longer."""
    # The run's trace: the request's (an incoming `traceparent` is continued), or a new one.
    with tracing.ensure_trace():
        raw = await read_json(request, runtime.settings)
        body = parse(RunRequest, raw)
        _check_sizes(body.inputs, body.metadata, runtime.settings)
        timeout_seconds = _timeout(body.timeout_seconds, cancel_after, runtime.settings)
        workflow = await _workflow(runtime, tenant_id, workflow_id, body.version)
        start = RunStart(
            workflow=workflow,
            inputs=body.inputs,
            metadata=body.metadata,
            webhook=str(body.webhook) if body.webhook is not None else None,
            webhook_events=body.webhook_events,
            timeout_seconds=timeout_seconds,
            scope=workflow_id,
            raw=raw,
        )
        return await create_run(runtime, request, tenant_id, start, idempotency_key)


@dataclass(frozen=True)
class RunStart:
    """A run to create, its request parsed: what `create_run` checks, stores and starts."""

    workflow: WorkflowRecord
    inputs: dict[str, Any]
    metadata: dict[str, Any]
    webhook: str | None
    webhook_events: Sequence[str] | None
    timeout_seconds: float | None
    scope: str
    """What an `Idempotency-Key` is bound to with the body: the workflow id for a run, the
    original's id for a rerun (so the same body to another endpoint is another request)."""
    raw: Any
    """The request body as sent."""
    rerun_of: RerunOf | None = None
    reused: Mapping[str, ReusedStep] = field(default_factory=dict)
    assets_json: str = "{}"
    """The assets the reused steps' outputs reference, described as in the original."""


async def create_run(
    runtime: Runtime,
    request: Request,
    tenant_id: str,
    start: RunStart,
    idempotency_key: str | None,
) -> JSONResponse:
    """Starting a run is this, whether it is a workflow's run or a rerun: check the inputs
    against the version's input schema (422) and the webhook's target, claim a run id (the
    same for the same `Idempotency-Key` and body), admit the run under the tenant's limits
    (429), store it queued, publish run.requested and answer as `Prefer` asks (200 when it
    ended in time, 202 + Location otherwise)."""
    defn = runtime.definitions.of(start.workflow)
    await _check_inputs(runtime, defn.input_schema, start.inputs)
    if start.webhook is not None:
        await check_webhook_target(start.webhook, runtime.settings.egress_policy())

    now = datetime.now(UTC)
    run_id, fresh = await _run_id(runtime, tenant_id, start.scope, start.raw, idempotency_key, now)
    # A new run (or the repeat of one refused before it was stored) must fit the tenant's
    # runs per minute and concurrent runs; a refusal (429) stores nothing.
    admission = None
    if fresh or await runtime.runs.get(run_id) is None:
        admission = await admit_run(runtime, request, tenant_id, run_id)
    state = new_run_state(
        run_id,
        defn,
        start.inputs,
        timeout_seconds=start.timeout_seconds,
        reused=start.reused,
    )
    events = list(start.webhook_events) if start.webhook_events is not None else None
    webhook = {"url": start.webhook, "events": events} if start.webhook else None
    record = RunRecord(
        run_id=run_id,
        tenant_id=tenant_id,
        workflow_id=start.workflow.workflow_id,
        workflow_version=start.workflow.version,
        status=state.status.value,
        revision=state.revision,
        created_at=now,
        state_json=state.model_dump_json(),
        metadata_json=json.dumps(start.metadata),
        assets_json=start.assets_json,
        traceparent=tracing.current_traceparent(),
        webhook_json=json.dumps(webhook) if webhook else None,
        # Should run.requested never arrive, the sweeper starts the run after this.
        due_at=now + timedelta(seconds=runtime.settings.watchdog_seconds),
        rerun_of=start.rerun_of,
    )
    logs.bind(runId=run_id, traceId=tracing.current_trace_id())
    prefer = parse_prefer(request.headers.getlist("prefer"))
    return await _store_and_start(runtime, record, admission, prefer)


@router.post(
    "/v1/runs/{run_id}/rerun",
    response_model=RunResource,
    responses={
        202: {"model": RunResource, "description": "Still running; see Location"},
        409: {"description": "A step the rerun would reuse did not succeed in the run"},
    },
)
async def rerun(
    run_id: RunIdPath,
    request: Request,
    tenant_id: TenantId,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
    cancel_after: CancelAfter = None,
) -> JSONResponse:
    """Run the same workflow version again as a new run, with the run's inputs or new ones;
    its metadata, webhook and timeout unless the body gives its own. With `fromNode`, only
    that node and what depends on it run again: every other step reuses its stored outputs
    (409 if one of them did not succeed). Answers like `POST /v1/workflows/{id}/run`."""
    with tracing.ensure_trace():
        raw = await _optional_json(request, runtime.settings)
        body = parse(RerunRequest, raw)
        _check_sizes(body.inputs, body.metadata, runtime.settings)
        timeout_seconds = _timeout(body.timeout_seconds, cancel_after, runtime.settings)
        original = await runtime.runs.get_for_tenant(run_id, tenant_id)
        if original is None:
            raise ProblemError(404, f"no run {run_id!r}", kind="not-found")
        workflow = await _workflow(
            runtime, tenant_id, original.workflow_id, original.workflow_version
        )
        state = RunState.model_validate_json(original.state_json)
        reused = _reused(runtime, workflow, state, body.from_node)
        given = body.model_fields_set
        webhook, events = _rerun_webhook(original, body, given)
        start = RunStart(
            workflow=workflow,
            inputs=body.inputs if body.inputs is not None else state.inputs,
            metadata=body.metadata
            if body.metadata is not None
            else json.loads(original.metadata_json),
            webhook=webhook,
            webhook_events=events,
            timeout_seconds=timeout_seconds
            if timeout_seconds is not None
            else state.timeout_seconds,
            scope=f"rerun/{run_id}",
            raw=raw,
            rerun_of=RerunOf(run_id=run_id, from_node=body.from_node),
            reused=reused,
            assets_json=_carried_assets(original, reused),
        )
        return await create_run(runtime, request, tenant_id, start, idempotency_key)


async def _optional_json(request: Request, limits: Limits) -> Any:
    """The body as JSON like `read_json` (400/413), or `{}` when there is none."""
    raw = await read_limited(request, limits.max_body_bytes)
    if not raw.strip():
        return {}
    if len(raw) > PARSE_OFF_LOOP_BYTES:
        return await run_in_threadpool(loads_limited, raw, limits)
    return loads_limited(raw, limits)


def _reused(
    runtime: Runtime, workflow: WorkflowRecord, original: RunState, from_node: str | None
) -> dict[str, ReusedStep]:
    if from_node is None:
        return {}
    defn = runtime.definitions.of(workflow)
    try:
        return reused_steps(defn, original, from_node)
    except UnknownNode as exc:
        raise ProblemError(
            422,
            f"{from_node!r} is not a node of workflow {workflow.workflow_id!r} version "
            f"{workflow.version} (a node of a map's template is not either)",
            kind="invalid-request",
            errors=[ProblemItem(path="/fromNode", message=f"unknown node {from_node!r}")],
        ) from exc
    except NotReusable as exc:
        named = ", ".join(exc.node_ids)
        raise ProblemError(
            409,
            f"a rerun from {from_node!r} reuses step(s) {named}, which did not succeed in run "
            f"{original.run_id}; rerun from an earlier node (or from the start)",
            kind="steps-not-reusable",
            errors=[
                ProblemItem(path=f"/steps/{node_id}", message="did not succeed")
                for node_id in exc.node_ids
            ],
        ) from exc


def _rerun_webhook(
    original: RunRecord, body: RerunRequest, given: set[str]
) -> tuple[str | None, Sequence[str] | None]:
    """The body's webhook when it names one (`null`: none), else the original's, with the
    body's `webhookEvents` when given."""
    if "webhook" in given:
        return (str(body.webhook) if body.webhook is not None else None), body.webhook_events
    hook = json.loads(original.webhook_json) if original.webhook_json else None
    if hook is None:
        return None, None
    events = body.webhook_events if "webhook_events" in given else hook.get("events")
    return hook["url"], events


def _carried_assets(original: RunRecord, reused: Mapping[str, ReusedStep]) -> str:
    """The original's descriptions (size, type, dimensions) of the assets that the reused
    outputs reference, so the rerun renders them (with URLs) as its own."""
    if not reused:
        return "{}"
    assets: dict[str, Any] = json.loads(original.assets_json)
    refs = {ref for step in reused.values() for ref in _strings(step.outputs)}
    return json.dumps({ref: assets[ref] for ref in sorted(refs) if ref in assets})


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


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
    scope: str,
    raw: Any,
    idempotency_key: str | None,
    now: datetime,
) -> tuple[str, bool]:
    """A fresh run id, or the one an earlier request with the same `Idempotency-Key` and body
    claimed (422 for the same key with another body); and whether it is fresh."""
    # Minted from the creation time, never later: listing by creation time bounds ids by it
    # (storage.runs.list_filter).
    run_id = time_ordered_id("run", (now - EPOCH) // timedelta(milliseconds=1))
    if idempotency_key is None:
        return run_id, True
    body_hash = _body_hash(scope, raw)
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
        # A run just started answers 202 whatever it did meanwhile: a fast run may end before
        # this answer is written, and the client asked not to wait (its body shows the run
        # as it is). A repeated request (same Idempotency-Key) answers the run's own state.
        return await _current(
            runtime, run_id, applied="respond-async", force_pending=just_published
        )
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


@router.get("/v1/runs/{run_id}", response_model=RunDetail, response_model_by_alias=True)
async def get_run(
    run_id: RunIdPath,
    tenant_id: TenantId,
    runtime: RuntimeDep,
    detail: Annotated[
        Literal["full"] | None,
        Query(
            description="`full`: each step also carries `params` (as dispatched), `outputs` "
            "(rendered, with URLs) and, for a `map` step of at most 500 items, `items`."
        ),
    ] = None,
) -> JSONResponse:
    """The run: status, outputs with fresh URLs, error, steps with timings. With
    `detail=full`, also what each step was given and gave (never in events or webhooks)."""
    record = await runtime.runs.get_for_tenant(run_id, tenant_id)
    if record is None:
        raise ProblemError(404, f"no run {run_id!r}", kind="not-found")
    resource: RunResource
    if detail == "full":

        async def load(source_id: str) -> RunRecord | None:
            return await runtime.runs.get_for_tenant(source_id, tenant_id)

        resource = await runtime.renderer.render_detail(record, runtime.settings, load)
    else:
        resource = await runtime.render(record)
    # Answered as rendered: the document's model (RunDetail) would add the detail's fields,
    # as nulls, to the plain resource.
    return JSONResponse(resource.model_dump(mode="json", by_alias=True))


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
    created_after: Annotated[
        DateTimeText | None,
        Query(alias="createdAfter", description="RFC 3339: runs created at or after it."),
    ] = None,
    created_before: Annotated[
        DateTimeText | None,
        Query(alias="createdBefore", description="RFC 3339: runs created before it."),
    ] = None,
    cursor: Annotated[str | None, Query(pattern=r"^run_[0-9a-f]{28}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> RunList:
    """Your runs, newest first. Pass `nextCursor` back as `cursor` for the next page (with
    the same filters). `createdAfter` <= `createdAt` < `createdBefore`, to the millisecond."""
    records = await runtime.runs.list(
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        status=status.value if status else None,
        before=cursor,
        created_after=_timestamp(created_after, "createdAfter"),
        created_before=_timestamp(created_before, "createdBefore"),
        limit=limit + 1,
    )
    page = records[:limit]
    next_cursor = page[-1].run_id if len(records) > limit else None
    items = [await runtime.render(r) for r in page]
    return RunList(items=items, next_cursor=next_cursor)


def _timestamp(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 timestamp (offset required; `T`/`Z` in either case; a leap second is the
    second after), in UTC; a 422 naming the parameter otherwise."""
    if value is None:
        return None
    match = RFC3339.match(value)
    try:
        if match is None:
            raise ValueError("not an RFC 3339 date-time with an offset")
        leap = match["s"] == "60"
        text = f"{match['date']}T{match['hms']}:{'59' if leap else match['s']}"
        parsed = datetime.fromisoformat(
            text + (match["frac"] or "") + match["offset"].upper().replace("Z", "+00:00")
        )
    except ValueError as exc:
        raise ProblemError(
            422,
            f"{name} must be an RFC 3339 date-time such as 2026-01-31T09:30:00Z: {exc}",
            kind="invalid-request",
            errors=[ProblemItem(path=f"/{name}", message=str(exc))],
        ) from exc
    try:
        return parsed.astimezone(UTC) + (timedelta(seconds=1) if leap else timedelta())
    except OverflowError:
        # Before year 1 or after 9999 in UTC: earlier or later than any run.
        return (
            datetime.min.replace(tzinfo=UTC)
            if parsed.year < 5000
            else datetime.max.replace(tzinfo=UTC)
        )
