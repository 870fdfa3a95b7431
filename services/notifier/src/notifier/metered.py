"""Webhook metrics, observed where an attempt is recorded: the write that makes it count."""

from __future__ import annotations

from bus import metrics
from storage.deliveries import Attempt, DeliveryRepository, DeliveryStatus

_OUTCOME = {
    DeliveryStatus.SUCCEEDED: "succeeded",
    DeliveryStatus.PENDING: "retrying",
    DeliveryStatus.FAILED: "failed",
    DeliveryStatus.GONE: "gone",
}


class MeteredDeliveries(DeliveryRepository):
    """Counts each recorded attempt by outcome (`workflow_webhook_attempts`) and observes how
    long its request took (`workflow_webhook_attempt_duration_seconds`)."""

    async def record_attempt(
        self, delivery_id: str, attempt: Attempt, *, status: DeliveryStatus
    ) -> None:
        await super().record_attempt(delivery_id, attempt, status=status)
        outcome = _OUTCOME.get(status, str(status))
        metrics.WEBHOOK_ATTEMPTS.labels(outcome).inc()
        # A request was made (an answer, or a failure that took time); an attempt recorded
        # without one (a run that cannot be rendered) has no latency.
        if attempt.status_code is not None or attempt.duration_ms > 0:
            metrics.WEBHOOK_LATENCY.labels(outcome).observe(attempt.duration_ms / 1000)
