"""The ingress application factory: settings in, app out, nothing created at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bus.broker import make_broker
from bus.consumer import incoming
from bus.envelope import PoisonMessage, decode
from bus.publisher import EventPublisher
from bus.startup import kafka_ready, require
from bus.topics import Topic, topic_name
from fastapi import FastAPI
from faststream.kafka.annotations import KafkaMessage
from storage import mongo
from storage.assets import AssetStore
from storage.idempotency import IdempotencyKeys
from storage.keys import ApiKeyRepository
from storage.runs import RunRepository
from storage.workflows import WorkflowRepository

from ingress import problems
from ingress.hub import Hub
from ingress.openapi_bodies import document_raw_bodies
from ingress.routes import assets, events, health, runs, webhooks, workflows
from ingress.runtime import Runtime
from ingress.settings import IngressSettings

log = logging.getLogger("ingress")


def create_app(settings: IngressSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = mongo.connect(settings.mongodb_url, app_name="ingress")
        db = client[settings.mongodb_database]
        store = AssetStore(settings.s3_config())
        broker = make_broker(settings.kafka_bootstrap_servers, client_id="ingress")
        hub = Hub()

        # Every ingress instance sees every run and step event (no consumer group, newest
        # only): they only wake local listeners, the stored run stays the answer.
        @broker.subscriber(
            topic_name(Topic.RUN_EVENTS, settings.kafka_topic_prefix),
            topic_name(Topic.STEP_FINISHED, settings.kafka_topic_prefix),
            group_id=None,
            auto_offset_reset="latest",
            batch=True,
        )
        async def on_events(msg: KafkaMessage) -> None:
            for record in incoming(msg):
                if not hub.wants(record.headers.get("ce_subject"), record.headers.get("ce_type")):
                    continue
                try:
                    envelope = decode(record.headers, record.value)
                except PoisonMessage as exc:
                    log.warning("ignoring undecodable event: %s", exc)
                    continue
                hub.publish(envelope)

        timeout = settings.startup_timeout_seconds
        await require("MongoDB", settings.mongodb_url, lambda: mongo.ping(db), timeout)
        await mongo.ensure_indexes(db)
        await require("S3", settings.s3_endpoint, store.ping, timeout)
        await require(
            "Kafka", settings.kafka_bootstrap_servers, lambda: kafka_ready(broker), timeout
        )
        await broker.start()
        app.state.runtime = Runtime(
            settings=settings,
            db=db,
            broker=broker,
            publisher=EventPublisher(broker, source="/ingress", prefix=settings.kafka_topic_prefix),
            store=store,
            runs=RunRepository(db),
            workflows=WorkflowRepository(db),
            keys=ApiKeyRepository(db),
            hub=hub,
            idempotency=IdempotencyKeys(db),
        )
        try:
            yield
        finally:
            await broker.stop()
            await client.close()

    app = FastAPI(
        title="Workflow API",
        version="1.0.0",
        description="Every canvas workflow as a callable HTTP endpoint.",
        lifespan=lifespan,
    )
    problems.install(app)
    document_raw_bodies(app)
    app.include_router(workflows.router)
    app.include_router(runs.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(assets.router)
    app.include_router(health.router)
    return app
