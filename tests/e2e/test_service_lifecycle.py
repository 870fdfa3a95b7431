"""Services fail fast on a missing dependency, report readiness honestly, and finish the work
they hold when asked to stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


UNREACHABLE = {
    "MongoDB": {"MONGODB_URL": f"mongodb://127.0.0.1:{_closed_port()}"},
    "Kafka": {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}"},
    "S3": {"S3_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"},
}
USES = {
    "ingress": ("MongoDB", "Kafka", "S3"),
    "orchestrator": ("MongoDB", "Kafka"),
    "executor": ("Kafka", "S3"),
    "notifier": ("MongoDB", "Kafka"),
}
CASES = [(svc, dep) for svc, deps in USES.items() for dep in deps]


@pytest.mark.parametrize(("service", "dependency"), CASES)
def test_a_service_exits_at_once_naming_an_unreachable_dependency(
    system: Any, service: str, dependency: str
) -> None:
    env = {
        **system.env,
        **UNREACHABLE[dependency],
        "STARTUP_TIMEOUT_SECONDS": "2",
        "INGRESS_PORT": str(_closed_port()),
        f"{service.upper()}_OPS_PORT": "0",  # the system's worker holds its ops port
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", service], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert f"{dependency} unreachable at" in result.stdout + result.stderr
    assert time.monotonic() - started < 30


class TcpProxy:
    """Forwards a local port to a server, until closed: a dependency that can go away."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = _closed_port()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for writer in self._writers:
                writer.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)


@contextlib.contextmanager
def _ingress_via_proxy(system: Any, proxy: TcpProxy) -> Iterator[str]:
    port = _closed_port()
    env = {**system.env, "INGRESS_PORT": str(port), "S3_ENDPOINT": f"http://127.0.0.1:{proxy.port}"}
    log = (system.logs / "ingress-readyz.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingress"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert proc.poll() is None, "ingress exited"
            assert time.monotonic() < deadline, "ingress did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def test_readyz_names_a_dependency_that_went_away_and_healthz_stays_up(system: Any) -> None:
    s3_port = int(system.env["S3_ENDPOINT"].rsplit(":", 1)[1])
    proxy = TcpProxy(s3_port)
    with _ingress_via_proxy(system, proxy) as url:
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"kafka": "ok", "mongodb": "ok", "s3": "ok"}
        proxy.close()
        down = httpx.get(f"{url}/readyz", timeout=10)
        assert down.status_code == 503
        assert down.headers["content-type"].startswith("application/problem+json")
        assert "s3:" in down.json()["detail"]
        assert "kafka" not in down.json()["detail"]
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200


def test_sigterm_lets_the_executor_finish_the_step_it_is_running(system: Any) -> None:
    definition = {
        "name": "one big render",
        "inputSchema": {"type": "object"},
        "nodes": [
            {
                "id": "big",
                "type": "image.generate",
                "params": {"prompt": "a large picture", "width": 4096, "height": 4096},
            }
        ],
        "outputs": {"image": "{{ nodes.big.image }}"},
    }
    workflow_id = f"big-{secrets.token_hex(4)}"
    log = system.logs / "executor.log"
    with system.client() as c:
        assert c.put(f"/v1/workflows/{workflow_id}", json=definition).status_code == 201
        offset = log.stat().st_size
        run = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {}},
            headers={"Prefer": "respond-async"},
        ).json()
        deadline = time.monotonic() + 30
        while b"step big (image.generate) attempt 1 taken" not in log.read_bytes()[offset:]:
            assert time.monotonic() < deadline, "the executor never took the step"
            time.sleep(0.02)
        executor = system.procs["executor"]
        os.kill(executor.pid, signal.SIGTERM)
        assert executor.wait(timeout=90) == 0
        finished = c.get(f"/v1/runs/{run['runId']}").json()
        deadline = time.monotonic() + 30
        while finished["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            finished = c.get(f"/v1/runs/{run['runId']}").json()
    try:
        assert finished["status"] == "completed", finished
        assert finished["outputs"][0]["width"] == 4096
        assert b"draining in-flight steps" in log.read_bytes()[offset:]
    finally:
        system.start("executor")
