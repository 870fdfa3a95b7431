"""The whole system: the four services as real processes on the real stack, started once per
session with this checkout's code."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from devstack import apps, process
from devstack.api import Endpoints, ensure_topics
from devstack.settings import Settings
from e2e_otlp import OtlpReceiver

SERVICES = ("ingress", "orchestrator", "executor", "notifier")
PORT = int(os.environ.get("E2E_INGRESS_PORT", "38100"))
# Topics, consumer groups and a database of the tests' own: services a developer started with
# `make up` keep running beside them, and neither side handles the other's events. The
# database is kept between sessions: it grows like a developer's, and the tests stay fast.
NAMESPACE = os.environ.get("E2E_NAMESPACE", "e2e")
ADMIN_KEY = "wfadmin_e2e-" + secrets.token_urlsafe(16)
"""The admin API's key of the tests' ingress (`system.env["ADMIN_API_KEY"]`)."""


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `cluster` test outside the cluster profile fails instead of skipping, so that a
    `make test-cluster` that lost its profile cannot pass with nothing run. `make test`
    deselects these tests by their marker."""
    if item.get_closest_marker("cluster") and Settings.from_env().profile != "cluster":
        pytest.fail(
            "needs the cluster profile: DEVSTACK_PROFILE=cluster (make test-cluster, "
            "make scale-test)",
            pytrace=False,
        )


@dataclass
class System:
    url: str
    key: str
    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]]
    replicas: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SERVICES, 1))
    """Processes of each service (`procs` names them `<service>-<n>` when there are several):
    one each, or the stack's `DEVSTACK_REPLICAS` in the cluster profile (make test-cluster)."""

    def start(self, name: str, env: dict[str, str] | None = None) -> None:
        """(Re)start one service, with `env` overriding the system's, and wait until its
        /readyz answers 200 (for a worker: it consumes and its dependencies answer)."""
        log = self.logs / f"{name}.log"
        full_env = {**self.env, **(env or {})}
        with log.open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", name],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        url = apps.ready_url(full_env, name)
        while not _ready(url):
            if self.procs[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not restart:\n{process.tail(log)}")
            time.sleep(0.1)

    def ops_url(self, name: str) -> str:
        """Where worker `name` serves /healthz, /readyz and /metrics (loopback, no token)."""
        return f"http://127.0.0.1:{self.env[apps.ops_port_var(name)]}"

    def client(self, key: str | None = None, timeout: float = 90) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key or self.key}"},
            timeout=timeout,
        )


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    """The OTLP/HTTP endpoint the services export their spans to, up for the whole session."""
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture(scope="session")
def system(stack: Endpoints, otlp: OtlpReceiver) -> Iterator[System]:
    settings = Settings.from_env()
    prefix = f"{NAMESPACE}."
    ensure_topics(prefix)
    env = dict(os.environ)
    env.update(stack.as_env())
    env.update(
        {
            "INGRESS_PORT": str(PORT),
            # Each worker's /healthz, /readyz and /metrics, beside the ingress's port.
            "ORCHESTRATOR_OPS_PORT": str(PORT + 1),
            "EXECUTOR_OPS_PORT": str(PORT + 2),
            "NOTIFIER_OPS_PORT": str(PORT + 3),
            "MONGODB_DATABASE": f"workflow_{NAMESPACE}",
            "KAFKA_TOPIC_PREFIX": prefix,
            "ORCHESTRATOR_GROUP_ID": f"{prefix}orchestrator",
            "EXECUTOR_GROUP_ID": f"{prefix}executor",
            "NOTIFIER_GROUP_ID": f"{prefix}notifier",
            "PYTHONUNBUFFERED": "1",
            "ADMIN_API_KEY": ADMIN_KEY,
            "MAX_WAIT_SECONDS": "60",
            "MAX_BODY_BYTES": "65536",
            "EXECUTOR_CONCURRENCY": "4",
            # Runs whose messages are lost are looked at again after 2 s, not 30.
            "WATCHDOG_SECONDS": "2",
            # Webhook receivers of the tests listen on loopback, on apps.RECEIVER_PORTS only
            # (never the stack's Kafka/MongoDB/PostgreSQL/S3 ports); retries are compressed.
            "EGRESS_ALLOW": apps.LOOPBACK_RECEIVERS,
            "EGRESS_ALLOW_HTTP": "true",
            "HTTP_NODE_ALLOW": apps.LOOPBACK_RECEIVERS,
            "HTTP_NODE_ALLOW_HTTP": "true",
            # Model providers reach the same receivers; tenants' provider credentials are
            # encrypted with the stack's key (kept in .stack/env: the database outlives a run).
            "PROVIDER_EGRESS_ALLOW": apps.LOOPBACK_RECEIVERS,
            "PROVIDER_EGRESS_ALLOW_HTTP": "true",
            apps.PROVIDER_KEYS_VAR: apps.ensure_provider_keys(settings),
            "NOTIFIER_RETRY_SCHEDULE": "0,0.5,1",
            "NOTIFIER_RETRY_JITTER": "0",
            "NOTIFIER_ATTEMPT_TIMEOUT_SECONDS": "5",
            "NOTIFIER_LEASE_SECONDS": "8",
            "NOTIFIER_POLL_SECONDS": "0.2",
            # Run limits small enough to cross in a test (tests/e2e/test_runtime_limits.py).
            "MAX_MAP_ITEMS": "50",
            "MAX_CHILDREN_PER_RUN": "10",
            "MAX_DESCENDANTS_PER_ROOT": "20",
            # Spans go to the session's receiver (tests/e2e/test_tracing.py), a batch every
            # 200 ms; the W3C propagator is the default.
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
    )
    logs = settings.logs_dir / "e2e"
    # The cluster profile's system has several processes of each service, the ingress
    # replicas behind a load balancer on PORT (tests/e2e/test_rebalance.py and the run path).
    cluster = settings.profile == "cluster"
    replicas = dict(settings.replicas) if cluster else dict.fromkeys(SERVICES, 1)
    procs = apps.launch(env, logs, replicas)
    url = f"http://127.0.0.1:{PORT}"
    try:
        apps.await_ready(
            url, logs, procs, timeout=120 if cluster else 90, env=env, replicas=replicas
        )
        key = subprocess.run(
            # The shared test tenant is never throttled; test_tenancy.py limits its own.
            [
                sys.executable,
                "-m",
                "ingress.admin",
                "create-key",
                "--tenant",
                "e2e",
                "--limits",
                "unlimited",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        yield System(url=url, key=key, env=env, logs=logs, procs=procs, replicas=replicas)
    finally:
        apps.terminate(procs)
