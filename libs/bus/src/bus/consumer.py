"""Turning a Kafka record into a call of a typed handler, the same way in every service.

Undecodable or schema-failing records go to the dead-letter topic with the reason and are
acknowledged, so they never block a partition. A handler failure is logged with the runId and
re-raised: the subscriber's ack policy then redelivers the record instead of committing it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from contracts.events import EventData

from bus.envelope import Envelope, PoisonMessage, decode
from bus.publisher import EventPublisher

log = logging.getLogger("bus.consumer")

Handler = Callable[[Any], Awaitable[None]]


class Dispatcher:
    def __init__(
        self,
        handlers: Mapping[type[EventData], Handler],
        publisher: EventPublisher,
        *,
        retry_delay: float = 1.0,
    ) -> None:
        self._handlers = dict(handlers)
        self._publisher = publisher
        self._retry_delay = retry_delay

    async def dispatch(
        self, *, topic: str, key: bytes | None, value: bytes, headers: Mapping[str, str]
    ) -> Envelope | None:
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
            return envelope
        try:
            await handler(envelope.data)
        except Exception:
            log.exception(
                "run %s: handling %s failed; it will be redelivered",
                envelope.data.run_id,
                envelope.type,
            )
            await asyncio.sleep(self._retry_delay)
            raise
        return envelope
