"""Publishing events: the topic follows from the event type, the key from the runId."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from contracts.events import EventData
from faststream.kafka import KafkaBroker

from bus import deadletter, tracing
from bus.deadletter import DeadLetter
from bus.envelope import encode
from bus.routing import TOPIC_OF
from bus.topics import DESCRIPTION, Topic, topic_name

CLOUDEVENTS = (
    " Each record is a CloudEvent 1.0 in Kafka binary content mode: the value is the event's "
    "JSON (the schema here), the key is its runId, and headers carry `ce_id`, `ce_type` (which "
    "event: its schema's title names the type, e.g. `RunCompleted` is "
    "`com.sprello.workflow.run.completed.v1`), `ce_source`, `ce_subject` (the runId), "
    "`ce_time`, `content-type: application/json`, and the trace context twice: W3C "
    "`traceparent`/`tracestate` headers and CloudEvents' distributed-tracing extension "
    "(`ce_traceparent`/`ce_tracestate`)."
)


def payload_of(topic: Topic) -> Any:
    """The type of a topic's record values: the union of the event types it carries."""
    if topic is Topic.DEAD_LETTER:
        return bytes
    types = tuple(model for model, t in TOPIC_OF.items() if t is topic)
    return types[0] if len(types) == 1 else Union[types]  # noqa: UP007 - a runtime union


def declare_publishers(broker: KafkaBroker, prefix: str = "") -> dict[Topic, Any]:
    """One typed FastStream publisher per topic of the registry: what every service publishes
    through, and what the AsyncAPI document (`bus.asyncapi`) describes."""
    return {
        topic: broker.publisher(
            topic_name(topic, prefix),
            title=topic.value,
            description=DESCRIPTION[topic] + ("" if topic is Topic.DEAD_LETTER else CLOUDEVENTS),
            schema=payload_of(topic),
        )
        for topic in Topic
    }


class EventPublisher:
    def __init__(self, broker: KafkaBroker, *, source: str, prefix: str = "") -> None:
        """Declares the broker's publishers: create it before the broker starts."""
        self._publishers = declare_publishers(broker, prefix)
        self._source = source

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
            # The W3C headers are added by the broker's telemetry middleware; the CloudEvents
            # extension carries the same context as attributes of the event itself.
            extensions={**tracing.cloudevents_extension(), **(extensions or {})},
        )
        await self._publishers[TOPIC_OF[type(event)]].publish(
            out.value, key=out.key, headers=out.headers
        )

    async def dead_letter(self, letter: DeadLetter) -> None:
        """Park a message we can never handle, with the reason, so its partition moves on.

        A value that does not fit the dead-letter topic (the headers add to it) is parked
        without its value rather than not at all; any other failure is raised.
        """
        parked = self._publishers[Topic.DEAD_LETTER]
        headers = letter.record_headers()
        try:
            await parked.publish(letter.value, key=letter.key, headers=headers)
        except (MessageSizeTooLargeError, RecordTooLargeError):
            headers[deadletter.VALUE_DROPPED] = str(len(letter.value))
            await parked.publish(b"", key=letter.key, headers=headers)
