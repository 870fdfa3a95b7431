from typing import Any

import pytest
from pydantic import ValidationError
from workflow.definition import (
    Backoff,
    NodeSpec,
    RetryPolicy,
    WorkflowDefinition,
    canonical_json,
    definition_hash,
)


def test_design_example_parses_with_camel_case_fields(studio_portrait: dict[str, Any]) -> None:
    defn = WorkflowDefinition.model_validate(studio_portrait)

    assert defn.input_schema["required"] == ["prompt"]
    assert [node.id for node in defn.nodes] == ["render", "warm", "square", "story"]
    assert defn.outputs["square"] == "{{ nodes.square.image }}"


def test_snake_case_names_are_accepted_too() -> None:
    node = NodeSpec(id="a", type="image.generate", timeout_seconds=5)
    policy = RetryPolicy.model_validate({"max_attempts": 3})

    assert node.timeout_seconds == 5
    assert policy.max_attempts == 3


def test_dump_by_alias_is_camel_case() -> None:
    node = NodeSpec(id="a", type="t", retry=RetryPolicy(max_attempts=2), timeout_seconds=1)

    dumped = node.model_dump(by_alias=True)

    assert dumped["timeoutSeconds"] == 1
    assert dumped["retry"]["maxAttempts"] == 2
    assert dumped["retry"]["backoff"] == {"initialSeconds": 1, "factor": 2, "maxSeconds": 300}


def test_retry_defaults() -> None:
    assert RetryPolicy() == RetryPolicy(max_attempts=1, backoff=Backoff())


@pytest.mark.parametrize("attempts", [0, 21])
def test_max_attempts_outside_1_to_20_is_rejected(attempts: int) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(max_attempts=attempts)


@pytest.mark.parametrize("node_id", ["1abc", "", "a b", "a.b", "a" * 65])
def test_bad_node_ids_are_rejected(node_id: str) -> None:
    with pytest.raises(ValidationError):
        NodeSpec(id=node_id, type="image.generate")


@pytest.mark.parametrize("node_id", ["a", "render_2", "Warm-Up", "a" * 64])
def test_good_node_ids_are_accepted(node_id: str) -> None:
    assert NodeSpec(id=node_id, type="image.generate").id == node_id


def test_unknown_fields_are_rejected(studio_portrait: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="edges"):
        WorkflowDefinition.model_validate({**studio_portrait, "edges": []})


def test_definition_needs_one_to_two_hundred_nodes(studio_portrait: dict[str, Any]) -> None:
    from workflow.validation import parse_definition

    node = {"id": "n", "type": "text.template", "params": {"template": ""}}
    with pytest.raises(ValidationError):
        WorkflowDefinition.model_validate({**studio_portrait, "nodes": []})
    # The upper bound is the configurable MAX_NODES (default 200), checked by parse_definition.
    defn, problems = parse_definition({**studio_portrait, "nodes": [node] * 201})
    assert defn is None
    assert "MAX_NODES (200)" in problems[0].message


def test_input_schema_defaults_to_any_object() -> None:
    defn = WorkflowDefinition.model_validate({"name": "x", "nodes": [{"id": "a", "type": "t"}]})

    assert defn.input_schema == {"type": "object"}


def test_definition_is_frozen(studio_portrait: dict[str, Any]) -> None:
    defn = WorkflowDefinition.model_validate(studio_portrait)

    with pytest.raises(ValidationError):
        defn.name = "other"  # type: ignore[misc]


def test_canonical_json_is_sorted_compact_and_camel_case(studio_portrait: dict[str, Any]) -> None:
    text = canonical_json(WorkflowDefinition.model_validate(studio_portrait))

    assert text.startswith('{"inputSchema":{"properties":')
    assert ": " not in text
    assert '"timeoutSeconds"' not in text  # None defaults left out


def test_hash_ignores_key_order_and_spelled_out_defaults(studio_portrait: dict[str, Any]) -> None:
    reordered = dict(reversed(list(studio_portrait.items())))
    explicit = {
        **studio_portrait,
        "description": None,
        "timeoutSeconds": None,
        "nodes": [{**node, "retry": None} for node in studio_portrait["nodes"]],
    }
    original = definition_hash(WorkflowDefinition.model_validate(studio_portrait))

    assert definition_hash(WorkflowDefinition.model_validate(reordered)) == original
    assert definition_hash(WorkflowDefinition.model_validate(explicit)) == original


def test_default_input_schema_hashes_like_an_explicit_one() -> None:
    bare = {"name": "x", "nodes": [{"id": "a", "type": "t"}]}
    explicit = {**bare, "inputSchema": {"type": "object"}, "outputs": {}}

    assert definition_hash(WorkflowDefinition.model_validate(bare)) == definition_hash(
        WorkflowDefinition.model_validate(explicit)
    )


def test_hash_changes_when_the_definition_changes(studio_portrait: dict[str, Any]) -> None:
    changed = {**studio_portrait, "outputs": {"square": "{{ nodes.square.image }}"}}

    assert definition_hash(WorkflowDefinition.model_validate(changed)) != definition_hash(
        WorkflowDefinition.model_validate(studio_portrait)
    )


def test_hash_is_sha256_hex(studio_portrait: dict[str, Any]) -> None:
    digest = definition_hash(WorkflowDefinition.model_validate(studio_portrait))

    assert len(digest) == 64
    assert int(digest, 16) >= 0


def test_node_lookup_by_id(studio_portrait: dict[str, Any]) -> None:
    defn = WorkflowDefinition.model_validate(studio_portrait)

    node = defn.node("warm")
    assert node is not None
    assert node.type == "image.adjust"
    assert defn.node("missing") is None
