"""Deadlines that retries do not overshoot, which requests are replayed, cursors, the key."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from typer.testing import CliRunner
from workflow_client import (
    AsyncClient,
    Client,
    RateLimited,
    RetryPolicy,
    Unreachable,
    WaitTimeout,
    WorkflowAPIError,
    _core,
)
from workflow_client import aio as async_module
from workflow_client import client as sync_module
from workflow_client.cli import ExitCode, app

URL = "http://api.test"
RUN_ID = "run_" + "0" * 28


def _run(status: str) -> dict[str, Any]:
    return {
        "runId": RUN_ID,
        "workflowId": "wf",
        "workflowVersion": 1,
        "status": status,
        "createdAt": "2026-11-29T20:00:00Z",
    }


def _problem(status: int) -> dict[str, Any]:
    return {"type": "about:blank", "title": "problem", "status": status}


class Clock:
    """A monotonic clock that only the client's pauses move."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.pauses: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.t += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(_core, "now", fake.now)
    monkeypatch.setattr(sync_module, "_sleep", fake.sleep)
    monkeypatch.setattr(async_module, "_sleep", fake.asleep)
    return fake


def _read_timeout(call: Any) -> float:
    return float(call.request.extensions["timeout"]["read"])


@respx.mock
def test_runs_wait_does_not_overshoot_its_timeout_by_retries(clock: Clock) -> None:
    route = respx.get(f"{URL}/v1/runs/{RUN_ID}").mock(
        side_effect=[
            httpx.Response(200, json=_run("running")),
            httpx.Response(503, json=_problem(503), headers={"Retry-After": "30"}),
        ]
    )
    with Client(URL, "k") as client, pytest.raises(WaitTimeout) as raised:
        client.runs.wait(RUN_ID, timeout=5)
    assert clock.t - 1000.0 == pytest.approx(5.0), "paused up to the deadline, not 30 s"
    assert route.call_count == 2
    assert raised.value.run is not None
    assert raised.value.run.status == "running"
    assert all(_read_timeout(call) <= 5.0 for call in route.calls)


@respx.mock
def test_each_try_read_timeout_is_cut_to_the_time_left(clock: Clock) -> None:
    route = respx.post(f"{URL}/v1/workflows/wf/run").mock(
        side_effect=[
            httpx.Response(429, json=_problem(429), headers={"Retry-After": "3"}),
            httpx.Response(200, json=_run("completed")),
        ]
    )
    with Client(URL, "k") as client:
        client.run("wf", {}, timeout=10)
    assert [_read_timeout(call) for call in route.calls] == [10.0, 7.0]
    assert route.calls[0].request.headers["Prefer"] == "wait=9", "the server answers first"


@respx.mock
def test_client_run_raises_wait_timeout_when_retries_outlast_the_timeout(clock: Clock) -> None:
    route = respx.post(f"{URL}/v1/workflows/wf/run").mock(
        return_value=httpx.Response(503, json=_problem(503), headers={"Retry-After": "4"})
    )
    with Client(URL, "k") as client, pytest.raises(WaitTimeout) as raised:
        client.run("wf", {}, timeout=10)
    assert raised.value.run is None
    assert clock.pauses == [4.0, 4.0, 2.0]
    assert route.call_count == 3


@respx.mock
def test_a_read_timeout_at_the_deadline_raises_wait_timeout_not_unreachable(clock: Clock) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        clock.t += 10
        raise httpx.ReadTimeout("timed out", request=request)

    respx.get(f"{URL}/v1/runs/{RUN_ID}").mock(side_effect=slow)
    with Client(URL, "k") as client, pytest.raises(WaitTimeout):
        client.runs.wait(RUN_ID, timeout=10)


@respx.mock
async def test_the_async_wait_does_not_overshoot_its_timeout_by_retries(clock: Clock) -> None:
    respx.get(f"{URL}/v1/runs/{RUN_ID}").mock(
        side_effect=[
            httpx.Response(200, json=_run("queued")),
            httpx.Response(429, json=_problem(429), headers={"Retry-After": "60"}),
        ]
    )
    async with AsyncClient(URL, "k") as client:
        with pytest.raises(WaitTimeout):
            await client.runs.wait(RUN_ID, timeout=3)
    assert clock.t - 1000.0 == pytest.approx(3.0)


@respx.mock
def test_the_cli_timeout_is_not_overshot_by_retries(clock: Clock) -> None:
    respx.post(f"{URL}/v1/workflows/wf/run").mock(
        return_value=httpx.Response(503, json=_problem(503), headers={"Retry-After": "50"})
    )
    result = CliRunner().invoke(
        app, ["--url", URL, "--key", "k", "run", "wf", "--json", "--timeout", "20"]
    )
    assert result.exit_code == ExitCode.TIMEOUT
    assert sum(clock.pauses) == pytest.approx(20.0)


@respx.mock
def test_a_read_timeout_on_an_upload_or_a_cancel_is_not_replayed(clock: Clock) -> None:
    upload = respx.post(f"{URL}/v1/assets").mock(side_effect=httpx.ReadTimeout("slow"))
    cancel = respx.post(f"{URL}/v1/runs/{RUN_ID}/cancel").mock(
        side_effect=httpx.RemoteProtocolError("closed")
    )
    with Client(URL, "k") as client:
        with pytest.raises(Unreachable):
            client.assets.upload(b"\x89PNG\r\n\x1a\n")
        with pytest.raises(Unreachable):
            client.runs.cancel(RUN_ID)
    assert upload.call_count == 1
    assert cancel.call_count == 1
    assert clock.pauses == []


@respx.mock
def test_an_upload_refused_with_429_or_503_or_never_connected_is_retried(clock: Clock) -> None:
    asset = {"ref": "s3://u/a.png", "url": "http://s3/a.png", "contentType": "image/png"}
    route = respx.post(f"{URL}/v1/assets").mock(
        side_effect=[
            httpx.Response(429, json=_problem(429), headers={"Retry-After": "1"}),
            httpx.ConnectError("refused"),
            httpx.Response(503, json=_problem(503), headers={"Retry-After": "1"}),
            httpx.Response(201, json={**asset, "bytes": 8}),
        ]
    )
    with Client(URL, "k") as client:
        assert client.assets.upload(b"\x89PNG\r\n\x1a\n") == "s3://u/a.png"
    assert route.call_count == 4


@respx.mock
def test_a_read_timeout_on_a_read_is_retried(clock: Clock) -> None:
    route = respx.get(f"{URL}/v1/runs/{RUN_ID}").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=_run("completed"))]
    )
    with Client(URL, "k") as client:
        assert client.runs.get(RUN_ID).status == "completed"
    assert route.call_count == 2


@respx.mock
def test_runs_list_stops_when_the_server_repeats_a_cursor() -> None:
    page = {"items": [_run("completed")], "nextCursor": "c1"}
    route = respx.get(f"{URL}/v1/runs").mock(return_value=httpx.Response(200, json=page))
    with Client(URL, "k") as client, pytest.raises(WorkflowAPIError, match="cursor"):
        list(client.runs.list())
    assert route.call_count == 2


@respx.mock
async def test_the_async_runs_list_stops_when_the_server_repeats_a_cursor() -> None:
    page = {"items": [], "nextCursor": "c1"}
    respx.get(f"{URL}/v1/runs").mock(return_value=httpx.Response(200, json=page))
    async with AsyncClient(URL, "k") as client:
        with pytest.raises(WorkflowAPIError, match="cursor"):
            _ = [run async for run in client.runs.list()]


def test_the_config_repr_does_not_show_the_api_key() -> None:
    with Client(URL, "wfk_secret_value") as client:
        assert "wfk_secret_value" not in repr(client.config)
        assert client.config.api_key == "wfk_secret_value"


@respx.mock
def test_a_413_maps_to_bad_request_and_the_invalid_request_exit_code() -> None:
    respx.post(f"{URL}/v1/workflows/wf/run").mock(
        return_value=httpx.Response(413, json=_problem(413))
    )
    result = CliRunner().invoke(app, ["--url", URL, "--key", "k", "run", "wf", "--no-wait"])
    assert result.exit_code == ExitCode.INVALID == 5


@respx.mock
def test_a_limit_that_outlasts_the_tries_is_still_rate_limited_without_a_deadline(
    clock: Clock,
) -> None:
    respx.get(f"{URL}/v1/runs/{RUN_ID}").mock(
        return_value=httpx.Response(429, json=_problem(429), headers={"Retry-After": "1"})
    )
    with (
        Client(URL, "k", retry=RetryPolicy(max_attempts=2)) as client,
        pytest.raises(RateLimited),
    ):
        client.runs.get(RUN_ID)


@respx.mock
def test_a_timeout_under_two_seconds_starts_at_once_and_polls_until_it(clock: Clock) -> None:
    post = respx.post(f"{URL}/v1/workflows/wf/run").mock(
        return_value=httpx.Response(202, json=_run("queued"))
    )
    respx.get(f"{URL}/v1/runs/{RUN_ID}").mock(
        return_value=httpx.Response(200, json=_run("running"))
    )
    with Client(URL, "k") as client, pytest.raises(WaitTimeout) as raised:
        client.run("wf", {}, timeout=1)
    assert post.calls[0].request.headers["Prefer"] == "respond-async"
    assert raised.value.run is not None, "the run as it is, to report"
    assert clock.t - 1000.0 == pytest.approx(1.0)
