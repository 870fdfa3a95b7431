"""The synchronous client."""

from __future__ import annotations

import builtins
import time
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import standardwebhooks
from contracts.api import AssetResource, RunList, WebhookSecret, WorkflowList, WorkflowResource
from httpx_sse import connect_sse

from workflow_client import _core
from workflow_client._core import (
    RETRIED_STATUSES,
    Config,
    EventStream,
    Request,
    RetryPolicy,
    capped,
    definition_of,
    list_params,
    may_have_arrived,
    passed,
    problem_of,
    retry_after,
    run_request,
    stream_lost,
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

    def _send(self, request: Request, deadline: float | None = None) -> httpx.Response:
        """The answer to `request`, retrying 429, 503 and lost connections per the policy;
        a problem answer raises its typed error. With a `deadline` (a `_core.now()` value)
        no try or pause outlasts it: `WaitTimeout` once it has passed."""
        attempt = 0
        while True:
            attempt += 1
            kwargs = request.send_kwargs(self.config.timeout, deadline)
            try:
                response = self._http.request(request.method, request.path, **kwargs)
            except httpx.TransportError as exc:
                if passed(deadline):
                    raise WaitTimeout(None) from exc
                # A request that may have reached the server is only repeated when that is
                # harmless (reads, and run requests, which carry an Idempotency-Key).
                pause = (
                    None
                    if may_have_arrived(exc) and not request.replayable
                    else self.config.retry.delay(attempt, None)
                )
                if pause is None:
                    raise unreachable(exc, self.config.base_url) from exc
                _sleep(capped(pause, deadline))
                continue
            if response.status_code < 400:
                return response
            # 429 and 503 answer a request the server refused without acting on it: a retry
            # is safe for every request, an upload included.
            if response.status_code in RETRIED_STATUSES:
                pause = self.config.retry.delay(attempt, retry_after(response))
                if pause is not None:
                    _sleep(capped(pause, deadline))
                    continue
            raise problem_of(response)

    def _json(self, request: Request, deadline: float | None = None) -> Any:
        return self._send(request, deadline).json()

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
        timeout: float | None = None,
    ) -> Run:
        """Start a run. Without `wait`, answers at once with the queued run; with `wait`
        seconds, returns the finished run or raises `WaitTimeout` after that long, retries
        included. `timeout` bounds the call when it does not wait (default: `wait`)."""
        limit = wait if timeout is None else timeout
        deadline = None if limit is None else _core.now() + limit
        request = run_request(
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
        run = self._run(self._c._json(request, deadline))
        if wait is None or run.finished:
            return run
        assert deadline is not None
        left = deadline - _core.now()
        if left <= 0:
            raise WaitTimeout(run)
        return self.wait(run.run_id, timeout=left)

    def get(self, run_id: str) -> Run:
        return self._get(run_id, None)

    def _get(self, run_id: str, deadline: float | None) -> Run:
        return self._run(self._c._json(Request("GET", f"/v1/runs/{run_id}"), deadline))

    def list(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Run]:
        """Every run of the key's tenant, newest first, fetched a page at a time. A cursor
        the API answers twice raises `WorkflowAPIError` (instead of looping for ever)."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = list_params(workflow_id, status, page_size, cursor)
            page = parse(RunList, self._c._json(Request("GET", "/v1/runs", params=params)))
            for item in page.items:
                yield Run(item, download_timeout=self._c.config.timeout)
            if not page.next_cursor:
                return
            cursor = next_cursor(page.next_cursor, seen)

    def cancel(self, run_id: str) -> Run:
        """Cancel a queued or running run (a finished one raises `Conflict`)."""
        return self._run(self._c._json(Request("POST", f"/v1/runs/{run_id}/cancel")))

    def wait(self, run_id: str, *, timeout: float = 300.0) -> Run:
        """The run once it has ended; `WaitTimeout` (with the run as it is, None if no answer
        came) after `timeout` seconds, retries and their pauses included. `timeout=0` looks
        once."""
        if timeout <= 0:
            now = self.get(run_id)
            if now.finished:
                return now
            raise WaitTimeout(now)
        deadline = _core.now() + timeout
        pause = POLL_FIRST
        run: Run | None = None
        while True:
            try:
                run = self._get(run_id, deadline)
            except WaitTimeout:
                raise WaitTimeout(run) from None
            if run.finished:
                return run
            left = deadline - _core.now()
            if left <= 0:
                raise WaitTimeout(run)
            _sleep(min(pause, left))
            pause = min(POLL_MAX, pause * 1.5)

    def stream(self, run_id: str) -> EventStream:
        """The run's events as they happen (Server-Sent Events): a `run` event with the whole
        run first, then `step.*` and `run.*` events, and a last `run` event once it has
        ended, after which the iteration stops. For a finished run: that one `run` event.

        A lost connection, or a stream that ends before the run did, is opened again (with
        the retry policy's backoff, its tries counted from the last new event); the server
        starts each stream with the run as it is, and events already seen (same id) are
        skipped. `Unreachable` after the last try. `with client.runs.stream(id) as events:`
        closes the connection when the loop stops early."""
        return EventStream(self._events(run_id))

    def _events(self, run_id: str) -> Generator[RunEvent, None, None]:
        failures = 0
        seen: set[str] = set()
        timeout = httpx.Timeout(self._c.config.timeout, read=None)
        while True:
            failures += 1
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
                            self._c.config.retry.delay(failures, error.retry_after)
                            if isinstance(error, RateLimited | Unavailable)
                            else None
                        )
                        if pause is None:
                            raise error
                        _sleep(pause)
                        continue
                    for sse in source.iter_sse():
                        event = to_event(sse.event, sse.data, sse.id, self._c.config.timeout)
                        if event.id is None or event.id not in seen:
                            if event.id is not None:
                                seen.add(event.id)
                            failures = 1  # news: this try starts a new count
                            yield event
                        if event.run is not None and event.run.finished:
                            return
                cause = "the stream ended before the run did"
            except httpx.TransportError as exc:
                cause = f"{type(exc).__name__}: {exc}".rstrip(": ")
            pause = self._c.config.retry.delay(failures, None)
            if pause is None:
                raise stream_lost(run_id, cause)
            _sleep(pause)


def next_cursor(cursor: str, seen: set[str]) -> str:
    """`cursor`, unless the API already answered it: then following it would loop."""
    if cursor in seen:
        raise WorkflowAPIError(0, "the API answered a page cursor twice", f"cursor {cursor!r}")
    seen.add(cursor)
    return cursor


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
