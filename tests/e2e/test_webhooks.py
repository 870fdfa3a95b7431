"""Webhooks end to end: real receivers on loopback, the four services as processes.

The system runs the notifier with a compressed schedule (`0,0.5,1` s: three attempts) and
loopback allowed (tests/e2e/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from bus.topics import Topic
from e2e_helpers import committed_to_end, register
from e2e_receiver import serve_on_receiver_port
from standardwebhooks import Webhook

pytestmark = pytest.mark.e2e

TEXT = {
    "name": "echo",
    "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "hi {{ inputs.x }}"}}],
    "outputs": {"text": "{{ nodes.say.text }}"},
}
IMAGE = {
    "name": "tiny picture",
    "inputSchema": {"type": "object", "properties": {"prompt": {"type": "string"}}},
    "nodes": [
        {
            "id": "render",
            "type": "image.generate",
            "params": {"prompt": "{{ inputs.prompt }}", "width": 64, "height": 64, "seed": 1},
        }
    ],
    "outputs": {"picture": "{{ nodes.render.image }}"},
}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


Script = Callable[[int], Reply]
"""The reply to the n-th request (from 0) carrying one webhook-id."""


class Receiver:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                webhook_id = self.headers.get("webhook-id", "")
                with receiver._lock:
                    n = sum(1 for r in receiver.received if r.webhook_id == webhook_id)
                    reply = receiver.script(n)
                    receiver.received.append(
                        Received(webhook_id, dict(self.headers), body, time.time(), reply.status)
                    )
                time.sleep(reply.delay)
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = serve_on_receiver_port(Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def of(self, webhook_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.webhook_id == webhook_id]

    def wait_for(self, count: int, webhook_id: str | None = None, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = [r for r in self.received if webhook_id in (None, r.webhook_id)]
            if len(got) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"expected {count} requests, got {len(got)}: {got}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[[Script], Receiver]]:
    made: list[Receiver] = []

    def make(script: Script) -> Receiver:
        made.append(Receiver(script))
        return made[-1]

    yield make
    for r in made:
        r.close()


def ok(_: int) -> Reply:
    return Reply(200)


def _run(c: httpx.Client, workflow_id: str, body: dict[str, Any], **headers: str) -> Any:
    r = c.post(f"/v1/workflows/{workflow_id}/run", json=body, headers=headers)
    assert r.status_code in (200, 202), r.text
    return r.json()


def _deliveries(c: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    r = c.get(f"/v1/runs/{run_id}/webhook-deliveries")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _settled(c: httpx.Client, run_id: str, n: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
    """The run's deliveries once `n` of them have stopped being pending."""
    deadline = time.monotonic() + timeout
    while True:
        items = _deliveries(c, run_id)
        if sum(d["status"] != "pending" for d in items) >= n or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


def _notifier_caught_up(system: Any, timeout: float = 30) -> None:
    """Until the notifier has handled every run event published so far: a delivery an event
    would wrongly create exists by then."""
    committed_to_end(system, system.env["NOTIFIER_GROUP_ID"], Topic.RUN_EVENTS, timeout)


def _unscheduled(system: Any, delivery_id: str, timeout: float = 20) -> None:
    """Until no further attempt of the delivery is scheduled (none can happen after that)."""
    from pymongo import MongoClient

    deadline = time.monotonic() + timeout
    with MongoClient(system.env["MONGODB_URL"], serverSelectionTimeoutMS=5000) as client:
        schedule = client[system.env["MONGODB_DATABASE"]].webhook_schedule
        while schedule.find_one({"_id": delivery_id}) is not None:
            assert time.monotonic() < deadline, f"{delivery_id} is still scheduled"
            time.sleep(0.1)


def _key(system: Any, tenant: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "ingress.admin", "create-key", "--tenant", tenant],
        env=system.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def _verify(secret: str, received: Received) -> Any:
    return Webhook(secret).verify(received.body, received.headers)


def test_a_completed_run_is_delivered_signed_with_the_run_resource(
    system: Any, receivers: Callable[[Script], Receiver]
) -> None:
    receiver = receivers(ok)
    with system.client() as c:
        secret = c.get("/v1/webhooks/secret").raise_for_status().json()["secret"]
        assert secret.startswith("whsec_")
        run = _run(c, register(c, IMAGE), {"inputs": {"prompt": "a cat"}, "webhook": receiver.url})
        assert run["status"] == "completed"
        webhook_id = f"{run['runId']}:completed"
        receiver.wait_for(1, webhook_id)
        [got] = receiver.of(webhook_id)
        payload = _verify(secret, got)
        current = c.get(f"/v1/runs/{run['runId']}").json()
        [log] = _settled(c, run["runId"])

    assert got.headers["webhook-id"] == webhook_id
    assert payload["type"] == "run.completed"
    assert payload["timestamp"].endswith("Z")
    data = payload["data"]
    url = data["outputs"][0].pop("url")
    current["outputs"][0].pop("url")
    assert data == current
    assert httpx.get(url, timeout=30).status_code == 200  # presigned at delivery time
    assert log["status"] == "succeeded"
    assert log["webhookId"] == webhook_id
    assert [a["statusCode"] for a in log["attempts"]] == [200]
    _notifier_caught_up(system)  # run.started was handled too: the default filter left it out
    with system.client() as c:
        assert [d["type"] for d in _deliveries(c, run["runId"])] == ["run.completed"]
    assert [r.json()["type"] for r in receiver.received] == ["run.completed"]


def test_a_failing_receiver_gets_retries_with_one_webhook_id(
    system: Any, receivers: Callable[[Script], Receiver]
) -> None:
    receiver = receivers(lambda n: Reply(500) if n < 2 else Reply(200))
    with system.client() as c:
        secret = c.get("/v1/webhooks/secret").json()["secret"]
        run = _run(c, register(c, TEXT), {"inputs": {"x": "a"}, "webhook": receiver.url})
        [log] = _settled(c, run["runId"])
    got = receiver.of(f"{run['runId']}:completed")
    assert [r.status for r in got] == [500, 500, 200]
    assert len({r.headers["webhook-id"] for r in got}) == 1
    for r in got:
        _verify(secret, r)
    assert log["status"] == "succeeded"
    assert [(a["attempt"], a["statusCode"]) for a in log["attempts"]] == [
        (1, 500),
        (2, 500),
        (3, 200),
    ]
    assert log["attempts"][0]["nextAttemptAt"] is not None
    assert log["attempts"][2]["nextAttemptAt"] is None


def test_gone_stops_redirects_are_not_followed_and_the_last_attempt_fails(
    system: Any, receivers: Callable[[Script], Receiver]
) -> None:
    gone = receivers(lambda n: Reply(410))
    moved = receivers(lambda n: Reply(302, headers={"Location": "http://127.0.0.1:1/"}))
    with system.client() as c:
        workflow_id = register(c, TEXT)
        first = _run(c, workflow_id, {"inputs": {"x": "a"}, "webhook": gone.url})
        second = _run(c, workflow_id, {"inputs": {"x": "a"}, "webhook": moved.url})
        [gone_log] = _settled(c, first["runId"])
        [moved_log] = _settled(c, second["runId"])
        _unscheduled(system, gone_log["deliveryId"])
        _unscheduled(system, moved_log["deliveryId"])
        assert _deliveries(c, first["runId"]) == [gone_log]
        assert _deliveries(c, second["runId"]) == [moved_log]
    assert gone_log["status"] == "gone"
    assert [a["statusCode"] for a in gone_log["attempts"]] == [410]
    assert len(gone.received) == 1
    assert moved_log["status"] == "failed"
    assert [a["statusCode"] for a in moved_log["attempts"]] == [302, 302, 302]


def test_retry_after_is_honoured(system: Any, receivers: Callable[[Script], Receiver]) -> None:
    receiver = receivers(lambda n: Reply(503, headers={"Retry-After": "2"}) if n == 0 else Reply())
    with system.client() as c:
        run = _run(c, register(c, TEXT), {"inputs": {"x": "a"}, "webhook": receiver.url})
        [log] = _settled(c, run["runId"])
    first, second = receiver.of(f"{run['runId']}:completed")
    assert second.at - first.at >= 1.9  # not the schedule's 0.5 s
    assert log["status"] == "succeeded"


def test_a_slow_receiver_does_not_delay_another_tenants_deliveries(
    system: Any, receivers: Callable[[Script], Receiver]
) -> None:
    slow = receivers(lambda n: Reply(200, delay=3))
    fast = receivers(ok)
    with system.client() as c:
        workflow_id = register(c, TEXT)
        for _ in range(6):
            _run(
                c, workflow_id, {"inputs": {"x": "a"}, "webhook": slow.url}, Prefer="respond-async"
            )
        slow.wait_for(4)  # every slot of that host is busy for 3 s
    with system.client(_key(system, f"e2e-{secrets.token_hex(3)}")) as other:
        run = _run(other, register(other, TEXT), {"inputs": {"x": "a"}, "webhook": fast.url})
        done = time.time()
        fast.wait_for(1, timeout=10)
    assert fast.received[0].at - done < 1.5
    assert run["status"] == "completed"


def test_only_the_selected_events_are_delivered(
    system: Any, receivers: Callable[[Script], Receiver]
) -> None:
    receiver = receivers(ok)
    with system.client() as c:
        workflow_id = register(c, TEXT)
        started = _run(
            c,
            workflow_id,
            {"inputs": {"x": "a"}, "webhook": receiver.url, "webhookEvents": ["started"]},
        )
        both = _run(
            c,
            workflow_id,
            {
                "inputs": {"x": "a"},
                "webhook": receiver.url,
                "webhookEvents": ["started", "completed"],
            },
        )
        _settled(c, started["runId"])
        _settled(c, both["runId"], n=2)
        _notifier_caught_up(system)
        assert [d["type"] for d in _deliveries(c, started["runId"])] == ["run.started"]
    types = sorted((r.json()["data"]["runId"], r.json()["type"]) for r in receiver.received)
    assert types == sorted(
        [
            (started["runId"], "run.started"),
            (both["runId"], "run.started"),
            (both["runId"], "run.completed"),
        ]
    )


def test_redelivery_sends_again_with_the_same_webhook_id_to_its_tenant_only(
    system: Any, receivers: Callable[[Script], Receiver]
) -> None:
    receiver = receivers(ok)
    with system.client() as c:
        run = _run(c, register(c, TEXT), {"inputs": {"x": "a"}, "webhook": receiver.url})
        [log] = _settled(c, run["runId"])
        path = f"/v1/runs/{run['runId']}/webhook-deliveries/{log['deliveryId']}/redeliver"
        with system.client(_key(system, f"e2e-{secrets.token_hex(3)}")) as other:
            assert other.get(f"/v1/runs/{run['runId']}/webhook-deliveries").status_code == 404
            assert other.post(path).status_code == 404
        r = c.post(path)
        assert r.status_code == 202, r.text
        receiver.wait_for(2)
        [after] = _settled(c, run["runId"])
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == log["webhookId"]
    assert [a["attempt"] for a in after["attempts"]] == [1, 2]
    assert after["status"] == "succeeded"


def test_after_rotation_deliveries_verify_with_the_old_and_the_new_secret(
    system: Any, receivers: Callable[[Script], Receiver]
) -> None:
    receiver = receivers(ok)
    with system.client(_key(system, f"e2e-{secrets.token_hex(3)}")) as c:
        old = c.get("/v1/webhooks/secret").json()["secret"]
        rotated = c.post("/v1/webhooks/secret/rotate").raise_for_status().json()
        assert rotated["secret"] != old
        assert rotated["previousSecretExpiresAt"] is not None
        assert c.get("/v1/webhooks/secret").json()["secret"] == rotated["secret"]
        _run(c, register(c, TEXT), {"inputs": {"x": "a"}, "webhook": receiver.url})
        receiver.wait_for(1)
    [got] = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    _verify(old, got)
    _verify(rotated["secret"], got)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.7/hook", "private"),
        ("http://[::ffff:10.0.0.7]/hook", "IPv4-mapped"),
        ("http://[fd12::1]/hook", "unique-local"),
        ("ftp://example.com/hook", "webhook"),
    ],
)
def test_internal_webhook_targets_are_refused_when_the_run_is_requested(
    system: Any, url: str, reason: str
) -> None:
    with system.client() as c:
        r = c.post(
            f"/v1/workflows/{register(c, TEXT)}/run", json={"inputs": {"x": "a"}, "webhook": url}
        )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert reason in json.dumps(problem)
    assert any(e["path"] == "/webhook" for e in problem["errors"])


async def test_a_duplicate_run_event_is_not_delivered_twice(
    system: Any, receivers: Callable[[Script], Receiver]
) -> None:
    from bus.broker import make_broker
    from bus.publisher import EventPublisher
    from runview import Definitions, load_view, to_event_data
    from storage import mongo
    from storage.runs import RunRepository
    from storage.workflows import WorkflowRepository

    receiver = receivers(ok)
    with system.client() as c:
        run = _run(c, register(c, TEXT), {"inputs": {"x": "a"}, "webhook": receiver.url})
        _settled(c, run["runId"])
    client = mongo.connect(system.env["MONGODB_URL"], app_name="e2e")
    broker = make_broker(system.env["KAFKA_BOOTSTRAP_SERVERS"], client_id="e2e-duplicate")
    try:
        db = client[system.env.get("MONGODB_DATABASE", "workflow")]
        record = await RunRepository(db).get(run["runId"])
        assert record is not None
        defn = await Definitions(WorkflowRepository(db)).get(
            record.tenant_id, record.workflow_id, record.workflow_version
        )
        publisher = EventPublisher(broker, source="/e2e", prefix=system.env["KAFKA_TOPIC_PREFIX"])
        await broker.start()
        await publisher.publish(to_event_data(load_view(record), defn))
    finally:
        await broker.stop()
        await client.close()
    await asyncio.to_thread(_notifier_caught_up, system)
    with system.client() as c:
        [log] = _deliveries(c, run["runId"])
    assert [a["statusCode"] for a in log["attempts"]] == [200]
    assert len(receiver.received) == 1


def test_nothing_is_lost_or_sent_twice_when_the_notifier_is_killed(
    system: Any, receivers: Callable[[Script], Receiver]
) -> None:
    receiver = receivers(lambda n: Reply(500) if n == 0 else Reply(200))
    notifier = system.procs["notifier"]
    notifier.terminate()
    notifier.wait(timeout=60)
    restored = False
    try:
        # A long second delay, so retries are pending in MongoDB when the process dies.
        system.start("notifier", env={"NOTIFIER_RETRY_SCHEDULE": "0,4,0.5"})
        with system.client() as c:
            workflow_id = register(c, TEXT)
            before = [
                _run(c, workflow_id, {"inputs": {"x": "a"}, "webhook": receiver.url})
                for _ in range(3)
            ]
            deadline = time.monotonic() + 20
            while not all(
                [a["statusCode"] for d in _deliveries(c, r["runId"]) for a in d["attempts"]]
                == [500]
                for r in before
            ):
                assert time.monotonic() < deadline, "first attempts were not recorded"
                time.sleep(0.05)
            system.procs["notifier"].send_signal(signal.SIGKILL)
            system.procs["notifier"].wait(timeout=10)
            # Runs that end while the notifier is down: their events wait in Kafka.
            during = [
                _run(c, workflow_id, {"inputs": {"x": "a"}, "webhook": receiver.url})
                for _ in range(2)
            ]
            system.start("notifier")
            restored = True
            logs = {r["runId"]: _settled(c, r["runId"], timeout=30) for r in before + during}
    finally:
        if not restored:
            if system.procs["notifier"].poll() is None:
                system.procs["notifier"].kill()
                system.procs["notifier"].wait(timeout=10)
            system.start("notifier")
    for run_id, [log] in logs.items():
        got = receiver.of(f"{run_id}:completed")
        assert [r.status for r in got] == [500, 200], run_id
        assert log["status"] == "succeeded"
        assert [(a["attempt"], a["statusCode"]) for a in log["attempts"]] == [(1, 500), (2, 200)]
