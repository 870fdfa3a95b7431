from typing import Any

import pytest
from pydantic import ValidationError
from workflow.catalog import NodeKind, get_node_type
from workflow.definition import WorkflowDefinition
from workflow.validation import (
    Problem,
    chain_references,
    find_chain_cycles,
    parse_definition,
)


def problems_of(*nodes: dict[str, Any], outputs: dict[str, str] | None = None) -> dict[str, str]:
    raw = {"name": "t", "nodes": list(nodes), "outputs": outputs or {"o": "{{ inputs.x }}"}}
    defn, problems = parse_definition(raw)
    assert defn is not None, problems
    return {problem.path: problem.message for problem in problems}


def definition(*nodes: dict[str, Any]) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {"name": "t", "nodes": list(nodes), "outputs": {"o": "{{ inputs.x }}"}}
    )


def chained(node_id: str, workflow_id: str, version: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"workflowId": workflow_id}
    if version is not None:
        params["version"] = version
    return {"id": node_id, "type": "workflow.run", "params": params}


# --- catalog -----------------------------------------------------------------------------------


def test_control_nodes_are_in_the_catalog_with_their_outputs() -> None:
    wait, run, fan_out = (get_node_type(n) for n in ("wait", "workflow.run", "map"))

    assert wait is not None
    assert run is not None
    assert fan_out is not None
    assert {wait.kind, run.kind, fan_out.kind} == {NodeKind.CONTROL}
    assert list(wait.outputs) == ["waited"]
    assert run.dynamic_outputs
    assert list(fan_out.outputs) == ["results", "outputs"]


@pytest.mark.parametrize("seconds", [-1, 7 * 24 * 3600 + 1])
def test_a_wait_is_between_zero_and_seven_days(seconds: float) -> None:
    wait = get_node_type("wait")
    assert wait is not None

    with pytest.raises(ValidationError):
        wait.params_model.model_validate({"seconds": seconds})


def test_map_params_take_camel_case_and_forbid_extras() -> None:
    fan_out = get_node_type("map")
    assert fan_out is not None
    template = {"type": "image.resize", "timeoutSeconds": 5, "params": {}}

    params = fan_out.params_model.model_validate({"items": [], "node": template})

    assert params.model_dump(by_alias=True)["concurrency"] == 4
    with pytest.raises(ValidationError):
        fan_out.params_model.model_validate({"items": [], "node": template, "parallel": 2})
    with pytest.raises(ValidationError):
        fan_out.params_model.model_validate({"items": [], "node": template, "concurrency": 65})


# --- wait --------------------------------------------------------------------------------------


def test_a_wait_node_with_a_valid_or_templated_duration_has_no_problems() -> None:
    assert (
        problems_of(
            {"id": "w1", "type": "wait", "params": {"seconds": 30}},
            {"id": "w2", "type": "wait", "params": {"seconds": "{{ inputs.delay }}"}},
        )
        == {}
    )


def test_a_wait_longer_than_seven_days_is_reported() -> None:
    assert set(problems_of({"id": "w", "type": "wait", "params": {"seconds": 10**7}})) == {
        "/nodes/0/params/seconds"
    }


# --- workflow.run ------------------------------------------------------------------------------


def test_a_templated_workflow_id_is_rejected_with_a_clear_problem() -> None:
    problems = problems_of(
        {
            "id": "child",
            "type": "workflow.run",
            "params": {"workflowId": "{{ inputs.which }}", "inputs": {"p": "{{ inputs.p }}"}},
        }
    )

    assert set(problems) == {"/nodes/0/params/workflowId"}
    assert "literally" in problems["/nodes/0/params/workflowId"]
    assert "{{ inputs.which }}" in problems["/nodes/0/params/workflowId"]


def test_templates_inside_child_inputs_are_checked_like_any_reference() -> None:
    problems = problems_of(
        {
            "id": "child",
            "type": "workflow.run",
            "params": {"workflowId": "brand-kit", "inputs": {"p": "{{ nodes.ghost.text }}"}},
        }
    )

    assert set(problems) == {"/nodes/0/params/inputs/p"}


def test_any_output_of_a_workflow_run_node_may_be_referenced() -> None:
    problems = problems_of(
        chained("child", "brand-kit"),
        {
            "id": "next",
            "type": "text.template",
            "params": {"template": "{{ nodes.child.whatever }}"},
        },
        outputs={"logo": "{{ nodes.child.logo }}"},
    )

    assert problems == {}


# --- map ---------------------------------------------------------------------------------------


def map_node(template: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {
        "id": "formats",
        "type": "map",
        "params": {"items": "{{ inputs.sizes }}", "node": template, **params},
    }


RESIZE = {
    "type": "image.resize",
    "params": {"image": "{{ inputs.image }}", "width": "{{ item.w }}", "height": "{{ item.h }}"},
}


def test_a_map_with_item_references_in_its_template_params_has_no_problems() -> None:
    problems = problems_of(
        map_node(RESIZE, concurrency=2),
        outputs={"images": "{{ nodes.formats.results }}", "all": "{{ nodes.formats.outputs }}"},
    )

    assert problems == {}


def test_item_is_out_of_scope_outside_the_template_params() -> None:
    problems = problems_of(
        map_node({**RESIZE, "type": "{{ item.type }}"}, concurrency="{{ item.n }}"),
        {"id": "other", "type": "text.template", "params": {"template": "{{ item.x }}"}},
    )

    assert {
        "/nodes/0/params/concurrency",
        "/nodes/0/params/node/type",
        "/nodes/1/params/template",
    } <= set(problems)
    assert "only in scope in a map template" in problems["/nodes/1/params/template"]
    assert "only in scope in a map template" in problems["/nodes/0/params/node/type"]


def test_a_map_template_must_be_an_executable_node_type() -> None:
    control = problems_of(map_node({"type": "wait", "params": {"seconds": 1}}))
    unknown = problems_of(map_node({"type": "image.blur"}))

    assert "executable" in control["/nodes/0/params/node/type"]
    assert "'image.blur'" in unknown["/nodes/0/params/node/type"]


def test_a_map_templates_params_are_checked_against_its_type() -> None:
    problems = problems_of(
        map_node(
            {
                "type": "image.resize",
                "params": {"image": "{{ item.ref }}", "width": 0, "fit": "squash"},
            }
        )
    )

    assert set(problems) == {
        "/nodes/0/params/node/params/width",
        "/nodes/0/params/node/params/height",
        "/nodes/0/params/node/params/fit",
    }
    assert problems["/nodes/0/params/node/params/height"] == "required"


def test_a_map_node_is_not_retried_as_a_whole() -> None:
    problems = problems_of({**map_node(RESIZE), "retry": {"maxAttempts": 3}})

    assert "node.retry" in problems["/nodes/0/retry"]


def test_a_map_output_that_does_not_exist_is_reported() -> None:
    problems = problems_of(map_node(RESIZE), outputs={"o": "{{ nodes.formats.images }}"})

    assert "results, outputs" in problems["/outputs/o"]


# --- chains ------------------------------------------------------------------------------------


def test_chain_references_lists_each_workflow_once_with_map_templates() -> None:
    defn = definition(
        chained("a", "logo", 2),
        chained("b", "logo", 2),
        chained("c", "logo"),
        {"id": "d", "type": "workflow.run", "params": {"workflowId": "{{ inputs.w }}"}},
        map_node({"type": "workflow.run", "params": {"workflowId": "caption"}}),
    )

    assert chain_references(defn) == [("logo", 2), ("logo", None), ("caption", None)]


def test_a_chain_loop_a_b_a_is_reported_with_the_chain() -> None:
    a = definition(chained("call_b", "B"))
    b = definition(chained("call_a", "A"))

    problems = find_chain_cycles("A", a, {("B", None): b})

    assert problems == [
        Problem(path="/nodes/0/params/workflowId", message="workflow chain loops: A → B → A")
    ]


def test_a_longer_loop_not_through_the_root_is_reported_where_the_chain_starts() -> None:
    root = definition({"id": "x", "type": "text.template"}, chained("go", "B"))
    b = definition(chained("to_c", "C"))
    c = definition(chained("to_b", "B"))

    problems = find_chain_cycles("A", root, {("B", None): b, ("C", None): c})

    assert problems == [
        Problem(path="/nodes/1/params/workflowId", message="workflow chain loops: B → C → B")
    ]


def test_a_reference_to_an_older_version_of_the_root_is_not_a_loop() -> None:
    a_new = definition(chained("old", "A", 1))
    a_v1 = definition({"id": "x", "type": "text.template"})

    assert find_chain_cycles("A", a_new, {("A", 1): a_v1}) == []


def test_a_workflow_missing_from_the_lookup_is_unknown() -> None:
    root = definition(chained("go", "B"), chained("gone", "nope", 4))
    b = definition(chained("deeper", "C"))

    problems = find_chain_cycles("A", root, {("B", None): b})

    assert problems == [
        Problem(
            path="/nodes/0/params/workflowId",
            message="unknown workflow 'C', started by A → B",
        ),
        Problem(path="/nodes/1/params/workflowId", message="unknown workflow 'nope' version 4"),
    ]


def test_a_diamond_of_chains_is_no_loop() -> None:
    root = definition(chained("b", "B"), chained("c", "C"))
    b = definition(chained("d", "D"))
    c = definition(chained("d", "D"))
    d = definition({"id": "x", "type": "text.template"})

    lookup = {("B", None): b, ("C", None): c, ("D", None): d}

    assert find_chain_cycles("A", root, lookup) == []
