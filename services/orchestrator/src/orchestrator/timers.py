"""A run's pending timers, kept on the run record and written with the state they belong to.

The earliest due time is the run's ``dueAt``: the sweeper looks for runs whose ``dueAt`` has
passed and nudges their owner, which fires what is due. A run waiting seven days costs nothing
until then; a timer that fires late, twice or stale changes nothing (the domain ignores it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from workflow.run import RunState, ScheduleTimer, Timer
from workflow.state import is_terminal


@dataclass(frozen=True)
class Pending:
    kind: str
    node_id: str | None
    attempt: int | None
    due_at: datetime

    @property
    def key(self) -> tuple[str, str | None, int | None]:
        return (self.kind, self.node_id, self.attempt)

    def timer(self) -> Timer:
        return Timer.model_validate(
            {"kind": self.kind, "node_id": self.node_id, "attempt": self.attempt}
        )


def load(raw: str) -> list[Pending]:
    return [
        Pending(t["kind"], t["nodeId"], t["attempt"], datetime.fromisoformat(t["dueAt"]))
        for t in json.loads(raw)
    ]


def dump(pending: list[Pending]) -> str:
    return json.dumps(
        [
            {
                "kind": p.kind,
                "nodeId": p.node_id,
                "attempt": p.attempt,
                "dueAt": p.due_at.isoformat(),
            }
            for p in pending
        ]
    )


def split_due(pending: list[Pending], now: datetime) -> tuple[list[Pending], list[Pending]]:
    """(due by `now`, earliest first; the rest)."""
    due = sorted((p for p in pending if p.due_at <= now), key=lambda p: p.due_at)
    return due, [p for p in pending if p.due_at > now]


def scheduled(pending: list[Pending], effects: list[ScheduleTimer]) -> list[Pending]:
    """`pending` with the timers a decision scheduled (a timer with the same kind, step and
    attempt is moved, not doubled)."""
    by_key = {p.key: p for p in pending}
    for e in effects:
        by_key[(e.kind, e.node_id, e.attempt)] = Pending(e.kind, e.node_id, e.attempt, e.due_at)
    return list(by_key.values())


def pruned(pending: list[Pending], state: RunState) -> list[Pending]:
    """Only the timers that can still matter: none once the run ended, none for a step or a
    map item that ended (a map of N items must not carry N finished items' timers)."""
    if is_terminal(state.status):
        return []
    return [p for p in pending if not _ended(p, state)]


def _ended(timer: Pending, state: RunState) -> bool:
    if timer.node_id is None:
        return False
    node_id, _, rest = timer.node_id.partition("[")
    step = state.steps.get(node_id)
    if step is None:
        return False
    if is_terminal(step.status):
        return True
    if not rest or not rest.endswith("]") or not rest[:-1].isdigit() or step.items is None:
        return False
    index = int(rest[:-1])
    return index < len(step.items) and is_terminal(step.items[index].status)


def next_due(pending: list[Pending]) -> datetime | None:
    return min((p.due_at for p in pending), default=None)
