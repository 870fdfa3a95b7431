"""Turning a Kafka record into a call of a typed handler, the same way in every service.

Undecodable or schema-failing records go to the dead-letter topic with the reason and are
acknowledged, so they never block a partition. A handler failure is logged with the runId and
re-raised, so the subscriber's ack policy redelivers the record instead of committing it, with
a growing pause. A failure of a dependency (the `transient` exception types) is retried for as
long as it lasts; any other failure is retried `max_attempts` times, then the record is
dead-lettered with the error: a bug or an impossible message must not hold its partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, RequestTimedOutError
from contracts.events import BY_TYPE, EventData
from faststream.kafka.message import KafkaMessage

from bus.envelope import Envelope, PoisonMessage, decode
from bus.publisher import EventPublisher

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

log = logging.getLogger("bus.consumer")

Handler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Incoming:
    """One Kafka record, as a batch subscriber hands it over."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Mapping[str, str]


def incoming(msg: KafkaMessage) -> list[Incoming]:
    """The records of a message from a batch subscriber (`batch=True`: one call per fetch, so
    the framework's cost per call is shared by every record fetched), or of a single one."""
    raw = msg.raw_message
    records: tuple[ConsumerRecord[bytes, bytes], ...] = raw if isinstance(raw, tuple) else (raw,)
    headers = getattr(msg, "batch_headers", None) or [msg.headers]
    return [
        Incoming(r.topic, r.partition, r.offset, r.key, r.value or b"", h)
        for r, h in zip(records, headers, strict=True)
    ]


class Dispatcher:
    def __init__(
        self,
        handlers: Mapping[type[EventData], Handler],
        publisher: EventPublisher,
        *,
        transient: tuple[type[BaseException], ...] = (),
        max_attempts: int = 5,
        retry_delay: float = 0.5,
        max_retry_delay: float = 30.0,
    ) -> None:
        self._handlers = dict(handlers)
        # Known event types nobody here handles (e.g. step.started for the orchestrator):
        # recognised from the `ce_type` header and skipped without decoding.
        self._ignored = frozenset(BY_TYPE) - {t.event_type for t in self._handlers}
        self._publisher = publisher
        self._transient: tuple[type[BaseException], ...] = (
            ConnectionError,
            TimeoutError,
            KafkaConnectionError,
            KafkaTimeoutError,
            RequestTimedOutError,
            *transient,
        )
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._failures: dict[str, int] = {}

    async def handle(self, msg: KafkaMessage) -> Envelope | None:
        """The body of a single-record FastStream subscriber: hand the record to `dispatch`."""
        record = cast("ConsumerRecord", msg.raw_message)
        return await self.dispatch(
            topic=record.topic, key=record.key, value=msg.body, headers=msg.headers
        )

    async def handle_record(self, record: Incoming) -> Envelope | None:
        return await self.dispatch(
            topic=record.topic, key=record.key, value=record.value, headers=record.headers
        )

    async def dispatch(
        self, *, topic: str, key: bytes | None, value: bytes, headers: Mapping[str, str]
    ) -> Envelope | None:
        if headers.get("ce_type") in self._ignored:
            return None
        try:
            envelope = decode(headers, value)
        except PoisonMessage as exc:
            log.error("poison message on %s (key %r) sent to dead letter: %s", topic, key, exc)
            await self._publisher.dead_letter(
                topic=topic, key=key, value=value, headers=headers, error=str(exc)
            )
            return None
        handler = self._handlers.get(type(envelope.data))
        if handler is None:
            return None
        attempt_key = f"{topic}/{envelope.id}"
        try:
            await handler(envelope.data)
        except Exception as exc:
            failures = self._failures.get(attempt_key, 0) + 1
            self._failures[attempt_key] = failures
            transient = isinstance(exc, self._transient)
            if not transient and failures >= self._max_attempts:
                log.exception(
                    "run %s: handling %s failed %d times; sent to the dead-letter topic",
                    envelope.data.run_id,
                    envelope.type,
                    failures,
                )
                del self._failures[attempt_key]
                await self._publisher.dead_letter(
                    topic=topic,
                    key=key,
                    value=value,
                    headers=headers,
                    error=f"{type(exc).__name__}: {exc}",
                )
                return None
            log.exception(
                "run %s: handling %s failed (%s, attempt %d); it will be redelivered",
                envelope.data.run_id,
                envelope.type,
                "transient" if transient else "unexpected",
                failures,
            )
            await asyncio.sleep(min(self._max_retry_delay, self._retry_delay * 2 ** (failures - 1)))
            raise
        self._failures.pop(attempt_key, None)
        return envelope
