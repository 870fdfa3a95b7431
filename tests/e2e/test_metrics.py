"""Health and metrics of every service: each worker's ops port (`/healthz`, `/readyz`,
`/metrics`, see bus.ops) and the `workflow_*` metrics a run, a step and a 429 leave behind."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from devstack import process
from devstack.settings import Settings
from e2e_helpers import TWO_STEPS, register
from e2e_receiver import Receiver, Reply
from prometheus_client.parser import text_string_to_metric_families
from test_service_lifecycle import _closed_port

pytestmark = pytest.mark.e2e

WORKERS = ("orchestrator", "executor", "notifier")


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels}` of a scrape, 0 when absent."""
    return _samples(text).get((name, frozenset(labels.items())), 0.0)


def _eventually(scrape: Callable[[], str], holds: Callable[[str], bool], within: float) -> str:
    """Scrape until `holds` (a metric is observed just after the event that shows it)."""
    deadline = time.monotonic() + within
    while True:
        text = scrape()
        if holds(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


@pytest.mark.parametrize("name", WORKERS)
def test_each_worker_is_alive_ready_and_serves_prometheus_metrics(system: Any, name: str) -> None:
    base = system.ops_url(name)
    assert httpx.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    # The executor reads tenants' provider credentials from MongoDB (the stack sets
    # PROVIDER_CREDENTIALS_KEYS), and writes images to S3.
    expected = {"kafka", "consumer", "mongodb"} | ({"s3"} if name == "executor" else set())
    assert ready.json() == {"status": "ready", "checks": dict.fromkeys(expected, "ok")}
    metrics = httpx.get(f"{base}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE workflow_queue_wait_seconds histogram" in metrics.text
    assert "workflow_kafka_consumer_lag" in metrics.text


@pytest.mark.parametrize("name", WORKERS)
def test_a_worker_whose_kafka_is_unreachable_is_alive_but_not_ready_naming_kafka(
    system: Any, name: str
) -> None:
    # A Kafka that takes connections and never answers (a refused one ends the start at
    # once); the shared Kafka is not stopped, other tests use it.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    kafka = f"127.0.0.1:{silent.getsockname()[1]}"
    port = _closed_port()
    env = {
        **system.env,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        f"{name.upper()}_OPS_PORT": str(port),
        # It keeps waiting for Kafka while the test asks it.
        "STARTUP_TIMEOUT_SECONDS": "60",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
                if "kafka" in ready.json().get("checks", {}):
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "no /readyz answer within 30 s"
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        problem = ready.json()
        assert problem["status"] == 503
        assert problem["checks"]["kafka"] == "no answer within 3 s"
        assert problem["checks"]["consumer"] == "not started"
        other = "s3" if name == "executor" else "mongodb"
        assert problem["checks"][other] == "ok"
        assert problem["detail"].startswith("not ready: consumer: not started; kafka: ")
        assert kafka not in ready.text  # the dependency named, not the exception's text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        silent.close()


def test_every_running_worker_turns_not_ready_while_kafka_is_stopped_and_ready_after(
    system: Any,
) -> None:
    # The shared Kafka is paused (SIGSTOP), not killed: its group memberships and logs are
    # intact when it resumes, so the tests after this one find the same system.
    pid = process.owned_pid(Settings.from_env().state_dir / "kafka.pid", "kafka")
    assert pid is not None, "the stack's Kafka is not running"

    def readiness() -> dict[str, httpx.Response]:
        return {name: httpx.get(f"{system.ops_url(name)}/readyz", timeout=15) for name in WORKERS}

    def wait_for(ready: bool, within: float) -> dict[str, httpx.Response]:
        deadline = time.monotonic() + within
        while True:
            answers = readiness()
            if all((r.status_code == 200) is ready for r in answers.values()):
                return answers
            assert time.monotonic() < deadline, {n: r.text for n, r in answers.items()}
            time.sleep(0.2)

    wait_for(ready=True, within=30)
    os.kill(pid, signal.SIGSTOP)
    try:
        stopped = wait_for(ready=False, within=30)
        for name, answer in stopped.items():
            assert answer.status_code == 503, name
            assert answer.json()["checks"]["kafka"] == "no answer within 3 s", name
            healthz = httpx.get(f"{system.ops_url(name)}/healthz", timeout=10)
            assert healthz.status_code == 200, name  # alive: restarting it would not help
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(ready=True, within=60)


def test_a_completed_run_is_counted_by_workflow_and_its_run_and_step_durations_observed(
    system: Any,
) -> None:
    def scrape(name: str) -> Callable[[], str]:
        return lambda: httpx.get(f"{system.ops_url(name)}/metrics", timeout=10).text

    step_count = "workflow_step_duration_seconds_count"
    steps_before = _value(scrape("executor")(), step_count, node_type="text.template")
    with system.client() as c:
        workflow_id = register(c, TWO_STEPS)
        run = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"x": "hi"}})
        assert run.status_code == 200, run.text
        assert run.json()["status"] == "completed"

    def counted(text: str) -> bool:
        return (
            _value(text, "workflow_runs_total", workflow=workflow_id, event="completed") == 1
            and _value(
                text,
                "workflow_run_duration_seconds_count",
                workflow=workflow_id,
                status="completed",
            )
            == 1
        )

    orchestrator = _eventually(scrape("orchestrator"), counted, within=10)
    assert _value(orchestrator, "workflow_runs_total", workflow=workflow_id, event="started") == 1
    assert counted(orchestrator), [
        line for line in orchestrator.splitlines() if workflow_id in line
    ]
    assert (
        _value(
            orchestrator,
            "workflow_run_duration_seconds_sum",
            workflow=workflow_id,
            status="completed",
        )
        > 0
    )
    assert _value(orchestrator, "workflow_queue_wait_seconds_count", event="run.requested") >= 1
    # FastStream's Prometheus middleware, on every broker.
    assert "workflow_kafka_received_messages_total{" in orchestrator
    assert "workflow_kafka_published_messages_total{" in orchestrator
    executor = scrape("executor")()
    assert _value(executor, step_count, node_type="text.template") >= steps_before + 2
    assert _value(executor, "workflow_queue_wait_seconds_count", event="step.requested") >= 2


def test_the_ingress_counts_its_rate_limit_refusals(system: Any) -> None:
    admin_key = system.env["ADMIN_API_KEY"]
    tenant = f"metrics-{secrets.token_hex(4)}"
    with system.client(key=admin_key, timeout=30) as admin:
        before = _value(
            admin.get("/metrics").text, "workflow_rate_limit_refusals_total", kind="rate-limited"
        )
        limits = admin.put(f"/v1/admin/tenants/{tenant}/limits", json={"requestsPerSecond": 1})
        assert limits.status_code == 200, limits.text
        created = admin.post("/v1/admin/keys", json={"tenantId": tenant, "name": "metrics"})
        assert created.status_code == 201, created.text
        with system.client(created.json()["key"]) as c:
            codes = [c.get("/v1/workflows").status_code for _ in range(6)]
        refused = codes.count(429)
        assert refused >= 1, codes
        after = _value(
            admin.get("/metrics").text, "workflow_rate_limit_refusals_total", kind="rate-limited"
        )
    assert after - before >= refused  # other tests may be refused meanwhile, never fewer


def test_the_notifier_counts_webhook_attempts_by_outcome_and_observes_delivery_latency(
    system: Any,
) -> None:
    def scrape() -> str:
        return httpx.get(f"{system.ops_url('notifier')}/metrics", timeout=10).text

    attempts = "workflow_webhook_attempts_total"
    durations = "workflow_webhook_attempt_duration_seconds_count"
    before = scrape()
    receiver = Receiver()
    receiver.on("/hook", Reply(status=500), Reply(status=200))
    try:
        with system.client() as c:
            workflow_id = register(c, TWO_STEPS)
            run = c.post(
                f"/v1/workflows/{workflow_id}/run",
                json={"inputs": {"x": "hi"}, "webhook": f"{receiver.url}/hook"},
            )
            assert run.status_code == 200, run.text
        # The retry schedule of the tests is 0, 0.5, 1 s: a 500, then a 200.
        assert receiver.wait_for(lambda: len(receiver.calls("/hook")) == 2, timeout=30)
    finally:
        receiver.close()

    def grew(text: str, outcome: str) -> float:
        return _value(text, attempts, outcome=outcome) - _value(before, attempts, outcome=outcome)

    after = _eventually(
        scrape, lambda t: grew(t, "succeeded") >= 1 and grew(t, "retrying") >= 1, within=10
    )
    assert grew(after, "succeeded") >= 1
    assert grew(after, "retrying") >= 1
    assert _value(after, durations, outcome="succeeded") > _value(
        before, durations, outcome="succeeded"
    )
    # Delivery latency: from the run event to the 2xx, the failed first attempt included.
    delivered = "workflow_webhook_delivery_seconds"
    assert _value(after, f"{delivered}_count") - _value(before, f"{delivered}_count") >= 1
    assert _value(after, f"{delivered}_sum") > _value(before, f"{delivered}_sum")
