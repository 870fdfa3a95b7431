"""A run's pending timers: scheduled, fired when due, dropped once they cannot matter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator import timers
from orchestrator.timers import Pending
from workflow.run import MapItemState, RunState, ScheduleTimer, StepState
from workflow.state import RunStatus, StepStatus

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def _state(status: RunStatus = RunStatus.RUNNING, **steps: StepState) -> RunState:
    return RunState(run_id="run_1", status=status, steps=steps)


def test_a_timer_scheduled_again_moves_instead_of_doubling() -> None:
    first = timers.scheduled([], [ScheduleTimer("step_timeout", "a", 1, NOW)])
    later = timers.scheduled(first, [ScheduleTimer("step_timeout", "a", 1, NOW + timedelta(1))])
    assert later == [Pending("step_timeout", "a", 1, NOW + timedelta(1))]
    assert timers.load(timers.dump(later)) == later


def test_due_timers_are_split_off_earliest_first_and_the_rest_keep_the_next_due_time() -> None:
    pending = [
        Pending("wait", "w", 1, NOW + timedelta(seconds=5)),
        Pending("retry", "r", 2, NOW - timedelta(seconds=1)),
        Pending("run_timeout", None, None, NOW - timedelta(seconds=2)),
    ]
    due, rest = timers.split_due(pending, NOW)
    assert [p.kind for p in due] == ["run_timeout", "retry"]
    assert timers.next_due(rest) == NOW + timedelta(seconds=5)
    assert timers.next_due([]) is None


def test_timers_of_an_ended_run_step_or_map_item_are_dropped_and_live_ones_kept() -> None:
    items = [
        MapItemState(index=0, status=StepStatus.SUCCEEDED, attempt=1),
        MapItemState(index=1, status=StepStatus.DISPATCHED, attempt=1),
    ]
    state = _state(
        done=StepState(node_id="done", status=StepStatus.SUCCEEDED, attempt=1),
        waiting=StepState(node_id="waiting", status=StepStatus.DISPATCHED, attempt=1),
        each=StepState(node_id="each", status=StepStatus.DISPATCHED, attempt=1, items=items),
    )
    pending = [
        Pending("step_timeout", "done", 1, NOW),
        Pending("wait", "waiting", 1, NOW),
        Pending("step_timeout", "each[0]", 1, NOW),
        Pending("step_timeout", "each[1]", 1, NOW),
        Pending("run_timeout", None, None, NOW),
    ]
    kept = timers.pruned(pending, state)
    assert [(p.kind, p.node_id) for p in kept] == [
        ("wait", "waiting"),
        ("step_timeout", "each[1]"),
        ("run_timeout", None),
    ]
    assert timers.pruned(pending, _state(RunStatus.COMPLETED)) == []
