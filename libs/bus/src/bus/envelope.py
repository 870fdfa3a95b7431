"""CloudEvents 1.0 in Kafka binary content mode (the W3C trace context is added by the
broker's telemetry middleware: `bus.tracing`).

Headers `ce_*` carry the attributes, `content-type` the data's media type, the value is the
event's JSON and the key is the runId (the CloudEvents `subject`), so one run stays in order on
one partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent
from contracts.events import BY_TYPE, EventData
from pydantic import ValidationError

WEBHOOK = "webhook"
"""CloudEvents extension on run events: "true" when the run asked for a webhook, "false" when
not, so the notifier neither decodes nor looks up the runs of the others (absent: unknown)."""


class PoisonMessage(Exception):
    """A message that can never be handled: undecodable, unknown type or failing its schema."""


@dataclass(frozen=True)
class Outgoing:
    key: bytes
    value: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Envelope:
    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: EventData


def envelope_of(headers: Mapping[str, str], data: EventData) -> Envelope:
    """The CloudEvent of a record whose data is decoded already (a typed handler's event)."""
    time = headers.get("ce_time")
    try:
        at = datetime.fromisoformat(time) if time else datetime.now(UTC)
    except ValueError:
        at = datetime.now(UTC)
    return Envelope(
        id=headers.get("ce_id", ""),
        type=headers.get("ce_type", data.event_type),
        source=headers.get("ce_source", ""),
        subject=headers.get("ce_subject") or data.run_id,
        time=at,
        data=data,
    )


def encode(
    event: EventData,
    *,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
    extensions: Mapping[str, str] | None = None,
) -> Outgoing:
    attributes: dict[str, object] = {
        **(extensions or {}),
        "type": event.event_type,
        "source": source,
        "subject": event.run_id,
        "datacontenttype": "application/json",
        "time": time or datetime.now(UTC),
    }
    if event_id is not None:
        attributes["id"] = event_id
    cloud_event = CloudEvent(
        attributes=attributes, data=event.model_dump(mode="json", by_alias=True)
    )
    message = ce_kafka.to_binary_event(cloud_event, key_mapper=lambda e: e.get_subject())
    headers = {k: v.decode() for k, v in message.headers.items()}
    return Outgoing(key=event.run_id.encode(), value=message.value, headers=headers)


def decode(headers: Mapping[str, str], value: bytes) -> Envelope:
    """Parse one record; anything we cannot understand raises PoisonMessage."""
    ce_headers = {k: v.encode() for k, v in headers.items() if k.startswith("ce_")}
    if "content-type" in headers:
        ce_headers["content-type"] = headers["content-type"].encode()
    try:
        cloud_event = ce_kafka.from_binary_event(
            ce_kafka.KafkaMessage(headers=ce_headers, key=None, value=value)
        )
    except Exception as exc:
        raise PoisonMessage(f"not a CloudEvent: {exc}") from exc
    model = BY_TYPE.get(cloud_event.get_type())
    if model is None:
        raise PoisonMessage(f"unknown event type {cloud_event.get_type()!r}")
    try:
        data = model.model_validate(cloud_event.get_data())
    except ValidationError as exc:
        raise PoisonMessage(f"{cloud_event.get_type()} fails its schema: {exc}") from exc
    time = cloud_event.get_time() or datetime.now(UTC)
    return Envelope(
        id=cloud_event.get_id(),
        type=cloud_event.get_type(),
        source=cloud_event.get_source(),
        subject=cloud_event.get_subject() or data.run_id,
        time=time,
        data=data,
    )
