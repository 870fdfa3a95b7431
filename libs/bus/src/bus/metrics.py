"""The Prometheus metrics of the four services, in one place so their names stay one family.

Every name starts with `workflow_`. They live in prometheus-client's default registry, which
each service serves at `/metrics` (ingress on its API port behind the metrics token, a worker
on its ops port, see `bus.ops`). Defining a metric only registers it; nothing is measured until
a service observes something.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from contracts.events import (
    EventData,
    RunCanceled,
    RunCompleted,
    RunEventData,
    RunFailed,
    RunStarted,
)
from prometheus_client import Counter, Gauge, Histogram

from bus.publisher import EventPublisher

log = logging.getLogger("bus.metrics")

# Latencies from a few milliseconds (a text step) to minutes (an image model, a long run).
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

RUNS = Counter(
    "workflow_runs",
    "Runs that started or ended, by workflow and what happened (started, completed, failed, "
    "canceled); counted by the orchestrator when it publishes the run event.",
    ["workflow", "event"],
)
RUN_DURATION = Histogram(
    "workflow_run_duration_seconds",
    "From a run's start to its end, by workflow and final status.",
    ["workflow", "status"],
    buckets=_SECONDS,
)
STEP_DURATION = Histogram(
    "workflow_step_duration_seconds",
    "One try of a step in the executor, from taking its request to publishing its result, "
    "by node type.",
    ["node_type"],
    buckets=_SECONDS,
)
QUEUE_WAIT = Histogram(
    "workflow_queue_wait_seconds",
    "From an event's publication to its handler starting (e.g. step.requested: dispatch to "
    "start), by event type.",
    ["event"],
    buckets=_SECONDS,
)
CONSUMER_LAG = Gauge(
    "workflow_kafka_consumer_lag",
    "Records of a partition not yet consumed (high-water mark minus position), by consumer "
    "group, topic and partition; measured at each scrape.",
    ["group", "topic", "partition"],
)
WEBHOOK_ATTEMPTS = Counter(
    "workflow_webhook_attempts",
    "Webhook delivery attempts by outcome (succeeded, retrying, failed, gone).",
    ["outcome"],
)
WEBHOOK_LATENCY = Histogram(
    "workflow_webhook_attempt_duration_seconds",
    "How long one webhook request took, by outcome.",
    ["outcome"],
    buckets=_SECONDS,
)
WEBHOOK_DELIVERY = Histogram(
    "workflow_webhook_delivery_seconds",
    "From the run event a webhook reports (its time) to the receiver's 2xx, retries included.",
    buckets=(*_SECONDS, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600, 72 * 3600),
)
RATE_LIMITED = Counter(
    "workflow_rate_limit_refusals",
    "Requests refused with 429 by the ingress, by kind (rate-limited, quota-exceeded, …).",
    ["kind"],
)
BACKLOG = Gauge(
    "workflow_backlog",
    "Work waiting, measured at each scrape: `claims` (decided changes whose outbox is not yet "
    "carried out), `timers` (runs with a timer due and not yet fired), `webhooks` (attempts "
    "due and not yet made).",
    ["kind"],
)

_RUN_EVENTS: Mapping[type[EventData], str] = {
    RunStarted: "started",
    RunCompleted: "completed",
    RunFailed: "failed",
    RunCanceled: "canceled",
}


def short_type(event_type: str) -> str:
    """`com.sprello.workflow.step.requested.v1` → `step.requested`."""
    parts = event_type.split(".")
    return ".".join(parts[-3:-1]) if len(parts) >= 3 else event_type


class RunEventCounter:
    """Counts run events once each: an event published again (a retried outbox, a redelivery)
    has the same stable id and is not counted twice by this process."""

    def __init__(self, memory: int = 10_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._memory = memory

    def observe(self, event: EventData, event_id: str | None) -> None:
        what = _RUN_EVENTS.get(type(event))
        if what is None or not isinstance(event, RunEventData):
            return
        if event_id is not None:
            if event_id in self._seen:
                return
            self._seen[event_id] = None
            while len(self._seen) > self._memory:
                self._seen.popitem(last=False)
        RUNS.labels(event.workflow_id, what).inc()
        if what != "started" and event.started_at is not None:
            end = event.completed_at or datetime.now(UTC)
            seconds = (end - event.started_at).total_seconds()
            RUN_DURATION.labels(event.workflow_id, what).observe(max(0.0, seconds))


class MeteredPublisher(EventPublisher):
    """An `EventPublisher` that counts the run events it publishes (`workflow_runs`,
    `workflow_run_duration_seconds`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runs = RunEventCounter()

    async def publish(
        self,
        event: EventData,
        *,
        event_id: str | None = None,
        extensions: Mapping[str, str] | None = None,
    ) -> None:
        await super().publish(event, event_id=event_id, extensions=extensions)
        self._runs.observe(event, event_id)


def observe_queue_wait(headers: Mapping[str, str]) -> None:
    """Observe `workflow_queue_wait_seconds` for a record about to be handled, from its
    CloudEvents `ce_type` and `ce_time` headers (records without them are not observed)."""
    event_type, time = headers.get("ce_type"), headers.get("ce_time")
    if not event_type or not time:
        return
    try:
        published_at = datetime.fromisoformat(time)
    except ValueError:
        return
    if published_at.tzinfo is None:
        published_at = published_at.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - published_at).total_seconds()
    QUEUE_WAIT.labels(short_type(event_type)).observe(max(0.0, seconds))


async def measure_lag(consumers: Iterable[tuple[str, Any]], within: float = 1.0) -> None:
    """Set `workflow_kafka_consumer_lag` for every partition assigned to these (group,
    aiokafka consumer) pairs; partitions no longer assigned disappear."""
    values: dict[tuple[str, str, str], float] = {}
    for group, consumer in consumers:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue  # nothing fetched from it yet
            try:
                async with asyncio.timeout(within):
                    position = await consumer.position(tp)
            except Exception:
                continue
            values[(group, tp.topic, str(tp.partition))] = max(0, high - position)
    CONSUMER_LAG.clear()
    for labels, value in values.items():
        CONSUMER_LAG.labels(*labels).set(value)


def backlog_gauge(kind: str, count: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[None]]:
    """A collector for `bus.ops`: sets `workflow_backlog{kind}` to what `count` answers."""

    async def collect() -> None:
        BACKLOG.labels(kind).set(await count())

    return collect
