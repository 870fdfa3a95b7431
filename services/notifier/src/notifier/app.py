"""Wiring: the one place where the notifier's pieces are put together."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from bus.broker import make_broker
from bus.consumer import Dispatcher
from bus.publisher import EventPublisher
from bus.startup import kafka_ready, require
from bus.topics import Topic
from faststream import AckPolicy, FastStream
from faststream.kafka.annotations import KafkaMessage
from storage import mongo
from storage.runs import RunRepository

from contracts import events as ev
from notifier.service import Notifier
from notifier.settings import NotifierSettings

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

log = logging.getLogger("notifier")


def create_app(settings: NotifierSettings) -> FastStream:
    broker = make_broker(settings.kafka_bootstrap_servers, client_id="notifier")
    client = mongo.connect(settings.mongodb_url, app_name="notifier")
    db = client[settings.mongodb_database]
    notifier = Notifier(RunRepository(db))
    publisher = EventPublisher(broker, source="/notifier")
    dispatcher = Dispatcher(
        {
            model: notifier.on_run_event
            for model in (ev.RunStarted, ev.RunCompleted, ev.RunFailed, ev.RunCanceled)
        },
        publisher,
    )

    @broker.subscriber(
        Topic.RUN_EVENTS,
        group_id=settings.notifier_group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def handle(msg: KafkaMessage) -> None:
        record = cast("ConsumerRecord", msg.raw_message)
        await dispatcher.dispatch(
            topic=record.topic, key=record.key, value=msg.body, headers=msg.headers
        )

    async def check_dependencies() -> None:
        timeout = settings.startup_timeout_seconds
        await require("MongoDB", settings.mongodb_url, lambda: mongo.ping(db), timeout)
        await require(
            "Kafka", settings.kafka_bootstrap_servers, lambda: kafka_ready(broker), timeout
        )

    async def close() -> None:
        await client.close()

    return FastStream(broker, on_startup=[check_dependencies], after_shutdown=[close])
