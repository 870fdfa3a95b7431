"""Server-Sent Events: a run's progress as it happens, until it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent
from storage.runs import RunRecord
from workflow.state import RunStatus, is_terminal

from ingress.auth import TenantId
from ingress.hub import is_terminal_event
from ingress.problems import ProblemError
from ingress.routes.runs import RunIdPath
from ingress.runtime import Runtime, RuntimeDep

router = APIRouter(tags=["runs"])

PREFIX = "com.sprello.workflow."


async def _snapshot(runtime: Runtime, run_id: str) -> tuple[ServerSentEvent, RunRecord]:
    record = await runtime.runs.get(run_id)
    assert record is not None
    resource = await runtime.render(record)
    event = ServerSentEvent(
        data=resource.model_dump_json(by_alias=True), event="run", id=f"{run_id}:{record.revision}"
    )
    return event, record


@router.get(
    "/v1/runs/{run_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def run_events(run_id: RunIdPath, tenant_id: TenantId, runtime: RuntimeDep) -> Any:
    """`event: run` carries the run resource (first, and last when the run ends); step and run
    events (`step.started`, `step.succeeded`, `step.failed`, `step.progress`, `run.started`, …)
    carry the event's data. The stream closes after the run ends; comments keep it alive."""
    if await runtime.runs.get_for_tenant(run_id, tenant_id) is None:
        raise ProblemError(404, f"no run {run_id!r}", kind="not-found")

    async def stream() -> AsyncIterator[ServerSentEvent]:
        with runtime.hub.listen(run_id) as queue:
            first, record = await _snapshot(runtime, run_id)
            yield first
            if is_terminal(RunStatus(record.status)):
                return
            while True:
                try:
                    envelope = await asyncio.wait_for(queue.get(), timeout=60)
                except TimeoutError:
                    # Events may have been missed (a restart, a full queue): the store decides.
                    latest, record = await _snapshot(runtime, run_id)
                    if is_terminal(RunStatus(record.status)):
                        yield latest
                        return
                    continue
                yield ServerSentEvent(
                    data=envelope.data.model_dump_json(by_alias=True),
                    event=envelope.type.removeprefix(PREFIX).rsplit(".v", 1)[0],
                    id=envelope.id,
                )
                if is_terminal_event(envelope):
                    last, _ = await _snapshot(runtime, run_id)
                    yield last
                    return

    return EventSourceResponse(stream(), ping=int(runtime.settings.sse_keepalive_seconds))
