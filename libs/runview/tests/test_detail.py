"""A run's full detail (`GET /v1/runs/{runId}?detail=full`): each step's params, outputs and
map items, which the run resource, run events and webhooks never carry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from contracts.events import AssetInfo
from contracts.run import RerunOf
from runview import from_event_data, load_view, to_detail, to_event_data, to_resource
from runview.render import MAX_DETAIL_ITEMS
from storage.runs import RunRecord
from workflow.definition import WorkflowDefinition
from workflow.limits import Limits
from workflow.rerun import reused_steps
from workflow.run import RunState, new_run_state, start_run, step_succeeded

NOW = datetime(2026, 3, 1, tzinfo=UTC)
LIMITS = Limits.model_construct()
DEFINITION = WorkflowDefinition.model_validate(
    {
        "name": "draw then shrink",
        "inputSchema": {"type": "object"},
        "nodes": [
            {"id": "draw", "type": "image.generate", "params": {"prompt": "{{ inputs.prompt }}"}},
            {
                "id": "small",
                "type": "image.resize",
                "params": {"image": "{{ nodes.draw.image }}", "width": 64, "height": 64},
            },
            {"id": "say", "type": "text.template", "params": {"template": "{{ inputs.prompt }}!"}},
        ],
        "outputs": {"image": "{{ nodes.small.image }}", "text": "{{ nodes.say.text }}"},
    }
)


def ref(run_id: str, node_id: str) -> str:
    return f"s3://workflow-outputs/runs/{run_id}/{node_id}/1/image.png"


def draw(run_id: str) -> dict[str, Any]:
    return {
        "image": ref(run_id, "draw"),
        "images": [ref(run_id, "draw")],
        "provider": {"name": "offline", "model": "offline", "durationSeconds": 0.1},
    }


def asset(r: str, side: int) -> dict[str, Any]:
    info = AssetInfo(ref=r, content_type="image/png", bytes=100, width=side, height=side)
    return info.model_dump(mode="json", by_alias=True)


def record(
    state: RunState,
    assets: dict[str, Any],
    *,
    rerun_of: RerunOf | None = None,
) -> RunRecord:
    return RunRecord(
        run_id=state.run_id,
        tenant_id="t",
        workflow_id="w",
        workflow_version=1,
        status=state.status.value,
        revision=state.revision,
        created_at=NOW,
        state_json=state.model_dump_json(),
        assets_json=json.dumps(assets),
        rerun_of=rerun_of,
    )


def presign(r: str) -> str:
    return f"https://signed.example/{r.removeprefix('s3://')}"


def finished(run_id: str = "run_a", prompt: str = "a cat") -> RunRecord:
    state = start_run(DEFINITION, new_run_state(run_id, DEFINITION, {"prompt": prompt}), NOW).state
    state = step_succeeded(DEFINITION, state, "draw", 1, draw(run_id), NOW).state
    state = step_succeeded(
        DEFINITION, state, "small", 1, {"image": ref(run_id, "small")}, NOW
    ).state
    state = step_succeeded(DEFINITION, state, "say", 1, {"text": f"{prompt}!"}, NOW).state
    assets = {ref(run_id, "draw"): asset(ref(run_id, "draw"), 512)}
    assets[ref(run_id, "small")] = asset(ref(run_id, "small"), 64)
    return record(state, assets)


def test_every_step_of_a_finished_run_shows_its_params_and_outputs_with_urls() -> None:
    view = load_view(finished())
    detail = to_detail(view, DEFINITION, presign, LIMITS)

    assert detail.inputs == view.state.inputs  # what a rerun starts with unless told others
    steps = {s.node_id: s for s in detail.steps}
    assert steps["draw"].params is not None
    assert steps["draw"].params["prompt"] == "a cat"
    assert steps["draw"].params["width"] == 1024  # defaults filled in, as dispatched
    assert steps["small"].params == {
        "image": ref("run_a", "draw"),
        "width": 64,
        "height": 64,
        "fit": "cover",
        "background": "#000000",
    }
    (image,) = [o for o in steps["small"].outputs or [] if o.name == "image"]
    assert (image.type, image.width, image.height, image.content_type) == (
        "image",
        64,
        64,
        "image/png",
    )
    assert image.url == presign(ref("run_a", "small"))
    draw_outputs = {(o.name, o.index): o for o in steps["draw"].outputs or []}
    assert draw_outputs[("images", 0)].url == presign(ref("run_a", "draw"))
    assert draw_outputs[("provider", None)].type == "json"
    (text,) = steps["say"].outputs or []
    assert (text.name, text.type, text.value) == ("text", "text", "a cat!")


def test_the_run_resource_and_its_events_carry_no_step_params_or_outputs() -> None:
    view = load_view(finished())

    resource = to_resource(view, DEFINITION, presign).model_dump(mode="json", by_alias=True)
    event = to_event_data(view, DEFINITION).model_dump(mode="json", by_alias=True)

    for document in (resource, event):
        for step in document["steps"]:
            assert not {"params", "outputs", "items"} & set(step), step
    detail = to_detail(view, DEFINITION, presign, LIMITS).model_dump(mode="json", by_alias=True)
    assert {"params", "outputs", "items"} <= set(detail["steps"][0])


def test_a_step_not_yet_dispatched_has_no_params_and_no_outputs() -> None:
    state = start_run(DEFINITION, new_run_state("run_a", DEFINITION, {"prompt": "p"}), NOW).state

    steps = {
        s.node_id: s
        for s in to_detail(load_view(record(state, {})), DEFINITION, None, LIMITS).steps
    }

    assert steps["draw"].params is not None  # dispatched, still running
    assert steps["draw"].outputs is None
    assert (steps["small"].params, steps["small"].outputs) == (None, None)


MAP = WorkflowDefinition.model_validate(
    {
        "name": "each",
        "inputSchema": {"type": "object"},
        "nodes": [
            {
                "id": "each",
                "type": "map",
                "params": {
                    "items": "{{ inputs.words }}",
                    "node": {"type": "text.template", "params": {"template": "{{ item }}!"}},
                },
            }
        ],
        "outputs": {"all": "{{ nodes.each.results }}"},
    }
)


def mapped(words: list[str], done: int) -> RunRecord:
    state = start_run(MAP, new_run_state("run_m", MAP, {"words": words}), NOW).state
    for i in range(done):
        state = step_succeeded(MAP, state, f"each[{i}]", 1, {"text": f"{words[i]}!"}, NOW).state
    return record(state, {})


def test_a_map_step_lists_its_items_with_their_outputs_but_not_its_own() -> None:
    detail = to_detail(load_view(mapped(["a", "b", "c", "d", "e"], 1)), MAP, None, LIMITS)

    (each,) = detail.steps
    assert (each.items_total, each.items_done, each.outputs) == (5, 1, None)
    assert each.params is not None
    assert each.params["items"] == ["a", "b", "c", "d", "e"]
    assert each.params["node"]["params"] == {"template": "{{ item }}!"}
    assert each.items is not None
    assert [(i.index, i.status.value) for i in each.items[:2]] == [
        (0, "succeeded"),
        (1, "dispatched"),
    ]
    assert [(o.name, o.value) for o in each.items[0].outputs or []] == [("text", "a!")]
    assert each.items[1].outputs is None


def test_a_map_of_more_items_than_listed_keeps_only_its_counts() -> None:
    words = [f"w{i}" for i in range(MAX_DETAIL_ITEMS + 1)]

    (each,) = to_detail(load_view(mapped(words, 0)), MAP, None, LIMITS).steps

    assert each.items is None
    assert each.items_total == MAX_DETAIL_ITEMS + 1


def rerun_from_small(original: RunRecord, prompt: str) -> RunRecord:
    """A rerun of `original` from `small` with another prompt, `small` not run yet."""
    source = RunState.model_validate_json(original.state_json)
    reused = reused_steps(DEFINITION, source, "small")
    state = new_run_state("run_b", DEFINITION, {"prompt": prompt}, reused=reused)
    state = start_run(DEFINITION, state, NOW).state
    carried = {
        r: info
        for r, info in json.loads(original.assets_json).items()
        if r == ref(original.run_id, "draw")
    }
    return record(state, carried, rerun_of=RerunOf(run_id=original.run_id, from_node="small"))


def test_a_reused_step_names_its_run_and_shows_the_params_it_ran_with_there() -> None:
    original = finished("run_a", prompt="a cat")
    rerun = rerun_from_small(original, prompt="a dog")
    sources = {"run_a": RunState.model_validate_json(original.state_json)}

    detail = to_detail(load_view(rerun), DEFINITION, presign, LIMITS, sources)

    steps = {s.node_id: s for s in detail.steps}
    assert detail.rerun_of == RerunOf(run_id="run_a", from_node="small")
    assert steps["draw"].reused_from == "run_a"
    assert steps["draw"].params is not None
    assert steps["draw"].params["prompt"] == "a cat"  # what it ran with, not the new inputs
    (image,) = [o for o in steps["draw"].outputs or [] if o.name == "image"]
    assert image.url == presign(ref("run_a", "draw"))
    assert image.width == 512
    assert steps["small"].reused_from is None
    assert steps["small"].params is not None
    assert steps["small"].params["image"] == ref("run_a", "draw")
    unknown_source = to_detail(load_view(rerun), DEFINITION, presign, LIMITS)
    assert next(s for s in unknown_source.steps if s.node_id == "draw").params is None


def test_a_reruns_origin_is_in_its_events_and_back() -> None:
    view = load_view(rerun_from_small(finished(), prompt="a dog"))

    event = to_event_data(view, DEFINITION)

    assert event.rerun_of == RerunOf(run_id="run_a", from_node="small")
    assert [s.reused_from for s in event.steps] == ["run_a", None, "run_a"]
    assert from_event_data(event, presign) == to_resource(view, DEFINITION, presign)
    assert to_resource(load_view(finished()), DEFINITION, None).rerun_of is None
