"""What a decision must do beyond its state change, stored in the claim of the revision that
decided it.

Storing the actions in the same write that claims the revision means a crash between that
write and carrying them out loses nothing: the next event of the run, or the sweeper, carries
them out again. Each action is idempotent: events keep their CloudEvents id (consumers treat a
repeated id as a duplicate), a child run keeps its id. Timers are not actions: they are part of
the run record (see `timers`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from contracts.events import BY_TYPE, EventData


@dataclass(frozen=True)
class Publish:
    event_id: str
    event: EventData
    extensions: dict[str, str] | None = None


@dataclass(frozen=True)
class StartChild:
    node_id: str
    attempt: int
    child_run_id: str
    workflow_id: str
    version: int | None
    inputs: dict[str, Any]
    depth: int
    root_run_id: str | None = None
    """The root run whose descendants budget the child takes; None in claims written before
    runs carried it (the parent is then taken as the root)."""


Action = Publish | StartChild


def dump(actions: list[Action]) -> str:
    items: list[dict[str, Any]] = []
    for a in actions:
        if isinstance(a, Publish):
            items.append(
                {
                    "op": "publish",
                    "id": a.event_id,
                    "type": a.event.event_type,
                    "data": a.event.model_dump(mode="json", by_alias=True),
                    "ext": a.extensions,
                }
            )
        else:
            items.append(
                {
                    "op": "start_child",
                    "nodeId": a.node_id,
                    "attempt": a.attempt,
                    "childRunId": a.child_run_id,
                    "workflowId": a.workflow_id,
                    "version": a.version,
                    "inputs": a.inputs,
                    "depth": a.depth,
                    "rootRunId": a.root_run_id,
                }
            )
    return json.dumps(items)


def load(raw: str) -> list[Action]:
    actions: list[Action] = []
    for i in json.loads(raw):
        op = i.get("op", "publish")
        if op == "publish":
            actions.append(
                Publish(i["id"], BY_TYPE[i["type"]].model_validate(i["data"]), i.get("ext"))
            )
        else:
            actions.append(
                StartChild(
                    i["nodeId"],
                    i["attempt"],
                    i["childRunId"],
                    i["workflowId"],
                    i["version"],
                    i["inputs"],
                    i["depth"],
                    i.get("rootRunId"),
                )
            )
    return actions
