"""A step request the executor cannot process is answered, not dropped: the orchestrator gets
a `step.failed` that is not retried, carrying the reason."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any, cast

import httpx
from aiokafka.errors import MessageSizeTooLargeError
from bus.deadletter import DeadLetter
from bus.envelope import encode
from bus.publisher import EventPublisher
from contracts.events import StepFailed, StepRequested, StepStarted, StepSucceeded
from executor.nodes import NodeContext, NodeResult
from executor.providers import Providers
from executor.service import POISON_CODE, Executor
from storage.assets import AssetStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TOPIC = "e2e.workflow.step.requested.v1"
STEP = StepRequested(
    run_id="run_1",
    tenant_id="t",
    node_id="say",
    node_type="text.template",
    attempt=2,
    params={"template": "hi"},
)


class Publisher:
    def __init__(self, refuse: tuple[type[Any], ...] = ()) -> None:
        self.refuse = refuse
        self.published: list[Any] = []

    async def publish(self, event: Any, **_: Any) -> None:
        if isinstance(event, self.refuse):
            raise MessageSizeTooLargeError("The message is 1500000 bytes")
        self.published.append(event)


async def _huge(params: Any, ctx: NodeContext) -> NodeResult:
    return NodeResult(outputs={"text": "x" * 2_000_000})


def _executor(publisher: Publisher, handler: Any = _huge) -> Executor:
    return Executor(
        handlers={"text.template": handler},
        store=cast(AssetStore, None),
        outputs_bucket="b",
        providers=cast(Providers, None),
        http=cast(httpx.AsyncClient, None),
        publisher=cast(EventPublisher, publisher),
        default_timeout=10,
        clock=lambda: NOW,
    )


def _failed(publisher: Publisher) -> StepFailed:
    (failed,) = [e for e in publisher.published if isinstance(e, StepFailed)]
    return failed


async def test_a_step_request_failing_every_try_is_answered_with_a_final_step_failed() -> None:
    publisher = Publisher()
    out = encode(STEP, source="/test")
    letter = DeadLetter(
        TOPIC, 1, 9, out.key, out.value, out.headers, "ValueError: boom", 5, event=STEP
    )
    await _executor(publisher).on_dead_letter(letter)
    failed = _failed(publisher)
    assert (failed.run_id, failed.node_id, failed.attempt) == ("run_1", "say", 2)
    assert failed.error.code == POISON_CODE
    assert failed.error.retryable is False
    assert StepRequested.event_type in failed.error.message
    assert "after 5 tries: ValueError: boom" in failed.error.message


async def test_an_undecodable_step_request_is_answered_from_what_its_json_names() -> None:
    publisher = Publisher()
    value = json.dumps({"runId": "run_1", "nodeId": "say", "attempt": 3, "params": 7}).encode()
    headers = {"ce_type": "com.sprello.workflow.step.requested.v9", "ce_subject": "run_1"}
    letter = DeadLetter(TOPIC, 0, 1, b"run_1", value, headers, "unknown event type", 1)
    await _executor(publisher).on_dead_letter(letter)
    failed = _failed(publisher)
    assert (failed.node_id, failed.attempt) == ("say", 3)
    assert "step.requested.v9" in failed.error.message


async def test_a_step_request_naming_no_step_or_a_cancel_is_not_answered() -> None:
    publisher = Publisher()
    executor = _executor(publisher)
    await executor.on_dead_letter(DeadLetter(TOPIC, 0, 1, b"run_1", b"[[[", {}, "bad", 1))
    cancel_topic = "e2e.workflow.run.cancel.v1"
    await executor.on_dead_letter(DeadLetter(cancel_topic, 0, 1, b"run_1", b"{}", {}, "bad", 1))
    assert publisher.published == []


async def test_a_result_too_large_for_kafka_fails_the_step_instead_of_running_it_again() -> None:
    publisher = Publisher(refuse=(StepSucceeded,))
    await _executor(publisher).on_step_requested(STEP)
    assert [type(e) for e in publisher.published] == [StepStarted, StepFailed]
    failed = _failed(publisher)
    assert failed.error.code == "outputs_too_large"
    assert failed.error.retryable is False
    assert "MAX_STEP_OUTPUT_BYTES" in failed.error.message


async def test_a_repeated_request_for_a_step_attempt_still_running_changes_nothing() -> None:
    release, started = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def slow(params: Any, ctx: NodeContext) -> NodeResult:
        calls.append("run")
        started.set()
        await release.wait()
        return NodeResult(outputs={"text": "hi"})

    publisher = Publisher()
    executor = _executor(publisher, slow)
    first = asyncio.create_task(executor.on_step_requested(STEP))
    await started.wait()
    await executor.on_step_requested(STEP)  # the same attempt, delivered again
    release.set()
    await first
    assert calls == ["run"]
    assert [type(e) for e in publisher.published] == [StepStarted, StepSucceeded]


async def test_a_repeated_request_for_a_finished_attempt_is_answered_again_without_running() -> (
    None
):
    calls: list[str] = []

    async def once(params: Any, ctx: NodeContext) -> NodeResult:
        calls.append("run")
        return NodeResult(outputs={"text": "hi"})

    publisher = Publisher()
    executor = _executor(publisher, once)
    await executor.on_step_requested(STEP)
    await executor.on_step_requested(STEP)  # the orchestrator re-drove it: its answer was lost
    assert calls == ["run"]
    assert [type(e) for e in publisher.published] == [StepStarted, StepSucceeded, StepSucceeded]
    assert publisher.published[1] == publisher.published[2]
    # Another attempt of the same step is new work.
    await executor.on_step_requested(STEP.model_copy(update={"attempt": STEP.attempt + 1}))
    assert calls == ["run", "run"]
