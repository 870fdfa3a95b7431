"""Turning run lifecycle events into webhook deliveries (one per run and event type)."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from cachetools import LRUCache
from contracts.events import RunEventData
from contracts.run import RunStatus
from storage.deliveries import Delivery, DeliveryRepository, DeliveryStatus, delivery_id
from storage.runs import RunRepository

from notifier.retries import RetrySchedule

log = logging.getLogger("notifier")

EVENT_OF_STATUS = {
    RunStatus.RUNNING: "started",
    RunStatus.COMPLETED: "completed",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELED: "canceled",
}
DEFAULT_EVENTS = ("completed", "failed", "canceled")


def _now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    def __init__(
        self,
        runs: RunRepository,
        deliveries: DeliveryRepository,
        schedule: RetrySchedule,
        *,
        wake: Callable[[], None],
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._runs = runs
        self._deliveries = deliveries
        self._schedule = schedule
        self._wake = wake
        self._rng = rng or random.Random()
        self._clock = clock
        # A run's webhook is fixed when it is created: read once for its several events.
        self._webhooks: LRUCache[str, tuple[str, str | None]] = LRUCache(maxsize=10_000)

    async def _webhook_of(self, run_id: str) -> tuple[str, str | None] | None:
        """(tenant, webhook JSON or None) of a run, or None when the run does not exist."""
        known = self._webhooks.get(run_id)
        if known is None:
            record = await self._runs.get(run_id)
            if record is None:
                return None
            known = self._webhooks[run_id] = (record.tenant_id, record.webhook_json)
        return known

    async def on_run_event(self, event: RunEventData) -> None:
        """Store the delivery the event asks for; a duplicate event finds it stored."""
        name = EVENT_OF_STATUS.get(event.status)
        webhook = await self._webhook_of(event.run_id) if name else None
        if name is None or webhook is None:
            return
        tenant_id, webhook_json = webhook
        if webhook_json is None:
            return
        hook = json.loads(webhook_json)
        selected = hook.get("events")
        if name not in (DEFAULT_EVENTS if selected is None else selected):
            return
        now = self._clock()
        occurred = (event.started_at if name == "started" else event.completed_at) or now
        first = self._schedule.delay(0, self._rng) or 0.0
        delivery = Delivery(
            delivery_id=delivery_id(event.run_id, name),
            run_id=event.run_id,
            tenant_id=tenant_id,
            event=name,
            url=hook["url"],
            status=DeliveryStatus.PENDING,
            created_at=now,
            occurred_at=occurred,
            next_attempt_at=now + timedelta(seconds=first),
        )
        if await self._deliveries.create(delivery):
            log.info(
                "run %s: webhook run.%s scheduled to %s",
                event.run_id,
                name,
                urlsplit(hook["url"]).hostname,  # not the URL: it may carry a token
            )
        self._wake()
