"""Python client for the Workflow API v1: `Client` (sync) and `AsyncClient` (asyncio).

from workflow_client import Client

with Client() as client:  # WORKFLOW_API_URL, WORKFLOW_API_KEY
    run = client.run("studio-portrait", {"prompt": "Studio portrait"})
    run.outputs["square"].download("square.png")
"""

from workflow_client._core import AsyncEventStream, EventStream, RetryPolicy
from workflow_client.aio import AsyncClient
from workflow_client.client import Client, verify_webhook
from workflow_client.errors import (
    BadRequest,
    Conflict,
    DownloadError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    Unreachable,
    WaitTimeout,
    WebhookVerificationError,
    WorkflowAPIError,
    WorkflowError,
)
from workflow_client.models import Output, Outputs, Run, RunEvent, RunStatus

__all__ = [
    "AsyncClient",
    "AsyncEventStream",
    "BadRequest",
    "Client",
    "Conflict",
    "DownloadError",
    "EventStream",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "Output",
    "Outputs",
    "RateLimited",
    "RetryPolicy",
    "Run",
    "RunEvent",
    "RunStatus",
    "Unauthorized",
    "Unavailable",
    "Unreachable",
    "WaitTimeout",
    "WebhookVerificationError",
    "WorkflowAPIError",
    "WorkflowError",
    "verify_webhook",
]
