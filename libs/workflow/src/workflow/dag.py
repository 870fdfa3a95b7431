"""The graph implied by ``{{ nodes.<id>.… }}`` references between the nodes of a definition."""

from __future__ import annotations

from collections.abc import Mapping

from workflow.definition import WorkflowDefinition
from workflow.template import TemplateSyntaxError, find_references

Graph = Mapping[str, frozenset[str]]


class CycleError(ValueError):
    def __init__(self, cycles: list[tuple[str, ...]]) -> None:
        super().__init__("; ".join(describe_cycle(cycle) for cycle in cycles))
        self.cycles = cycles


def dependencies(defn: WorkflowDefinition) -> dict[str, frozenset[str]]:
    """Node id → ids of the nodes its params reference (a self-reference included).

    References to nodes that do not exist and malformed templates are left out: validation
    reports them.
    """
    known = {node.id for node in defn.nodes}
    graph: dict[str, frozenset[str]] = {}
    for node in defn.nodes:
        referenced: set[str] = set(graph.get(node.id, ()))
        for value in node.params.values():
            try:
                references = find_references(value)
            except TemplateSyntaxError:
                continue
            referenced.update(
                str(ref.path[0]) for ref in references if ref.root == "nodes" and ref.path
            )
        graph[node.id] = frozenset(referenced & known)
    return graph


def dependents(defn: WorkflowDefinition, node_id: str) -> frozenset[str]:
    """Ids of the nodes that depend on ``node_id``, directly or through other nodes (itself
    only if it is on a cycle, which validation refuses)."""
    graph = dependencies(defn)
    found: set[str] = set()
    frontier = {node_id}
    while frontier:
        frontier = {n for n, needs in graph.items() if needs & frontier and n not in found}
        found |= frontier
    return frozenset(found)


def find_cycles(defn: WorkflowDefinition) -> list[tuple[str, ...]]:
    """Each group of nodes that depend on each other, a self-referencing node included.

    A group that is one simple cycle is given in dependency order (each node depends on the
    next, the last on the first); any other group in definition order.
    """
    graph = dependencies(defn)
    order = {node.id: index for index, node in enumerate(defn.nodes)}
    cycles = [
        _as_cycle(graph, sorted(component, key=order.__getitem__))
        for component in _strongly_connected(graph)
        if len(component) > 1 or next(iter(component)) in graph[next(iter(component))]
    ]
    return sorted(cycles, key=lambda cycle: min(order[node] for node in cycle))


def topological_order(defn: WorkflowDefinition) -> list[str]:
    """Node ids, every node after all of its dependencies; ties keep definition order."""
    graph = dependencies(defn)
    cycles = find_cycles(defn)
    if cycles:
        raise CycleError(cycles)
    ordered: list[str] = []
    placed: set[str] = set()
    remaining = list(graph)
    while remaining:
        ready = [node for node in remaining if graph[node] <= placed]
        ordered.extend(ready)
        placed.update(ready)
        remaining = [node for node in remaining if node not in placed]
    return ordered


def describe_cycle(cycle: tuple[str, ...]) -> str:
    return " → ".join((*cycle, cycle[0]))


def _strongly_connected(graph: Graph) -> list[frozenset[str]]:
    """Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(frozenset(component))

    for node in graph:
        if node not in index:
            visit(node)
    return components


def _as_cycle(graph: Graph, members: list[str]) -> tuple[str, ...]:
    """Walk the group from its first member; if that is one simple cycle, return the walk."""
    group = set(members)
    walk = [members[0]]
    while len(walk) <= len(members):
        following = graph[walk[-1]] & group
        if len(following) != 1:
            break
        (target,) = following
        if target == walk[0]:
            return tuple(walk)
        walk.append(target)
    return tuple(members)
