"""Run and step statuses and the transitions allowed between them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class StepStatus(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    RETRYING = "retrying"
    """Failed with a retryable error; dispatched again when its retry timer fires."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


RUN_TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = MappingProxyType(
    {
        RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELED}),
        RunStatus.RUNNING: frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED}),
        RunStatus.COMPLETED: frozenset(),
        RunStatus.FAILED: frozenset(),
        RunStatus.CANCELED: frozenset(),
    }
)

STEP_TRANSITIONS: Mapping[StepStatus, frozenset[StepStatus]] = MappingProxyType(
    {
        # pending → failed: its params could not be resolved or validated at dispatch time.
        StepStatus.PENDING: frozenset(
            {StepStatus.DISPATCHED, StepStatus.FAILED, StepStatus.CANCELED}
        ),
        # dispatched → dispatched: dispatched again (attempt + 1) on retry or after a timeout.
        StepStatus.DISPATCHED: frozenset(
            {
                StepStatus.DISPATCHED,
                StepStatus.RETRYING,
                StepStatus.SUCCEEDED,
                StepStatus.FAILED,
                StepStatus.CANCELED,
            }
        ),
        StepStatus.RETRYING: frozenset({StepStatus.DISPATCHED, StepStatus.CANCELED}),
        StepStatus.SUCCEEDED: frozenset(),
        StepStatus.FAILED: frozenset(),
        StepStatus.CANCELED: frozenset(),
    }
)

Status = TypeVar("Status", RunStatus, StepStatus)


class IllegalTransition(ValueError):
    def __init__(self, current: RunStatus | StepStatus, target: RunStatus | StepStatus) -> None:
        kind = "run" if isinstance(current, RunStatus) else "step"
        super().__init__(f"a {kind} cannot go from {current} to {target}")
        self.current = current
        self.target = target


def allowed_transitions(current: Status) -> frozenset[Status]:
    if isinstance(current, RunStatus):
        return RUN_TRANSITIONS[current]
    return STEP_TRANSITIONS[current]


def is_terminal(status: RunStatus | StepStatus) -> bool:
    if isinstance(status, RunStatus):
        return not RUN_TRANSITIONS[status]
    return not STEP_TRANSITIONS[status]


def transition(current: Status, target: Status) -> Status:
    """Return ``target`` if the table allows going there from ``current``; raise otherwise."""
    if target not in allowed_transitions(current):
        raise IllegalTransition(current, target)
    return target
