"""Typed subscribers: one FastStream handler per event type a subscriber takes.

Each handler is chosen by its filter from the record's `ce_type` header and gets the event
decoded by FastStream's decoder hook (`typed_decoder`: the CloudEvent parsed once, validated
against the handler's pydantic model), so FastStream knows each subscriber's messages and
`faststream docs gen` describes them. The broker applies no types of its own
(`bus.broker.make_broker`): the decoder is the one decode, with no dependency injection per
message.

A record no typed handler takes (a type the service ignores, one its `accept` turns down
before decoding, or one that fails to decode) goes to the subscriber's last handler with
`event=None`, so nothing is dropped without a decision: the dispatcher parks what cannot be
decoded on the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from contracts.events import EventData
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from bus.envelope import PoisonMessage, decode

Take = Callable[[KafkaMessage, EventData | None], Awaitable[object]]
"""What a service does with a record: the message and its event (None: not decoded)."""

Accept = Callable[[Mapping[str, str]], bool]


def typed_decoder(
    model: type[EventData],
) -> Callable[[StreamMessage[Any]], Awaitable[EventData]]:
    """FastStream's decoder for records of `model`: the CloudEvent's data, validated."""

    async def decoder(msg: StreamMessage[Any]) -> EventData:
        data = decode(msg.headers, msg.body).data
        if not isinstance(data, model):
            raise PoisonMessage(f"{msg.headers.get('ce_type')} is not a {model.__name__}")
        return data

    return decoder


def subscribe_events(
    broker: KafkaBroker,
    subscriber: Any,
    models: Iterable[type[EventData]],
    take: Take,
    *,
    accept: Accept = lambda _headers: True,
) -> None:
    """Register one typed handler per model on `subscriber`, then the handler of the rest."""
    for model in models:
        decoder = typed_decoder(model)

        async def chosen(
            msg: StreamMessage[Any],
            event_type: str = model.event_type,
            decoder: Callable[[StreamMessage[Any]], Awaitable[EventData]] = decoder,
        ) -> bool:
            if msg.headers.get("ce_type") != event_type or not accept(msg.headers):
                return False
            try:
                await msg.decode()  # cached for the handler: decoded once
            except PoisonMessage:
                return False  # the last handler parks it
            return True

        subscriber(_typed_handler(broker, model, take), filter=chosen, decoder=decoder)

    async def undecoded(msg: KafkaMessage) -> None:
        await take(msg, None)

    subscriber(undecoded)


def _typed_handler(
    broker: KafkaBroker, model: type[EventData], take: Take
) -> Callable[..., Awaitable[None]]:
    async def handler(event: EventData) -> None:
        await take(broker.context.get_local("message"), event)

    # FastStream documents a handler's payload from its signature and names it after it.
    handler.__annotations__ = {"event": model, "return": None}
    handler.__name__ = handler.__qualname__ = model.__name__
    handler.__doc__ = model.__doc__ or f"`{model.event_type}`"
    return handler
