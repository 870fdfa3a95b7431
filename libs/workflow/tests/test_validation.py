from typing import Any

import pytest
from workflow.catalog import get_node_type
from workflow.definition import WorkflowDefinition
from workflow.validation import (
    ParamsError,
    Problem,
    parse_definition,
    pointer,
    validate_definition,
    validate_inputs,
    validate_params,
)


def problems_of(raw: dict[str, Any]) -> list[Problem]:
    defn, problems = parse_definition(raw)
    assert defn is not None, problems
    return problems


def by_path(problems: list[Problem]) -> dict[str, str]:
    return {problem.path: problem.message for problem in problems}


def with_nodes(base: dict[str, Any], *nodes: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, "nodes": [*base["nodes"], *nodes], **changes}


def test_design_example_has_no_problems(studio_portrait: dict[str, Any]) -> None:
    assert problems_of(studio_portrait) == []


def test_every_registration_problem_is_reported_at_once(studio_portrait: dict[str, Any]) -> None:
    raw = {
        **studio_portrait,
        "inputSchema": {"type": "object", "properties": {"prompt": {"type": "strng"}}},
        "nodes": [
            *studio_portrait["nodes"],
            {"id": "warm", "type": "image.adjust", "params": {"image": "{{ nodes.render.image }}"}},
            {"id": "blur", "type": "image.blur", "params": {}},
            {
                "id": "loop1",
                "type": "text.template",
                "params": {"template": "{{ nodes.loop2.text }}"},
            },
            {
                "id": "loop2",
                "type": "text.template",
                "params": {"template": "{{ nodes.loop1.text }}"},
            },
            {
                "id": "bad",
                "type": "image.resize",
                "params": {"image": "{{ nodes.ghost.image", "width": 0},
            },
        ],
        "outputs": {"square": "{{ nodes.square.mask }}", "story": "static text"},
    }

    problems = by_path(problems_of(raw))

    assert set(problems) == {
        "/inputSchema/properties/prompt/type",
        "/nodes/4/id",
        "/nodes/5/type",
        "/nodes/6",
        "/nodes/8/params/image",
        "/nodes/8/params/width",
        "/nodes/8/params/height",
        "/outputs/square",
        "/outputs/story",
    }
    assert "loop1, loop2" in problems["/nodes/6"]
    assert "image.blur" in problems["/nodes/5/type"]


def test_input_schema_must_be_a_valid_json_schema(studio_portrait: dict[str, Any]) -> None:
    raw = {**studio_portrait, "inputSchema": {"type": "object", "required": "prompt"}}

    assert list(by_path(problems_of(raw))) == ["/inputSchema/required"]


def test_input_schema_must_describe_an_object(studio_portrait: dict[str, Any]) -> None:
    raw = {**studio_portrait, "inputSchema": {"type": "string"}}

    assert "type" in by_path(problems_of(raw))["/inputSchema/type"]


def test_input_schema_refs_must_resolve_inside_it(studio_portrait: dict[str, Any]) -> None:
    raw = {
        **studio_portrait,
        "inputSchema": {
            "type": "object",
            "$defs": {"quality": {"$anchor": "q", "enum": ["draft", "high"]}},
            "properties": {
                "good": {"$ref": "#/$defs/quality"},
                "missing": {"$ref": "#/$defs/nope"},
                "remote": {"$ref": "https://example.com/schema.json"},
                "example": {"const": {"$ref": "not a ref, just data"}},
                "anchored": {"$ref": "#q"},
                "unanchored": {"$ref": "#nowhere"},
                "indexed": {"$ref": "#/properties/either/anyOf/0"},
                "embedded": {
                    "$id": "https://example.com/e",
                    "$defs": {"x": {}},
                    "$ref": "#/$defs/x",
                },
                "either": {"anyOf": [{"$ref": "#/$defs/quality"}, {"$ref": "#/$defs/gone"}]},
                "whole": {"$ref": "#"},
            },
        },
    }

    assert set(by_path(problems_of(raw))) == {
        "/inputSchema/properties/missing/$ref",
        "/inputSchema/properties/remote/$ref",
        "/inputSchema/properties/either/anyOf/1/$ref",
        "/inputSchema/properties/unanchored/$ref",
    }


def test_schema_with_local_refs_validates_inputs(studio_portrait: dict[str, Any]) -> None:
    schema = {
        "type": "object",
        "$defs": {"quality": {"$anchor": "q", "enum": ["draft", "high"]}},
        "properties": {"a": {"$ref": "#/$defs/quality"}, "b": {"$ref": "#q"}},
    }

    assert problems_of({**studio_portrait, "inputSchema": schema}) == []
    assert [p.path for p in validate_inputs(schema, {"a": "x", "b": "y"})] == [
        "/inputs/a",
        "/inputs/b",
    ]


def test_duplicate_node_id_points_at_the_second_one(studio_portrait: dict[str, Any]) -> None:
    raw = with_nodes(
        studio_portrait, {"id": "render", "type": "image.generate", "params": {"prompt": "x"}}
    )

    assert by_path(problems_of(raw)) == {
        "/nodes/4/id": "duplicate node id 'render'; /nodes/0 has it too"
    }


def test_unknown_node_type_names_it_and_lists_known_ones(studio_portrait: dict[str, Any]) -> None:
    raw = with_nodes(studio_portrait, {"id": "x", "type": "image.sharpen"})

    message = by_path(problems_of(raw))["/nodes/4/type"]
    assert "'image.sharpen'" in message
    assert "image.generate" in message
    assert "text.template" in message


def test_malformed_template_is_reported_where_it_is(studio_portrait: dict[str, Any]) -> None:
    raw = with_nodes(
        studio_portrait,
        {"id": "t", "type": "text.template", "params": {"template": "Hi {{ inputs.prompt"}},
        {"id": "a", "type": "image.adjust", "params": {"image": "{{ nodes.render.image"}},
    )

    problems = problems_of(raw)

    assert [p.path for p in problems] == ["/nodes/4/params/template", "/nodes/5/params/image"]
    assert all("never closed" in p.message for p in problems)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ nodes.ghost.text }}", "unknown node 'ghost'"),
        ("{{ nodes.render.text }}", "node 'render' (image.generate) has no output 'text'"),
        ("{{ nodes.t.text }}", "refers to itself"),
        ("{{ item.name }}", "item is only in scope in a map template"),
    ],
)
def test_bad_references_in_params_are_reported(
    studio_portrait: dict[str, Any], template: str, expected: str
) -> None:
    raw = with_nodes(
        studio_portrait, {"id": "t", "type": "text.template", "params": {"template": template}}
    )

    problems = problems_of(raw)
    assert [p.path for p in problems] == ["/nodes/4/params/template"]
    assert expected in problems[0].message


def test_references_in_nested_params_point_at_the_nested_value(
    studio_portrait: dict[str, Any],
) -> None:
    raw = with_nodes(
        studio_portrait,
        {
            "id": "t",
            "type": "text.template",
            "params": {"template": {"a": ["x", "{{ nodes.zz.text }}"]}},
        },
    )

    problems = by_path(problems_of(raw))
    assert "unknown node 'zz'" in problems["/nodes/4/params/template/a/1"]


def test_cycle_is_rejected_with_the_nodes_involved(studio_portrait: dict[str, Any]) -> None:
    raw = with_nodes(
        studio_portrait,
        {"id": "a", "type": "image.adjust", "params": {"image": "{{ nodes.b.image }}"}},
        {"id": "b", "type": "image.adjust", "params": {"image": "{{ nodes.a.image }}"}},
    )

    assert by_path(problems_of(raw)) == {"/nodes/4": "nodes a, b form a cycle: a → b → a"}


def test_templated_param_only_counts_as_present(studio_portrait: dict[str, Any]) -> None:
    raw = with_nodes(
        studio_portrait,
        {
            "id": "r",
            "type": "image.resize",
            "params": {
                "image": "{{ inputs.asset }}",
                "width": "{{ inputs.w }}",
                "height": "{{ inputs.h }}px",
            },
        },
    )

    assert problems_of(raw) == []


def test_literal_params_are_checked_with_the_model(studio_portrait: dict[str, Any]) -> None:
    raw = with_nodes(
        studio_portrait,
        {
            "id": "r",
            "type": "image.resize",
            "params": {
                "image": "not-an-asset",
                "width": 9000,
                "fit": "stretch",
                "widht": "{{ inputs.w }}",
            },
        },
    )

    problems = by_path(problems_of(raw))
    assert set(problems) == {
        "/nodes/4/params/image",
        "/nodes/4/params/width",
        "/nodes/4/params/height",
        "/nodes/4/params/fit",
        "/nodes/4/params/widht",
    }
    assert problems["/nodes/4/params/height"] == "required"
    assert problems["/nodes/4/params/widht"].startswith(
        "unknown param 'widht'; allowed: image, width"
    )


def test_outputs_must_not_be_empty(studio_portrait: dict[str, Any]) -> None:
    assert by_path(problems_of({**studio_portrait, "outputs": {}})) == {
        "/outputs": "a workflow needs at least one output"
    }


def test_outputs_must_reference_existing_nodes_and_outputs(
    studio_portrait: dict[str, Any],
) -> None:
    outputs = {
        "a": "no reference",
        "b": "{{ nodes.nope.image }}",
        "c": "{{ nodes.square.text }}",
        "d": "{{ item }}",
        "e": "{{ nodes.square.image",
        "f": "{{ inputs.prompt }}",
        "g/h": "{{ nodes.story.image }}",
    }

    problems = by_path(problems_of({**studio_portrait, "outputs": outputs}))

    assert set(problems) == {"/outputs/a", "/outputs/b", "/outputs/c", "/outputs/d", "/outputs/e"}


def test_parse_definition_turns_model_errors_into_pointers(
    studio_portrait: dict[str, Any],
) -> None:
    raw = {
        **studio_portrait,
        "name": "",
        "color": "red",
        "nodes": [
            {"id": "1st", "type": "image.generate"},
            {
                "id": "ok",
                "type": "image.generate",
                "retry": {"maxAttempts": 50},
                "timeoutSeconds": -1,
            },
        ],
        "outputs": {"x": 3},
    }

    defn, problems = parse_definition(raw)

    assert defn is None
    assert set(by_path(problems)) == {
        "/name",
        "/color",
        "/nodes/0/id",
        "/nodes/1/retry/maxAttempts",
        "/nodes/1/timeoutSeconds",
        "/outputs/x",
    }
    assert by_path(problems)["/color"] == "unknown field 'color'"


def test_parse_definition_reports_missing_fields(studio_portrait: dict[str, Any]) -> None:
    defn, problems = parse_definition({"nodes": studio_portrait["nodes"]})

    assert defn is None
    assert by_path(problems) == {"/name": "required"}


def test_validate_definition_on_a_model(studio_portrait: dict[str, Any]) -> None:
    assert validate_definition(WorkflowDefinition.model_validate(studio_portrait)) == []


SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["prompt", "email"],
    "additionalProperties": False,
    "properties": {
        "prompt": {"type": "string", "maxLength": 5},
        "email": {"type": "string", "format": "email"},
        "options": {"type": "object", "properties": {"quality": {"enum": ["draft", "high"]}}},
        "assets": {"type": "array", "items": {"type": "string"}, "maxItems": 1},
    },
}


def test_valid_inputs_have_no_problems() -> None:
    assert validate_inputs(SCHEMA, {"prompt": "cat", "email": "a@b.co"}) == []


def test_every_input_problem_is_listed_sorted_by_path() -> None:
    inputs = {
        "prompt": "too long",
        "options": {"quality": "ultra"},
        "assets": ["a", 2],
        "extra": 1,
    }

    problems = validate_inputs(SCHEMA, inputs)

    assert [p.path for p in problems] == [
        "/inputs/assets",
        "/inputs/assets/1",
        "/inputs/email",
        "/inputs/extra",
        "/inputs/options/quality",
        "/inputs/prompt",
    ]
    assert by_path(problems)["/inputs/email"] == "required"
    assert by_path(problems)["/inputs/extra"] == "unknown input"
    assert "'draft', 'high'" in by_path(problems)["/inputs/options/quality"]


def test_formats_are_checked() -> None:
    problems = validate_inputs(SCHEMA, {"prompt": "cat", "email": "not an email"})

    assert [p.path for p in problems] == ["/inputs/email"]


def test_inputs_that_are_not_an_object_are_one_problem() -> None:
    assert [p.path for p in validate_inputs(SCHEMA, ["x"])] == ["/inputs"]


def test_additional_properties_with_patterns_keeps_the_schema_message() -> None:
    schema = {"type": "object", "patternProperties": {"^x": {}}, "additionalProperties": False}

    assert [p.path for p in validate_inputs(schema, {"y": 1})] == ["/inputs"]


def test_validate_params_returns_the_model_with_defaults() -> None:
    node_type = get_node_type("image.generate")
    assert node_type is not None

    params = validate_params(node_type, {"prompt": "a cat"})

    assert params.model_dump(by_alias=True)["quality"] == "high"


def test_validate_params_raises_with_every_problem() -> None:
    node_type = get_node_type("image.resize")
    assert node_type is not None

    with pytest.raises(ParamsError) as caught:
        validate_params(node_type, {"image": "s3://bucket/a.png", "width": "wide"})

    assert [p.path for p in caught.value.problems] == ["/params/width", "/params/height"]
    assert "image.resize" in str(caught.value)


def test_pointer_escapes_slash_and_tilde() -> None:
    assert pointer("outputs", "a/b~c", 0) == "/outputs/a~1b~0c/0"
