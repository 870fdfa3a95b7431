"""Rerunning a run from one of its nodes: which steps keep the outputs they stored.

A rerun from node ``n`` runs ``n`` and every node that depends on it (directly or through
other nodes, by ``{{ nodes.… }}`` references) again; every other step is reused: it starts
succeeded in the new run with the outputs it had, and is never dispatched
(:func:`workflow.run.new_run_state` with ``reused``). A node inside a map's template is not a
node of the workflow: only top-level node ids can be rerun from.
"""

from __future__ import annotations

from workflow.dag import dependents
from workflow.definition import WorkflowDefinition
from workflow.run import ReusedStep, RunState
from workflow.state import StepStatus


class UnknownNode(ValueError):
    """``from_node`` is not a node of the workflow."""

    def __init__(self, node_id: str) -> None:
        super().__init__(f"{node_id!r} is not a node of the workflow")
        self.node_id = node_id


class NotReusable(ValueError):
    """Steps the rerun would reuse did not succeed in the original run: they would have to run
    too, so the rerun must start from an earlier node."""

    def __init__(self, node_ids: tuple[str, ...]) -> None:
        super().__init__(f"step(s) {', '.join(node_ids)} did not succeed")
        self.node_ids = node_ids


def rerun_nodes(defn: WorkflowDefinition, from_node: str) -> frozenset[str]:
    """``from_node`` and every node that depends on it: the nodes a rerun runs again."""
    if defn.node(from_node) is None:
        raise UnknownNode(from_node)
    return dependents(defn, from_node) | {from_node}


def reused_steps(
    defn: WorkflowDefinition, original: RunState, from_node: str
) -> dict[str, ReusedStep]:
    """Node id → the stored outputs a rerun of ``original`` from ``from_node`` reuses, each
    named by the run that produced it (``original``, or the run ``original`` reused it from).

    Raises :class:`UnknownNode` for a ``from_node`` that is not a node of ``defn``, and
    :class:`NotReusable` naming (in definition order) every step to reuse that did not succeed.
    """
    again = rerun_nodes(defn, from_node)
    keep = [node.id for node in defn.nodes if node.id not in again]
    missing = tuple(
        node_id
        for node_id in keep
        if (step := original.steps.get(node_id)) is None or step.status is not StepStatus.SUCCEEDED
    )
    if missing:
        raise NotReusable(missing)
    reused: dict[str, ReusedStep] = {}
    for node_id in keep:
        step = original.steps[node_id]
        reused[node_id] = ReusedStep(
            outputs=dict(step.outputs or {}), run_id=step.reused_from or original.run_id
        )
    return reused
