"""Scale-out on the cluster profile (three Kafka nodes, several processes of each service, the
ingress replicas behind HAProxy): an orchestrator joins the group and leaves it again during a
stream of runs, and the run events topic, the ledger other teams read, says every accepted run
ended exactly once. `make test-cluster` runs it; `make test` (one of each) deselects it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from bus.topics import Topic, topic_name
from contracts.events import RUN_EVENT_BY_STATUS
from contracts.run import RunStatus
from devstack import apps
from e2e_helpers import TWO_STEPS, poll, register

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

RUNS_PER_PHASE = 40
COMPLETED = RUN_EVENT_BY_STATUS[RunStatus.COMPLETED].event_type
TERMINAL_TYPES = {
    RUN_EVENT_BY_STATUS[s].event_type
    for s in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)
}


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class RunStream:
    """Asynchronous runs started one after another from a few threads until stopped."""

    def __init__(self, c: httpx.Client, workflow_id: str) -> None:
        self._c = c
        self._workflow_id = workflow_id
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.accepted: dict[str, str] = {}  # run id -> its input
        self._pool = ThreadPoolExecutor(4)
        self._counter = iter(range(1_000_000))
        self._futures = [self._pool.submit(self._submit_until_stopped) for _ in range(4)]

    def _submit_until_stopped(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                x = f"n{next(self._counter)}"
            r = self._c.post(
                f"/v1/workflows/{self._workflow_id}/run",
                json={"inputs": {"x": x}},
                headers={"Prefer": "respond-async"},
            )
            assert r.status_code == 202, r.text
            with self._lock:
                self.accepted[str(r.json()["runId"])] = x

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def wait_for_more(self, more: int, timeout: float = 120) -> None:
        """Until `more` runs beyond those accepted now are accepted."""
        target = self.count() + more
        deadline = time.monotonic() + timeout
        while self.count() < target:
            for future in self._futures:
                if future.done():
                    future.result()  # a refused run fails the test here
            assert time.monotonic() < deadline, f"only {self.count()} of {target} runs accepted"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for future in self._futures:
            future.result()
        self._pool.shutdown()


def _start_orchestrator(system: Any, index: int) -> tuple[subprocess.Popen[bytes], Path, int]:
    """Orchestrator `index` beyond the system's, on an ops port of its own; returns once it
    owns partitions (its /readyz is 200 only then), with its log and where this start's
    lines begin there."""
    instance = apps.Instance("orchestrator", index, index)
    env = apps.instance_env(system.env, instance)
    log = system.logs / f"{instance.name}.log"
    since = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator"], env=env, stdout=out, stderr=out
        )
    url = apps.ready_url(env, "orchestrator")
    deadline = time.monotonic() + 60
    while not _ready(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()  # not left behind in the group, taking partitions
            proc.wait(timeout=10)
            raise RuntimeError(f"{instance.name} got no partitions:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc, log, since


def _runs_completed_in(log: Path, since: int) -> int:
    """Runs an orchestrator completed, from its log's run events (bus.logs) after `since`."""
    lines = log.read_bytes()[since:].decode(errors="replace").splitlines()
    return sum(1 for line in lines if '"event": "run.completed"' in line)


def _run_events(system: Any, since: dict[int, int] | None) -> tuple[dict[int, int], list[Any]]:
    """The end offset of each partition of the run events topic, and every record from
    `since` (partition -> offset) to those ends (none when `since` is None)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    name = topic_name(Topic.RUN_EVENTS, system.env["KAFKA_TOPIC_PREFIX"])

    async def read() -> tuple[dict[int, int], list[Any]]:
        bootstrap = system.env["KAFKA_BOOTSTRAP_SERVERS"]
        # Subscribed by name without a group: it loads the topic's partitions and reads only.
        probe = AIOKafkaConsumer(name, bootstrap_servers=bootstrap, enable_auto_commit=False)
        await probe.start()
        try:
            partitions = [TopicPartition(name, p) for p in probe.partitions_for_topic(name) or ()]
            assert partitions, f"no partitions for {name}"
            ends = {tp.partition: end for tp, end in (await probe.end_offsets(partitions)).items()}
        finally:
            await probe.stop()
        records: list[Any] = []
        left = {p for p in ends if since is not None and ends[p] > since[p]}
        if not left or since is None:
            return ends, records
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, since[tp.partition])
            deadline = time.monotonic() + 60
            while left:
                assert time.monotonic() < deadline, f"partitions {left} of {name} not read"
                batch = await consumer.getmany(timeout_ms=1000)
                for tp, got in batch.items():
                    records += [r for r in got if r.offset < ends[tp.partition]]
                    if got and got[-1].offset >= ends[tp.partition] - 1:
                        left.discard(tp.partition)
            return ends, records
        finally:
            await consumer.stop()

    return asyncio.run(read())


def _terminal_events(
    system: Any, since: dict[int, int], runs: set[str], timeout: float = 30
) -> dict[str, dict[str, str]]:
    """Each run's terminal events on the run events topic after `since`: CloudEvents id ->
    type. A run is stored ended a moment before its event is published (the outbox carries
    it out), so this reads until each run has one, or the time is up. Counted by id: a
    publish repeated after a crash or a hand-over carries the same id, which consumers (and
    webhooks, as `webhook-id`) treat as one event; a run ended twice would have two ids."""
    deadline = time.monotonic() + timeout
    while True:
        _, records = _run_events(system, since)
        ends: dict[str, dict[str, str]] = defaultdict(dict)
        for record in records:
            headers = {k: v.decode() for k, v in record.headers}
            if headers.get("ce_type") in TERMINAL_TYPES and headers.get("ce_subject") in runs:
                ends[headers["ce_subject"]][headers["ce_id"]] = headers["ce_type"]
        if len(ends) == len(runs) or time.monotonic() > deadline:
            return {run_id: ends.get(run_id, {}) for run_id in runs}
        time.sleep(0.2)


def test_every_run_ends_exactly_once_while_an_orchestrator_joins_and_leaves(system: Any) -> None:
    assert system.replicas["orchestrator"] >= 2, system.replicas
    start, _ = _run_events(system, None)
    with system.client() as c:
        workflow_id = register(c, TWO_STEPS)
        stream = RunStream(c, workflow_id)
        try:
            stream.wait_for_more(RUNS_PER_PHASE)
            # A new member: the group rebalances and hands it partitions with runs in flight.
            joined, joined_log, since = _start_orchestrator(
                system, system.replicas["orchestrator"] + 1
            )
            try:
                stream.wait_for_more(RUNS_PER_PHASE)
                # Scale-down: SIGTERM, as Kubernetes does; its partitions go back mid-work.
                joined.send_signal(signal.SIGTERM)
                assert joined.wait(timeout=90) == 0, "the leaving orchestrator did not stop cleanly"
            finally:
                if joined.poll() is None:
                    joined.kill()
                    joined.wait(timeout=10)
            stream.wait_for_more(RUNS_PER_PHASE)
        finally:
            stream.stop()
        finished = {run_id: poll(c, run_id, timeout=120) for run_id in stream.accepted}
    # It took part: partitions were handed to it, and back.
    assert _runs_completed_in(joined_log, since) > 0, "the orchestrator that joined ended no run"
    statuses = {run_id: run["status"] for run_id, run in finished.items()}
    assert set(statuses.values()) == {"completed"}, statuses
    for run_id, x in stream.accepted.items():
        assert finished[run_id]["outputs"][0]["value"] == f"{x}!?", finished[run_id]

    ledger = _terminal_events(system, start, set(stream.accepted))
    lost = [run_id for run_id, events in ledger.items() if not events]
    twice = {run_id: events for run_id, events in ledger.items() if len(events) > 1}
    assert not lost, f"{len(lost)} of {len(ledger)} runs have no terminal event: {lost[:5]}"
    assert not twice, f"{len(twice)} runs ended more than once: {dict(list(twice.items())[:5])}"
    assert {ce_type for events in ledger.values() for ce_type in events.values()} == {COMPLETED}
