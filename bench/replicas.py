"""The replicas scenario: throughput scales with executor replicas where the work is waiting.

One workflow of one `http.request` node calls a local HTTP server on loopback that answers
after a fixed delay (200 ms): the executor's time is spent waiting, not computing. A fixed
number of runs is submitted with `Prefer: respond-async` by N clients and waited for (the W2
burst), once with one executor process and once with three, each at the same
`EXECUTOR_CONCURRENCY`, in the same bench run: runs/s of each and their ratio. With one
executor the ceiling is `EXECUTOR_CONCURRENCY / delay` runs/s; three have three times that,
as long as the step topic has at least three partitions (a group member beyond the
partition count gets nothing) and the rest of the system keeps up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from common import fmt, log
from devstack import apps
from devstack.api import Endpoints
from devstack.settings import Settings
from system import SERVICE_ENV, System, create_key, drop_database
from workloads import BurstResult, burst, run_events_topic

WORKFLOW_ID = "bench-slow-http"
HEADING = "## Executor replicas: waiting work"
TARGET_RATIO = 2.5


def workflow(url: str) -> dict[str, Any]:
    return {
        "name": "Bench slow HTTP",
        "description": "One http.request node to a local server that answers after a delay.",
        "inputSchema": {
            "type": "object",
            "required": ["x"],
            "additionalProperties": False,
            "properties": {"x": {"type": "string", "maxLength": 200}},
        },
        "nodes": [{"id": "call", "type": "http.request", "params": {"url": url, "method": "GET"}}],
        "outputs": {"status": "{{ nodes.call.status }}"},
    }


# -- the slow dependency -----------------------------------------------------------------------


class SlowServer:
    """An HTTP server on loopback, on a port the stack's `HTTP_NODE_ALLOW` permits
    (`devstack.apps.RECEIVER_PORTS`), answering every GET with a small JSON body after
    `delay_s`; one thread per request, so requests wait side by side."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                time.sleep(server.delay_s)  # the dependency's latency, on this request's thread
                with server._lock:
                    server.requests += 1
                body = json.dumps({"ok": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = self._bind(Handler)
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/slow"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @staticmethod
    def _bind(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
        low, high = apps.RECEIVER_PORTS
        for port in range(high, low - 1, -1):  # from the top: tests' receivers start low
            try:
                httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
            except OSError:
                continue
            httpd.daemon_threads = True
            httpd.request_queue_size = 256
            return httpd
        raise RuntimeError(f"no free port in {low}-{high} for the slow server")

    def __enter__(self) -> SlowServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


# -- one system of N executors -----------------------------------------------------------------


@contextlib.contextmanager
def system_with(
    settings: Settings, endpoints: Endpoints, port: int, executors: int, concurrency: int
) -> Iterator[System]:
    """The four services (one each, `executors` executors) as child processes on a fresh
    database, executors at `concurrency`; stopped and the database dropped on the way out."""
    apps.stop(settings, say=lambda m: log(f"detached {m}"))
    env = dict(os.environ)
    env.update(endpoints.as_env())
    env.update(SERVICE_ENV)
    env["INGRESS_PORT"] = str(port)
    env["EXECUTOR_CONCURRENCY"] = str(concurrency)
    env.setdefault("HTTP_NODE_ALLOW", apps.LOOPBACK_RECEIVERS)
    env.setdefault("HTTP_NODE_ALLOW_HTTP", "true")
    database = f"bench_{uuid.uuid4().hex[:8]}"
    env["MONGODB_DATABASE"] = database
    logs = settings.logs_dir / "bench" / f"replicas-{executors}"
    replicas = {"executor": executors}
    system = System(url=f"http://127.0.0.1:{port}", env=env, logs=logs, database=database)
    try:
        system.procs.update(apps.launch(env, logs, replicas))
        apps.await_ready(system.url, logs, system.procs, env=env, replicas=replicas)
        yield system
    finally:
        apps.terminate(system.procs)
        drop_database(system)


async def topic_partitions(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return len(described.get("partitions") or [])


def step_topic(env: dict[str, str]) -> str:
    from bus.topics import Topic, topic_name

    return topic_name(Topic.STEP_REQUESTED, env.get("KAFKA_TOPIC_PREFIX", ""))


@dataclass
class Measured:
    executors: int
    burst: BurstResult
    upstream_requests: int


@dataclass
class ReplicasResult:
    runs: int
    clients: int
    concurrency: int
    delay_ms: float
    step_topic: str = ""
    partitions: int = 0
    measured: list[Measured] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def rate(self, executors: int) -> float | None:
        for m in self.measured:
            if m.executors == executors:
                return m.burst.runs_per_s
        return None

    @property
    def ratio(self) -> float | None:
        one, three = self.rate(1), self.rate(3)
        if one is None or three is None or one <= 0:
            return None
        return three / one

    @property
    def failures(self) -> int:
        return sum(m.burst.failure_count for m in self.measured) + len(self.errors)


def measure(
    settings: Settings,
    endpoints: Endpoints,
    port: int,
    *,
    runs: int,
    clients: int,
    concurrency: int,
    delay_ms: float,
    timeout_s: float,
) -> ReplicasResult:
    """Runs/s of the slow workflow with one executor, then with three, in this order."""
    result = ReplicasResult(runs=runs, clients=clients, concurrency=concurrency, delay_ms=delay_ms)
    bootstrap = endpoints.kafka_bootstrap_servers
    with SlowServer(delay_ms / 1000) as slow:
        log(f"[replicas] slow server on {slow.url} ({delay_ms:g} ms)")
        for executors in (1, 3):
            try:
                with system_with(settings, endpoints, port, executors, concurrency) as system:
                    if not result.partitions:
                        result.step_topic = step_topic(system.env)
                        result.partitions = asyncio.run(
                            topic_partitions(bootstrap, result.step_topic)
                        )
                        log(f"[replicas] {result.step_topic}: {result.partitions} partitions")
                    key = create_key(system.env)
                    r = httpx.put(
                        f"{system.url}/v1/workflows/{WORKFLOW_ID}",
                        json=workflow(slow.url),
                        headers={"Authorization": f"Bearer {key}"},
                        timeout=30,
                    )
                    if r.status_code not in (200, 201):
                        raise RuntimeError(f"registering failed: {r.status_code} {r.text}")
                    before = slow.requests
                    log(
                        f"[replicas] {executors} executor(s) at concurrency {concurrency}: "
                        f"{runs} runs from {clients} clients"
                    )
                    b = asyncio.run(
                        burst(
                            system.url,
                            key,
                            bootstrap,
                            runs,
                            clients,
                            topic=run_events_topic(system.env),
                            timeout_s=timeout_s,
                            path=f"/v1/workflows/{WORKFLOW_ID}/run",
                        )
                    )
                    result.measured.append(Measured(executors, b, slow.requests - before))
                    log(
                        f"[replicas] {executors} executor(s): {b.completed}/{b.planned} "
                        f"completed in {b.wall_s:.1f} s → {b.runs_per_s:.1f} runs/s; "
                        f"{b.failure_count} failed/unfinished"
                    )
            except Exception as exc:
                result.errors.append(f"{executors} executor(s): {type(exc).__name__}: {exc}")
                log(f"[replicas] {result.errors[-1]}")
    if result.ratio is not None:
        log(f"[replicas] 3 executors / 1 executor: {result.ratio:.2f}x")
    return result


# -- the report --------------------------------------------------------------------------------


def section(result: ReplicasResult, date: str) -> list[str]:
    ceiling = result.concurrency / (result.delay_ms / 1000)
    ratio = result.ratio
    met = ratio is not None and ratio >= TARGET_RATIO and result.failures == 0
    intro = (
        f"One `http.request` node to a local server on loopback that answers after "
        f"{result.delay_ms:g} ms; {result.runs} runs submitted with `Prefer: respond-async` by "
        f"{result.clients} clients, runs/s = completed runs / (first submission → last "
        f"completion), with one executor and then with three (`EXECUTOR_CONCURRENCY="
        f"{result.concurrency}` each: one executor's ceiling is {ceiling:g} runs/s), one "
        "ingress, orchestrator and notifier, in the same bench run "
        f"({date}). `{result.step_topic}` has {result.partitions} partitions."
    )
    why = (
        "The bench's default concurrency is 2, not the executors' default of 4: at 4, one "
        "executor's ceiling (20 runs/s) and three's (60) come near what the rest of the "
        "system sustains on a 2-core machine (W2 above), and the ratio would measure the "
        "machine rather than the executors (`--replicas-concurrency 4` measures that)."
    )
    lines = [
        HEADING,
        "",
        *textwrap.wrap(intro, width=88, break_on_hyphens=False),
        "",
        *textwrap.wrap(why, width=88, break_on_hyphens=False),
        "",
        "| executors | completed | failed/unfinished | wall s | upstream requests | runs/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for m in result.measured:
        b = m.burst
        lines.append(
            f"| {m.executors} | {b.completed}/{b.planned} | {b.failure_count} | "
            f"{fmt(b.wall_s)} | {m.upstream_requests} | **{fmt(b.runs_per_s)}** |"
        )
    lines += [
        "",
        f"3 executors / 1 executor: **{fmt(ratio, 2) if ratio is not None else '-'}x** "
        f"(target ≥ {TARGET_RATIO}x: {'met' if met else '**not met**'}).",
    ]
    lines += [f"NOT MEASURED: {e}" for e in result.errors]
    return [*lines, ""]


def splice(page: str, lines: list[str]) -> str:
    """`page` with its replicas section replaced by `lines` (inserted before "How to
    reproduce", or appended, when it has none)."""
    text = page.splitlines()
    block = list(lines)
    if HEADING in text:
        start = text.index(HEADING)
        end = next((i for i in range(start + 1, len(text)) if text[i].startswith("## ")), len(text))
        text[start:end] = block
    else:
        at = next((i for i, t in enumerate(text) if t == "## How to reproduce"), len(text))
        text[at:at] = block
    return "\n".join(text) + "\n"


def console(result: ReplicasResult) -> str:
    lines = ["", "== executor replicas (waiting work)"]
    for m in result.measured:
        lines.append(
            f"  {m.executors} executor(s): {m.burst.completed}/{m.burst.planned} completed, "
            f"{fmt(m.burst.runs_per_s)} runs/s"
        )
    ratio = result.ratio
    lines.append(f"  ratio 3/1: {fmt(ratio, 2) if ratio is not None else '-'}x")
    lines += [f"  NOT MEASURED: {e}" for e in result.errors]
    return "\n".join(lines)
