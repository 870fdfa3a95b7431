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


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_name(topic: Topic, prefix: str = "") -> str:
    """The topic's name within a namespace (`KAFKA_TOPIC_PREFIX`): tests running beside a
    developer's stack use topics of their own, so neither handles the other's events."""
    return f"{prefix}{topic.value}"


def topic_specs(partitions: int, prefix: str = "") -> list[TopicSpec]:
    """Topics to create up front; all keyed by runId, so they share one partition count.

    Run-scoped topics must be co-partitioned: the orchestrator consumes several of them in one
    consumer so that one instance owns every event of a run.
    """
    return [
        TopicSpec(topic_name(t, prefix), partitions, {"min.insync.replicas": "1"}) for t in Topic
    ]
