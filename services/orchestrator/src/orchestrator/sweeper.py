"""The sweeper: fires due timers into their run's partition and expires idempotency keys.

Everything that can become overdue is a durable timer (a retry delay, a step or run timeout,
a `wait` node, the watchdog every run carries), so the sweeper only has to look at due timers,
a small collection, instead of scanning runs. Firing is idempotent: a timer fired twice is
ignored by the run's owner the second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bus.publisher import EventPublisher
from contracts.events import TimerFired
from storage.idempotency import IdempotencyKeys
from storage.timers import TimerRepository

log = logging.getLogger("orchestrator.sweeper")


def _now() -> datetime:
    return datetime.now(UTC)


class Sweeper:
    def __init__(
        self,
        timers: TimerRepository,
        idempotency: IdempotencyKeys,
        publisher: EventPublisher,
        *,
        interval: float = 0.5,
        lease: float = 30,
        cleanup_every: float = 60,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._timers = timers
        self._idempotency = idempotency
        self._publisher = publisher
        self._interval = interval
        self._lease = timedelta(seconds=lease)
        self._cleanup_every = timedelta(seconds=cleanup_every)
        self._clock = clock
        self._last_cleanup = datetime.min.replace(tzinfo=UTC)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:
                log.exception("sweep failed; trying again")
            await asyncio.sleep(self._interval)

    async def sweep_once(self) -> int:
        now = self._clock()
        fired = 0
        for timer in await self._timers.due(now):
            leased = await self._timers.lease(timer, now + self._lease)
            if leased is None:
                continue
            await self._publisher.publish(
                TimerFired(
                    run_id=timer.run_id,
                    kind=timer.kind,
                    node_id=timer.node_id,
                    attempt=timer.attempt,
                    due_at=timer.due_at,
                ),
                event_id=f"{timer.timer_id}@{timer.due_at.isoformat()}",
            )
            await self._timers.fired(leased)
            fired += 1
        if now - self._last_cleanup >= self._cleanup_every:
            self._last_cleanup = now
            removed = await self._idempotency.remove_expired(now)
            if removed:
                log.info("removed %d expired idempotency keys", removed)
        return fired
