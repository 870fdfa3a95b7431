from typing import Any

import pytest
from workflow.template import (
    Reference,
    ResolutionError,
    TemplateSyntaxError,
    find_references,
    parse,
    resolve,
)

CONTEXT: dict[str, Any] = {
    "inputs": {
        "prompt": "a cat",
        "size": 512,
        "options": {"quality": "high", "tags": ["warm", "soft"]},
        "flag": True,
        "nothing": None,
    },
    "nodes": {"render": {"image": "s3://out/render.png", "meta": {"width": 768}}},
}


def test_reference_paths_have_names_and_indexes() -> None:
    assert find_references("{{ inputs.options.tags.1 }}") == [
        Reference("inputs", ("options", "tags", 1))
    ]


def test_whitespace_inside_braces_is_optional() -> None:
    assert find_references("{{nodes.render.image}}") == find_references(
        "{{   nodes.render.image\t}}"
    )


def test_references_are_found_in_nested_values_in_order() -> None:
    value = {"a": ["x {{ inputs.a }} y", {"b": "{{ nodes.n.image }}"}], "c": 3, "d": None}

    assert find_references(value) == [
        Reference("inputs", ("a",)),
        Reference("nodes", ("n", "image")),
    ]


def test_text_without_references_has_none() -> None:
    assert find_references("plain } text }} with braces {") == []
    assert parse("a }} b") == ["a }} b"]


def test_item_and_bare_roots_parse() -> None:
    assert find_references("{{ item }} {{ item.name }} {{ inputs }}") == [
        Reference("item"),
        Reference("item", ("name",)),
        Reference("inputs"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "{{ inputs.prompt",
        "{{ }}",
        "{{ input.prompt }}",
        "{{ inputs..prompt }}",
        "{{ inputs.prompt. }}",
        "{{ inputs.prompt | upper }}",
        "{{ inputs['prompt'] }}",
        "{{ __import__('os').system('rm') }}",
        "{{ inputs.a b }}",
        "{{ inputs.-1 }}",
        "{{ inputs.01 }}",
        "{{ nodes.render }}",
        "{{ nodes.0.image }}",
        "{{ {{ inputs.a }} }}",
    ],
)
def test_malformed_references_are_syntax_errors(text: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        find_references(text)


def test_syntax_error_says_where_and_why() -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        parse("hello {{ inputs.prompt")

    assert caught.value.position == 6
    assert "never closed" in str(caught.value)


def test_lone_reference_keeps_the_value_type() -> None:
    assert resolve("{{ inputs.size }}", CONTEXT) == 512
    assert resolve("{{ inputs.options }}", CONTEXT) == CONTEXT["inputs"]["options"]
    assert resolve("{{ inputs.options.tags }}", CONTEXT) == ["warm", "soft"]
    assert resolve("{{ inputs.flag }}", CONTEXT) is True
    assert resolve("{{ inputs.nothing }}", CONTEXT) is None


def test_reference_inside_text_is_interpolated() -> None:
    assert resolve("{{ inputs.prompt }}, {{ inputs.size }}px", CONTEXT) == "a cat, 512px"
    assert resolve("tags={{ inputs.options.tags }}", CONTEXT) == 'tags=["warm","soft"]'
    assert resolve("{{inputs.flag}}/{{inputs.nothing}}", CONTEXT) == "true/null"
    assert resolve(" {{ inputs.size }}", CONTEXT) == " 512"


def test_list_index_and_node_outputs_resolve() -> None:
    assert resolve("{{ inputs.options.tags.0 }}", CONTEXT) == "warm"
    assert resolve("{{ nodes.render.meta.width }}", CONTEXT) == 768


def test_dicts_and_lists_resolve_recursively_leaving_other_values() -> None:
    value = {"image": "{{ nodes.render.image }}", "sizes": ["{{ inputs.size }}", 3, None]}

    assert resolve(value, CONTEXT) == {"image": "s3://out/render.png", "sizes": [512, 3, None]}


def test_resolution_never_changes_its_input() -> None:
    value = {"a": ["{{ inputs.size }}"]}

    resolve(value, CONTEXT)

    assert value == {"a": ["{{ inputs.size }}"]}


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("{{ inputs.missing }}", "missing"),
        ("{{ inputs.options.tags.2 }}", 2),
        ("{{ inputs.prompt.length }}", "length"),
        ("{{ nodes.other.image }}", "other"),
        ("{{ nodes.render.mask }}", "mask"),
        ("x {{ inputs.size.0 }}", 0),
    ],
)
def test_missing_path_names_the_expression_and_segment(text: str, missing: str | int) -> None:
    with pytest.raises(ResolutionError) as caught:
        resolve(text, CONTEXT)

    assert caught.value.missing == missing
    assert caught.value.reference.expression in str(caught.value)


def test_item_out_of_scope_cannot_resolve() -> None:
    with pytest.raises(ResolutionError, match="not in scope"):
        resolve("{{ item.x }}", CONTEXT)


def test_item_resolves_when_in_scope() -> None:
    assert resolve("{{ item.x }}-{{ item.y }}", {**CONTEXT, "item": {"x": 1, "y": "b"}}) == "1-b"


def test_index_into_an_object_uses_the_key_text() -> None:
    assert resolve("{{ inputs.byNumber.0 }}", {"inputs": {"byNumber": {"0": "zero"}}}) == "zero"


def test_malformed_template_raises_syntax_error_at_resolution() -> None:
    with pytest.raises(TemplateSyntaxError):
        resolve(["{{ inputs.a"], CONTEXT)


def test_reference_prints_as_its_expression() -> None:
    ref = Reference("nodes", ("a", "image"))

    assert str(ref) == "{{ nodes.a.image }}"
    assert ref.expression == "nodes.a.image"
