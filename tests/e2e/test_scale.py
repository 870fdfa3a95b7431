"""The scale test (issue 13, item 3) on the cluster profile: a steady load of asynchronous runs
with webhooks while, in turn, the Kafka node leading most partitions is killed (SIGKILL) and
restarted, one orchestrator replica, one executor replica and one ingress replica are killed
(SIGKILL); after each step it waits until every run accepted so far has ended (the failed
part's work taken over). At the end every accepted run is terminal exactly once (its terminal
event on the run events topic, counted by CloudEvents id), every output image is downloadable,
and every run's webhook was delivered (duplicates only with the same `webhook-id`); the test
prints that ledger. `make scale-test` runs it; `make test` deselects it (marker `cluster`)."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import signal
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from devstack import kafka, process
from devstack.settings import Settings
from e2e_helpers import TERMINAL, register
from e2e_receiver import Receiver
from test_rebalance import _run_events, _terminal_events

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

RENDER = {
    "name": "scale render",
    "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
    "nodes": [
        {
            "id": "render",
            "type": "image.generate",
            "params": {"prompt": "scale {{ inputs.x }}", "width": 512, "height": 512},
        }
    ],
    "outputs": {"image": "{{ nodes.render.image }}"},
}
CLIENTS = int(os.environ.get("SCALE_CLIENTS", "4"))
RUNS_PER_PHASE = int(os.environ.get("SCALE_RUNS_PER_PHASE", "30"))
CLIENT_PAUSE = float(os.environ.get("SCALE_CLIENT_PAUSE", "0.5"))
"""Each client's pause between two runs it started: a steady load, not a burst."""
RETRYABLE = {502, 503, 504}
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Load:
    """Asynchronous runs with a webhook, started from `CLIENTS` threads (each its own
    connection) until stopped. A request that fails in transport or with 502/503/504 (an
    ingress replica died under it) is sent again with the same `Idempotency-Key` until it is
    answered; a run counts as accepted once the API answered it with a run id."""

    url: str
    key: str
    workflow_id: str
    webhook: str
    accepted: dict[str, str] = field(default_factory=dict)  # run id -> idempotency key
    retries: int = 0
    answered_after_retry: int = 0  # submissions answered only after a retry
    shared: list[str] = field(default_factory=list)  # run ids answered to two submissions
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(CLIENTS)
        self._futures = [self._pool.submit(self._client) for _ in range(CLIENTS)]

    def _client(self) -> None:
        with httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        ) as c:
            while not self._stop.is_set():
                with self._lock:
                    n = next(self._counter)
                idem = f"scale-{secrets.token_hex(6)}-{n}"
                run_id, retried = self._submit(c, n, idem)
                with self._lock:
                    if run_id in self.accepted:
                        self.shared.append(run_id)
                    self.accepted[run_id] = idem
                    self.answered_after_retry += retried
                self._stop.wait(CLIENT_PAUSE)  # pacing: a steady load

    def _submit(self, c: httpx.Client, n: int, idem: str) -> tuple[str, bool]:
        """The run id the API answered (the same key on every try), and whether a try
        before failed."""
        retried = False
        deadline = time.monotonic() + 120
        body = {"inputs": {"x": f"n{n}"}, "webhook": self.webhook}
        headers = {"Prefer": "respond-async", "Idempotency-Key": idem}
        while True:
            try:
                r = c.post(f"/v1/workflows/{self.workflow_id}/run", json=body, headers=headers)
            except httpx.TransportError as exc:
                why = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code in (200, 202):
                    return str(r.json()["runId"]), retried
                if r.status_code not in RETRYABLE:
                    raise AssertionError(f"run refused: {r.status_code} {r.text}")
                why = f"HTTP {r.status_code}"
            assert time.monotonic() < deadline, f"run {idem} not accepted within 120 s: {why}"
            retried = True
            with self._lock:
                self.retries += 1
            self._stop.wait(0.2)  # the balancer moves on to a live replica meanwhile

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def wait_for_more(self, more: int, timeout: float = 180) -> float:
        """Until `more` runs beyond those accepted now are accepted; how long it took."""
        started = time.monotonic()
        target = self.count() + more
        while self.count() < target:
            for future in self._futures:
                if future.done():
                    future.result()  # a refused run fails the test here
            assert time.monotonic() - started < timeout, (
                f"only {self.count()} of {target} runs accepted"
            )
            self._stop.wait(0.05)
        return time.monotonic() - started

    def stop(self) -> None:
        self._stop.set()
        for future in self._futures:
            future.result()
        self._pool.shutdown()


def _leaders(bootstrap: str) -> Counter[int]:
    """Partitions led by each Kafka node (its node id), over every topic of the cluster."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def describe() -> Counter[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            names = await admin.list_topics()
            described = await admin.describe_topics(names)
        finally:
            await admin.close()
        return Counter(
            int(p["leader"])
            for topic in described
            for p in topic.get("partitions") or ()
            if int(p["leader"]) >= 0
        )

    return asyncio.run(describe())


def _sigkill_kafka(node: kafka.Kafka) -> int:
    pid = node.running_pid()
    assert pid is not None, f"{node.name} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while process.pid_alive(pid):
        assert time.monotonic() < deadline, f"{node.name} (pid {pid}) still alive after SIGKILL"
        time.sleep(0.05)
    return pid


def _sigkill(system: Any, name: str) -> None:
    proc = system.procs[name]
    assert proc.poll() is None, f"{name} is not running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _instance(system: Any, service: str) -> str:
    return f"{service}-1" if system.replicas[service] > 1 else service


def _wait_terminal(
    c: httpx.Client, run_ids: list[str], timeout: float
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The runs that are terminal within `timeout`, and the others as last read."""
    deadline = time.monotonic() + timeout
    ended: dict[str, dict[str, Any]] = {}
    last: dict[str, dict[str, Any]] = {}
    left = list(run_ids)
    while left:
        for run_id in left:
            r = c.get(f"/v1/runs/{run_id}")
            run = r.json() if r.status_code == 200 else {"status": f"HTTP {r.status_code}"}
            (ended if run.get("status") in TERMINAL else last)[run_id] = run
        left = [run_id for run_id in left if run_id not in ended]
        if left and time.monotonic() < deadline:
            time.sleep(0.2)  # between polls of the runs left; the deadline ends the wait
        else:
            break
    return ended, {run_id: last[run_id] for run_id in left}


def _settle(c: httpx.Client, load: Load, ended: set[str], timeout: float = 180) -> float:
    """Until every run accepted so far is terminal (`ended` collects them); how long it took.
    The load goes on meanwhile: this shows a failure's work taken over, not just new work
    accepted."""
    started = time.monotonic()
    with load._lock:
        waiting = [run_id for run_id in load.accepted if run_id not in ended]
    now_ended, stuck = _wait_terminal(c, waiting, timeout)
    ended.update(now_ended)
    assert not stuck, f"{len(stuck)} runs not ended: {list(stuck)[:5]}"
    return time.monotonic() - started


def _webhook_ids(receiver: Receiver) -> Counter[str]:
    ids: Counter[str] = Counter()
    for call in receiver.calls("/hook"):
        headers = {k.lower(): v for k, v in call.headers.items()}
        ids[headers.get("webhook-id", "?")] += 1
    return ids


@pytest.mark.timeout(900)
def test_every_run_ends_once_with_its_output_and_webhook_through_kills(system: Any) -> None:
    settings = Settings.from_env()
    assert settings.kafka_nodes >= 3, settings.kafka_nodes
    for service in ("orchestrator", "executor", "ingress"):
        assert system.replicas[service] >= 2, system.replicas
    bootstrap = system.env["KAFKA_BOOTSTRAP_SERVERS"]
    started = time.monotonic()
    timeline: list[str] = []

    def note(what: str) -> None:
        line = f"+{time.monotonic() - started:6.1f} s  {what}"
        timeline.append(line)
        print(line, flush=True)

    start, _ = _run_events(system, None)
    receiver = Receiver()
    ended: set[str] = set()
    try:
        with system.client() as c:
            workflow_id = register(c, RENDER)
        load = Load(system.url, system.key, workflow_id, f"{receiver.url}/hook")
        load.start()
        watcher = system.client()

        def phase(after: str) -> None:
            took = load.wait_for_more(RUNS_PER_PHASE)
            note(f"{RUNS_PER_PHASE} more runs accepted {after}({took:.1f} s)")
            took = _settle(watcher, load, ended)
            note(f"every run accepted so far has ended ({len(ended)}; {took:.1f} s)")

        try:
            load.wait_for_more(RUNS_PER_PHASE)
            note(f"steady load: {load.count()} runs accepted")

            # 1. The Kafka node leading most partitions: SIGKILL, runs go on, then restart.
            leaders = _leaders(bootstrap)
            node_id, led = leaders.most_common(1)[0]
            node = kafka.Kafka(settings, node_id)
            pid = _sigkill_kafka(node)
            note(f"SIGKILL {node.name} (pid {pid}), leader of {led} partitions {dict(leaders)}")
            phase(f"with {node.name} down ")
            restart = time.monotonic()
            node.ensure(say=lambda m: None)  # devstack's own start of that node
            note(f"{node.name} restarted by devstack ({time.monotonic() - restart:.1f} s)")
            phase("")

            # 2.-4. One orchestrator, one executor, one ingress replica: SIGKILL, not replaced.
            for service in ("orchestrator", "executor", "ingress"):
                name = _instance(system, service)
                _sigkill(system, name)
                note(f"SIGKILL {name}")
                phase("")
        finally:
            load.stop()
            watcher.close()
        note(f"load stopped: {load.count()} runs accepted, {load.retries} requests retried")

        with system.client() as c:
            # Not asserted here: a run that never ends is counted in the ledger, printed below.
            finished, stuck = _wait_terminal(c, list(load.accepted), timeout=300)
            finished |= stuck
        note("every accepted run read back")
        statuses = Counter(run.get("status") for run in finished.values())

        outputs_checked = 0
        bad_outputs: list[str] = []
        with httpx.Client(timeout=30) as plain:
            for run_id, run in finished.items():
                for out in run.get("outputs") or ():
                    if out.get("type") != "image":
                        continue
                    r = plain.get(out["url"])
                    if r.status_code == 200 and r.content.startswith(PNG):
                        outputs_checked += 1
                    else:
                        bad_outputs.append(f"{run_id}: {r.status_code} {r.content[:40]!r}")
        note(f"{outputs_checked} output images downloaded")

        events = _terminal_events(system, start, set(load.accepted), timeout=120)
        per_run = Counter(len(ids) for ids in events.values())
        note("terminal events read from the run events topic")

        expected = {f"{run_id}:{run.get('status')}" for run_id, run in finished.items()}
        receiver.wait_for(lambda: expected <= set(_webhook_ids(receiver)), timeout=180)
        ids = _webhook_ids(receiver)
        note("webhooks counted")
    finally:
        receiver.close()

    by_run: dict[str, set[str]] = defaultdict(set)
    for webhook_id in ids:
        by_run[webhook_id.rsplit(":", 1)[0]].add(webhook_id)
    duplicates = {w: n for w, n in ids.items() if n > 1}
    undelivered = sorted(expected - set(ids))
    foreign = sorted(set(ids) - expected)
    ledger = [
        "",
        "== scale test ledger",
        *timeline,
        f"accepted runs:          {len(load.accepted)} ({load.retries} requests retried, "
        f"{load.answered_after_retry} submissions answered after a retry)",
        f"completed / failed / canceled / other: {statuses.get('completed', 0)} / "
        f"{statuses.get('failed', 0)} / {statuses.get('canceled', 0)} / "
        f"{sum(n for s, n in statuses.items() if s not in TERMINAL)}",
        "terminal events per run: "
        + ", ".join(f"{k} event(s): {v} runs" for k, v in sorted(per_run.items())),
        f"outputs downloaded:     {outputs_checked} ({len(bad_outputs)} not)",
        f"webhooks delivered:     {sum(ids.values())} deliveries of {len(ids)} webhook-ids "
        f"for {len(expected)} runs; {len(undelivered)} missing",
        f"duplicates by webhook-id: {len(duplicates)} ids delivered more than once "
        f"({sum(duplicates.values()) - len(duplicates)} extra deliveries); "
        f"runs with more than one webhook-id: {sum(1 for s in by_run.values() if len(s) > 1)}",
        f"duration:               {time.monotonic() - started:.0f} s",
    ]
    print("\n".join(ledger), flush=True)

    assert not load.shared, f"one run answered to two submissions: {load.shared[:5]}"
    assert statuses == Counter({"completed": len(load.accepted)}), statuses
    assert per_run == Counter({1: len(load.accepted)}), {
        r: e for r, e in events.items() if len(e) != 1
    }
    assert outputs_checked == len(load.accepted), bad_outputs[:5]
    assert not undelivered, f"{len(undelivered)} webhooks never delivered: {undelivered[:5]}"
    assert not foreign, f"webhook-ids of no accepted run's end: {foreign[:5]}"
    assert all(len(s) == 1 for s in by_run.values()), "a run had two different webhook-ids"
