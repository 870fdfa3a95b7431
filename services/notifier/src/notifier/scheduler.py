"""Polls the durable schedule and runs due attempts concurrently.

At most `concurrency` attempts run at once, and at most `host_concurrency` to one endpoint
host: a busy host is left out of the poll, so a slow receiver holds back only itself. Each
attempt is claimed (with a lease) before it is made, so instances never send one attempt
twice; when an instance dies, its leases run out and another takes the attempts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from storage.deliveries import Claim, DeliveryRepository

log = logging.getLogger("notifier.scheduler")


def _now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(
        self,
        deliveries: DeliveryRepository,
        attempt: Callable[[Claim], Awaitable[None]],
        *,
        owner: str,
        lease: timedelta,
        poll_seconds: float,
        concurrency: int,
        host_concurrency: int,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._deliveries = deliveries
        self._attempt = attempt
        self._owner = owner
        self._lease = lease
        self._poll_seconds = poll_seconds
        self._concurrency = concurrency
        self._host_concurrency = host_concurrency
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._per_host: Counter[str] = Counter()

    def wake(self) -> None:
        """Poll now (a delivery was created or an attempt finished)."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.poll()
            except Exception:
                log.exception("polling the webhook schedule failed; polling again")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._wake.wait()

    async def poll(self) -> int:
        """Claim and start the due attempts there is room for; returns how many started."""
        free = self._concurrency - len(self._inflight)
        if free <= 0:
            return 0
        busy = {h for h, n in self._per_host.items() if n >= self._host_concurrency}
        due = await self._deliveries.due(self._clock(), limit=4 * free, skip_hosts=busy)
        started = 0
        for entry in due:
            if self._stopping or len(self._inflight) >= self._concurrency:
                break
            if entry.delivery_id in self._inflight:
                continue
            if self._per_host[entry.host] >= self._host_concurrency:
                continue
            claim = await self._deliveries.claim(
                entry, owner=self._owner, now=self._clock(), lease=self._lease
            )
            if claim is None:
                continue
            self._per_host[entry.host] += 1
            self._inflight[entry.delivery_id] = asyncio.create_task(self._run(claim))
            started += 1
        return started

    async def _run(self, claim: Claim) -> None:
        due = claim.due
        try:
            await self._attempt(claim)
            await self._deliveries.release(claim)
        except Exception:
            log.exception(
                "delivery %s attempt %d could not be completed; it is taken up again when "
                "its lease ends",
                due.delivery_id,
                due.attempt,
            )
        finally:
            self._per_host[due.host] -= 1
            if self._per_host[due.host] <= 0:
                del self._per_host[due.host]
            self._inflight.pop(due.delivery_id, None)
            self._wake.set()

    async def stop(self, grace: float) -> None:
        """Stop claiming; let attempts in flight finish within `grace` seconds."""
        self._stopping = True
        self._wake.set()
        pending = list(self._inflight.values())
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
