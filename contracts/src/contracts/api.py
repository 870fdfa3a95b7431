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
