"""Wiring: the one place where the notifier's pieces are put together."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from datetime import UTC, datetime

import egress
from bus import metrics
from bus.broker import make_broker
from bus.consumer import Dispatcher
from bus.envelope import WEBHOOK
from bus.ops import OpsServer
from bus.publisher import EventPublisher
from bus.startup import kafka_ready, require
from bus.subscribe import subscribe_events
from bus.topics import Topic, topic_name
from faststream import AckPolicy, FastStream
from faststream.kafka.annotations import KafkaMessage
from runview import Definitions, RunRenderer
from storage import mongo
from storage.assets import AssetStore
from storage.runs import RunRepository
from storage.tenants import TenantRepository
from storage.workflows import WorkflowRepository

from contracts import events as ev
from notifier.metered import MeteredDeliveries
from notifier.scheduler import Scheduler
from notifier.sender import Sender
from notifier.service import Notifier
from notifier.settings import NotifierSettings

log = logging.getLogger("notifier")

RUN_EVENTS = (ev.RunStarted, ev.RunCompleted, ev.RunFailed, ev.RunCanceled)

USER_AGENT = "Sprello-Webhooks/1.0"


def create_app(settings: NotifierSettings) -> FastStream:
    broker = make_broker(settings.kafka_bootstrap_servers, client_id="notifier")
    client = mongo.connect(settings.mongodb_url, app_name="notifier")
    db = client[settings.mongodb_database]
    runs = RunRepository(db)
    deliveries = MeteredDeliveries(db)
    store = AssetStore(settings.s3_config())
    schedule = settings.retry_schedule()
    http = egress.client(
        settings.egress_policy(),
        timeout=settings.notifier_attempt_timeout_seconds,
        headers={"user-agent": USER_AGENT},
    )
    sender = Sender(
        deliveries=deliveries,
        runs=runs,
        tenants=TenantRepository(db),
        renderer=RunRenderer(
            Definitions(WorkflowRepository(db)),
            lambda ref: store.presign(ref, expires=settings.s3_url_expiry),
        ),
        http=http,
        schedule=schedule,
        timeout=settings.notifier_attempt_timeout_seconds,
    )
    scheduler = Scheduler(
        deliveries,
        sender.attempt,
        owner=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}",
        lease=settings.lease,
        poll_seconds=settings.notifier_poll_seconds,
        concurrency=settings.notifier_concurrency,
        host_concurrency=settings.notifier_host_concurrency,
    )
    notifier = Notifier(runs, deliveries, schedule, wake=scheduler.wake)
    publisher = EventPublisher(broker, source="/notifier", prefix=settings.kafka_topic_prefix)
    dispatcher = Dispatcher(
        dict.fromkeys(RUN_EVENTS, notifier.on_run_event),
        publisher,
        transient=mongo.TRANSIENT_ERRORS,
        max_attempts=settings.max_message_attempts,
    )

    events = broker.subscriber(
        topic_name(Topic.RUN_EVENTS, settings.kafka_topic_prefix),
        group_id=settings.notifier_group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="notifier",
        description="Run events become webhook deliveries, for the runs that asked for one.",
    )

    def wants_webhook(headers: Mapping[str, str]) -> bool:
        return headers.get(f"ce_{WEBHOOK}") != "false"

    async def take(msg: KafkaMessage, event: ev.EventData | None) -> None:
        if event is None and not wants_webhook(msg.headers):
            return  # the run asked for no webhook: nothing to decode or look up
        metrics.observe_queue_wait(msg.headers)
        await dispatcher.handle(msg, event)

    subscribe_events(broker, events, RUN_EVENTS, take, accept=wants_webhook)

    background: set[asyncio.Task[None]] = set()

    async def webhooks_due() -> int:
        return await db.webhook_schedule.count_documents({"dueAt": {"$lte": datetime.now(UTC)}})

    ops = OpsServer(
        broker,
        host=settings.ops_host,
        port=settings.notifier_ops_port,
        checks={"mongodb": lambda: mongo.ping(db)},
        collectors=[metrics.backlog_gauge("webhooks", webhooks_due)],
    )

    async def check_dependencies() -> None:
        timeout = settings.startup_timeout_seconds
        await require("MongoDB", settings.mongodb_url, lambda: mongo.ping(db), timeout)
        await require(
            "Kafka", settings.kafka_bootstrap_servers, lambda: kafka_ready(broker), timeout
        )

    async def start_scheduler() -> None:
        background.add(asyncio.create_task(scheduler.run(), name="webhook-scheduler"))

    async def stop_scheduler() -> None:
        await scheduler.stop(grace=settings.notifier_attempt_timeout_seconds + 5)
        for task in background:
            task.cancel()

    async def close() -> None:
        await http.aclose()
        await client.close()

    return FastStream(
        broker,
        on_startup=[ops.start, check_dependencies],
        after_startup=[start_scheduler, ops.started],
        on_shutdown=[ops.stopping, stop_scheduler],
        after_shutdown=[close, ops.stop],
    )
