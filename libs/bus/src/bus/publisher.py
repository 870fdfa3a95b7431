"""Publishing events: the topic follows from the event type, the key from the runId."""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from contracts.events import EventData
from faststream.kafka import KafkaBroker

from bus import deadletter
from bus.deadletter import DeadLetter
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
        event_id: str | None = None,
        extensions: Mapping[str, str] | None = None,
    ) -> None:
        """Returns once the broker has acknowledged the write on all in-sync replicas.

        A stable `event_id` (e.g. derived from runId + revision) lets consumers dedupe.
        """
        out = encode(
            event,
            source=self._source,
            event_id=event_id,
            extensions=extensions,
        )
        await self._broker.publish(
            out.value,
            topic=topic_name(TOPIC_OF[type(event)], self._prefix),
            key=out.key,
            headers=out.headers,
        )

    async def dead_letter(self, letter: DeadLetter) -> None:
        """Park a message we can never handle, with the reason, so its partition moves on.

        A value that does not fit the dead-letter topic (the headers add to it) is parked
        without its value rather than not at all; any other failure is raised.
        """
        topic = topic_name(Topic.DEAD_LETTER, self._prefix)
        headers = letter.record_headers()
        try:
            await self._broker.publish(letter.value, topic=topic, key=letter.key, headers=headers)
        except (MessageSizeTooLargeError, RecordTooLargeError):
            headers[deadletter.VALUE_DROPPED] = str(len(letter.value))
            await self._broker.publish(b"", topic=topic, key=letter.key, headers=headers)
