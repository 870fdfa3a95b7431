"""The run resource, shared by the HTTP API and the public run events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from contracts.base import Contract


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class StepStatus(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RunError(Contract):
    code: str = Field(description="Machine-readable reason, e.g. `node_failed`, `timeout`.")
    message: str
    node_id: str | None = None


class StepError(RunError):
    """A step's (or one of its attempts') error."""

    retry_after_seconds: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description=(
            "The failure's own hint (a provider's `Retry-After`) of how long to wait before"
            " trying again; the next attempt, if any, is at `nextAttemptAt`."
        ),
    )


class OutputAsset(Contract):
    """One entry of a run's outputs.

    Assets carry `ref` (s3://) always and `url` (presigned GET) in HTTP responses and webhooks;
    text and JSON outputs carry `value`.
    """

    name: str
    index: int | None = Field(default=None, description="Position when an output is a list.")
    type: Literal["image", "text", "json", "file"]
    ref: str | None = None
    url: str | None = None
    content_type: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    value: Any = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """Only the fields that apply to the output's type appear on the wire."""
        data = handler(self)
        keep_value = self.type in ("text", "json")
        return {k: v for k, v in data.items() if v is not None or (k == "value" and keep_value)}


class StepAttempt(Contract):
    """An earlier attempt of a step that failed and was retried."""

    attempt: int
    error: StepError | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class StepProvider(Contract):
    """Who made an `image.generate` step's images (its `provider` output)."""

    name: str = Field(description="`openai`, `replicate`, `fal`, `comfyui` or `offline`.")
    model: str
    request_id: str | None = Field(
        default=None, description="The provider's own id: prediction, request or prompt id."
    )
    duration_seconds: float
    ignored_params: list[str] = Field(
        default_factory=list, description="Our params this provider has no equivalent for."
    )


class StepView(Contract):
    node_id: str
    type: str
    status: StepStatus
    attempt: int
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    error: StepError | None = None
    attempts: list[StepAttempt] = Field(default_factory=list)
    child_run_id: str | None = Field(default=None, description="For `workflow.run` steps.")
    items_total: int | None = Field(default=None, description="For `map` steps.")
    items_done: int | None = None
    provider: StepProvider | None = Field(
        default=None, description="For `image.generate` steps that succeeded."
    )
    reused_from: str | None = Field(
        default=None,
        description="For a rerun's step that was not run again: the run whose outputs it "
        "reused (the run that produced them). It succeeded without being dispatched.",
    )


class MapItemView(Contract):
    """One item of a `map` step (in a run's full detail)."""

    index: int
    status: StepStatus
    attempt: int
    error: StepError | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outputs: list[OutputAsset] | None = Field(
        default=None, description="The item's outputs, once it succeeded."
    )


class StepDetail(StepView):
    """A step in a run's full detail (`GET /v1/runs/{runId}?detail=full`): the step view and
    what it was given and gave. Never in run events or webhooks."""

    params: dict[str, Any] | None = Field(
        default=None,
        description="The params the step was dispatched with: its node's params with every "
        "`{{ … }}` reference resolved, defaults filled in (a `map` step: its own params, its "
        "template `node` as written). A param larger than `MAX_RESOLVED_VALUE_BYTES` shows "
        '`{"omitted": "value_too_large", "maxBytes": <limit>}`. Null for a step never '
        "dispatched (a reused step shows those of the run it was reused from).",
    )
    outputs: list[OutputAsset] | None = Field(
        default=None,
        description="The step's outputs rendered like the run's (assets with presigned `url`), "
        "once it succeeded; null for a `map` step, whose items carry theirs.",
    )
    items: list[MapItemView] | None = Field(
        default=None,
        description="A `map` step's items, when it has at most 500 of them.",
    )


class RerunOf(Contract):
    """Where a rerun came from."""

    run_id: str = Field(description="The run this one reruns.")
    from_node: str | None = Field(
        default=None, description="The node it was rerun from; null for a rerun of every step."
    )


class RunResource(Contract):
    run_id: str
    workflow_id: str
    workflow_version: int
    status: RunStatus
    outputs: list[OutputAsset] = Field(default_factory=list)
    error: RunError | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepView] = Field(default_factory=list)
    parent_run_id: str | None = Field(default=None, description="Set on a chained child run.")
    rerun_of: RerunOf | None = Field(
        default=None, description="Set on a run started by `POST /v1/runs/{runId}/rerun`."
    )
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None


class RunDetail(RunResource):
    """The run resource with each step's params, outputs and map items
    (`GET /v1/runs/{runId}?detail=full`); `GET` without it answers the run resource alone."""

    # Narrower than the resource's list of StepView (each is one): mypy's list invariance
    # does not know pydantic validates the field anew in the subclass.
    steps: list[StepDetail] = Field(default_factory=list)  # type: ignore[assignment]
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="The inputs the run was started with (a rerun starts with them unless "
        "given others).",
    )
