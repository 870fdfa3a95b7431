"""The one broker factory: every service gets its Kafka connection here."""

from __future__ import annotations

import logging
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from prometheus_client import REGISTRY


async def _message_itself(msg: StreamMessage[Any]) -> StreamMessage[Any]:
    return msg


BATCH_TIMEOUT_MS = 10
"""For every batch subscriber (`batch=True`). FastStream's batch subscriber waits this long for
records and, when none came, *sleeps* as long again before the next fetch: with its default of
200 ms a record reaching an idle consumer waited up to 200 ms more, on every hop of a run
(a trace of one run after a quiet second showed 160 ms between `run.requested` published and
handled). At 10 ms an idle subscriber wakes 50 times a second (about 1 % of a core), and a
record arriving during the sleep waits up to 10 ms: docs/performance-notes.md has the figures."""


def make_broker(
    bootstrap_servers: str,
    *,
    client_id: str,
    graceful_timeout: float = 30.0,
    logger: logging.Logger | None = None,
) -> KafkaBroker:
    """A broker whose producer waits for all in-sync replicas and never duplicates on retry.

    `graceful_timeout` is how long a stopping service waits for in-flight handlers, so SIGTERM
    finishes the work already taken instead of dropping it.
    """
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        allow_auto_create_topics=False,
        graceful_timeout=graceful_timeout,
        logger=logger or logging.getLogger(f"{client_id}.kafka"),
        # One line per message received and processed costs more than many handlers do;
        # they are there with LOG_LEVEL=DEBUG.
        log_level=logging.DEBUG,
        # Every handler takes the message itself (`msg: KafkaMessage`) and decodes what it
        # needs: no JSON decoding of bodies nobody reads, no dependency injection per message.
        apply_types=False,
        decoder=_message_itself,
        request_timeout_ms=15_000,
        # Messages received and published per topic, their sizes and handling times
        # (`workflow_kafka_*`), in the registry every service serves at /metrics. A batch
        # subscriber's call counts each record; where records are handed to KeyedWorkers the
        # handling time is the hand-over, the work itself is in the services' own metrics.
        middlewares=(
            KafkaPrometheusMiddleware(
                registry=REGISTRY, app_name=client_id, metrics_prefix="workflow_kafka"
            ),
            # Every record published carries the current W3C trace context (`traceparent`,
            # `tracestate`) and gets a publish span; consumers continue each record's own
            # context in `Dispatcher.dispatch` (a batch subscriber's middleware sees a batch).
            KafkaTelemetryMiddleware(include_messages_counters=False),
        ),
    )
