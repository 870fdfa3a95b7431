"""Turning run lifecycle events into webhook deliveries.

Signed, durable, retried delivery is the webhooks issue; until it lands the notifier consumes
the public run events and says plainly, per run that asked for a webhook, that nothing is sent.
"""

from __future__ import annotations

import logging

from contracts.events import RunEventData
from storage.runs import RunRepository

log = logging.getLogger("notifier")


class Notifier:
    def __init__(self, runs: RunRepository) -> None:
        self._runs = runs

    async def on_run_event(self, event: RunEventData) -> None:
        record = await self._runs.get(event.run_id)
        if record is None or record.webhook_json is None:
            return
        log.warning(
            "run %s: a webhook was requested but delivery is not implemented yet; "
            "poll GET /v1/runs/%s instead",
            event.run_id,
            event.run_id,
        )
