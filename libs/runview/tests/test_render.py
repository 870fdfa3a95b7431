"""A run event carries the run resource: turned back, it is what GET /v1/runs/{id} answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from contracts.events import AssetInfo
from runview import from_event_data, load_view, to_event_data, to_resource
from storage.runs import RunRecord
from workflow.definition import WorkflowDefinition
from workflow.run import new_run_state, start_run, step_succeeded

DEFINITION = WorkflowDefinition.model_validate(
    {
        "name": "render",
        "inputSchema": {"type": "object"},
        "nodes": [
            {"id": "draw", "type": "image.generate", "params": {"prompt": "a cat"}},
            {"id": "say", "type": "text.template", "params": {"template": "hi"}},
        ],
        "outputs": {"image": "{{ nodes.draw.image }}", "text": "{{ nodes.say.text }}"},
    }
)
REF = "s3://workflow-outputs/runs/run_1/draw/1/image.png"


def _finished_record() -> RunRecord:
    now = datetime.now(UTC)
    state = new_run_state("run_1", DEFINITION, {})
    state = start_run(DEFINITION, state, now).state
    state = step_succeeded(DEFINITION, state, "draw", 1, {"image": REF}, now).state
    state = step_succeeded(DEFINITION, state, "say", 1, {"text": "hi"}, now).state
    asset = AssetInfo(ref=REF, content_type="image/png", bytes=10, width=4, height=4)
    return RunRecord(
        run_id="run_1",
        tenant_id="t",
        workflow_id="w",
        workflow_version=1,
        status=state.status.value,
        revision=state.revision,
        created_at=now,
        state_json=state.model_dump_json(),
        metadata_json=json.dumps({"campaign": "fall"}),
        assets_json=json.dumps({REF: asset.model_dump(mode="json", by_alias=True)}),
    )


def _presign(ref: str) -> str:
    return f"https://signed.example/{ref.removeprefix('s3://')}"


def test_a_run_event_turned_back_is_the_run_resource_with_fresh_urls() -> None:
    view = load_view(_finished_record())
    event = to_event_data(view, DEFINITION)
    assert all(o.url is None for o in event.outputs), "events carry refs, never URLs"
    assert [s.node_id for s in event.steps] == ["draw", "say"]
    assert from_event_data(event, _presign) == to_resource(view, DEFINITION, _presign)
