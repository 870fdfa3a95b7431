"""The sweeper nudges every due run once per due time, even behind runs stuck due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.sweeper import Sweeper

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


class Runs:
    """Due runs in `dueAt` order, paged like the repository pages them."""

    def __init__(self, due: list[tuple[str, datetime]]) -> None:
        self.due = due

    async def due_runs(self, now: datetime, *, limit: int, skip: int) -> list[Any]:
        return [d for d in self.due if d[1] <= now][skip : skip + limit]

    async def overdue_claims(self, now: datetime, *, limit: int, skip: int) -> list[Any]:
        return []


class Publisher:
    def __init__(self) -> None:
        self.nudged: list[str] = []

    async def publish(self, event: Any, **_: Any) -> None:
        self.nudged.append(event.run_id)


class Keys:
    async def remove_expired(self, now: datetime) -> int:
        return 0


def _sweeper(runs: Runs, publisher: Publisher, clock: list[datetime]) -> Sweeper:
    return Sweeper(
        runs,  # type: ignore[arg-type]
        Keys(),  # type: ignore[arg-type]
        publisher,  # type: ignore[arg-type]
        lease=30,
        clock=lambda: clock[0],
        page=10,
    )


async def test_a_due_time_is_nudged_once_per_lease_and_a_moved_one_again() -> None:
    runs, publisher, clock = Runs([("run_a", NOW)]), Publisher(), [NOW]
    sweeper = _sweeper(runs, publisher, clock)
    assert await sweeper.sweep_once() == 1
    assert await sweeper.sweep_once() == 0, "the owner has it; no second nudge yet"
    runs.due = [("run_a", NOW + timedelta(seconds=1))]  # the owner moved its due time
    clock[0] = NOW + timedelta(seconds=2)
    assert await sweeper.sweep_once() == 1
    assert publisher.nudged == ["run_a", "run_a"]


async def test_runs_stuck_due_do_not_hide_the_ones_behind_them() -> None:
    stuck = [(f"run_stuck{i:02}", NOW - timedelta(minutes=10)) for i in range(25)]
    runs, publisher, clock = Runs(stuck), Publisher(), [NOW]
    sweeper = _sweeper(runs, publisher, clock)
    for _ in range(3):
        await sweeper.sweep_once()
    assert len(publisher.nudged) == 25
    runs.due = [*stuck, ("run_new", NOW)]
    assert await sweeper.sweep_once() == 1
    assert publisher.nudged[-1] == "run_new"
