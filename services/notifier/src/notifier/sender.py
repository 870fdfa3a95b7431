"""One attempt of one delivery: render, sign, POST, record.

The outcome is written to the attempt log before the schedule moves on, so a crash after the
log write is rolled forward by the next claimant instead of sending again. The one window
left: a receiver answered 2xx and we died before the log write (milliseconds) — that attempt
is made again with the same `webhook-id`, which receivers use to drop duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from bus import logs, metrics, tracing
from egress import EgressRefused
from egress.retry_after import parse_retry_after
from runview import RunRenderer
from storage.deliveries import Attempt, Claim, Delivery, DeliveryRepository, DeliveryStatus, Due
from storage.runs import RunRepository
from storage.tenants import TenantRepository

from notifier.retries import RetrySchedule, decide
from notifier.signing import signed_headers, webhook_body

log = logging.getLogger("notifier.sender")


def _now() -> datetime:
    return datetime.now(UTC)


class Sender:
    def __init__(
        self,
        *,
        deliveries: DeliveryRepository,
        runs: RunRepository,
        tenants: TenantRepository,
        renderer: RunRenderer,
        http: httpx.AsyncClient,
        schedule: RetrySchedule,
        timeout: float,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._deliveries = deliveries
        self._runs = runs
        self._tenants = tenants
        self._renderer = renderer
        self._http = http
        self._schedule = schedule
        self._timeout = timeout
        self._rng = rng or random.Random()
        self._clock = clock

    async def attempt(self, claim: Claim) -> None:
        due = claim.due
        delivery = await self._deliveries.get(due.delivery_id)
        if delivery is None:
            await self._deliveries.unschedule(due.delivery_id)
            return
        # This attempt runs in a task of its own: what is bound here stays with its lines.
        logs.bind(runId=delivery.run_id, tenantId=delivery.tenant_id)
        if len(delivery.attempts) >= due.attempt:
            await self._roll_forward(delivery, due)
            return
        try:
            record = await self._runs.get(delivery.run_id)
            if record is None:
                raise LookupError(f"run {delivery.run_id} is gone")
            logs.bind(traceId=tracing.trace_id_of(record.traceparent))
            resource = await self._renderer.render(record)
        except LookupError as exc:
            # Nothing to send, ever: end the delivery instead of retrying it forever.
            log.error("delivery %s cannot be rendered: %s", delivery.delivery_id, exc)
            await self._deliveries.record_attempt(
                delivery.delivery_id,
                Attempt(
                    number=due.attempt,
                    at=self._clock(),
                    duration_ms=0,
                    status_code=None,
                    error=f"cannot render the run: {exc}",
                    next_attempt_at=None,
                ),
                status=DeliveryStatus.FAILED,
            )
            await self._deliveries.unschedule(delivery.delivery_id)
            return
        body = webhook_body(delivery.event, delivery.occurred_at, resource)
        sent_at = self._clock()
        secrets = await self._tenants.signing_secrets(delivery.tenant_id, now=sent_at)
        headers = signed_headers(delivery.webhook_id, sent_at, body, secrets.valid(sent_at))

        status_code, retry_after, error = None, None, None
        started = time.monotonic()
        # In the run's trace; the instrumented client sends `traceparent` with the request.
        attempt_span = tracing.run_span(
            "webhook attempt",
            record.traceparent,
            runId=delivery.run_id,
            **{"webhook.delivery_id": delivery.delivery_id, "webhook.attempt": str(due.attempt)},
        )
        try:
            with attempt_span:
                async with (
                    asyncio.timeout(self._timeout),
                    self._http.stream(
                        "POST", delivery.url, content=body.encode(), headers=headers
                    ) as response,
                ):
                    status_code = response.status_code
                    retry_after = parse_retry_after(
                        response.headers.get("retry-after"), self._clock()
                    )
        except EgressRefused as exc:
            error = f"refused: {exc.reason}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"no response within {self._timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        except Exception as exc:
            # Anything else the receiver's answer makes go wrong is this attempt's outcome
            # too: raising would leave the attempt unrecorded, and it would be sent again
            # each time its lease ends, forever.
            log.warning(
                "delivery %s: sending failed unexpectedly", delivery.delivery_id, exc_info=True
            )
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")[:500]
        duration_ms = round((time.monotonic() - started) * 1000)

        decision = decide(
            status_code=status_code,
            retry_after=retry_after,
            position=due.position,
            schedule=self._schedule,
            rng=self._rng,
        )
        next_at = (
            self._clock() + timedelta(seconds=decision.retry_in)
            if decision.retry_in is not None
            else None
        )
        attempt = Attempt(
            number=due.attempt,
            at=sent_at,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error,
            next_attempt_at=next_at,
        )
        await self._deliveries.record_attempt(delivery.delivery_id, attempt, status=decision.status)
        if decision.status is DeliveryStatus.SUCCEEDED:
            delivered_in = (self._clock() - delivery.occurred_at).total_seconds()
            metrics.WEBHOOK_DELIVERY.observe(max(0.0, delivered_in))
        if next_at is not None:
            await self._deliveries.reschedule(due, at=next_at)
        else:
            await self._deliveries.unschedule(delivery.delivery_id)
        log.info(
            "delivery %s attempt %d: %s -> %s",
            delivery.delivery_id,
            due.attempt,
            status_code if status_code is not None else error,
            decision.status.value,
            extra={"event": "webhook.attempt", "durationMs": duration_ms},
        )

    async def _roll_forward(self, delivery: Delivery, due: Due) -> None:
        """The attempt was made and logged by a claimant that died before moving the
        schedule on: move it on now, without sending again."""
        if delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at is not None:
            await self._deliveries.reschedule(due, at=delivery.next_attempt_at)
        else:
            await self._deliveries.unschedule(delivery.delivery_id)
