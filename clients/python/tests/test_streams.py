"""`runs.stream`: reconnecting after a lost connection, deduplicating, closing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from typer.testing import CliRunner
from workflow_client import AsyncClient, Client, RetryPolicy, Unreachable
from workflow_client import aio as async_module
from workflow_client import client as sync_module
from workflow_client.cli import ExitCode, app

URL = "http://api.test"
RUN_ID = "run_" + "0" * 28
EVENTS = f"{URL}/v1/runs/{RUN_ID}/events"


def _run(status: str) -> dict[str, Any]:
    return {
        "runId": RUN_ID,
        "workflowId": "wf",
        "workflowVersion": 1,
        "status": status,
        "createdAt": "2026-11-29T20:00:00Z",
    }


def _sse(event: str, event_id: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\nid: {event_id}\ndata: {json.dumps(data)}\n\n".encode()


SNAPSHOT = _sse("run", f"{RUN_ID}:1", _run("running"))
STEP = _sse("step.started", "e-1", {"nodeId": "a"})
LAST = _sse("run", f"{RUN_ID}:3", _run("completed"))
HEADERS = {"Content-Type": "text/event-stream"}


def _cut_after(*chunks: bytes) -> Iterator[bytes]:
    yield from chunks
    raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def _ok(content: Any) -> httpx.Response:
    return httpx.Response(200, content=content, headers=HEADERS)


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    taken: list[float] = []
    monkeypatch.setattr(sync_module, "_sleep", taken.append)
    return taken


@pytest.fixture
def async_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    taken: list[float] = []

    async def record(seconds: float) -> None:
        taken.append(seconds)

    monkeypatch.setattr(async_module, "_sleep", record)
    return taken


@respx.mock
def test_a_stream_cut_or_ended_early_reconnects_and_skips_events_already_seen(
    pauses: list[float],
) -> None:
    route = respx.get(EVENTS).mock(
        side_effect=[
            _ok(_cut_after(SNAPSHOT, STEP)),  # cut mid-stream
            httpx.ConnectError("refused"),  # the server restarting
            _ok(SNAPSHOT),  # ended before the run did
            _ok(SNAPSHOT + STEP + LAST),  # the fresh snapshot, then the rest
        ]
    )
    with Client(URL, "k") as client:
        events = list(client.runs.stream(RUN_ID))
    assert [(e.type, e.id) for e in events] == [
        ("run", f"{RUN_ID}:1"),
        ("step.started", "e-1"),
        ("run", f"{RUN_ID}:3"),
    ]
    last = events[-1].run
    assert last is not None
    assert last.finished
    assert route.call_count == 4
    assert len(pauses) == 3


@respx.mock
def test_a_stream_that_cannot_be_reopened_raises_unreachable_after_the_last_try(
    pauses: list[float],
) -> None:
    route = respx.get(EVENTS).mock(side_effect=httpx.ReadError("reset"))
    with (
        Client(URL, "k", retry=RetryPolicy(max_attempts=3)) as client,
        pytest.raises(Unreachable, match="event stream"),
    ):
        list(client.runs.stream(RUN_ID))
    assert route.call_count == 3
    assert len(pauses) == 2


@respx.mock
def test_a_stream_that_keeps_ending_without_news_stops_after_the_last_try(
    pauses: list[float],
) -> None:
    route = respx.get(EVENTS).mock(side_effect=lambda request: _ok(SNAPSHOT))
    events = []
    with Client(URL, "k", retry=RetryPolicy(max_attempts=3)) as client:
        stream = client.runs.stream(RUN_ID)
        events.append(next(stream))
        with pytest.raises(Unreachable, match="ended before the run did"):
            next(stream)
    assert [e.id for e in events] == [f"{RUN_ID}:1"], "the same snapshot is not repeated"
    assert route.call_count == 3
    assert len(pauses) == 2


@respx.mock
async def test_the_async_stream_reconnects_and_skips_events_already_seen(
    async_pauses: list[float],
) -> None:
    async def cut() -> AsyncIterator[bytes]:
        yield SNAPSHOT
        raise httpx.ReadError("reset")

    respx.get(EVENTS).mock(
        side_effect=[_ok(cut()), httpx.ConnectTimeout("slow"), _ok(SNAPSHOT + STEP + LAST)]
    )
    async with AsyncClient(URL, "k") as client, client.runs.stream(RUN_ID) as events:
        got = [(e.type, e.id) async for e in events]
    assert got == [("run", f"{RUN_ID}:1"), ("step.started", "e-1"), ("run", f"{RUN_ID}:3")]
    assert len(async_pauses) == 2


@respx.mock
async def test_breaking_out_of_the_async_stream_closes_the_connection() -> None:
    closed: list[bool] = []

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield SNAPSHOT
            yield STEP
            yield LAST

        async def aclose(self) -> None:
            closed.append(True)

    respx.get(EVENTS).mock(return_value=httpx.Response(200, stream=Body(), headers=HEADERS))
    async with AsyncClient(URL, "k") as client:
        async with client.runs.stream(RUN_ID) as events:
            async for event in events:
                assert event.type == "run"
                break
        assert closed == [True], "the connection is closed when the block is left"


@respx.mock
def test_the_cli_watch_follows_a_stream_across_a_lost_connection(pauses: list[float]) -> None:
    route = respx.get(EVENTS).mock(
        side_effect=[_ok(_cut_after(SNAPSHOT, STEP)), _ok(SNAPSHOT + STEP + LAST)]
    )
    result = CliRunner().invoke(app, ["--url", URL, "--key", "k", "runs", "watch", RUN_ID])
    assert result.exit_code == ExitCode.OK, result.output
    assert route.call_count == 2
    assert f"{RUN_ID}  wf v1  completed" in result.output
