"""The asyncio client: the same API as `Client`, with `await` and `async for`."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from contracts.api import AssetResource, RunList, WebhookSecret, WorkflowList, WorkflowResource
from httpx_sse import aconnect_sse

from workflow_client import _core
from workflow_client._core import (
    RETRIED_STATUSES,
    AsyncEventStream,
    Config,
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
from workflow_client.client import POLL_FIRST, POLL_MAX, next_cursor, verify_webhook
from workflow_client.errors import RateLimited, Unavailable, WaitTimeout
from workflow_client.models import Run, RunEvent, parse


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class AsyncClient:
    """`AsyncClient()` reads WORKFLOW_API_URL and WORKFLOW_API_KEY; arguments win.
    Use `async with`, or `await client.close()`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = Config.resolve(base_url, api_key, timeout, retry)
        self._http = httpx.AsyncClient(
            base_url=self.config.base_url,
            headers=self.config.headers(),
            timeout=timeout,
            transport=transport,
        )
        self.runs = AsyncRuns(self)
        self.workflows = AsyncWorkflows(self)
        self.assets = AsyncAssets(self)
        self.webhooks = AsyncWebhooks(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, request: Request, deadline: float | None = None) -> httpx.Response:
        """As `Client._send`: retries per the policy, typed errors, the deadline kept."""
        attempt = 0
        while True:
            attempt += 1
            kwargs = request.send_kwargs(self.config.timeout, deadline)
            try:
                response = await self._http.request(request.method, request.path, **kwargs)
            except httpx.TransportError as exc:
                if passed(deadline):
                    raise WaitTimeout(None) from exc
                pause = (
                    None
                    if may_have_arrived(exc) and not request.replayable
                    else self.config.retry.delay(attempt, None)
                )
                if pause is None:
                    raise unreachable(exc, self.config.base_url) from exc
                await _sleep(capped(pause, deadline))
                continue
            if response.status_code < 400:
                return response
            if response.status_code in RETRIED_STATUSES:
                pause = self.config.retry.delay(attempt, retry_after(response))
                if pause is not None:
                    await _sleep(capped(pause, deadline))
                    continue
            raise problem_of(response)

    async def _json(self, request: Request, deadline: float | None = None) -> Any:
        return (await self._send(request, deadline)).json()

    async def run(
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
        # The run's deadline, not the call's: it mirrors Client.run and raises WaitTimeout
        # with the run as it is, which asyncio.timeout could not.
        timeout: float = 300.0,  # noqa: ASYNC109
    ) -> Run:
        """As `Client.run`; download outputs with `await run.outputs[name].adownload(path)`."""
        return await self.runs.create(
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


class AsyncRuns:
    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    def _run(self, data: Any) -> Run:
        return to_run(data, self._c.config.timeout)

    async def create(
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
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Run:
        """As `Runs.create`."""
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
        run = self._run(await self._c._json(request, deadline))
        if wait is None or run.finished:
            return run
        assert deadline is not None
        left = deadline - _core.now()
        if left <= 0:
            raise WaitTimeout(run)
        return await self.wait(run.run_id, timeout=left)

    async def get(self, run_id: str) -> Run:
        return await self._get(run_id, None)

    async def _get(self, run_id: str, deadline: float | None) -> Run:
        return self._run(await self._c._json(Request("GET", f"/v1/runs/{run_id}"), deadline))

    async def list(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Run]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = list_params(workflow_id, status, page_size, cursor)
            data = await self._c._json(Request("GET", "/v1/runs", params=params))
            page = parse(RunList, data)
            for item in page.items:
                yield Run(item, download_timeout=self._c.config.timeout)
            if not page.next_cursor:
                return
            cursor = next_cursor(page.next_cursor, seen)

    async def cancel(self, run_id: str) -> Run:
        return self._run(await self._c._json(Request("POST", f"/v1/runs/{run_id}/cancel")))

    async def wait(self, run_id: str, *, timeout: float = 300.0) -> Run:  # noqa: ASYNC109
        """As `Runs.wait`."""
        if timeout <= 0:
            now = await self.get(run_id)
            if now.finished:
                return now
            raise WaitTimeout(now)
        deadline = _core.now() + timeout
        pause = POLL_FIRST
        run: Run | None = None
        while True:
            try:
                run = await self._get(run_id, deadline)
            except WaitTimeout:
                raise WaitTimeout(run) from None
            if run.finished:
                return run
            left = deadline - _core.now()
            if left <= 0:
                raise WaitTimeout(run)
            await _sleep(min(pause, left))
            pause = min(POLL_MAX, pause * 1.5)

    def stream(self, run_id: str) -> AsyncEventStream:
        """As `Runs.stream`; use `async with client.runs.stream(id) as events:` so that a
        `break` closes the connection."""
        return AsyncEventStream(self._events(run_id))

    async def _events(self, run_id: str) -> AsyncGenerator[RunEvent, None]:
        failures = 0
        seen: set[str] = set()
        timeout = httpx.Timeout(self._c.config.timeout, read=None)
        while True:
            failures += 1
            try:
                async with aconnect_sse(
                    self._c._http,
                    "GET",
                    f"/v1/runs/{run_id}/events",
                    headers={"Accept": "text/event-stream"},
                    timeout=timeout,
                ) as source:
                    response = source.response
                    if response.status_code >= 400:
                        await response.aread()
                        error = problem_of(response)
                        pause = (
                            self._c.config.retry.delay(failures, error.retry_after)
                            if isinstance(error, RateLimited | Unavailable)
                            else None
                        )
                        if pause is None:
                            raise error
                        await _sleep(pause)
                        continue
                    async for sse in source.aiter_sse():
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
            await _sleep(pause)


class AsyncWorkflows:
    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def put(
        self, workflow_id: str, definition: Mapping[str, Any] | str | Path
    ) -> WorkflowResource:
        request = Request("PUT", f"/v1/workflows/{workflow_id}", json=definition_of(definition))
        return parse(WorkflowResource, await self._c._json(request))

    async def get(self, workflow_id: str, version: int | None = None) -> WorkflowResource:
        path = f"/v1/workflows/{workflow_id}"
        if version is not None:
            path += f"/versions/{version}"
        return parse(WorkflowResource, await self._c._json(Request("GET", path)))

    async def list(self) -> list[WorkflowResource]:
        return parse(WorkflowList, await self._c._json(Request("GET", "/v1/workflows"))).items

    async def versions(self, workflow_id: str) -> builtins.list[WorkflowResource]:
        latest = await self.get(workflow_id)
        earlier = [await self.get(workflow_id, v) for v in range(1, latest.version)]
        return [*earlier, latest]


class AsyncAssets:
    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def upload(self, source: str | Path | bytes, *, content_type: str | None = None) -> str:
        """Upload a file (path) or bytes; the `s3://` reference to pass as an input."""
        return (await self.create(source, content_type=content_type)).ref

    async def create(
        self, source: str | Path | bytes, *, content_type: str | None = None
    ) -> AssetResource:
        """`upload`, answering the whole asset record (reference, URL, type, size)."""
        data, kind = upload_body(source, content_type)
        request = Request("POST", "/v1/assets", content=data, headers={"Content-Type": kind})
        return parse(AssetResource, await self._c._json(request))


class AsyncWebhooks:
    def __init__(self, client: AsyncClient) -> None:
        self._c = client
        self._secret: str | None = None

    async def secret(self) -> WebhookSecret:
        data = await self._c._json(Request("GET", "/v1/webhooks/secret"))
        found = parse(WebhookSecret, data)
        self._secret = found.secret
        return found

    async def verify(
        self, headers: Mapping[str, str], body: bytes | str, *, secret: str | None = None
    ) -> dict[str, Any]:
        if secret is None:
            secret = self._secret or (await self.secret()).secret
        return verify_webhook(secret, headers, body)
