"""Two orchestrators on one consumer group: partitions move between them under load, one is
killed with SIGKILL, and every run still ends once, with its result."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from e2e_helpers import TWO_STEPS, poll, register
from test_service_lifecycle import _closed_port

pytestmark = pytest.mark.e2e


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _start_second_orchestrator(system: Any) -> subprocess.Popen[bytes]:
    """Another member of the orchestrators' group; returns once it owns partitions (its
    /readyz is 200 only then)."""
    log = system.logs / "orchestrator-2.log"
    offset = log.stat().st_size if log.exists() else 0
    port = _closed_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator"],
            # Its own ops port: the first orchestrator holds the system's.
            env={**system.env, "ORCHESTRATOR_OPS_PORT": str(port)},
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 60
    while not _ready(f"http://127.0.0.1:{port}/readyz"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()  # not left behind in the group, taking partitions
            proc.wait(timeout=10)
            tail = log.read_bytes()[offset:].decode(errors="replace")[-3000:]
            raise RuntimeError(f"the second orchestrator got no partitions:\n{tail}")
        time.sleep(0.1)
    return proc


def test_runs_survive_partitions_moving_between_orchestrators_and_one_killed(
    system: Any,
) -> None:
    with system.client() as c:
        workflow_id = register(c, TWO_STEPS)

        def submit(i: int) -> str:
            r = c.post(
                f"/v1/workflows/{workflow_id}/run",
                json={"inputs": {"x": f"n{i}"}},
                headers={"Prefer": "respond-async"},
            )
            assert r.status_code == 202, r.text
            return str(r.json()["runId"])

        with ThreadPoolExecutor(8) as pool:
            runs = list(pool.map(submit, range(40)))
            second = _start_second_orchestrator(system)  # the group rebalances under load
            try:
                runs += list(pool.map(submit, range(40, 80)))
                second.send_signal(signal.SIGKILL)  # its partitions come back, mid-work
                second.wait(timeout=10)
                runs += list(pool.map(submit, range(80, 120)))
            finally:
                if second.poll() is None:
                    second.kill()
                    second.wait(timeout=10)
        # A change the killed instance claimed but never finished is re-driven after
        # WATCHDOG_SECONDS (2 s here); a group member that vanished is noticed by Kafka
        # after the consumer session timeout.
        finished = {run_id: poll(c, run_id, timeout=90) for run_id in runs}
    outcomes = {run_id: run["status"] for run_id, run in finished.items()}
    assert set(outcomes.values()) == {"completed"}, outcomes
    for i, run_id in enumerate(runs):
        run = finished[run_id]
        assert run["outputs"][0]["value"] == f"n{i}!?", run
        assert [s["status"] for s in run["steps"]] == ["succeeded", "succeeded"], run
