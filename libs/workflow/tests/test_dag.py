from typing import Any

import pytest
from workflow.dag import CycleError, dependencies, describe_cycle, find_cycles, topological_order
from workflow.definition import WorkflowDefinition


def definition(*nodes: tuple[str, Any]) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "name": "t",
            "nodes": [
                {"id": node_id, "type": "text.template", "params": {"template": template}}
                for node_id, template in nodes
            ],
        }
    )


def ref(node_id: str) -> str:
    return f"{{{{ nodes.{node_id}.text }}}}"


def test_dependencies_are_the_nodes_referenced(studio_portrait: dict[str, Any]) -> None:
    defn = WorkflowDefinition.model_validate(studio_portrait)

    assert dependencies(defn) == {
        "render": frozenset(),
        "warm": frozenset({"render"}),
        "square": frozenset({"warm"}),
        "story": frozenset({"warm"}),
    }


def test_dependencies_come_from_nested_params_and_ignore_unknown_or_malformed() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            "name": "t",
            "nodes": [
                {"id": "a", "type": "x"},
                {"id": "b", "type": "x", "params": {"deep": [{"v": f"{ref('a')} {ref('ghost')}"}]}},
                {"id": "c", "type": "x", "params": {"bad": "{{ nodes.a.text", "ok": ref("b")}},
            ],
        }
    )

    assert dependencies(defn) == {"a": frozenset(), "b": {"a"}, "c": {"b"}}


def test_topological_order_puts_dependencies_first_keeping_definition_order() -> None:
    defn = definition(("d", ref("b") + ref("c")), ("c", ref("a")), ("b", ref("a")), ("a", ""))

    assert topological_order(defn) == ["a", "c", "b", "d"]


def test_cycle_is_found_in_dependency_order() -> None:
    defn = definition(("a", ref("c")), ("b", ref("a")), ("c", ref("b")), ("free", ""))

    assert find_cycles(defn) == [("a", "c", "b")]
    assert describe_cycle(("a", "c", "b")) == "a → c → b → a"


def test_self_reference_is_a_cycle() -> None:
    assert find_cycles(definition(("a", ref("a")))) == [("a",)]


def test_separate_cycles_are_each_reported() -> None:
    defn = definition(("a", ref("b")), ("b", ref("a")), ("c", ref("d")), ("d", ref("c")))

    assert find_cycles(defn) == [("a", "b"), ("c", "d")]


def test_tangled_cycle_lists_its_nodes_in_definition_order() -> None:
    defn = definition(("a", ref("b") + ref("c")), ("b", ref("c")), ("c", ref("a") + ref("b")))

    assert find_cycles(defn) == [("a", "b", "c")]


def test_acyclic_graph_has_no_cycles(studio_portrait: dict[str, Any]) -> None:
    assert find_cycles(WorkflowDefinition.model_validate(studio_portrait)) == []


def test_topological_order_of_a_cycle_raises_naming_the_nodes() -> None:
    defn = definition(("a", ref("b")), ("b", ref("a")))

    with pytest.raises(CycleError, match="a → b → a") as caught:
        topological_order(defn)

    assert caught.value.cycles == [("a", "b")]
