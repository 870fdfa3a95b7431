"""The Workflow API's throughput and latency against the Kafka round-trip floor, in one run.

Starts the four services as processes on a dedicated port and a fresh database against the
local real stack, registers a one-node ``text.template`` workflow, and measures, first on the
empty database and again after loading a history of finished runs of other workflows into it:

- the Kafka floor: one aiokafka round trip (produce with acks=all + idempotence, consume) on
  the same broker; a run crosses Kafka four times, so the meaningful figure is
  ``ours / (floor x 4)``: both sides share the machine's noise;
- W1: synchronous runs (``Prefer: wait=60``), one persistent connection per client, at 1, 16
  and 64 clients: p50, p99, runs/s;
- W2: a burst of runs submitted with ``Prefer: respond-async``, then the time until all are
  completed, learned from the public run-event topic: runs/s;
- executor replicas: the same kind of burst of a one-node ``http.request`` workflow whose
  server answers after 200 ms, with one executor and with three: runs/s and their ratio
  (``replicas.py``; ``--replicas-only`` measures just that and updates its section).

Writes docs/performance.md (``--out``). ``--quick`` scales everything down for a smoke check.

    uv run python bench/run.py [--quick] [--out PATH] [--w1 1:100,16:320,64:640] ...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from common import Summary, log
from devstack import stack
from devstack.api import Endpoints, ensure_up
from devstack.settings import Settings
from history import LoadReport, find_template, load, owners
from replicas import ReplicasResult
from report import Context, StateResult, console, render
from system import (
    TENANT,
    WORKFLOW_ID,
    System,
    create_key,
    handler_ms_per_run,
    log_offsets,
    register,
    service_settings,
    services,
)
from workloads import RUN_PATH, burst, kafka_floor, run_events_topic, sync_runs

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

DEFAULTS: dict[str, Any] = {
    "w1": "1:100,16:320,64:640",
    "w2_runs": 1000,
    "history": 100_000,
    "warmup": 16,
    "floor_samples": 200,
    "level_seconds": 150.0,
    "w2_timeout": 300.0,
    "replicas_runs": 400,
}
QUICK: dict[str, Any] = {
    "w1": "1:20,16:32,64:64",
    "w2_runs": 100,
    "history": 2000,
    "warmup": 4,
    "floor_samples": 50,
    "level_seconds": 60.0,
    "w2_timeout": 120.0,
    "replicas_runs": 100,
}


def parse_levels(spec: str) -> list[tuple[int, int]]:
    """``"1:100,16:320"`` → ``[(1, 100), (16, 320)]`` (clients, requests)."""
    out = []
    for part in spec.split(","):
        clients, _, requests = part.strip().partition(":")
        out.append((int(clients), int(requests or 10 * int(clients))))
    if not out or any(c < 1 or n < 1 for c, n in out):
        raise argparse.ArgumentTypeError(f"bad level list {spec!r}")
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke check: "
        + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items())
        + " (explicit flags win); writes .stack/logs/bench/performance-quick.md unless --out",
    )
    parser.add_argument("--w1", help=f"W1 levels, clients:requests,... [{DEFAULTS['w1']}]")
    parser.add_argument("--w2-runs", type=int, help=f"W2 burst size [{DEFAULTS['w2_runs']}]")
    parser.add_argument("--w2-submitters", type=int, default=32, help="W2 submitting clients [32]")
    parser.add_argument(
        "--history",
        type=int,
        help=f"finished runs loaded for the second pass; 0 skips it [{DEFAULTS['history']}]",
    )
    parser.add_argument(
        "--history-doc-bytes",
        type=int,
        default=5000,
        help="target BSON size of a history run document [5000]",
    )
    parser.add_argument(
        "--history-workflows", type=int, default=20, help="other workflows in the history [20]"
    )
    parser.add_argument(
        "--history-days", type=int, default=30, help="the history's runs span this many days [30]"
    )
    parser.add_argument(
        "--history-runs-only",
        action="store_true",
        help="load only `runs` documents, not the other per-run documents the storage keeps",
    )
    parser.add_argument(
        "--history-writers", type=int, default=2, help="threads inserting the history [2]"
    )
    parser.add_argument(
        "--warmup", type=int, help=f"warm-up runs at 1 and 16 clients [{DEFAULTS['warmup']}]"
    )
    parser.add_argument("--floor-samples", type=int, help=f"[{DEFAULTS['floor_samples']}]")
    parser.add_argument(
        "--level-seconds",
        type=float,
        help=f"no new W1 request after this long in a level [{DEFAULTS['level_seconds']}]",
    )
    parser.add_argument(
        "--w2-timeout",
        type=float,
        help="stop waiting for the W2 burst this long after its last submission "
        f"[{DEFAULTS['w2_timeout']}]",
    )
    parser.add_argument(
        "--replicas-runs",
        type=int,
        help="runs of the executor-replicas scenario, per executor count; 0 skips it "
        f"[{DEFAULTS['replicas_runs']}]",
    )
    parser.add_argument(
        "--replicas-clients", type=int, default=16, help="its submitting clients [16]"
    )
    parser.add_argument(
        "--replicas-concurrency",
        type=int,
        default=2,
        help="EXECUTOR_CONCURRENCY of each executor in it [2]",
    )
    parser.add_argument(
        "--replicas-delay-ms", type=float, default=200, help="its server's answer delay [200]"
    )
    parser.add_argument(
        "--replicas-only",
        action="store_true",
        help="measure only the executor-replicas scenario and replace its section of --out",
    )
    parser.add_argument("--port", type=int, default=38200, help="the services' port [38200]")
    parser.add_argument("--out", type=Path, help="[docs/performance.md]")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for name, value in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, base.get(name, value))
    args.levels = parse_levels(args.w1)
    if args.out is None:
        if args.quick:
            args.out = Settings.from_env().logs_dir / "bench" / "performance-quick.md"
        else:
            args.out = ROOT / "docs" / "performance.md"
    return args


def effective_args(args: argparse.Namespace) -> str:
    parts = ["--quick"] if args.quick else []
    parts += [
        f"--w1 {args.w1}",
        f"--w2-runs {args.w2_runs}",
        f"--w2-submitters {args.w2_submitters}",
        f"--history {args.history}",
        f"--history-doc-bytes {args.history_doc_bytes}",
        f"--warmup {args.warmup}",
        f"--level-seconds {args.level_seconds:g}",
        f"--w2-timeout {args.w2_timeout:g}",
        f"--replicas-runs {args.replicas_runs}",
        f"--replicas-clients {args.replicas_clients}",
        f"--replicas-concurrency {args.replicas_concurrency}",
        f"--replicas-delay-ms {args.replicas_delay_ms:g}",
    ]
    if args.history_runs_only:
        parts.append("--history-runs-only")
    return " ".join(parts)


# -- the machine and the servers ---------------------------------------------------------------


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    return (
        f"{os.cpu_count()} cores ({_cpu()}), {_memory()} memory, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def servers(settings: Settings) -> list[tuple[str, str]]:
    return [(s.name, s.version or s.backend) for s in stack.status(settings)]


def bring_up(attempts: int = 4, pause: float = 20) -> Endpoints:
    """The stack's endpoints, bringing it up if needed; retried a few times, since another
    developer's `devstack up` (or a backend switch) may be restarting a server."""
    for attempt in range(1, attempts + 1):
        try:
            return ensure_up(say=lambda m: log(m))
        except Exception as exc:
            if attempt == attempts:
                raise
            log(f"the stack is not up ({type(exc).__name__}: {exc}); retrying in {pause:g} s")
            time.sleep(pause)
    raise AssertionError("unreachable")


# -- one state of the database -----------------------------------------------------------------


def _run(coro_fn: Callable[[], Any]) -> Any:
    return asyncio.run(coro_fn())


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


async def settle(name: str, *, idle: float = 0.85, window: float = 2.0, limit: float = 90) -> None:
    """Wait until the machine is quiet (at least `idle` of the CPU idle over `window`
    seconds), up to `limit`: loading the history leaves PostgreSQL checkpointing and
    vacuuming for a while, which would otherwise be measured as the history's cost."""
    started = time.monotonic()
    while True:
        busy0, total0 = _cpu_ticks()
        await asyncio.sleep(window)
        busy1, total1 = _cpu_ticks()
        quiet = 1 - (busy1 - busy0) / max(1, total1 - total0)
        waited = time.monotonic() - started
        if quiet >= idle or waited >= limit:
            log(f"[{name}] machine {quiet:.0%} idle after {waited:.0f} s")
            return


async def measure_state(
    name: str, system: System, key: str, bootstrap: str, args: argparse.Namespace
) -> StateResult:
    await settle(name)
    log(f"[{name}] Kafka floor: {args.floor_samples} round trips (services idle)")
    floor = Summary.of(await kafka_floor(bootstrap, args.floor_samples, 20))
    log(f"[{name}] floor p50 {floor.p50:.1f} ms, p99 {floor.p99:.1f} ms")
    state = StateResult(name=name, floor=floor)

    if args.warmup:
        log(f"[{name}] warm-up: {args.warmup} runs at 1 client, {args.warmup} at 16")
        for clients in (1, 16):
            warm = await sync_runs(
                system.url, key, args.warmup, clients, label=f"warmup-{name}", budget_s=60
            )
            if warm.failures:
                log(
                    f"[{name}] warm-up at {clients}: {len(warm.failures)} failures, e.g. "
                    f"{warm.failures[0]}"
                )
                if not warm.latencies_ms and name == "empty":
                    raise RuntimeError(f"warm-up failed: {warm.failures[:3]}")

    for clients, requests in args.levels:
        log(f"[{name}] W1: {requests} sync runs at {clients} clients")
        since = log_offsets(system)
        try:
            result = await sync_runs(
                system.url, key, requests, clients, label=name, budget_s=args.level_seconds
            )
        except Exception as exc:
            state.errors.append(f"W1 c={clients}: {type(exc).__name__}: {exc}")
            log(f"[{name}] {state.errors[-1]}")
            continue
        if clients == 1:
            await asyncio.sleep(0.5)  # let the last log lines land
            result.handlers = handler_ms_per_run(system, since, result.requests)
        s = result.summary
        log(
            f"[{name}] W1 c={clients}: p50 {s.p50:.1f} ms, p99 {s.p99:.1f} ms, "
            f"{result.runs_per_s:.1f} runs/s, {len(result.failures)} failures, "
            f"{result.wall_s:.1f} s" + (" (cut at the time budget)" if result.cut_short else "")
        )
        state.sync.append(result)

    if args.w2_runs:
        log(f"[{name}] W2: burst of {args.w2_runs} runs from {args.w2_submitters} clients")
        try:
            b = await burst(
                system.url,
                key,
                bootstrap,
                args.w2_runs,
                args.w2_submitters,
                topic=run_events_topic(system.env),
                timeout_s=args.w2_timeout,
            )
        except Exception as exc:
            state.errors.append(f"W2: {type(exc).__name__}: {exc}")
            log(f"[{name}] {state.errors[-1]}")
            return state
        log(
            f"[{name}] W2: {b.completed}/{b.planned} completed in {b.wall_s:.1f} s → "
            f"{b.runs_per_s:.1f} runs/s; {b.failure_count} failed/unfinished"
        )
        state.burst = b
    return state


# -- the history -------------------------------------------------------------------------------


def load_history(system: System, key: str, args: argparse.Namespace) -> LoadReport:
    from pymongo import MongoClient

    marker = f"historytemplate{secrets.token_hex(6)}"
    r = httpx.post(
        f"{system.url}{RUN_PATH}",
        json={"inputs": {"x": marker}},
        headers={"Authorization": f"Bearer {key}", "Prefer": "wait=60"},
        timeout=90,
    )
    run = r.json() if r.status_code == 200 else {}
    if run.get("status") != "completed":
        raise RuntimeError(f"the template run did not complete: {r.status_code} {r.text[:300]}")
    time.sleep(2)  # let the orchestrator's last writes for it land
    # The history's workflows exist, for both tenants, like the template's (version 1).
    pairs = owners(args.history, args.history_workflows, TENANT)
    keys = {
        tenant: key if tenant == TENANT else create_key(system.env, tenant) for tenant, _ in pairs
    }
    for tenant, workflow_id in sorted(pairs):
        register(system, keys[tenant], workflow_id, name=f"History {workflow_id}")
    log(f"registered {len(pairs)} history workflows for tenants {', '.join(sorted(keys))}")
    with MongoClient[dict[str, Any]](system.mongodb_url, serverSelectionTimeoutMS=30_000) as c:
        template = find_template(c, system.database, run["runId"], marker, TENANT, WORKFLOW_ID)
        log(
            f"history template {template.run_id}: run document {template.run_doc_bytes} B; "
            "per-run documents: "
            + ", ".join(f"{n} ({len(d)})" for n, d in template.docs.items())
            + (f"; not cloned: {template.skipped}" if template.skipped else "")
        )
        log(f"loading {args.history:,} finished runs into {system.database}")
        report = load(
            c,
            system.database,
            template,
            args.history,
            pad_to=args.history_doc_bytes,
            workflows=args.history_workflows,
            days=args.history_days,
            runs_only=args.history_runs_only,
            writers=args.history_writers,
        )
    log(
        f"history loaded in {report.seconds:.1f} s: "
        + ", ".join(f"{n} {c:,}" for n, c in report.docs.items())
        + f"; run documents avg {report.run_doc_bytes_avg:.0f} B "
        f"({report.run_doc_bytes_min}-{report.run_doc_bytes_max})"
    )
    return report


# -- the executor-replicas scenario ------------------------------------------------------------


def measure_replicas(
    settings: Settings, endpoints: Endpoints, args: argparse.Namespace
) -> ReplicasResult:
    import replicas

    return replicas.measure(
        settings,
        endpoints,
        args.port,
        runs=args.replicas_runs,
        clients=args.replicas_clients,
        concurrency=args.replicas_concurrency,
        delay_ms=args.replicas_delay_ms,
        timeout_s=args.w2_timeout,
    )


def replicas_only(args: argparse.Namespace, settings: Settings, endpoints: Endpoints) -> int:
    import replicas

    date = subprocess.run(["date", "-u"], capture_output=True, text=True, check=True).stdout
    result = measure_replicas(settings, endpoints, args)
    print(replicas.console(result), flush=True)
    page = args.out.read_text() if args.out.exists() else "# Performance\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(replicas.splice(page, replicas.section(result, date.strip())))
    log(f"updated the executor-replicas section of {args.out}")
    return 1 if result.failures else 0


# -- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)  # devstack's state dir is the repo's .stack
    started = time.perf_counter()
    date = subprocess.run(["date", "-u"], capture_output=True, text=True, check=True).stdout
    settings = Settings.from_env()
    log(f"bench: {effective_args(args)}")
    log("ensuring the stack is up")
    endpoints = bring_up()
    if args.replicas_only:
        return replicas_only(args, settings, endpoints)
    bootstrap = endpoints.kafka_bootstrap_servers
    states: list[StateResult] = []
    history: LoadReport | None = None
    history_note = ""
    with services(settings, endpoints, args.port) as system:
        log(f"services ready on {system.url}, database {system.database} (logs: {system.logs})")
        key = create_key(system.env)
        register(system, key)
        svc_settings = service_settings(system.env)
        states.append(_run(lambda: measure_state("empty", system, key, bootstrap, args)))
        if args.history > 0:
            try:
                history = load_history(system, key, args)
            except Exception as exc:
                history_note = f"loading the history failed: {type(exc).__name__}: {exc}"
                log(history_note)
            if history is not None:
                if args.history_runs_only:
                    history_note = "only `runs` documents were loaded (--history-runs-only)"
                states.append(_run(lambda: measure_state("history", system, key, bootstrap, args)))
        srv = servers(settings)
    replicas_result = measure_replicas(settings, endpoints, args) if args.replicas_runs else None

    levels = [c for c, _ in args.levels]
    burst_partitions = next((s.burst.partitions for s in states if s.burst), 0)
    partitions = (
        f"`{states[0].burst.topic}` has {burst_partitions} partitions"
        if burst_partitions and states[0].burst
        else f"DEVSTACK_KAFKA_PARTITIONS={settings.partitions}"
    )
    ctx = Context(
        date=date.strip(),
        machine=machine(),
        servers=srv,
        settings=svc_settings,
        partitions=partitions,
        args=effective_args(args),
        history=history,
        history_note=history_note,
        duration_s=time.perf_counter() - started,
    )
    print(console(states, levels, history.runs if history else 0), flush=True)
    page = render(ctx, states, levels)
    if replicas_result is not None:
        import replicas

        print(replicas.console(replicas_result), flush=True)
        page = replicas.splice(page, replicas.section(replicas_result, ctx.date))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    log(f"wrote {args.out} ({ctx.duration_s / 60:.1f} min)")
    failed = any(s.failures for s in states) or history_note.startswith("loading")
    return 1 if failed or (replicas_result is not None and replicas_result.failures) else 0


if __name__ == "__main__":
    sys.exit(main())
