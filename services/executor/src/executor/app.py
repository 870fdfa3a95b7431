"""Wiring: the one place where the executor's pieces are put together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import egress
from bus import metrics
from bus.broker import make_broker
from bus.consumer import Dispatcher
from bus.ops import OpsServer
from bus.publisher import EventPublisher
from bus.startup import kafka_ready, require
from bus.subscribe import subscribe_events
from bus.topics import Topic, topic_name
from faststream import AckPolicy, FastStream
from faststream.kafka.annotations import KafkaMessage
from pydantic import SecretStr
from storage import mongo
from storage.assets import AssetStore
from storage.providers import ProviderCredentials

from contracts import events as ev
from executor.imaging.codec import ImageLimits, configure_pillow
from executor.nodes import HANDLERS, missing_handlers
from executor.providers import (
    ComfyUI,
    FalQueue,
    ImageProvider,
    Offline,
    OpenAIImages,
    ProviderClients,
    Providers,
    ReplicatePredictions,
    TenantCredentials,
)
from executor.providers.registry import deployment_credentials
from executor.service import Executor
from executor.settings import ExecutorSettings

log = logging.getLogger("executor")


class MissingHandlers(RuntimeError):
    pass


def build_providers(settings: ExecutorSettings, tenants: TenantCredentials | None) -> Providers:
    clients = ProviderClients(
        policy=settings.provider_policy(),
        timeout=settings.provider_request_timeout_seconds,
        poll_interval=settings.provider_poll_seconds,
        limits=ImageLimits.of(settings),
    )
    implementations: list[ImageProvider] = [
        Offline(),
        OpenAIImages(clients),
        ReplicatePredictions(clients),
        FalQueue(clients),
        ComfyUI(clients),
    ]

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    deployment = deployment_credentials(
        {
            "openai": (
                secret(settings.openai_api_key),
                settings.openai_base_url,
                settings.openai_image_model,
            ),
            "replicate": (
                secret(settings.replicate_api_token),
                settings.replicate_base_url,
                settings.replicate_model,
            ),
            "fal": (secret(settings.fal_key), settings.fal_queue_url, settings.fal_model),
            "comfyui": (secret(settings.comfyui_api_key), settings.comfyui_url, None),
        }
    )
    return Providers(
        {p.name: p for p in implementations},
        deployment,
        default=settings.image_provider,
        tenants=tenants,
        cache_seconds=settings.provider_credentials_cache_seconds,
    )


def create_app(settings: ExecutorSettings) -> FastStream:
    missing = missing_handlers(HANDLERS)
    if missing:
        raise MissingHandlers(f"no handler for node types {missing}; refusing to start")
    broker = make_broker(settings.kafka_bootstrap_servers, client_id="executor")
    store = AssetStore(settings.s3_config())
    fernet = settings.provider_fernet()
    # Tenants' own provider credentials live in MongoDB; without keys the executor needs none.
    mongo_client = (
        mongo.connect(settings.mongodb_url, app_name="executor") if fernet is not None else None
    )
    db = mongo_client[settings.mongodb_database] if mongo_client is not None else None
    tenants = ProviderCredentials(db, fernet) if db is not None else None
    providers = build_providers(settings, tenants=tenants)
    configure_pillow(ImageLimits.of(settings))
    prefix = settings.kafka_topic_prefix
    publisher = EventPublisher(broker, source="/executor", prefix=prefix)
    node_http = egress.client(settings.http_node_policy(), timeout=settings.http_timeout_seconds)
    executor = Executor(
        handlers=HANDLERS,
        store=store,
        outputs_bucket=settings.s3_outputs_bucket,
        providers=providers,
        http=node_http,
        publisher=publisher,
        default_timeout=settings.default_step_timeout_seconds,
        limits=settings,
    )

    async def on_step_requested(step: ev.StepRequested) -> None:
        with metrics.STEP_DURATION.labels(step.node_type).time():
            await executor.on_step_requested(step)

    dispatcher = Dispatcher(
        {
            ev.StepRequested: on_step_requested,
            ev.RunCancelRequested: executor.on_cancel_requested,
        },
        publisher,
        max_attempts=settings.max_message_attempts,
        on_dead_letter=executor.on_dead_letter,
    )

    # Steps of one run share a partition (keyed by runId) yet must run in parallel, so records
    # are taken concurrently and committed on receipt. A step lost to a crash is re-driven by
    # the orchestrator when its timeout passes; a graceful stop drains in-flight steps first.
    subscriber = broker.subscriber(
        topic_name(Topic.STEP_REQUESTED, prefix),
        group_id=settings.executor_group_id,
        auto_offset_reset="earliest",
        max_workers=settings.executor_concurrency,
        ack_policy=AckPolicy.ACK_FIRST,
        title="executor",
        description="Step requests, taken concurrently and acknowledged on receipt.",
    )

    async def take_step(msg: KafkaMessage, event: ev.EventData | None) -> None:
        # Acknowledged on receipt, so a failed try is made again here (a step's own failures
        # are reported, not raised; what raises is a result that cannot be sent): a step
        # request that fails every try is answered with step.failed by `on_dead_letter`.
        metrics.observe_queue_wait(msg.headers)
        await dispatcher.handle_in_place(msg, event)

    subscribe_events(broker, subscriber, (ev.StepRequested,), take_step)

    # Every executor hears every cancel (no group): any of them may hold the run's steps.
    cancels = broker.subscriber(
        topic_name(Topic.RUN_CANCEL, prefix),
        group_id=None,
        auto_offset_reset="latest",
        title="executor cancels",
        description="Every executor hears every cancel: any of them may hold the run's steps.",
    )
    subscribe_events(broker, cancels, (ev.RunCancelRequested,), dispatcher.handle)

    checks: dict[str, Callable[[], Awaitable[None]]] = {"s3": store.ping}
    if db is not None:
        checks["mongodb"] = lambda: mongo.ping(db)
    ops = OpsServer(
        broker,
        host=settings.ops_host,
        port=settings.executor_ops_port,
        checks={
            "s3": store.ping,
            **({"mongodb": lambda: mongo.ping(db)} if db is not None else {}),
        },
    )

    async def check_dependencies() -> None:
        timeout = settings.startup_timeout_seconds
        await require("S3", settings.s3_endpoint, store.ping, timeout)
        if db is not None:
            await require("MongoDB", settings.mongodb_url, lambda: mongo.ping(db), timeout)
        await require(
            "Kafka", settings.kafka_bootstrap_servers, lambda: kafka_ready(broker), timeout
        )

    async def drain() -> None:
        consumer = getattr(subscriber, "consumer", None)
        if consumer is not None:
            consumer.pause(*consumer.assignment())
        log.info("draining in-flight steps before stopping")
        try:
            async with asyncio.timeout(settings.shutdown_drain_seconds):
                await executor.drained()
        except TimeoutError:
            log.error("in-flight steps did not finish in time; they will be re-driven")

    async def close() -> None:
        await node_http.aclose()
        if mongo_client is not None:
            await mongo_client.close()

    return FastStream(
        broker,
        on_startup=[ops.start, check_dependencies],
        after_startup=[ops.started],
        on_shutdown=[ops.stopping, drain],
        after_shutdown=[close, ops.stop],
    )
