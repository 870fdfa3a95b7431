"""The sweeper: nudges the owner of every run that has something due, and expires
idempotency keys.

What can become overdue is written down with the run, so the sweeper polls only that: live
runs whose ``dueAt`` has passed (a timer: retry delay, step or run timeout, `wait`; or a run
still queued past its start grace) and claims of changes not carried out in time (a writer
died between its write and its publishes). For each it publishes a ``watchdog`` timer event
into the run's partition; the run's owner decides, so the sweeper never writes a run. A nudge
that arrives twice is harmless; the same due time of a run is not nudged again for `lease`
seconds (a run whose due time moved is nudged at its new time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bus.publisher import EventPublisher
from contracts.events import TimerFired
from storage.idempotency import IdempotencyKeys
from storage.runs import RunRepository

log = logging.getLogger("orchestrator.sweeper")


def _now() -> datetime:
    return datetime.now(UTC)


class Sweeper:
    def __init__(
        self,
        runs: RunRepository,
        idempotency: IdempotencyKeys,
        publisher: EventPublisher,
        *,
        interval: float = 0.5,
        lease: float = 30,
        cleanup_every: float = 60,
        clock: Callable[[], datetime] = _now,
        page: int = 200,
        max_pages: int = 20,
    ) -> None:
        self._page = page
        self._max_pages = max_pages
        self._runs = runs
        self._idempotency = idempotency
        self._publisher = publisher
        self._interval = interval
        self._lease = timedelta(seconds=lease)
        self._cleanup_every = timedelta(seconds=cleanup_every)
        self._clock = clock
        self._last_cleanup = datetime.min.replace(tzinfo=UTC)
        self._nudged: dict[tuple[str, datetime], datetime] = {}

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:
                log.exception("sweep failed; trying again")
            await asyncio.sleep(self._interval)

    async def sweep_once(self) -> int:
        now = self._clock()
        self._nudged = {r: t for r, t in self._nudged.items() if t > now}
        nudged = 0
        for source in (self._runs.due_runs, self._runs.overdue_claims):
            # Page on while a whole page was nudged already: runs stuck due (their nudge
            # keeps failing) must not hide the others behind them.
            for page in range(self._max_pages):
                due = await source(now, limit=self._page, skip=page * self._page)
                fresh = [(r, t) for r, t in due if (r, t) not in self._nudged]
                for run_id, due_at in fresh:
                    await self._publisher.publish(
                        TimerFired(run_id=run_id, kind="watchdog", due_at=due_at),
                        event_id=f"{run_id}:watchdog@{due_at.isoformat()}",
                    )
                    self._nudged[(run_id, due_at)] = now + self._lease
                nudged += len(fresh)
                if fresh or len(due) < self._page:
                    break
        if now - self._last_cleanup >= self._cleanup_every:
            self._last_cleanup = now
            removed = await self._idempotency.remove_expired(now)
            if removed:
                log.info("removed %d expired idempotency keys", removed)
        return nudged
