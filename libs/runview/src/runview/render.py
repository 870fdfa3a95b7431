"""Turning a stored run into the run resource of DESIGN.md §3."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.events import RUN_EVENT_BY_STATUS, AssetInfo, RunEventData
from contracts.run import (
    MapItemView,
    OutputAsset,
    RunDetail,
    RunError,
    RunResource,
    RunStatus,
    StepAttempt,
    StepDetail,
    StepError,
    StepProvider,
    StepStatus,
    StepView,
)
from pydantic import ValidationError
from storage.runs import RunRecord
from workflow.definition import WorkflowDefinition
from workflow.limits import Limits
from workflow.run import MapItemState, RunState, StepState, item_node_id, step_params
from workflow.run import StepError as DomainStepError
from workflow.state import StepStatus as DomainStepStatus

Presign = Callable[[str], str]

MAX_DETAIL_ITEMS = 500
"""A map step's items are listed in a run's full detail up to this many (its counts always)."""


@dataclass(frozen=True)
class RunView:
    record: RunRecord
    state: RunState
    assets: dict[str, AssetInfo]
    metadata: dict[str, Any]


def load_view(record: RunRecord) -> RunView:
    assets = {
        ref: AssetInfo.model_validate(info) for ref, info in json.loads(record.assets_json).items()
    }
    return RunView(
        record=record,
        state=RunState.model_validate_json(record.state_json),
        assets=assets,
        metadata=json.loads(record.metadata_json),
    )


def _output_entry(
    name: str, index: int | None, value: Any, assets: dict[str, AssetInfo], presign: Presign | None
) -> OutputAsset:
    if isinstance(value, str) and value in assets:
        info = assets[value]
        return OutputAsset(
            name=name,
            index=index,
            type="image" if info.content_type.startswith("image/") else "file",
            ref=info.ref,
            url=presign(info.ref) if presign else None,
            content_type=info.content_type,
            bytes=info.bytes,
            width=info.width,
            height=info.height,
        )
    if isinstance(value, str):
        return OutputAsset(name=name, index=index, type="text", value=value)
    return OutputAsset(name=name, index=index, type="json", value=value)


def outputs_of(view: RunView, presign: Presign | None) -> list[OutputAsset]:
    return render_outputs(view.state.outputs or {}, view.assets, presign)


def render_outputs(
    outputs: Mapping[str, Any], assets: dict[str, AssetInfo], presign: Presign | None
) -> list[OutputAsset]:
    """Named values as output entries: an asset (or a list of them) with its description and,
    with `presign`, a URL; anything else as text or JSON."""
    entries: list[OutputAsset] = []
    for name, value in outputs.items():
        is_asset_list = (
            isinstance(value, list)
            and value
            and all(v in assets for v in value if isinstance(v, str))
            and all(isinstance(v, str) for v in value)
        )
        if is_asset_list:
            entries += [_output_entry(name, i, v, assets, presign) for i, v in enumerate(value)]
        else:
            entries.append(_output_entry(name, None, value, assets, presign))
    return entries


def _error(view: RunView) -> RunError | None:
    err = view.state.error
    if err is None:
        return None
    return RunError(code=err.code, message=err.message, node_id=err.node_id)


def _step_error(error: DomainStepError | None, node_id: str) -> StepError | None:
    if error is None:
        return None
    return StepError(
        code=error.code,
        message=error.message,
        node_id=node_id,
        retry_after_seconds=error.retry_after_seconds,
    )


def _provider(outputs: Mapping[str, Any] | None) -> StepProvider | None:
    """An image.generate step's `provider` output; a record that does not fit (older, or
    another node's output of that name) shows none rather than failing the whole view."""
    value = (outputs or {}).get("provider")
    if not isinstance(value, dict):
        return None
    try:
        return StepProvider.model_validate(value)
    except ValidationError:
        return None


def _steps(view: RunView, defn: WorkflowDefinition) -> list[StepView]:
    types = {n.id: n.type for n in defn.nodes}
    views: list[StepView] = []
    for node_id, step in view.state.steps.items():
        items = step.items or []
        views.append(
            StepView(
                node_id=node_id,
                type=types.get(node_id, "unknown"),
                status=StepStatus(step.status.value),
                attempt=step.attempt,
                dispatched_at=step.dispatched_at,
                started_at=step.started_at,
                finished_at=step.finished_at,
                next_attempt_at=step.next_attempt_at,
                error=_step_error(step.error, node_id),
                attempts=[
                    StepAttempt(
                        attempt=a.attempt,
                        error=_step_error(a.error, node_id),
                        started_at=a.started_at,
                        finished_at=a.finished_at,
                    )
                    for a in step.attempts
                ],
                child_run_id=step.child_run_id,
                provider=_provider(step.outputs),
                items_total=step.items_total,
                items_done=sum(1 for i in items if i.status is DomainStepStatus.SUCCEEDED)
                if step.items_total is not None
                else None,
                reused_from=step.reused_from,
            )
        )
    return views


def _step_detail(
    base: StepView,
    step: StepState,
    view: RunView,
    defn: WorkflowDefinition,
    presign: Presign | None,
    limits: Limits,
    sources: Mapping[str, RunState],
) -> StepDetail:
    is_map = base.type == "map"
    params = None
    if step.reused_from is not None:
        # Resolved where it ran: a rerun may have other inputs than the run it reused from.
        source = sources.get(step.reused_from)
        params = step_params(defn, source, step.node_id, limits) if source else None
    elif step.attempt >= 1:  # dispatched at least once
        params = step_params(defn, view.state, step.node_id, limits)
    outputs = None
    if step.status is DomainStepStatus.SUCCEEDED and not is_map:
        outputs = render_outputs(step.outputs or {}, view.assets, presign)
    items = None
    if step.items is not None and len(step.items) <= MAX_DETAIL_ITEMS:
        items = [_item_view(step.node_id, item, view.assets, presign) for item in step.items]
    return StepDetail(**dict(base), params=params, outputs=outputs, items=items)


def _item_view(
    map_id: str, item: MapItemState, assets: dict[str, AssetInfo], presign: Presign | None
) -> MapItemView:
    succeeded = item.status is DomainStepStatus.SUCCEEDED
    return MapItemView(
        index=item.index,
        status=StepStatus(item.status.value),
        attempt=item.attempt,
        error=_step_error(item.error, item_node_id(map_id, item.index)),
        started_at=item.started_at,
        finished_at=item.finished_at,
        outputs=render_outputs(item.outputs or {}, assets, presign) if succeeded else None,
    )


def to_detail(
    view: RunView,
    defn: WorkflowDefinition,
    presign: Presign | None,
    limits: Limits,
    sources: Mapping[str, RunState] | None = None,
) -> RunDetail:
    """The run resource with each step's params, outputs and map items (at most
    `MAX_DETAIL_ITEMS`), for people looking at one run; never sent in events or webhooks.
    `sources` are the runs reused steps name (`reused_from`), by id: their params are resolved
    there; a reused step whose run is not given shows none."""
    resource = to_resource(view, defn, presign)
    steps = [
        _step_detail(
            base, view.state.steps[base.node_id], view, defn, presign, limits, sources or {}
        )
        for base in resource.steps
    ]
    return RunDetail(**{**dict(resource), "steps": steps, "inputs": view.state.inputs})


def to_resource(view: RunView, defn: WorkflowDefinition, presign: Presign | None) -> RunResource:
    r = view.record
    return RunResource(
        run_id=r.run_id,
        workflow_id=r.workflow_id,
        workflow_version=r.workflow_version,
        status=RunStatus(view.state.status.value),
        outputs=outputs_of(view, presign),
        error=_error(view),
        metadata=view.metadata,
        steps=_steps(view, defn),
        parent_run_id=view.state.parent_run_id,
        rerun_of=r.rerun_of,
        created_at=r.created_at,
        started_at=view.state.started_at,
        completed_at=view.state.completed_at,
    )


def to_event_data(view: RunView, defn: WorkflowDefinition) -> RunEventData:
    """The public event for the run's current status: the run resource with s3 refs and no
    URLs (`from_event_data` turns it back into the resource)."""
    r = view.record
    status = RunStatus(view.state.status.value)
    model = RUN_EVENT_BY_STATUS[status]
    return model(
        run_id=r.run_id,
        tenant_id=r.tenant_id,
        workflow_id=r.workflow_id,
        workflow_version=r.workflow_version,
        status=status,
        outputs=outputs_of(view, None),
        error=_error(view),
        metadata=view.metadata,
        steps=_steps(view, defn),
        parent_run_id=view.state.parent_run_id,
        rerun_of=r.rerun_of,
        created_at=r.created_at,
        started_at=view.state.started_at,
        completed_at=view.state.completed_at,
    )


def from_event_data(event: RunEventData, presign: Presign) -> RunResource:
    """The run resource a run event describes, with URLs presigned now: what
    `GET /v1/runs/{runId}` answers for the revision that published the event."""
    return RunResource(
        run_id=event.run_id,
        workflow_id=event.workflow_id,
        workflow_version=event.workflow_version,
        status=event.status,
        outputs=[
            o.model_copy(update={"url": presign(o.ref)}) if o.ref else o for o in event.outputs
        ],
        error=event.error,
        metadata=event.metadata,
        steps=event.steps,
        parent_run_id=event.parent_run_id,
        rerun_of=event.rerun_of,
        created_at=event.created_at,
        started_at=event.started_at,
        completed_at=event.completed_at,
    )
