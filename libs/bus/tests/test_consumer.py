"""The dispatcher's delivery rules, with an in-memory publisher standing in for Kafka."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bus.consumer import Dispatcher
from bus.envelope import encode
from contracts.events import RunRequested

EVENT = RunRequested(
    run_id="run_1",
    tenant_id="t",
    workflow_id="w",
    workflow_version=1,
    requested_at=datetime.now(UTC),
)


class Recorder:
    def __init__(self) -> None:
        self.dead: list[dict[str, Any]] = []

    async def dead_letter(self, **kw: Any) -> None:
        self.dead.append(kw)


def _dispatcher(handler: Any, recorder: Recorder) -> Dispatcher:
    return Dispatcher(
        {RunRequested: handler},
        recorder,
        max_attempts=3,
        retry_delay=0,  # type: ignore[arg-type]
    )


async def _deliver(dispatcher: Dispatcher, value: bytes | None = None) -> Any:
    out = encode(EVENT, source="/test", event_id="e-1")
    return await dispatcher.dispatch(
        topic="t",
        key=out.key,
        value=value if value is not None else out.value,
        headers=out.headers,
    )


async def test_an_undecodable_record_goes_to_the_dead_letter_topic_at_once() -> None:
    recorder = Recorder()

    async def never(_: Any) -> None:
        raise AssertionError("not called")

    assert await _deliver(_dispatcher(never, recorder), value=b"{not json") is None
    assert len(recorder.dead) == 1
    assert "not a CloudEvent" in recorder.dead[0]["error"] or "schema" in recorder.dead[0]["error"]


async def test_a_handler_bug_is_retried_then_dead_lettered_instead_of_blocking() -> None:
    recorder = Recorder()
    calls = 0

    async def broken(_: Any) -> None:
        nonlocal calls
        calls += 1
        raise LookupError("workflow missing")

    dispatcher = _dispatcher(broken, recorder)
    for _ in range(2):
        with pytest.raises(LookupError):
            await _deliver(dispatcher)
    assert await _deliver(dispatcher) is None
    assert calls == 3
    assert recorder.dead[0]["error"] == "LookupError: workflow missing"


async def test_a_dependency_outage_is_retried_for_as_long_as_it_lasts() -> None:
    recorder = Recorder()
    calls = 0

    async def flaky(_: Any) -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:
            raise ConnectionError("mongo down")

    dispatcher = _dispatcher(flaky, recorder)
    for _ in range(5):
        with pytest.raises(ConnectionError):
            await _deliver(dispatcher)
    envelope = await _deliver(dispatcher)
    assert envelope is not None
    assert recorder.dead == []


async def test_a_known_event_type_without_a_handler_is_skipped_without_decoding() -> None:
    from contracts.events import StepStarted

    recorder = Recorder()
    called: list[Any] = []

    async def handler(data: Any) -> None:
        called.append(data)

    dispatcher = _dispatcher(handler, recorder)
    out = encode(
        StepStarted(run_id="run_1", node_id="a", attempt=1, started_at=datetime.now(UTC)),
        source="/test",
    )
    # A body that would not even decode: it is never looked at.
    result = await dispatcher.dispatch(
        topic="t", key=out.key, value=b"not json", headers=out.headers
    )
    assert result is None
    assert called == []
    assert recorder.dead == []
