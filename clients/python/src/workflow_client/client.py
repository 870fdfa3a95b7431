"""The synchronous client."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import standardwebhooks
from contracts.api import AssetResource, RunList, WebhookSecret, WorkflowList, WorkflowResource
from httpx_sse import connect_sse

from workflow_client._core import (
    Config,
    Request,
    RetryPolicy,
    definition_of,
    list_params,
    problem_of,
    retry_after,
    run_request,
    to_event,
    to_run,
    unreachable,
    upload_body,
)
from workflow_client.errors import (
    RateLimited,
    Unavailable,
    WaitTimeout,
    WebhookVerificationError,
    WorkflowAPIError,
)
from workflow_client.models import Run, RunEvent, parse

# Polling a run that is not finished: quick at first (most runs end in well under a second
# once the server's own wait returned), then no more than one request every 2 s.
POLL_FIRST, POLL_MAX = 0.2, 2.0


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


class Client:
    """`Client()` reads WORKFLOW_API_URL and WORKFLOW_API_KEY; arguments win.

    `timeout` is the HTTP timeout of one request (a waiting run request gets what it waits
    for on top). Use it as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = Config.resolve(base_url, api_key, timeout, retry)
        self._http = httpx.Client(
            base_url=self.config.base_url,
            headers=self.config.headers(),
            timeout=timeout,
            transport=transport,
        )
        self.runs = Runs(self)
        self.workflows = Workflows(self)
        self.assets = Assets(self)
        self.webhooks = Webhooks(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, request: Request) -> httpx.Response:
        """The answer to `request`, retrying 429, 503 and lost connections per the policy;
        a problem answer raises its typed error."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(request.method, request.path, **request.send_kwargs())
            except httpx.TransportError as exc:
                # A request that may have reached the server is only repeated when that is
                # harmless (reads, and run requests, which carry an Idempotency-Key).
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                pause = (
                    None
                    if sent and not request.replayable
                    else self.config.retry.delay(attempt, None)
                )
                if pause is None:
                    raise unreachable(exc, self.config.base_url) from exc
                _sleep(pause)
                continue
            if response.status_code < 400:
                return response
            if response.status_code in (429, 503):
                pause = self.config.retry.delay(attempt, retry_after(response))
                if pause is not None:
                    _sleep(pause)
                    continue
            raise problem_of(response)

    def _json(self, request: Request) -> Any:
        return self._send(request).json()

    def run(
        self,
        workflow_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        webhook: str | None = None,
        webhook_events: list[str] | None = None,
        timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
        wait: bool = True,
        timeout: float = 300.0,
    ) -> Run:
        """Start a run and, with `wait` (the default), return it finished, outputs included
        (`run.outputs["square"].download(path)`). A failed or canceled run is returned, not
        raised: look at `run.status` and `run.error`. Raises `WaitTimeout` when the run has
        not ended within `timeout` seconds (it keeps running)."""
        return self.runs.create(
            workflow_id,
            inputs,
            version=version,
            metadata=metadata,
            webhook=webhook,
            webhook_events=webhook_events,
            timeout_seconds=timeout_seconds,
            idempotency_key=idempotency_key,
            wait=timeout if wait else None,
        )


class Runs:
    def __init__(self, client: Client) -> None:
        self._c = client

    def _run(self, data: Any) -> Run:
        return to_run(data, self._c.config.timeout)

    def create(
        self,
        workflow_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        webhook: str | None = None,
        webhook_events: list[str] | None = None,
        timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
    ) -> Run:
        """Start a run. Without `wait`, answers at once with the queued run; with `wait`
        seconds, returns the finished run or raises `WaitTimeout` after that long."""
        started = time.monotonic()
        run = self._run(
            self._c._json(
                run_request(
                    workflow_id,
                    inputs,
                    version=version,
                    metadata=metadata,
                    webhook=webhook,
                    webhook_events=webhook_events,
                    timeout_seconds=timeout_seconds,
                    idempotency_key=idempotency_key,
                    wait=wait,
                )
            )
        )
        if wait is None or run.finished:
            return run
        return self.wait(run.run_id, timeout=max(0.0, wait - (time.monotonic() - started)))

    def get(self, run_id: str) -> Run:
        return self._run(self._c._json(Request("GET", f"/v1/runs/{run_id}")))

    def list(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Run]:
        """Every run of the key's tenant, newest first, fetched a page at a time."""
        cursor: str | None = None
        while True:
            params = list_params(workflow_id, status, page_size, cursor)
            page = parse(RunList, self._c._json(Request("GET", "/v1/runs", params=params)))
            for item in page.items:
                yield Run(item, download_timeout=self._c.config.timeout)
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel(self, run_id: str) -> Run:
        """Cancel a queued or running run (a finished one raises `Conflict`)."""
        return self._run(self._c._json(Request("POST", f"/v1/runs/{run_id}/cancel")))

    def wait(self, run_id: str, *, timeout: float = 300.0) -> Run:
        """The run once it has ended; `WaitTimeout` (with the run as it is) after `timeout`."""
        deadline = time.monotonic() + timeout
        pause = POLL_FIRST
        while True:
            run = self.get(run_id)
            left = deadline - time.monotonic()
            if run.finished:
                return run
            if left <= 0:
                raise WaitTimeout(run)
            _sleep(min(pause, left))
            pause = min(POLL_MAX, pause * 1.5)

    def stream(self, run_id: str) -> Iterator[RunEvent]:
        """The run's events as they happen (Server-Sent Events): a `run` event with the whole
        run first, then `step.*` and `run.*` events, and a last `run` event once it has
        ended, after which the iteration stops. For a finished run: that one `run` event."""
        attempt = 0
        timeout = httpx.Timeout(self._c.config.timeout, read=None)
        while True:
            attempt += 1
            try:
                with connect_sse(
                    self._c._http,
                    "GET",
                    f"/v1/runs/{run_id}/events",
                    headers={"Accept": "text/event-stream"},
                    timeout=timeout,
                ) as source:
                    response = source.response
                    if response.status_code >= 400:
                        response.read()
                        error = problem_of(response)
                        pause = (
                            self._c.config.retry.delay(attempt, error.retry_after)
                            if isinstance(error, RateLimited | Unavailable)
                            else None
                        )
                        if pause is None:
                            raise error
                        _sleep(pause)
                        continue
                    for sse in source.iter_sse():
                        yield to_event(sse.event, sse.data, sse.id, self._c.config.timeout)
                    return
            except httpx.ConnectError as exc:
                pause = self._c.config.retry.delay(attempt, None)
                if pause is None:
                    raise unreachable(exc, self._c.config.base_url) from exc
                _sleep(pause)


class Workflows:
    def __init__(self, client: Client) -> None:
        self._c = client

    def put(self, workflow_id: str, definition: Mapping[str, Any] | str | Path) -> WorkflowResource:
        """Register a definition (a dict, or a JSON file's path): a changed one becomes a new
        version, an identical one returns the current version."""
        request = Request("PUT", f"/v1/workflows/{workflow_id}", json=definition_of(definition))
        return parse(WorkflowResource, self._c._json(request))

    def get(self, workflow_id: str, version: int | None = None) -> WorkflowResource:
        path = f"/v1/workflows/{workflow_id}"
        if version is not None:
            path += f"/versions/{version}"
        return parse(WorkflowResource, self._c._json(Request("GET", path)))

    def list(self) -> list[WorkflowResource]:
        """The latest version of each workflow."""
        return parse(WorkflowList, self._c._json(Request("GET", "/v1/workflows"))).items

    def versions(self, workflow_id: str) -> builtins.list[WorkflowResource]:
        """Every version, oldest first (versions are numbered 1, 2, … and never deleted)."""
        latest = self.get(workflow_id)
        earlier = [self.get(workflow_id, v) for v in range(1, latest.version)]
        return [*earlier, latest]


class Assets:
    def __init__(self, client: Client) -> None:
        self._c = client

    def upload(self, source: str | Path | bytes, *, content_type: str | None = None) -> str:
        """Upload a file (path) or bytes; the `s3://` reference to pass as an input."""
        return self.create(source, content_type=content_type).ref

    def create(
        self, source: str | Path | bytes, *, content_type: str | None = None
    ) -> AssetResource:
        """`upload`, answering the whole asset record (reference, URL, type, size)."""
        data, kind = upload_body(source, content_type)
        request = Request("POST", "/v1/assets", content=data, headers={"Content-Type": kind})
        return parse(AssetResource, self._c._json(request))


class Webhooks:
    def __init__(self, client: Client) -> None:
        self._c = client
        self._secret: str | None = None

    def secret(self) -> WebhookSecret:
        """The tenant's signing secret (`whsec_…`)."""
        found = parse(WebhookSecret, self._c._json(Request("GET", "/v1/webhooks/secret")))
        self._secret = found.secret
        return found

    def verify(
        self, headers: Mapping[str, str], body: bytes | str, *, secret: str | None = None
    ) -> dict[str, Any]:
        """The delivery's JSON (`{"type", "timestamp", "data"}`) once its Standard Webhooks
        signature checks out; raises `WebhookVerificationError` otherwise. Without `secret`
        the tenant's is fetched once and kept."""
        if secret is None:
            secret = self._secret or self.secret().secret
        return verify_webhook(secret, headers, body)


def verify_webhook(secret: str, headers: Mapping[str, str], body: bytes | str) -> dict[str, Any]:
    try:
        payload = standardwebhooks.Webhook(secret).verify(body, dict(headers))
    except standardwebhooks.WebhookVerificationError as exc:
        raise WebhookVerificationError(str(exc)) from exc
    except (ValueError, TypeError) as exc:  # a malformed signature header, e.g. no comma
        raise WebhookVerificationError(f"malformed webhook: {exc}") from exc
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the webhook body is not a JSON object")
    return payload


__all__ = ["Client", "WorkflowAPIError"]
