"""The one topic registry: every Kafka topic the system uses, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Topic(StrEnum):
    RUN_REQUESTED = "workflow.run.requested.v1"
    STEP_REQUESTED = "workflow.step.requested.v1"
    STEP_FINISHED = "workflow.step.finished.v1"
    RUN_CANCEL = "workflow.run.cancel.v1"
    RUN_EVENTS = "workflow.run.events.v1"
    RUN_TIMERS = "workflow.run.timers.v1"
    DEAD_LETTER = "workflow.dead-letter.v1"


DESCRIPTION: dict[Topic, str] = {
    Topic.RUN_REQUESTED: "A run was accepted by the HTTP API (or started by a parent's "
    "`workflow.run` step); the orchestrator starts it.",
    Topic.STEP_REQUESTED: "The orchestrator asks an executor to run one attempt of one step.",
    Topic.STEP_FINISHED: "An executor reports a step attempt: started, progress, succeeded or "
    "failed (a finished child run answers its parent's step here too).",
    Topic.RUN_CANCEL: "Cancel a run (from the HTTP API, a parent, or a run's deadline).",
    Topic.RUN_EVENTS: "A run started or ended (completed, failed, canceled), with the run as "
    "the API shows it: what the webhooks report, for any team to consume.",
    Topic.RUN_TIMERS: "A nudge of the orchestrator's sweeper: a run has something due.",
    Topic.DEAD_LETTER: "A record no service could handle, parked with the reason (headers "
    "`dl_*`) and its original value, so its partition moves on.",
}
"""What each topic carries: its description in the AsyncAPI document (contracts/)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def topic_name(topic: Topic, prefix: str = "") -> str:
    """The topic's name within a namespace (`KAFKA_TOPIC_PREFIX`): tests running beside a
    developer's stack use topics of their own, so neither handles the other's events."""
    return f"{prefix}{topic.value}"


def topic_specs(
    partitions: int,
    prefix: str = "",
    *,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> list[TopicSpec]:
    """Topics to create up front; all keyed by runId, so they share one partition count.

    Run-scoped topics must be co-partitioned: the orchestrator consumes several of them in one
    consumer so that one instance owns every event of a run. Producers write with `acks=all`
    (`bus.broker`), so a write succeeds once `min_insync_replicas` replicas have it: with 3
    replicas and 2 in sync, one broker may be down without losing a write or refusing one.
    """
    config = {"min.insync.replicas": str(min_insync_replicas)}
    return [
        TopicSpec(topic_name(t, prefix), partitions, replication_factor, dict(config))
        for t in Topic
    ]
