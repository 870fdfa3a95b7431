"""Durable timers: retry delays, step and run timeouts, `wait` nodes and each run's watchdog.

A timer is a document until it fires; the orchestrator's sweeper polls the due ones (the
collection holds only pending timers, so the scan stays small), leases each so that one
instance fires it, publishes it into the run's partition and then deletes it. Re-scheduling
the same timer (same `_id`) moves its due time; a timer that fires late or twice is harmless
because the run's owner ignores a stale one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from storage.mongo import Document

WATCHDOG = "watchdog"


@dataclass(frozen=True)
class TimerRecord:
    run_id: str
    kind: str
    node_id: str | None
    attempt: int | None
    due_at: datetime

    @property
    def timer_id(self) -> str:
        return f"{self.run_id}:{self.kind}:{self.node_id or ''}:{self.attempt or ''}"


def _from_doc(d: Document) -> TimerRecord:
    return TimerRecord(
        run_id=d["runId"],
        kind=d["kind"],
        node_id=d.get("nodeId"),
        attempt=d.get("attempt"),
        due_at=d["dueAt"],
    )


class TimerRepository:
    def __init__(self, db: AsyncDatabase[Document], *, watchdog_seconds: float = 30) -> None:
        self._timers = db.timers
        self._watchdog = timedelta(seconds=watchdog_seconds)

    async def schedule(self, timer: TimerRecord) -> None:
        await self._timers.update_one(
            {"_id": timer.timer_id},
            {
                "$set": {"dueAt": timer.due_at},
                "$setOnInsert": {
                    "runId": timer.run_id,
                    "kind": timer.kind,
                    "nodeId": timer.node_id,
                    "attempt": timer.attempt,
                },
            },
            upsert=True,
        )

    async def arm_watchdog(self, run_id: str, now: datetime) -> None:
        """Look at the run again later, whatever happens to the messages about it."""
        await self.schedule(TimerRecord(run_id, WATCHDOG, None, None, now + self._watchdog))

    async def disarm(self, timer: TimerRecord) -> None:
        await self._timers.delete_one({"_id": timer.timer_id})

    async def due(self, now: datetime, *, limit: int = 200) -> list[TimerRecord]:
        cursor = self._timers.find({"dueAt": {"$lte": now}}).sort("dueAt", 1).limit(limit)
        return [_from_doc(d) async for d in cursor]

    async def lease(self, timer: TimerRecord, until: datetime) -> TimerRecord | None:
        """Take a due timer for firing; None if another instance took or moved it."""
        result = await self._timers.update_one(
            {"_id": timer.timer_id, "dueAt": timer.due_at}, {"$set": {"dueAt": until}}
        )
        if result.modified_count != 1:
            return None
        return TimerRecord(timer.run_id, timer.kind, timer.node_id, timer.attempt, until)

    async def fired(self, leased: TimerRecord) -> None:
        """Delete a fired timer unless it was re-scheduled meanwhile."""
        await self._timers.delete_one({"_id": leased.timer_id, "dueAt": leased.due_at})
