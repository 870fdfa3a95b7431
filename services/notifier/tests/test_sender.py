"""One delivery driven through `Sender.attempt` against in-memory stand-ins of its stores and
a mock receiver: whatever the receiver answers, each attempt is recorded and the delivery ends
after its schedule."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from contracts.run import RunResource, RunStatus
from notifier.retries import RetrySchedule
from notifier.sender import Sender
from runview import RunRenderer
from storage.deliveries import (
    Attempt,
    Claim,
    Delivery,
    DeliveryRepository,
    DeliveryStatus,
    Due,
)
from storage.runs import RunRecord, RunRepository
from storage.tenants import SigningSecrets, TenantRepository, new_secret

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SCHEDULE = RetrySchedule.parse("0,5,300", jitter=0)
RUN = RunResource(
    run_id="run_1",
    workflow_id="wf",
    workflow_version=1,
    status=RunStatus.COMPLETED,
    created_at=NOW,
)


@dataclass
class FakeDeliveries:
    delivery: Delivery
    due: Due | None = None
    released: list[str] = field(default_factory=list)

    async def get(self, delivery_id: str) -> Delivery | None:
        return self.delivery if delivery_id == self.delivery.delivery_id else None

    async def record_attempt(
        self, delivery_id: str, attempt: Attempt, *, status: DeliveryStatus
    ) -> None:
        self.delivery = replace(
            self.delivery,
            attempts=(*self.delivery.attempts, attempt),
            status=status,
            next_attempt_at=attempt.next_attempt_at,
        )

    async def reschedule(self, due: Due, *, at: datetime) -> None:
        self.due = replace(due, due_at=at, attempt=due.attempt + 1, position=due.position + 1)

    async def unschedule(self, delivery_id: str) -> None:
        self.due = None


class FakeRuns:
    async def get(self, run_id: str) -> RunRecord:
        return cast(RunRecord, SimpleNamespace(traceparent=None))


class FakeRenderer:
    async def render(self, record: RunRecord) -> RunResource:
        return RUN


class FakeTenants:
    secret = new_secret()

    async def signing_secrets(self, tenant_id: str, *, now: datetime) -> SigningSecrets:
        return SigningSecrets(current=self.secret, created_at=NOW)


def _sender(deliveries: FakeDeliveries, respond: httpx.MockTransport) -> Sender:
    return Sender(
        deliveries=cast(DeliveryRepository, deliveries),
        runs=cast(RunRepository, FakeRuns()),
        tenants=cast(TenantRepository, FakeTenants()),
        renderer=cast(RunRenderer, FakeRenderer()),
        http=httpx.AsyncClient(transport=respond),
        schedule=SCHEDULE,
        timeout=5,
        rng=random.Random(1),
        clock=lambda: NOW,
    )


def _delivery() -> FakeDeliveries:
    delivery = Delivery(
        delivery_id="run_1:completed",
        run_id="run_1",
        tenant_id="t",
        event="completed",
        url="http://receiver.test/hook",
        status=DeliveryStatus.PENDING,
        created_at=NOW,
        occurred_at=NOW,
    )
    due = Due("run_1:completed", NOW, attempt=1, position=0, host="receiver.test:80")
    return FakeDeliveries(delivery, due)


async def _deliver(retry_after: bytes) -> FakeDeliveries:
    """Make attempts while the delivery has one scheduled (at most 10, as a fuse)."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers=[(b"retry-after", retry_after)])

    deliveries = _delivery()
    sender = _sender(deliveries, httpx.MockTransport(answer))
    for _ in range(10):
        if deliveries.due is None:
            break
        await sender.attempt(Claim("c", deliveries.due))
    return deliveries


@pytest.mark.parametrize(
    "retry_after",
    [
        "²".encode("latin-1"),  # b"\xb2": str.isdigit() is True, float() refuses it
        "٣".encode(),  # an Arabic-Indic digit: not a delta-seconds either
        b"\xff\xfe",
        b"9" * 5000,  # huge
        b"-5",
        b"1e400",
        b"Fri, 31 Dec 9999 23:59:59 GMT",  # a date far away
        b"Tue, 99 Feb 2026 00:00:00 GMT",
    ],
)
async def test_a_retry_after_that_is_not_ascii_or_not_sane_ends_the_delivery_after_its_schedule(
    retry_after: bytes,
) -> None:
    deliveries = await _deliver(retry_after)
    delivery = deliveries.delivery
    assert deliveries.due is None
    assert delivery.status is DeliveryStatus.FAILED
    assert [a.status_code for a in delivery.attempts] == [503] * SCHEDULE.attempts
    # Each wait is the schedule's, or a Retry-After clamped to the schedule's maximum.
    waits = [
        (a.next_attempt_at - NOW).total_seconds()
        for a in delivery.attempts
        if a.next_attempt_at is not None
    ]
    assert all(SCHEDULE.delays[1] <= w <= SCHEDULE.max_retry_after for w in waits)


async def test_an_ascii_retry_after_is_still_honoured() -> None:
    deliveries = await _deliver(b"120")
    first = deliveries.delivery.attempts[0]
    assert first.next_attempt_at == NOW + timedelta(seconds=120)


async def test_an_unexpected_error_while_sending_is_recorded_as_that_attempt() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("the transport broke in a way nobody planned for")

    deliveries = _delivery()
    sender = _sender(deliveries, httpx.MockTransport(broken))
    await sender.attempt(Claim("c", cast(Any, deliveries.due)))
    attempt = deliveries.delivery.attempts[0]
    assert attempt.status_code is None
    assert attempt.error is not None
    assert "RuntimeError" in attempt.error
    assert deliveries.due is not None
    assert deliveries.due.position == 1
