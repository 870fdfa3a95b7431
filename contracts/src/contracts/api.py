"""Models of the HTTP API v1 (JSON, camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, HttpUrl

from contracts.base import Contract
from contracts.run import RunResource

WebhookEventName = Literal["started", "completed", "failed", "canceled"]


class RunRequest(Contract):
    inputs: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(default=None, ge=1, description="Pin a workflow version.")
    webhook: HttpUrl | None = None
    webhook_events: list[WebhookEventName] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, description="Echoed back as given.")
    timeout_seconds: float | None = Field(
        default=None, gt=0, le=7 * 24 * 3600, description="Fail the run when it runs longer."
    )


class RerunRequest(Contract):
    """A new run of the same workflow version as the run it reruns. What is left out is the
    original's: its inputs, metadata, webhook and timeout."""

    from_node: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
        description="Run this node and every node that depends on it again; every other step "
        "reuses the outputs it stored in the original run (each must have succeeded there). "
        "Without it, every step runs again.",
    )
    inputs: dict[str, Any] | None = Field(
        default=None, description="Other inputs, checked against the version's input schema."
    )
    metadata: dict[str, Any] | None = Field(default=None, description="Replaces the original's.")
    webhook: HttpUrl | None = Field(
        default=None, description="Replaces the original's webhook; `null` sends none."
    )
    webhook_events: list[WebhookEventName] | None = None
    timeout_seconds: float | None = Field(
        default=None, gt=0, le=7 * 24 * 3600, description="Fail the run when it runs longer."
    )


class RunList(Contract):
    items: list[RunResource]
    next_cursor: str | None = None


class WorkflowResource(Contract):
    workflow_id: str
    version: int
    name: str
    description: str | None = None
    definition: dict[str, Any]
    created_at: datetime


class WorkflowList(Contract):
    items: list[WorkflowResource]


class AssetResource(Contract):
    ref: str = Field(description="The s3:// reference to pass as a workflow input.")
    url: str
    content_type: str
    bytes: int


class WebhookSecret(Contract):
    """The tenant's signing secret for Standard Webhooks (`whsec_<base64>`)."""

    secret: str
    created_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        default=None,
        description="After a rotation, deliveries are also signed with the previous secret "
        "until then.",
    )


WebhookDeliveryStatus = Literal["pending", "succeeded", "failed", "gone"]


class WebhookAttempt(Contract):
    attempt: int
    at: datetime
    duration_ms: int
    status_code: int | None = Field(default=None, description="The receiver's HTTP status.")
    error: str | None = Field(default=None, description="Why no status came back.")
    next_attempt_at: datetime | None = None


class WebhookDelivery(Contract):
    delivery_id: str
    webhook_id: str = Field(description="The `webhook-id` header, the same on every attempt.")
    run_id: str
    type: str = Field(description="e.g. `run.completed`")
    url: str
    status: WebhookDeliveryStatus
    created_at: datetime
    next_attempt_at: datetime | None = None
    attempts: list[WebhookAttempt]


class WebhookDeliveryList(Contract):
    items: list[WebhookDelivery]


class ProblemItem(Contract):
    path: str = Field(description="JSON pointer into the request, e.g. /inputs/options/quality")
    message: str


class Problem(Contract):
    """RFC 9457 problem details, the one error shape of the API."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemItem] | None = None
