"""The measured workloads: W1 (synchronous runs), W2 (a burst of asynchronous runs) and the
Kafka round-trip floor they are compared with."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from common import Summary, log
from system import WORKFLOW_ID

RUN_PATH = f"/v1/workflows/{WORKFLOW_ID}/run"
TERMINAL_TYPES = {
    "run.completed.v1": "completed",
    "run.failed.v1": "failed",
    "run.canceled.v1": "canceled",
}
TERMINAL_STATUSES = {"completed", "failed", "canceled"}


def run_events_topic(env: Mapping[str, str]) -> str:
    """The public run-event topic, in the services' `KAFKA_TOPIC_PREFIX` namespace if any."""
    try:
        from bus.topics import Topic

        name = str(Topic.RUN_EVENTS.value)
    except ImportError:  # pragma: no cover - the bus library is being changed
        name = "workflow.run.events.v1"
    return env.get("KAFKA_TOPIC_PREFIX", "") + name


def _ts(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _client(url: str, key: str, timeout: float) -> httpx.AsyncClient:
    """One client = one persistent HTTP connection."""
    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        timeout=timeout,
    )


# -- W1: synchronous runs ----------------------------------------------------------------------


PHASES = (
    "client → run stored (ingress)",
    "stored → orchestrator starts run (hop 1)",
    "→ executor begins step (orch. save + hop 2)",
    "→ orchestrator folds result (step + hop 3)",
    "→ client has 200 (orch. save + hop 4 + ingress)",
)


@dataclass
class Phases:
    """Where one run's time went, from the run resource's timestamps (ms, same host clocks)."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, sent: float, received: float, run: dict[str, Any]) -> None:
        steps = run.get("steps") or [{}]
        step = steps[0] if isinstance(steps[0], dict) else {}
        ends = [
            _ts(run.get("createdAt")),
            _ts(run.get("startedAt")),
            _ts(step.get("startedAt")),
            _ts(run.get("completedAt")),
            received,
        ]
        previous = sent
        for name, end in zip(PHASES, ends, strict=True):
            if end is None:
                return
            self.samples.setdefault(name, []).append((end - previous) * 1000)
            previous = end


@dataclass
class SyncResult:
    """W1 at one concurrency."""

    clients: int
    planned: int
    latencies_ms: list[float]
    failures: list[str]
    wall_s: float
    phases: Phases
    cut_short: bool = False
    handlers: dict[str, float] = field(default_factory=dict)

    @property
    def summary(self) -> Summary:
        return Summary.of(self.latencies_ms)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + len(self.failures)

    @property
    def runs_per_s(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s > 0 else float("nan")


async def sync_runs(
    url: str,
    key: str,
    requests: int,
    clients: int,
    *,
    label: str,
    budget_s: float,
    wait_s: int = 60,
) -> SyncResult:
    """`requests` synchronous runs (`Prefer: wait=…`) from `clients` clients, each on its own
    persistent connection, one request at a time. No new request starts after `budget_s`."""
    counter = itertools.count()
    latencies: list[float] = []
    failures: list[str] = []
    phases = Phases()
    cut_short = False
    started = time.perf_counter()
    deadline = started + budget_s

    async def client_loop() -> None:
        nonlocal cut_short
        async with _client(url, key, timeout=wait_s + 30) as client:
            while True:
                i = next(counter)
                if i >= requests:
                    return
                if time.perf_counter() > deadline:
                    cut_short = True
                    return
                body = {"inputs": {"x": f"{label}-{clients}-{i}"}}
                sent = time.time()
                t0 = time.perf_counter()
                try:
                    r = await client.post(RUN_PATH, json=body, headers={"Prefer": f"wait={wait_s}"})
                except httpx.HTTPError as exc:
                    failures.append(f"#{i}: {type(exc).__name__}: {exc}")
                    continue
                elapsed = (time.perf_counter() - t0) * 1000
                received = time.time()
                if r.status_code != 200:
                    failures.append(f"#{i}: HTTP {r.status_code}: {r.text[:200]}")
                    continue
                run = r.json()
                if run.get("status") != "completed":
                    failures.append(f"#{i}: status {run.get('status')}: {run.get('error')}")
                    continue
                latencies.append(elapsed)
                phases.add(sent, received, run)

    await asyncio.gather(*(client_loop() for _ in range(clients)))
    wall = time.perf_counter() - started
    return SyncResult(clients, requests, latencies, failures, wall, phases, cut_short)


# -- W2: a burst of asynchronous runs ----------------------------------------------------------


@dataclass
class Terminal:
    status: str
    at: float  # perf_counter when the bench learned it
    via: str  # "kafka" or "poll"


class RunEventWatcher:
    """Terminal run events from the public topic, read by a consumer of no group from the end
    offsets taken at `start()`: every run finished after that, keyed by run id."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self.partitions = 0
        self.terminal: dict[str, Terminal] = {}
        self.seen: set[str] = set()  # run ids with any event (the watcher works)
        self.changed = asyncio.Event()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        parts = await self._partitions()
        await self._consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in parts]
            self.partitions = len(tps)
            self._consumer.assign(tps)
            ends = await self._consumer.end_offsets(tps)
            for tp in tps:
                self._consumer.seek(tp, ends[tp])
        except BaseException:
            await self._consumer.stop()
            raise
        self._task = asyncio.create_task(self._consume())

    async def _partitions(self) -> list[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await admin.start()
        try:
            (described,) = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        parts = sorted(int(p["partition"]) for p in described.get("partitions") or [])
        if described.get("error_code") or not parts:
            raise RuntimeError(f"topic {self.topic} has no partitions (does it exist?)")
        return parts

    async def _consume(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=1000)
            now = time.perf_counter()
            for records in batches.values():
                for msg in records:
                    if msg.key is None:
                        continue
                    run_id = msg.key.decode(errors="replace")
                    self.seen.add(run_id)
                    ce_type = ""
                    for name, value in msg.headers or ():
                        if name == "ce_type":
                            ce_type = value.decode(errors="replace")
                    for suffix, status in TERMINAL_TYPES.items():
                        if ce_type.endswith(suffix) and run_id not in self.terminal:
                            self.terminal[run_id] = Terminal(status, now, "kafka")
            if batches:
                self.changed.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._consumer.stop()


@dataclass
class BurstResult:
    """W2: `planned` runs submitted with `Prefer: respond-async`, then waited for."""

    planned: int
    submitters: int
    submit_ms: list[float]
    submit_failures: list[str]
    submit_wall_s: float
    completion_ms: list[float]
    """Per completed run: from its submission to the bench learning it completed."""
    completed: int
    failed: int
    incomplete: dict[str, int]
    """Runs not finished when the bench stopped waiting, by their last status."""
    wall_s: float
    """First submission → last completion (or → giving up, when some never finished)."""
    timed_out: bool
    via_poll: int
    topic: str
    partitions: int
    failures: list[str] = field(default_factory=list)

    @property
    def runs_per_s(self) -> float:
        return self.completed / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def summary(self) -> Summary:
        return Summary.of(self.completion_ms)

    @property
    def failure_count(self) -> int:
        return len(self.submit_failures) + self.failed + sum(self.incomplete.values())


async def _poll_status(url: str, key: str, run_ids: list[str], concurrency: int) -> dict[str, str]:
    """Each run's status by `GET /v1/runs/{id}`, at most `concurrency` requests at once."""
    out: dict[str, str] = {}
    queue = list(run_ids)

    async def worker() -> None:
        async with _client(url, key, timeout=60) as client:
            while queue:
                run_id = queue.pop()
                try:
                    r = await client.get(f"/v1/runs/{run_id}")
                    out[run_id] = str(r.json().get("status")) if r.status_code == 200 else "?"
                except (httpx.HTTPError, ValueError):
                    out[run_id] = "?"

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(queue)))))
    return out


async def burst(
    url: str,
    key: str,
    bootstrap: str,
    runs: int,
    submitters: int,
    *,
    topic: str,
    timeout_s: float,
    poll_concurrency: int = 8,
    path: str = RUN_PATH,
) -> BurstResult:
    """Submit `runs` runs with `Prefer: respond-async` from `submitters` clients as fast as
    they go, and learn each one's end from the public run-event `topic`, for at most
    `timeout_s` after the last submission. If the topic shows none of our runs within 30 s of
    the first submission (the services publish elsewhere), fall back to polling the runs still
    open by id, at most `poll_concurrency` at once. `path` is the run endpoint of a workflow
    whose input is `{"x": string}` (default the bench's echo workflow)."""
    watcher = RunEventWatcher(bootstrap, topic)
    await watcher.start()
    submitted: dict[str, float] = {}  # run id → perf_counter of its submission
    submit_ms: list[float] = []
    submit_failures: list[str] = []
    counter = itertools.count()
    tag = uuid.uuid4().hex[:6]
    try:
        first = time.perf_counter()

        async def submitter() -> None:
            async with _client(url, key, timeout=120) as client:
                while (i := next(counter)) < runs:
                    t0 = time.perf_counter()
                    try:
                        r = await client.post(
                            path,
                            json={"inputs": {"x": f"burst-{tag}-{i}"}},
                            headers={"Prefer": "respond-async"},
                        )
                    except httpx.HTTPError as exc:
                        submit_failures.append(f"#{i}: {type(exc).__name__}: {exc}")
                        continue
                    if r.status_code not in (200, 202):
                        submit_failures.append(f"#{i}: HTTP {r.status_code}: {r.text[:200]}")
                        continue
                    submit_ms.append((time.perf_counter() - t0) * 1000)
                    submitted[str(r.json()["runId"])] = t0

        await asyncio.gather(*(submitter() for _ in range(submitters)))
        submit_wall = time.perf_counter() - first
        log(
            f"W2: {len(submitted)} runs submitted in {submit_wall:.1f} s "
            f"({len(submit_failures)} refused); waiting for them to finish"
        )

        deadline = time.perf_counter() + timeout_s
        via_poll: dict[str, Terminal] = {}
        last_report = time.perf_counter()

        def open_ids() -> list[str]:
            return [r for r in submitted if r not in watcher.terminal and r not in via_poll]

        while open_ids() and time.perf_counter() < deadline:
            watcher.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher.changed.wait(), timeout=1.0)
            now = time.perf_counter()
            if now - last_report > 15:
                done = len(submitted) - len(open_ids())
                log(f"W2: {done}/{len(submitted)} finished after {now - first:.0f} s")
                last_report = now
            watcher_blind = now - first > 30 and not (watcher.seen & submitted.keys())
            if watcher_blind:
                if not via_poll:
                    log(f"W2: no events of our runs on {watcher.topic}; polling runs by id")
                statuses = await _poll_status(url, key, open_ids(), poll_concurrency)
                at = time.perf_counter()
                for run_id, status in statuses.items():
                    if status in TERMINAL_STATUSES:
                        via_poll[run_id] = Terminal(status, at, "poll")
                await asyncio.sleep(1.0)

        ends = {**watcher.terminal, **via_poll}
        mine = {r: ends[r] for r in submitted if r in ends}
        remaining = [r for r in submitted if r not in mine]
        timed_out = bool(remaining)
        incomplete: dict[str, int] = {}
        if remaining:
            log(
                f"W2: {len(remaining)} runs still open {timeout_s:.0f} s after the last "
                "submission; reading their status"
            )
            for status in (await _poll_status(url, key, remaining, poll_concurrency)).values():
                incomplete[status] = incomplete.get(status, 0) + 1
        completed = [t for t in mine.values() if t.status == "completed"]
        last = max((t.at for t in mine.values()), default=time.perf_counter())
        wall = (deadline if timed_out else last) - first
        return BurstResult(
            planned=runs,
            submitters=submitters,
            submit_ms=submit_ms,
            submit_failures=submit_failures,
            submit_wall_s=submit_wall,
            completion_ms=[
                (mine[r].at - t0) * 1000
                for r, t0 in submitted.items()
                if r in mine and mine[r].status == "completed"
            ],
            completed=len(completed),
            failed=len(mine) - len(completed),
            incomplete=incomplete,
            wall_s=wall,
            timed_out=timed_out,
            via_poll=sum(1 for t in mine.values() if t.via == "poll"),
            topic=watcher.topic,
            partitions=watcher.partitions,
            failures=[f"{r}: {t.status}" for r, t in mine.items() if t.status != "completed"],
        )
    finally:
        await watcher.stop()


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
