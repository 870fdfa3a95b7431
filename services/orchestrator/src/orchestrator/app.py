"""Wiring: the one place where the orchestrator's pieces are put together."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from bus import metrics
from bus.broker import make_broker
from bus.consumer import Dispatcher, Incoming
from bus.keyed import KeyedWorkers
from bus.ops import OpsServer
from bus.startup import kafka_ready, require
from bus.subscribe import subscribe_events
from bus.topics import Topic, topic_name
from faststream import AckPolicy, FastStream
from storage import mongo
from storage.budgets import RunBudgets
from storage.idempotency import IdempotencyKeys
from storage.runs import LIVE_STATUSES, RunRepository
from storage.workflows import WorkflowRepository

from contracts import events as ev
from orchestrator.poison import PoisonRuns
from orchestrator.service import ClaimInFlight, Orchestrator, Policy
from orchestrator.settings import OrchestratorSettings
from orchestrator.sweeper import Sweeper

log = logging.getLogger("orchestrator")

HANDLED = (
    ev.RunRequested,
    ev.StepSucceeded,
    ev.StepFailed,
    ev.RunCancelRequested,
    ev.TimerFired,
)
"""The events the orchestrator acts on, in the order of its handlers."""


def create_app(settings: OrchestratorSettings) -> FastStream:
    broker = make_broker(settings.kafka_bootstrap_servers, client_id="orchestrator")
    client = mongo.connect(settings.mongodb_url, app_name="orchestrator")
    db = client[settings.mongodb_database]
    prefix = settings.kafka_topic_prefix
    # Counts the run events it publishes: runs started/ended by workflow, their durations.
    publisher = metrics.MeteredPublisher(broker, source="/orchestrator", prefix=prefix)
    runs = RunRepository(db)
    service = Orchestrator(
        runs,
        WorkflowRepository(db),
        publisher,
        Policy(
            step_timeout_grace=settings.step_timeout_grace_seconds,
            claim_grace=settings.watchdog_seconds,
            hot_runs=settings.hot_runs,
            limits=settings,
        ),
        budgets=RunBudgets(db),
    )
    sweeper = Sweeper(
        runs,
        IdempotencyKeys(db),
        publisher,
        interval=settings.sweep_interval_seconds,
        lease=settings.timer_lease_seconds,
    )
    background: set[asyncio.Task[None]] = set()
    transient = (*mongo.TRANSIENT_ERRORS, ClaimInFlight)
    # A message that cannot be processed is parked after its tries and its run ends failed.
    poison = PoisonRuns(
        service, runs, publisher, transient=transient, claim_grace=settings.watchdog_seconds
    )
    dispatcher = Dispatcher(
        dict(
            zip(
                HANDLED,
                (
                    service.on_run_requested,
                    service.on_step_succeeded,
                    service.on_step_failed,
                    service.on_cancel_requested,
                    service.on_timer_fired,
                ),
                strict=True,
            )
        ),
        publisher,
        transient=transient,
        max_attempts=settings.max_message_attempts,
        attempt_timeout=settings.message_attempt_timeout_seconds,
        on_dead_letter=poison.on_dead_letter,
    )
    log.info(
        "a message is dead-lettered after %d tries, within %.1f s",
        settings.max_message_attempts,
        dispatcher.retry_budget() or 0,
    )

    # One consumer takes every run-keyed input topic with the range assignor: partition N of
    # each topic goes to the same instance, so one instance owns all events of a run (the
    # round-robin default would split a run's topics across instances). Within the instance,
    # events of one run are applied in order and different runs concurrently.
    async def handle_record(record: Incoming) -> object:
        metrics.observe_queue_wait(record.headers)
        return await dispatcher.handle_record(record)

    workers = KeyedWorkers(
        handle_record,
        max_in_flight=settings.orchestrator_max_in_flight,
        on_rebalance=service.forget,
    )
    inputs = broker.subscriber(
        *(
            topic_name(t, prefix)
            for t in (Topic.RUN_REQUESTED, Topic.STEP_FINISHED, Topic.RUN_CANCEL, Topic.RUN_TIMERS)
        ),
        group_id=settings.orchestrator_group_id,
        partition_assignment_strategy=(RangePartitionAssignor,),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        listener=workers.listener(),
        title="orchestrator",
        description="The orchestrator's one consumer of every run-keyed input topic.",
    )
    # One typed handler per event the orchestrator acts on; the rest (step.started and
    # progress) is handed over undecoded and skipped in order by the dispatcher.
    subscribe_events(broker, inputs, HANDLED, workers.submit)

    async def timers_due() -> int:
        now = datetime.now(UTC)
        counts = [
            await db.runs.count_documents({"status": s, "dueAt": {"$lte": now}})
            for s in LIVE_STATUSES
        ]
        return sum(counts)

    ops = OpsServer(
        broker,
        host=settings.ops_host,
        port=settings.orchestrator_ops_port,
        checks={"mongodb": lambda: mongo.ping(db)},
        collectors=[
            metrics.backlog_gauge("claims", lambda: db.run_claims.count_documents({})),
            metrics.backlog_gauge("timers", timers_due),
        ],
    )

    async def check_dependencies() -> None:
        timeout = settings.startup_timeout_seconds
        await require("MongoDB", settings.mongodb_url, lambda: mongo.ping(db), timeout)
        await mongo.ensure_indexes(db)
        await require(
            "Kafka", settings.kafka_bootstrap_servers, lambda: kafka_ready(broker), timeout
        )

    async def release_claims_forever() -> None:
        while True:
            await asyncio.sleep(settings.claim_release_interval_seconds)
            try:
                await service.release_claims()
            except Exception:
                log.warning("removing released claims failed; trying again", exc_info=True)

    async def start_sweeper() -> None:
        background.add(asyncio.create_task(sweeper.run_forever(), name="sweeper"))
        background.add(asyncio.create_task(release_claims_forever(), name="claims"))

    async def stop_sweeper() -> None:
        await workers.drain(within=settings.shutdown_timeout_seconds)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        try:
            await service.release_claims()
        except Exception:
            log.warning("removing released claims at shutdown failed", exc_info=True)

    async def close() -> None:
        await client.close()

    return FastStream(
        broker,
        on_startup=[ops.start, check_dependencies],
        after_startup=[start_sweeper, ops.started],
        on_shutdown=[ops.stopping, stop_sweeper],
        after_shutdown=[close, ops.stop],
    )
