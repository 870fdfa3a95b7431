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


def bootstrap_servers_list(bootstrap_servers: str) -> list[str]:
    """`host:port` items of a comma-separated list (blanks ignored)."""
    return [item.strip() for item in bootstrap_servers.split(",") if item.strip()]


def make_broker(
    bootstrap_servers: str,
    *,
    client_id: str,
    graceful_timeout: float = 30.0,
    logger: logging.Logger | None = None,
) -> KafkaBroker:
    """A broker whose producer waits for all in-sync replicas and never duplicates on retry.

    `bootstrap_servers` is `KAFKA_BOOTSTRAP_SERVERS`: one `host:port` or several, separated
    by commas. `graceful_timeout` is how long a stopping service waits for in-flight handlers,
    so SIGTERM finishes the work already taken instead of dropping it.
    """
    return KafkaBroker(
        # FastStream passes a string on as a one-item list, which aiokafka does not split:
        # "a:1,b:2" would be one host named "a:1,b".
        bootstrap_servers_list(bootstrap_servers),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        allow_auto_create_topics=False,
        graceful_timeout=graceful_timeout,
        logger=logger or logging.getLogger(f"{client_id}.kafka"),
        # One line per message received and processed costs more than many handlers do;
        # they are there with LOG_LEVEL=DEBUG.
        log_level=logging.DEBUG,
        # No dependency injection per message: a typed handler gets the event its decoder
        # made (`bus.subscribe`), any other handler the message itself, so no body is
        # JSON-decoded that nobody reads.
        apply_types=False,
        decoder=_message_itself,
        request_timeout_ms=15_000,
        # Messages received and published per topic, their sizes and handling times
        # (`workflow_kafka_*`), in the registry every service serves at /metrics. Where
        # records are handed to KeyedWorkers the handling time is the hand-over, the work
        # itself is in the services' own metrics.
        middlewares=(
            KafkaPrometheusMiddleware(
                registry=REGISTRY, app_name=client_id, metrics_prefix="workflow_kafka"
            ),
            # Every record published carries the current W3C trace context (`traceparent`,
            # `tracestate`) and gets a publish span; each record consumed gets a consume span
            # continuing it (and `Dispatcher.dispatch` one for the work, which KeyedWorkers
            # does after the handler has returned).
            KafkaTelemetryMiddleware(include_messages_counters=False),
        ),
    )
