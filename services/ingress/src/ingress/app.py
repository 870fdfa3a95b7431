"""The ingress application factory: settings in, app out, nothing created at import time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from bus.broker import make_broker
from bus.envelope import envelope_of
from bus.publisher import EventPublisher
from bus.routing import TOPIC_OF
from bus.startup import kafka_ready, require
from bus.subscribe import subscribe_events
from bus.topics import Topic, topic_name
from fastapi import FastAPI
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from storage import mongo
from storage.assets import AssetStore
from storage.idempotency import IdempotencyKeys
from storage.keys import ApiKeyRepository
from storage.runs import RunRepository
from storage.usage import UsageRepository
from storage.workflows import WorkflowRepository

from contracts import events as ev
from ingress import problems, ratelimit, webui
from ingress.auth import RATELIMIT_STATE
from ingress.hub import TERMINAL_TYPES, Hub
from ingress.openapi_bodies import document_raw_bodies
from ingress.ratelimit import MarkedRuns
from ingress.routes import admin, assets, events, health, providers, runs, webhooks, workflows
from ingress.runtime import Runtime
from ingress.settings import IngressSettings

log = logging.getLogger("ingress")

LISTENED = tuple(
    model for model, topic in TOPIC_OF.items() if topic in (Topic.RUN_EVENTS, Topic.STEP_FINISHED)
)
"""What waiting requests and event streams listen to: every run and step event."""


class RateLimitHeaders:
    """Adds the `RateLimit` and `RateLimit-Policy` fields of the limits checked on a request
    to its response, whatever route or error handler made it (a route may return its own
    response object, which FastAPI's injected `Response` headers would not reach)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                decisions = scope.get("state", {}).get(RATELIMIT_STATE)
                names = {name.lower() for name, _ in message.get("headers", [])}
                if decisions and b"ratelimit" not in names:
                    fields = ratelimit.headers(decisions)
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"ratelimit-policy", fields["RateLimit-Policy"].encode()),
                        (b"ratelimit", fields["RateLimit"].encode()),
                    ]
            await send(message)

        await self.app(scope, receive, send_with_fields)


def create_app(settings: IngressSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A request waits on MongoDB for a bounded time, then is answered 503 (problems).
        client = mongo.connect(
            settings.mongodb_url,
            app_name="ingress",
            timeout_ms=int(settings.mongodb_timeout_seconds * 1000),
            socket_timeout_ms=int(settings.mongodb_socket_timeout_seconds * 1000),
        )
        db = client[settings.mongodb_database]
        store = AssetStore(settings.s3_config())
        broker = make_broker(settings.kafka_bootstrap_servers, client_id="ingress")
        publisher = EventPublisher(broker, source="/ingress", prefix=settings.kafka_topic_prefix)
        hub = Hub()
        usage = UsageRepository(db)
        marked_runs = MarkedRuns()
        releasing: set[asyncio.Task[None]] = set()

        async def release(run_ids: list[str]) -> None:
            try:
                await usage.remove_active(run_ids)
            except Exception as exc:  # a marker left behind is reconciled at the quota
                log.warning("could not release %d active-run markers: %s", len(run_ids), exc)

        # Every ingress instance sees every run and step event (no consumer group, newest
        # only): they only wake local listeners, the stored run stays the answer.
        events = broker.subscriber(
            topic_name(Topic.RUN_EVENTS, settings.kafka_topic_prefix),
            topic_name(Topic.STEP_FINISHED, settings.kafka_topic_prefix),
            group_id=None,
            auto_offset_reset="latest",
            title="ingress",
            description="Wakes the requests and event streams waiting on a run.",
        )

        def listened(headers: Mapping[str, str]) -> bool:
            return hub.wants(headers.get("ce_subject"), headers.get("ce_type"))

        async def take(msg: KafkaMessage, event: ev.EventData | None) -> None:
            headers = msg.headers
            if event is not None:
                hub.publish(envelope_of(headers, event))
            elif listened(headers):
                log.warning("ignoring undecodable event %s", headers.get("ce_id"))
            run_id = headers.get("ce_subject")
            if run_id and headers.get("ce_type") in TERMINAL_TYPES:
                ended = marked_runs.take([run_id])
                if ended:
                    # Ended runs no longer count against their tenant's concurrent runs. In
                    # the background: waking waiting requests must not wait on MongoDB.
                    task = asyncio.create_task(release(ended))
                    releasing.add(task)
                    task.add_done_callback(releasing.discard)

        subscribe_events(broker, events, LISTENED, take, accept=listened)

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
            publisher=publisher,
            store=store,
            runs=RunRepository(db),
            workflows=WorkflowRepository(db),
            keys=ApiKeyRepository(db),
            hub=hub,
            idempotency=IdempotencyKeys(db),
            marked_runs=marked_runs,
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
        # `/docs` is served by webui with Swagger UI's assets from the project, not a CDN;
        # ReDoc (FastAPI's /redoc) loads from its CDN, so it is not served.
        docs_url=None,
        redoc_url=None,
    )
    problems.install(app, retry_after_seconds=settings.dependency_retry_after_seconds)
    app.add_middleware(RateLimitHeaders)
    document_raw_bodies(app, settings)
    app.include_router(workflows.router)
    app.include_router(runs.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(assets.router)
    app.include_router(providers.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    webui.install(app)
    # A server span per request, continuing an incoming `traceparent` (bus.tracing).
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    return app
