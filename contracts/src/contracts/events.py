"""Data of every Kafka event (CloudEvents 1.0, binary mode; the value is this JSON).

Within a major version, changes are additive and optional. Consumers ignore unknown fields
(`EventData.model_config`), producers validate strictly when building the model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from contracts.base import Contract
from contracts.run import OutputAsset, RerunOf, RunError, RunStatus, StepView

TYPE_PREFIX = "com.sprello.workflow."


def _name_the_type(schema: dict[str, Any], model: type[Any]) -> None:
    """Every event's JSON Schema names its CloudEvents type (the `ce_type` header), which tells
    events of the same shape apart (the run events)."""
    event_type = getattr(model, "event_type", None)
    if event_type is not None:
        schema["x-cloudevents-type"] = event_type


class EventData(Contract):
    model_config = ConfigDict(extra="ignore", json_schema_extra=_name_the_type)
    event_type: ClassVar[str]

    run_id: str


class AssetInfo(Contract):
    model_config = ConfigDict(extra="ignore")

    ref: str
    content_type: str
    bytes: int
    width: int | None = None
    height: int | None = None


class StepFailure(Contract):
    model_config = ConfigDict(extra="ignore")

    code: str
    message: str
    retryable: bool = False
    retry_after_seconds: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description=(
            "How long to wait before trying again, in seconds after the failure (a provider's"
            " `Retry-After`). Honoured only for a retryable failure that the node's retry policy"
            " retries, and up to the node's `retry.backoff.maxSeconds`."
        ),
    )


class RunRequested(EventData):
    event_type: ClassVar[str] = TYPE_PREFIX + "run.requested.v1"

    tenant_id: str
    workflow_id: str
    workflow_version: int
    requested_at: datetime


class StepRequested(EventData):
    event_type: ClassVar[str] = TYPE_PREFIX + "step.requested.v1"

    tenant_id: str
    node_id: str
    node_type: str
    attempt: int = Field(ge=1)
    params: dict[str, Any]
    timeout_seconds: float | None = None


class StepSucceeded(EventData):
    event_type: ClassVar[str] = TYPE_PREFIX + "step.succeeded.v1"

    node_id: str
    attempt: int
    outputs: dict[str, Any]
    assets: list[AssetInfo] = Field(default_factory=list)
    started_at: datetime
    finished_at: datetime


class StepFailed(EventData):
    event_type: ClassVar[str] = TYPE_PREFIX + "step.failed.v1"

    node_id: str
    attempt: int
    error: StepFailure
    started_at: datetime
    finished_at: datetime


class StepStarted(EventData):
    """The executor began a step (progress for SSE; not needed for correctness)."""

    event_type: ClassVar[str] = TYPE_PREFIX + "step.started.v1"

    node_id: str
    attempt: int
    started_at: datetime


class StepProgress(EventData):
    event_type: ClassVar[str] = TYPE_PREFIX + "step.progress.v1"

    node_id: str
    attempt: int
    progress: float = Field(ge=0, le=1)
    message: str | None = None


class TimerFired(EventData):
    """A durable timer came due; the run's owner applies it (internal topic)."""

    event_type: ClassVar[str] = TYPE_PREFIX + "run.timer_fired.v1"

    kind: str
    node_id: str | None = None
    attempt: int | None = None
    due_at: datetime


class RunCancelRequested(EventData):
    event_type: ClassVar[str] = TYPE_PREFIX + "run.cancel_requested.v1"

    tenant_id: str
    requested_at: datetime


class RunEventData(EventData):
    """The public run event: the run resource with s3:// refs instead of presigned URLs."""

    tenant_id: str
    workflow_id: str
    workflow_version: int
    status: RunStatus
    outputs: list[OutputAsset] = Field(default_factory=list)
    error: RunError | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepView] = Field(
        default_factory=list, description="The run's steps, as in the run resource."
    )
    parent_run_id: str | None = None
    rerun_of: RerunOf | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None


class RunStarted(RunEventData):
    event_type: ClassVar[str] = TYPE_PREFIX + "run.started.v1"


class RunCompleted(RunEventData):
    event_type: ClassVar[str] = TYPE_PREFIX + "run.completed.v1"


class RunFailed(RunEventData):
    event_type: ClassVar[str] = TYPE_PREFIX + "run.failed.v1"


class RunCanceled(RunEventData):
    event_type: ClassVar[str] = TYPE_PREFIX + "run.canceled.v1"


EVENT_MODELS: tuple[type[EventData], ...] = (
    RunRequested,
    StepRequested,
    StepSucceeded,
    StepFailed,
    StepStarted,
    StepProgress,
    TimerFired,
    RunCancelRequested,
    RunStarted,
    RunCompleted,
    RunFailed,
    RunCanceled,
)

BY_TYPE: dict[str, type[EventData]] = {m.event_type: m for m in EVENT_MODELS}

RUN_EVENT_BY_STATUS: dict[RunStatus, type[RunEventData]] = {
    RunStatus.RUNNING: RunStarted,
    RunStatus.COMPLETED: RunCompleted,
    RunStatus.FAILED: RunFailed,
    RunStatus.CANCELED: RunCanceled,
}
