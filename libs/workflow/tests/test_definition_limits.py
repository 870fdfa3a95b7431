"""Each registration limit refuses a definition that would cost unbounded work, naming the limit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from workflow.limits import Limits
from workflow.validation import Problem, definition_size_problem, parse_definition

LIMITS = Limits.model_construct()


def _text(node_id: str, template: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "text.template", "params": {"template": template}, **extra}


def _definition(*nodes: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "name": "limits",
        "nodes": list(nodes) or [_text("a")],
        "outputs": {"text": "{{ nodes.a.text }}"},
        **changes,
    }


def _problems(raw: dict[str, Any], limits: Limits = LIMITS) -> list[Problem]:
    _, problems = parse_definition(raw, limits)
    return problems


def _one_naming(problems: list[Problem], limit: str) -> Problem:
    named = [p for p in problems if limit in p.message]
    assert len(named) == 1, problems
    return named[0]


def test_an_ordinary_definition_is_within_every_limit() -> None:
    assert _problems(_definition()) == []


def test_a_definition_over_max_definition_bytes_is_refused_before_parsing() -> None:
    raw = _definition(_text("a", "x" * 600_000))
    problem = definition_size_problem(raw, LIMITS)
    assert problem is not None
    assert "MAX_DEFINITION_BYTES (524288)" in problem.message
    assert _problems(raw) == [problem]


def test_more_nodes_than_max_nodes_is_refused() -> None:
    nodes = [_text("a"), *(_text(f"n{i}") for i in range(200))]
    assert _one_naming(_problems(_definition(*nodes)), "MAX_NODES (200)").path == "/nodes"


def test_a_configured_max_nodes_is_the_one_enforced() -> None:
    nodes = [_text("a"), *(_text(f"n{i}") for i in range(250))]
    assert _problems(_definition(*nodes), Limits.model_construct(max_nodes=300)) == []
    assert _problems(_definition(*nodes[:5]), Limits.model_construct(max_nodes=4))


def test_more_template_references_than_the_limit_is_refused() -> None:
    template = "{{ inputs.x }}" * 2001
    problem = _one_naming(_problems(_definition(_text("a", template))), "MAX_TEMPLATE_REFERENCES")
    assert "2002" in problem.message  # 2001 in params, 1 in outputs


def test_an_input_schema_over_its_size_limit_is_refused() -> None:
    schema = {"type": "object", "description": "x" * 70_000}
    problem = _one_naming(_problems(_definition(inputSchema=schema)), "MAX_INPUT_SCHEMA_BYTES")
    assert problem.path == "/inputSchema"


@pytest.mark.parametrize("seconds", [1e300, 86_401])
def test_a_node_timeout_over_max_timeout_seconds_is_refused(seconds: float) -> None:
    problems = _problems(_definition(_text("a", timeoutSeconds=seconds)))
    assert _one_naming(problems, "MAX_TIMEOUT_SECONDS (86400)").path == "/nodes/0/timeoutSeconds"


def test_a_definition_timeout_over_max_run_timeout_seconds_is_refused() -> None:
    problems = _problems(_definition(timeoutSeconds=1e300))
    assert _one_naming(problems, "MAX_RUN_TIMEOUT_SECONDS").path == "/timeoutSeconds"


def test_a_map_template_timeout_over_the_limit_is_refused() -> None:
    mapped = {
        "id": "m",
        "type": "map",
        "params": {
            "items": [1, 2],
            "node": {
                "type": "text.template",
                "params": {"template": "{{ item }}"},
                "timeoutSeconds": 1e300,
            },
        },
    }
    problems = _problems(_definition(_text("a"), mapped))
    assert (
        _one_naming(problems, "MAX_TIMEOUT_SECONDS").path == "/nodes/1/params/node/timeoutSeconds"
    )


def test_a_wait_longer_than_the_configured_limit_is_refused() -> None:
    wait = {"id": "w", "type": "wait", "params": {"seconds": 7200}}
    limits = Limits.model_construct(max_wait_node_seconds=3600)
    problem = _one_naming(_problems(_definition(_text("a"), wait), limits), "MAX_WAIT_NODE_SECONDS")
    assert problem.path == "/nodes/1/params/seconds"


def _map(items: Any, concurrency: int = 4) -> dict[str, Any]:
    return {
        "id": "m",
        "type": "map",
        "params": {
            "items": items,
            "concurrency": concurrency,
            "node": {"type": "text.template", "params": {"template": "{{ item }}"}},
        },
    }


def test_a_literal_map_list_over_max_map_items_is_refused() -> None:
    problems = _problems(_definition(_text("a"), _map(list(range(1001)))))
    assert _one_naming(problems, "MAX_MAP_ITEMS (1000)").path == "/nodes/1/params/items"


def test_map_concurrency_over_the_configured_limit_is_refused() -> None:
    limits = Limits.model_construct(max_map_concurrency=8)
    problems = _problems(_definition(_text("a"), _map([1], concurrency=16)), limits)
    assert _one_naming(problems, "MAX_MAP_CONCURRENCY (8)").path == "/nodes/1/params/concurrency"


def test_literal_params_larger_than_max_resolved_value_bytes_are_refused() -> None:
    limits = Limits.model_construct(max_resolved_value_bytes=1024)
    problems = _problems(_definition(_text("a", "x" * 2000)), limits)
    assert _one_naming(problems, "MAX_RESOLVED_VALUE_BYTES (1024)").path == "/nodes/0/params"


def test_every_refusal_is_a_plain_problem_that_serialises() -> None:
    problems = _problems(_definition(_text("a", timeoutSeconds=1e300), timeoutSeconds=1e300))
    assert json.loads(json.dumps([p.model_dump() for p in problems]))
