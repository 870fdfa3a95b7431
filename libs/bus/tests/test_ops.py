"""The ops port's answers (bus.ops) and the metrics helpers (bus.metrics), without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from bus import metrics
from bus.ops import OpsServer
from contracts.events import RunCompleted, RunStarted
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY


class _Consumer:
    def __init__(self, assigned: set[Any]) -> None:
        self._assigned = assigned

    def assignment(self) -> set[Any]:
        return self._assigned


class _Subscriber:
    def __init__(self, group: str | None, assigned: set[Any]) -> None:
        self.group_id = group
        self.running = True
        self.consumer = _Consumer(assigned)


class _Broker:
    """What OpsServer reads of a broker: its subscribers, connect and ping."""

    def __init__(self, subscribers: list[_Subscriber], kafka_up: bool = True) -> None:
        self.subscribers = subscribers
        self.kafka_up = kafka_up

    async def connect(self) -> None:
        return None

    async def ping(self, timeout: float) -> bool:  # noqa: ASYNC109 (the broker's signature)
        return self.kafka_up


def _ops(broker: _Broker, **checks: Any) -> OpsServer:
    return OpsServer(cast(KafkaBroker, broker), host="127.0.0.1", port=0, checks=checks)


async def _get(ops: OpsServer, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=ops.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
        return await client.get(path)


async def _fails() -> None:
    raise ConnectionError("mongodb://user:secret@db:27017 refused")


async def _answers() -> None:
    return None


async def test_readyz_is_ready_once_started_with_partitions_and_dependencies_answering() -> None:
    ops = _ops(_Broker([_Subscriber("g", {"tp"}), _Subscriber(None, set())]), mongodb=_answers)
    assert (await _get(ops, "/healthz")).json() == {"status": "ok"}
    before = await _get(ops, "/readyz")
    assert before.status_code == 503
    assert before.json()["checks"]["consumer"] == "not started"
    await ops.started()
    ready = await _get(ops, "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ready",
        "checks": {"consumer": "ok", "kafka": "ok", "mongodb": "ok"},
    }
    await ops.stopping()
    assert (await _get(ops, "/readyz")).status_code == 503


async def test_readyz_names_the_failing_dependency_without_the_exceptions_text() -> None:
    ops = _ops(_Broker([_Subscriber("g", {"tp"})], kafka_up=False), mongodb=_fails)
    await ops.started()
    answer = await _get(ops, "/readyz")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "not ready: kafka: unreachable; mongodb: unreachable"
    assert "secret" not in answer.text


async def test_a_group_member_without_partitions_is_not_ready() -> None:
    ops = _ops(_Broker([_Subscriber("orchestrator", set())]))
    await ops.started()
    answer = await _get(ops, "/readyz")
    assert answer.json()["checks"]["consumer"] == "no partitions assigned in group orchestrator"


async def test_metrics_answers_the_prometheus_text_format() -> None:
    answer = await _get(_ops(_Broker([])), "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE workflow_runs_total counter" in answer.text


def _run_event(model: Any, workflow: str, seconds: float) -> Any:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return model(
        run_id="run_1",
        tenant_id="t",
        workflow_id=workflow,
        workflow_version=1,
        status="completed" if model is RunCompleted else "running",
        created_at=start,
        started_at=start,
        completed_at=start + timedelta(seconds=seconds) if model is RunCompleted else None,
    )


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_run_events_are_counted_once_each_and_their_duration_observed() -> None:
    counter = metrics.RunEventCounter()
    wf = "wf-counted"
    counter.observe(_run_event(RunStarted, wf, 0), "run_1:started")
    counter.observe(_run_event(RunCompleted, wf, 2.5), "run_1:completed")
    counter.observe(_run_event(RunCompleted, wf, 2.5), "run_1:completed")  # published again
    assert _sample("workflow_runs_total", workflow=wf, event="started") == 1
    assert _sample("workflow_runs_total", workflow=wf, event="completed") == 1
    assert _sample("workflow_run_duration_seconds_sum", workflow=wf, status="completed") == 2.5


@pytest.mark.parametrize("time", ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00"])
def test_queue_wait_is_read_from_the_cloudevents_headers(time: str) -> None:
    name = "workflow_queue_wait_seconds_count"
    before = _sample(name, event="step.requested")
    metrics.observe_queue_wait(
        {"ce_type": "com.sprello.workflow.step.requested.v1", "ce_time": time}
    )
    metrics.observe_queue_wait({"ce_type": "com.sprello.workflow.step.requested.v1"})
    assert _sample(name, event="step.requested") == before + 1
