"""Synchronous run latency of the whole system against the Kafka round-trip floor, in one run.

Starts the four services as processes on a dedicated port against the local real stack,
registers a one-node ``text.template`` workflow, measures the client-side wall time of
``POST /v1/workflows/{id}/run`` (answered 200 with the completed run) at concurrency 1 and 16,
then measures one aiokafka round trip (produce with acks=all + idempotence, consume) on the same
broker. A run crosses Kafka four times, so the meaningful figure is
``ours / (floor x 4)``: both sides share the machine's noise.

    uv run python bench/run.py [--requests N] [--out docs/performance.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from devstack import apps, stack
from devstack.api import Endpoints, ensure_up
from devstack.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SERVICES = apps.SERVICES
KAFKA_HOPS = 4  # run.requested, step.requested, step.finished, run.events
WORKFLOW_ID = "bench-echo"
WORKFLOW: dict[str, Any] = {
    "name": "Bench echo",
    "description": "One text.template node: the smallest run that crosses every service.",
    "inputSchema": {
        "type": "object",
        "required": ["x"],
        "additionalProperties": False,
        "properties": {"x": {"type": "string", "maxLength": 200}},
    },
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "{{ inputs.x }}"}}],
    "outputs": {"text": "{{ nodes.say.text }}"},
}
SERVICE_ENV = {
    "PYTHONUNBUFFERED": "1",
    "MAX_WAIT_SECONDS": "60",
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, round(p / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, ms: Sequence[float]) -> Summary:
        if not ms:
            return cls(0, float("nan"), float("nan"), float("nan"), float("nan"))
        return cls(len(ms), percentile(ms, 50), percentile(ms, 99), statistics.fmean(ms), max(ms))


# -- the services ------------------------------------------------------------------------------


@dataclass
class System:
    url: str
    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


@contextmanager
def services(settings: Settings, endpoints: Endpoints, port: int) -> Iterator[System]:
    """The four services as child processes; SIGTERM and wait on the way out, even on error."""
    # Detached services of `make up` would share the consumer groups and run other code.
    apps.stop(settings, say=lambda m: log(f"detached {m}"))
    env = dict(os.environ)
    env.update(endpoints.as_env())
    env.update(SERVICE_ENV)
    env["INGRESS_PORT"] = str(port)
    # A fresh database: FerretDB answers even `_id` lookups by scanning a collection, so the
    # history of a dev database would be measured instead of the system.
    env["MONGODB_DATABASE"] = f"bench_{uuid.uuid4().hex[:8]}"
    logs = settings.logs_dir / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    system = System(url=f"http://127.0.0.1:{port}", env=env, logs=logs)
    try:
        system.procs.update(apps.launch(env, logs))
        apps.await_ready(system.url, logs, system.procs)
        yield system
    finally:
        apps.terminate(system.procs)
        if system.procs:
            log("services stopped")
        from pymongo import MongoClient

        with MongoClient[dict[str, Any]](
            env["MONGODB_URL"], serverSelectionTimeoutMS=5000
        ) as client:
            client.drop_database(env["MONGODB_DATABASE"])


def create_key(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "ingress.admin", "create-key", "--tenant", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip().splitlines()[-1]


# -- the run latency ---------------------------------------------------------------------------


def _ts(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class Phases:
    """Where one run's time went, from the run resource's timestamps (ms, same host clocks)."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, sent: float, received: float, run: dict[str, Any]) -> None:
        steps = run.get("steps") or [{}]
        step = steps[0]
        points = [
            ("client → run stored (ingress)", _ts(run.get("createdAt"))),
            ("stored → orchestrator starts run (hop 1)", _ts(run.get("startedAt"))),
            ("→ executor begins step (orch. save + hop 2)", _ts(step.get("startedAt"))),
            ("→ orchestrator folds result (step + hop 3)", _ts(run.get("completedAt"))),
            ("→ client has 200 (orch. save + hop 4 + ingress)", received),
        ]
        previous = sent
        for name, end in points:
            if end is None:
                return
            self.samples.setdefault(name, []).append((end - previous) * 1000)
            previous = end


@dataclass
class LoadResult:
    concurrency: int
    latencies_ms: list[float]
    failures: list[str]
    wall_s: float
    phases: Phases
    handlers: dict[str, float] = field(default_factory=dict)

    @property
    def summary(self) -> Summary:
        return Summary.of(self.latencies_ms)


async def run_load(
    system: System, key: str, requests: int, concurrency: int, *, label: str = "measure"
) -> LoadResult:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    failures: list[str] = []
    phases = Phases()
    gate = asyncio.Semaphore(concurrency)
    path = f"/v1/workflows/{WORKFLOW_ID}/run"

    async with httpx.AsyncClient(
        base_url=system.url, headers=headers, limits=limits, timeout=90
    ) as client:

        async def one(i: int) -> None:
            async with gate:
                body = {"inputs": {"x": f"{label}-{concurrency}-{i}"}}
                sent = time.time()
                t0 = time.perf_counter()
                try:
                    r = await client.post(path, json=body)
                except httpx.HTTPError as exc:
                    failures.append(f"#{i}: {type(exc).__name__}: {exc}")
                    return
                elapsed = (time.perf_counter() - t0) * 1000
                received = time.time()
                if r.status_code != 200:
                    failures.append(f"#{i}: HTTP {r.status_code}: {r.text[:200]}")
                    return
                run = r.json()
                if run.get("status") != "completed":
                    failures.append(f"#{i}: status {run.get('status')}: {run.get('error')}")
                    return
                latencies.append(elapsed)
                phases.add(sent, received, run)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        wall = time.perf_counter() - started
    return LoadResult(concurrency, latencies, failures, wall, phases)


def register(system: System, key: str) -> None:
    r = httpx.put(
        f"{system.url}/v1/workflows/{WORKFLOW_ID}",
        json=WORKFLOW,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    if r.status_code not in (200, 201):
        raise RuntimeError(f"registering {WORKFLOW_ID} failed: {r.status_code} {r.text}")


def log_offsets(system: System) -> dict[str, int]:
    return {n: (system.logs / f"{n}.log").stat().st_size for n in SERVICES}


def handler_ms_per_run(system: System, since: dict[str, int], runs: int) -> dict[str, float]:
    """Per service, the summed FastStream ``Received`` → ``Processed`` time per run (ms).

    Pairs lines in order, so it is exact only without overlapping messages (concurrency 1).
    """
    out: dict[str, float] = {}
    for name in SERVICES:
        with (system.logs / f"{name}.log").open("rb") as f:
            f.seek(since[name])
            lines = f.read().decode(errors="replace").splitlines()
        total = 0.0
        received: float | None = None
        for line in lines:
            kind = "Received" if line.endswith(": Received") else None
            kind = "Processed" if line.endswith(": Processed") else kind
            if kind is None:
                continue
            try:
                at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                continue
            if kind == "Received":
                received = at
            elif received is not None:
                total += (at - received) * 1000
                received = None
        out[name] = total / runs if runs else float("nan")
    return out


# -- the floor ---------------------------------------------------------------------------------


async def kafka_floor(bootstrap: str, samples: int, warmup: int) -> list[float]:
    """One message produced (acks=all, idempotent, linger 0) until a consumer holds it (ms)."""
    topic = f"bench.floor.{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0
        )
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await producer.start()
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            for _ in range(50):  # the new topic's metadata can lag a moment behind creation
                if topic in await consumer.topics():
                    break
                await asyncio.sleep(0.1)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            out: list[float] = []
            for i in range(warmup + samples):
                payload = f"{i}".encode()
                t0 = time.perf_counter()
                await producer.send_and_wait(topic, payload, key=b"k")
                while True:
                    msg = await asyncio.wait_for(consumer.getone(tp), timeout=30)
                    if msg.value == payload:
                        break
                if i >= warmup:
                    out.append((time.perf_counter() - t0) * 1000)
            return out
        finally:
            await consumer.stop()
            await producer.stop()
    finally:
        try:
            await admin.delete_topics([topic])
        except Exception as exc:  # a scratch topic left behind is harmless
            log(f"could not delete {topic}: {exc}")
        await admin.close()


# -- the report --------------------------------------------------------------------------------


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _servers(settings: Settings) -> list[tuple[str, str]]:
    return [(s.name, s.version or s.backend) for s in stack.status(settings)]


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def render(
    *,
    date: str,
    servers: list[tuple[str, str]],
    results: list[LoadResult],
    floor: Summary,
    executor_concurrency: str,
) -> str:
    hops_p50 = floor.p50 * KAFKA_HOPS
    hops_p99 = floor.p99 * KAFKA_HOPS
    lines = [
        "# Performance",
        "",
        "Synchronous run latency of the smallest workflow (one `text.template` node) through the",
        "whole system, against the floor of the same Kafka broker: one aiokafka round trip",
        "(produce with `acks=all`, idempotent, `linger_ms=0`, then consume) times the",
        f"{KAFKA_HOPS} Kafka hops a run makes (`run.requested` ingress→orchestrator,",
        "`step.requested` orchestrator→executor, `step.finished` executor→orchestrator,",
        "`run.events` orchestrator→ingress). Latency is the client's wall time of",
        "`POST /v1/workflows/{id}/run` until its `200` with the completed run. Both figures",
        "come from the same run of `bench/run.py`.",
        "",
        "## Latest run",
        "",
        f"- date: {date}",
        f"- machine: {os.cpu_count()} cores, {_memory()} memory, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        "- servers: " + ", ".join(f"{n} = {v}" for n, v in servers),
        f"- services: one process each, `EXECUTOR_CONCURRENCY={executor_concurrency}`, "
        "all on the same machine as the client and the servers",
        "",
        "| measurement | requests | failures | p50 ms | p99 ms | mean ms | max ms | "
        f"p50 / (floor p50 x {KAFKA_HOPS}) | p99 / (floor p99 x {KAFKA_HOPS}) | runs/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r.summary
        lines.append(
            f"| sync run, concurrency {r.concurrency} | {r.summary.n + len(r.failures)} | "
            f"{len(r.failures)} | {_fmt(s.p50)} | {_fmt(s.p99)} | {_fmt(s.mean)} | "
            f"{_fmt(s.max)} | {s.p50 / hops_p50:.2f} | {s.p99 / hops_p99:.2f} | "
            f"{(s.n / r.wall_s) if r.wall_s else 0:.1f} |"
        )
    lines += [
        f"| Kafka round trip (floor) | {floor.n} | 0 | {_fmt(floor.p50)} | {_fmt(floor.p99)} | "
        f"{_fmt(floor.mean)} | {_fmt(floor.max)} | | | |",
        f"| floor x {KAFKA_HOPS} hops | | | {_fmt(hops_p50)} | {_fmt(hops_p99)} | | | 1.00 | 1.00 "
        "| |",
        "",
        "### Where the time goes (medians, ms, from the run resource's timestamps)",
        "",
        "Consecutive phases of each run, cut by the client's clock and the run resource's",
        "timestamps (different processes, same host clock, millisecond precision in MongoDB):",
        "`createdAt` (ingress stored the run), `startedAt` (the orchestrator handled",
        "`run.requested`), `steps[0].startedAt` (the executor began the step), `completedAt`",
        "(the orchestrator handled `step.finished`). Each Kafka hop includes the publishing",
        "side's MongoDB write (outbox) before it publishes.",
        "",
        "| phase | " + " | ".join(f"c={r.concurrency}" for r in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    names = list(results[0].phases.samples) if results else []
    for name in names:
        cells = [
            _fmt(statistics.median(r.phases.samples[name])) if r.phases.samples.get(name) else "-"
            for r in results
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    c1 = next((r for r in results if r.handlers), None)
    if c1 is not None:
        runs = c1.summary.n + len(c1.failures)
        lines += [
            "",
            "Handler time per run at concurrency 1 (sum of FastStream `Received` → `Processed` in",
            f"each service's log over the {runs} measured runs, divided by {runs}; ingress's is",
            "its `run.events` consumer only):",
            "",
            "| service | ms per run |",
            "|---|---:|",
            *(f"| {n} | {_fmt(v)} |" for n, v in c1.handlers.items()),
        ]
    lines += [
        "",
        "## How to reproduce",
        "",
        "```",
        "make bench        # = uv run python bench/run.py --out docs/performance.md",
        "```",
        "",
        "It brings the local stack up if needed, stops detached services (`make up`), starts its",
        "own four services on port 38200 (logs in `.stack/logs/bench/`), and stops them at the",
        "end. `--requests N` sets the concurrency-1 sample (concurrency 16 uses 2N).",
        "",
        "Absolute numbers are noisy on a shared machine (client, servers, Kafka, FerretDB and",
        "SeaweedFS all share the same cores); only the same-run ratio against the Kafka floor is",
        "meaningful when comparing runs or machines. This page holds the latest figures only.",
        "",
    ]
    return "\n".join(lines)


def print_table(results: list[LoadResult], floor: Summary) -> None:
    print()
    print(
        f"{'measurement':<28}{'n':>6}{'fail':>6}{'p50':>9}{'p99':>9}{'mean':>9}{'r50':>9}{'r99':>9}"
    )
    for r in results:
        s = r.summary
        print(
            f"{'sync run c=' + str(r.concurrency):<28}{s.n:>6}{len(r.failures):>6}"
            f"{s.p50:>9.1f}{s.p99:>9.1f}{s.mean:>9.1f}"
            f"{s.p50 / (floor.p50 * KAFKA_HOPS):>9.2f}{s.p99 / (floor.p99 * KAFKA_HOPS):>9.2f}"
        )
    print(
        f"{'kafka round trip (floor)':<28}{floor.n:>6}{0:>6}"
        f"{floor.p50:>9.1f}{floor.p99:>9.1f}{floor.mean:>9.1f}"
    )
    print(f"{'floor x ' + str(KAFKA_HOPS):<28}{'':>12}{floor.p50 * 4:>9.1f}{floor.p99 * 4:>9.1f}")
    for r in results:
        print(f"\nphases c={r.concurrency} (median ms):")
        for name, values in r.phases.samples.items():
            print(f"  {name:<48}{statistics.median(values):>8.1f}")
        for name, ms in r.handlers.items():
            print(f"  handler time per run, {name:<29}{ms:>8.1f}")
        for failure in r.failures[:5]:
            print(f"  failure {failure}")
    print()


# -- main --------------------------------------------------------------------------------------


async def measure(system: System, key: str, args: argparse.Namespace) -> list[LoadResult]:
    log(f"warm-up: {args.warmup} runs at c=1, {args.warmup} at c=16")
    for c in (1, 16):
        warm = await run_load(system, key, args.warmup, c, label="warmup")
        if warm.failures:
            raise RuntimeError(f"warm-up failed: {warm.failures[:3]}")
    results = []
    for c, n in ((1, args.requests), (16, args.requests_c16 or 2 * args.requests)):
        log(f"measuring {n} runs at concurrency {c}")
        since = log_offsets(system)
        result = await run_load(system, key, n, c)
        if c == 1:
            await asyncio.sleep(0.5)  # let the last log lines land
            result.handlers = handler_ms_per_run(system, since, n)
        log(
            f"c={c}: p50 {result.summary.p50:.1f} ms, p99 {result.summary.p99:.1f} ms, "
            f"{len(result.failures)} failures, {result.wall_s:.1f} s"
        )
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    # 200/400 took ~9 min on a busy 2-core machine (c=16 is bound by the orchestrator's
    # throughput, ~1-4 runs/s there); 80/160 keeps `make bench` to a few minutes.
    parser.add_argument("--requests", type=int, default=80, help="runs at c=1 (c=16: twice)")
    parser.add_argument("--requests-c16", type=int, default=0, help="override the c=16 count")
    parser.add_argument("--warmup", type=int, default=16, help="warm-up runs per concurrency")
    parser.add_argument("--floor-samples", type=int, default=200)
    parser.add_argument("--port", type=int, default=38200)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args(argv)

    os.chdir(ROOT)  # devstack's state dir is the repo's .stack
    date = subprocess.run(["date", "-u"], capture_output=True, text=True, check=True).stdout
    settings = Settings.from_env()
    log("ensuring the stack is up")
    endpoints = ensure_up(say=lambda m: log(m))
    servers = _servers(settings)
    with services(settings, endpoints, args.port) as system:
        log(f"services ready on {system.url} (logs: {system.logs})")
        key = create_key(system.env)
        register(system, key)
        results = asyncio.run(measure(system, key, args))
        # With the services still up (idle), so both figures see the same machine.
        log(f"measuring the Kafka floor: {args.floor_samples} round trips")
        floor = Summary.of(
            asyncio.run(kafka_floor(endpoints.kafka_bootstrap_servers, args.floor_samples, 20))
        )
    print_table(results, floor)
    text = render(
        date=date.strip(),
        servers=servers,
        results=results,
        floor=floor,
        executor_concurrency=os.environ.get("EXECUTOR_CONCURRENCY", "4 (default)"),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    log(f"wrote {args.out}")
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
