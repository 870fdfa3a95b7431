"""What the sync and async clients share: configuration, requests, retries, parsing."""

from __future__ import annotations

import email.utils
import json
import math
import mimetypes
import os
import random
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from contracts.run import RunResource

from workflow_client.errors import Unreachable, WaitTimeout, WorkflowAPIError, error_for
from workflow_client.models import Run, RunEvent, parse

DEFAULT_URL = "http://127.0.0.1:38000"
# The server holds a run request at most MAX_WAIT_SECONDS (60 by default) before it answers
# 202; asking for more is pointless, and the HTTP read timeout must outlast what is asked.
SERVER_WAIT_SECONDS = 60
RETRIED_STATUSES = frozenset({429, 503})


def now() -> float:
    """The clock of deadlines (monotonic); a function so that tests can move it."""
    return time.monotonic()


def time_left(deadline: float | None) -> float | None:
    """Seconds until `deadline` (a `now()` value); `WaitTimeout` once it has passed."""
    if deadline is None:
        return None
    left = deadline - now()
    if left <= 0:
        raise WaitTimeout(None)
    return left


def capped(pause: float, deadline: float | None) -> float:
    """`pause`, but no longer than the time left before `deadline`."""
    return pause if deadline is None else max(0.0, min(pause, deadline - now()))


def passed(deadline: float | None) -> bool:
    return deadline is not None and now() >= deadline


@dataclass(frozen=True)
class RetryPolicy:
    """429 and 503 (and connection failures) are retried up to `max_attempts` tries in all.

    The pause is the answer's `Retry-After` when it has one, else `backoff` doubling per try
    up to `max_backoff`, with jitter so that many clients do not come back in step. A
    `Retry-After` beyond `max_retry_after` is not waited for: the error is raised at once."""

    max_attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """The pause before try `attempt + 1` (after `attempt` tries), None to give up."""
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        pause = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return pause * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Config:
    base_url: str
    api_key: str | None = field(repr=False)
    timeout: float
    retry: RetryPolicy

    @classmethod
    def resolve(
        cls,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        retry: RetryPolicy | None,
    ) -> Config:
        """Arguments first, then `WORKFLOW_API_URL` / `WORKFLOW_API_KEY` (what `make up`
        writes to .stack/env), then the local stack's default URL."""
        url = base_url or os.environ.get("WORKFLOW_API_URL") or DEFAULT_URL
        key = api_key or os.environ.get("WORKFLOW_API_KEY") or None
        return cls(url.rstrip("/"), key, timeout, retry or RetryPolicy())

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": "workflow-client/0.1", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None

    @property
    def replayable(self) -> bool:
        """Whether a try that may have reached the server (a read timeout, a connection lost
        after sending) can be made again safely: reads, PUT (an identical definition adds no
        version) and requests with an Idempotency-Key (runs). Not an upload (`POST
        /v1/assets` would store it twice) nor a cancel."""
        return self.method in ("GET", "PUT", "HEAD") or "Idempotency-Key" in self.headers

    def send_kwargs(self, default_timeout: float, deadline: float | None) -> dict[str, Any]:
        """httpx's arguments; every timeout of the try is cut to the time left before
        `deadline` (`WaitTimeout` when none is left)."""
        kwargs: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content
        timeout = self.timeout
        left = time_left(deadline)
        if left is not None:
            timeout = min(timeout if timeout is not None else default_timeout, left)
        if timeout is not None:
            kwargs["timeout"] = timeout
        return kwargs


def may_have_arrived(exc: httpx.TransportError) -> bool:
    """Whether the server may have received (part of) the request before `exc`."""
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (delta-seconds or an HTTP date), None when absent or bad."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def problem_of(response: httpx.Response) -> WorkflowAPIError:
    try:
        body = response.json()
    except ValueError:
        body = {"title": response.reason_phrase or f"HTTP {response.status_code}"}
        if response.text:
            body["detail"] = response.text[:500]
    return error_for(response.status_code, body, retry_after(response))


def unreachable(exc: httpx.TransportError, url: str) -> WorkflowAPIError:
    return Unreachable(0, f"cannot reach {url}", f"{type(exc).__name__}: {exc}".rstrip(": "))


def stream_lost(run_id: str, cause: str) -> WorkflowAPIError:
    return Unreachable(0, f"lost the event stream of {run_id}", cause)


class EventStream(Iterator[RunEvent]):
    """A run's events (`runs.stream`): iterate it; `with` (or `close()`) closes the
    connection when you stop before the run has ended."""

    def __init__(self, events: Generator[RunEvent, None, None]) -> None:
        self._events = events

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> RunEvent:
        return next(self._events)

    def close(self) -> None:
        self._events.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncEventStream(AsyncIterator[RunEvent]):
    """`EventStream` for asyncio: `async with client.runs.stream(id) as events: async for …`
    closes the connection on `break` (as does `contextlib.aclosing` or `await aclose()`);
    a bare `async for` leaves that to the garbage collector."""

    def __init__(self, events: AsyncGenerator[RunEvent, None]) -> None:
        self._events = events

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> RunEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def run_request(
    workflow_id: str,
    inputs: Mapping[str, Any] | None,
    *,
    version: int | None,
    metadata: Mapping[str, Any] | None,
    webhook: str | None,
    webhook_events: list[str] | None,
    timeout_seconds: float | None,
    idempotency_key: str | None,
    wait: float | None,
) -> Request:
    """`POST /v1/workflows/{id}/run`: `wait` None answers at once (202), else waits that
    long at most for the end. An Idempotency-Key is always sent (a fresh one unless given):
    it is the same on every retry of this call, so a retry never starts a second run."""
    body: dict[str, Any] = {"inputs": dict(inputs or {})}
    if version is not None:
        body["version"] = version
    if metadata:
        body["metadata"] = dict(metadata)
    if webhook is not None:
        body["webhook"] = webhook
    if webhook_events is not None:
        body["webhookEvents"] = webhook_events
    if timeout_seconds is not None:
        body["timeoutSeconds"] = timeout_seconds
    headers = {"Idempotency-Key": idempotency_key or f"wfc-{uuid.uuid4()}"}
    http_timeout = None
    if wait is None or wait < 2:
        # Under 2 s the server could not answer before the caller's deadline: the client
        # polls instead (`runs.wait`).
        headers["Prefer"] = "respond-async"
    else:
        # A second less than the caller's own deadline: the server's 202 must come before it.
        seconds = min(math.floor(wait) - 1, SERVER_WAIT_SECONDS)
        headers["Prefer"] = f"wait={seconds}"
        http_timeout = seconds + 30.0
    return Request(
        "POST", f"/v1/workflows/{workflow_id}/run", json=body, headers=headers, timeout=http_timeout
    )


def list_params(
    workflow_id: str | None, status: str | None, page_size: int | None, cursor: str | None
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if workflow_id:
        params["workflowId"] = workflow_id
    if status:
        params["status"] = status
    if page_size:
        params["limit"] = page_size
    if cursor:
        params["cursor"] = cursor
    return params


def to_run(data: Any, timeout: float) -> Run:
    return Run(parse(RunResource, data), download_timeout=timeout)


def to_event(event: str, data: str, event_id: str | None, timeout: float) -> RunEvent:
    try:
        payload = json.loads(data) if data else {}
    except ValueError:
        payload = {"raw": data}
    if not isinstance(payload, dict):
        payload = {"value": payload}
    run = to_run(payload, timeout) if event == "run" else None
    return RunEvent(type=event or "message", data=payload, id=event_id or None, run=run)


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
)


def upload_body(source: str | Path | bytes, content_type: str | None) -> tuple[bytes, str]:
    """The bytes to upload and their Content-Type (from the argument, the file's name, or
    the first bytes of a PNG, JPEG, GIF or WebP)."""
    if isinstance(source, bytes):
        data, guessed = source, None
    else:
        path = Path(source)
        data, guessed = path.read_bytes(), mimetypes.guess_type(path.name)[0]
    if content_type is None:
        content_type = guessed
    if content_type is None:
        content_type = next((t for magic, t in _MAGIC if data.startswith(magic)), None)
        if content_type is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            content_type = "image/webp"
    if content_type is None:
        raise ValueError("cannot tell the upload's content type: pass content_type=")
    return data, content_type


def definition_of(source: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    loaded = json.loads(Path(source).read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{source}: a workflow definition is a JSON object")
    return loaded
