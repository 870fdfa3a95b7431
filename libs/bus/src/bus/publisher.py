"""Publishing events: the topic follows from the event type, the key from the runId."""

from __future__ import annotations

from collections.abc import Mapping

from contracts.events import EventData
from faststream.kafka import KafkaBroker

from bus.envelope import encode
from bus.routing import TOPIC_OF
from bus.topics import Topic, topic_name


class EventPublisher:
    def __init__(self, broker: KafkaBroker, *, source: str, prefix: str = "") -> None:
        self._broker = broker
        self._source = source
        self._prefix = prefix

    async def publish(
        self,
        event: EventData,
        *,
        traceparent: str | None = None,
        event_id: str | None = None,
        extensions: Mapping[str, str] | None = None,
    ) -> None:
        """Returns once the broker has acknowledged the write on all in-sync replicas.

        A stable `event_id` (e.g. derived from runId + revision) lets consumers dedupe.
        """
        out = encode(
            event,
            source=self._source,
            traceparent=traceparent,
            event_id=event_id,
            extensions=extensions,
        )
        await self._broker.publish(
            out.value,
            topic=topic_name(TOPIC_OF[type(event)], self._prefix),
            key=out.key,
            headers=out.headers,
        )

    async def dead_letter(
        self, *, topic: str, key: bytes | None, value: bytes, headers: Mapping[str, str], error: str
    ) -> None:
        """Park a message we can never handle, with the reason, so its partition moves on."""
        dl_headers = dict(headers)
        dl_headers["x-dead-letter-topic"] = topic
        dl_headers["x-dead-letter-error"] = error[:2000]
        await self._broker.publish(
            value, topic=topic_name(Topic.DEAD_LETTER, self._prefix), key=key, headers=dl_headers
        )
