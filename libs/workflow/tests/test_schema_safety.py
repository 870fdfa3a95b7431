"""A tenant's input schema cannot make the ingress spin: linear patterns, no unbounded $ref,
a uniqueItems that hashes. Timings are printed for the record, never asserted."""

from __future__ import annotations

import time
from typing import Any

import pytest
from workflow.limits import Limits
from workflow.schema_safety import equality_key, schema_problems
from workflow.validation import parse_definition, validate_inputs

LIMITS = Limits.model_construct()


def _registration_problems(schema: dict[str, Any]) -> list[str]:
    raw = {
        "name": "s",
        "inputSchema": schema,
        "nodes": [{"id": "a", "type": "text.template", "params": {"template": "x"}}],
        "outputs": {"t": "{{ nodes.a.text }}"},
    }
    _, problems = parse_definition(raw, LIMITS)
    return [f"{p.path}: {p.message}" for p in problems]


def test_a_catastrophic_pattern_is_evaluated_in_linear_time() -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    started = time.perf_counter()
    problems = validate_inputs(schema, {"s": "a" * 40 + "!"})
    print(f"^(a+)+$ on 41 characters: {time.perf_counter() - started:.6f} s")
    assert [p.path for p in problems] == ["/inputs/s"]
    assert validate_inputs(schema, {"s": "a" * 40}) == []


def test_pattern_properties_and_additional_properties_use_the_same_engine() -> None:
    schema = {
        "type": "object",
        "patternProperties": {"^(a+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    assert validate_inputs(schema, {"aaaa": 1}) == []
    problems = validate_inputs(schema, {"a" * 40 + "!": 1, "aa": "x"})
    assert {p.path for p in problems} == {"/inputs", "/inputs/aa"}


def test_a_pattern_re2_cannot_run_is_refused_at_registration_naming_its_path() -> None:
    schema = {"type": "object", "properties": {"s": {"pattern": "(a)\\1"}}}
    [problem] = _registration_problems(schema)
    assert problem.startswith("/inputSchema/properties/s/pattern: pattern")


def test_a_lookahead_in_pattern_properties_is_refused() -> None:
    problems = _registration_problems({"type": "object", "patternProperties": {"(?=a)": {}}})
    assert problems[0].startswith("/inputSchema/patternProperties/(?=a)")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "$ref": "#"},
        {
            "type": "object",
            "allOf": [{"$ref": "#/$defs/a"}],
            "$defs": {"a": {"not": {"$ref": "#"}}},
        },
        {"type": "object", "$defs": {"a": {"$anchor": "x", "anyOf": [{"$ref": "#x"}]}}},
    ],
)
def test_a_ref_cycle_that_never_descends_into_the_inputs_is_refused(schema: dict[str, Any]) -> None:
    problems = _registration_problems(schema)
    assert any("cycle" in p for p in problems), problems


def test_a_recursive_schema_that_descends_into_the_inputs_is_allowed() -> None:
    tree = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#"}}},
    }
    assert _registration_problems(tree) == []
    assert validate_inputs(tree, {"children": [{"children": []}]}) == []


def test_exponential_in_place_nesting_is_refused_by_max_schema_expansion() -> None:
    defs: dict[str, Any] = {"d0": {"type": "string"}}
    for i in range(1, 25):
        defs[f"d{i}"] = {"allOf": [{"$ref": f"#/$defs/d{i - 1}"}, {"$ref": f"#/$defs/d{i - 1}"}]}
    schema = {"type": "object", "properties": {"x": {"$ref": "#/$defs/d24"}}, "$defs": defs}
    problems = _registration_problems(schema)
    assert any("MAX_SCHEMA_EXPANSION (2000)" in p for p in problems), problems


def test_dynamic_ref_and_remote_refs_are_refused() -> None:
    assert _registration_problems({"type": "object", "$dynamicRef": "#meta"})
    assert _registration_problems({"type": "object", "$ref": "https://example.com/s.json"})


def test_unevaluated_properties_next_to_pattern_properties_is_refused() -> None:
    schema = {"type": "object", "patternProperties": {"^a": {}}, "unevaluatedProperties": False}
    assert any("unevaluatedProperties" in p for p in _registration_problems(schema))


def test_unique_items_over_4000_objects_is_fast_and_still_finds_duplicates() -> None:
    schema = {"type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}}
    items = [{"id": i, "tags": ["a", str(i)], "nested": {"k": i}} for i in range(4000)]
    started = time.perf_counter()
    assert validate_inputs(schema, {"xs": items}) == []
    print(f"uniqueItems over 4,000 objects: {time.perf_counter() - started:.4f} s")
    duplicated = [*items, {"nested": {"k": 7}, "tags": ["a", "7"], "id": 7.0}]
    assert [p.path for p in validate_inputs(schema, {"xs": duplicated})] == ["/inputs/xs"]


@pytest.mark.parametrize(
    ("one", "other", "equal"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, 0, False),
        (None, False, False),
        ({"a": 1, "b": [1]}, {"b": [1.0], "a": 1}, True),
        ([1, 2], [2, 1], False),
        ("1", 1, False),
        ({"a": True}, {"a": 1}, False),
    ],
)
def test_equality_keys_follow_json_schema_equality(one: Any, other: Any, equal: bool) -> None:
    assert (equality_key(one) == equality_key(other)) is equal


def test_a_stored_unsafe_schema_is_refused_at_run_time_not_evaluated() -> None:
    problems = validate_inputs({"$ref": "#"}, {})
    assert problems
    assert "cannot be evaluated" in problems[0].message


def test_format_regex_is_checked_with_re2() -> None:
    schema = {"type": "object", "properties": {"r": {"type": "string", "format": "regex"}}}
    assert validate_inputs(schema, {"r": "^a+$"}) == []
    assert validate_inputs(schema, {"r": "(a)\\1"})


def test_schema_problems_on_an_ordinary_schema_are_empty() -> None:
    schema = {
        "type": "object",
        "properties": {"p": {"type": "string", "pattern": "^[a-z]+$"}},
        "$defs": {"unused": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
    }
    assert schema_problems(schema, LIMITS) == []


def _doubling_schema() -> dict[str, Any]:
    """Two anyOf branches that both recurse with the inputs: 2^depth evaluations."""
    branch = {"type": "array", "items": {"$ref": "#/$defs/t"}}
    return {
        "type": "object",
        "properties": {"x": {"$ref": "#/$defs/t"}},
        "$defs": {"t": {"anyOf": [branch, {**branch}]}},
    }


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_work_registration_cannot_foresee_is_bounded_by_max_schema_steps() -> None:
    schema = _doubling_schema()
    assert _registration_problems(schema) == []
    limits = Limits.model_construct(max_schema_steps=5_000)
    started = time.perf_counter()
    problems = validate_inputs(schema, {"x": _nested(60)}, limits)
    print(f"anyOf doubling, 60 deep, 5,000 steps: {time.perf_counter() - started:.3f} s")
    assert [p.message for p in problems] == [
        "checking these inputs against the input schema takes more than the limit"
        " MAX_SCHEMA_STEPS (5000) keyword evaluations"
    ]
    # Shallow inputs fit the budget and are checked as usual.
    assert [p.path for p in validate_inputs(schema, {"x": _nested(3)}, limits)] == ["/inputs/x"]
