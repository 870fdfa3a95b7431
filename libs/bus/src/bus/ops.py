"""A worker's small HTTP port for operators: `/healthz`, `/readyz` and `/metrics`.

The workers (orchestrator, executor, notifier) have no API of their own; this port lets a
supervisor, docker-compose, devstack and the tests ask whether one is alive and ready instead
of reading its log, and Prometheus scrape it.

- `/healthz`: 200 while the process runs its event loop.
- `/readyz`: 200 once the app has started, every consumer of a group holds partitions and
  every dependency answers (`checks`, e.g. Kafka, MongoDB, S3); else a 503 problem+json naming
  what is not ready, never an exception's text (it can carry addresses and credentials).
- `/metrics`: prometheus-client's default registry in the text format, after running the
  `collectors` (gauges measured at scrape time: consumer lag, backlogs).

It listens on loopback by default (`OPS_HOST`): the metrics have no token, unlike the
ingress's; expose it (`OPS_HOST=0.0.0.0`) only where the network is the operator's.
The server is uvicorn running a Starlette app on the service's own event loop; its signal
handling is left to FastStream, which owns SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import uvicorn
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bus import metrics
from bus.startup import DependencyUnavailable, kafka_ready

log = logging.getLogger("bus.ops")

CHECK_TIMEOUT = 3.0
"""Seconds a dependency has to answer a readiness check."""
COLLECT_TIMEOUT = 2.0
"""Seconds a scrape-time collector may take before it is skipped for this scrape."""

Check = Callable[[], Awaitable[object]]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # FastStream handles SIGTERM/SIGINT for the whole process (graceful drain).
        yield


class OpsServer:
    def __init__(
        self,
        broker: KafkaBroker,
        *,
        host: str,
        port: int,
        checks: Mapping[str, Check],
        collectors: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._broker = broker
        self._host = host
        self._port = port
        self._checks = {"kafka": lambda: kafka_ready(broker, within=CHECK_TIMEOUT), **checks}
        self._collectors = [self._measure_lag, *collectors]
        self._started = False
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/healthz", self._healthz),
                Route("/readyz", self._readyz),
                Route("/metrics", self._metrics),
            ]
        )

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        """Listen (an `on_startup` hook, first, so `/readyz` answers while the service still
        waits for its dependencies). A port already in use refuses the start."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError as exc:
            sock.close()
            raise DependencyUnavailable(
                f"the ops port {self._host}:{self._port} cannot be opened: {exc.strerror}"
            ) from exc
        sock.listen(64)
        sock.setblocking(False)
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off", log_level="warning"
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="ops-http")
        log.info("health and metrics on http://%s:%d (/healthz, /readyz, /metrics)", *self.where)

    @property
    def where(self) -> tuple[str, int]:
        return self._host, self._port

    async def started(self) -> None:
        """The app started (an `after_startup` hook): consumers run from now on."""
        self._started = True

    async def stopping(self) -> None:
        """The app is stopping (first `on_shutdown` hook): not ready from now on."""
        self._started = False

    async def stop(self) -> None:
        """Stop listening (last `after_shutdown` hook)."""
        self._started = False
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=5)

    def _group_consumers(self) -> list[tuple[str, Any]]:
        found = []
        for sub in self._broker.subscribers:
            group = getattr(sub, "group_id", None)
            consumer = getattr(sub, "consumer", None)
            if group and consumer is not None:
                found.append((str(group), consumer))
        return found

    def _consumers_ready(self) -> str | None:
        if not self._started:
            return "not started"
        for sub in self._broker.subscribers:
            if not getattr(sub, "running", False):
                return "not running"
            group = getattr(sub, "group_id", None)
            consumer = getattr(sub, "consumer", None)
            if group and (consumer is None or not consumer.assignment()):
                # An instance beyond the partition count stays here: it takes no work.
                return f"no partitions assigned in group {group}"
        return None

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        names = list(self._checks)
        results = await asyncio.gather(*(_check(n, self._checks[n]) for n in names))
        checks = {"consumer": self._consumers_ready() or "ok"}
        checks.update({n: (r or "ok") for n, r in zip(names, results, strict=True)})
        failing = [n for n, r in checks.items() if r != "ok"]
        if failing:
            detail = "not ready: " + "; ".join(f"{n}: {checks[n]}" for n in failing)
            body = {
                "type": "about:blank",
                "title": "Service Unavailable",
                "status": 503,
                "detail": detail,
                "checks": checks,
            }
            return JSONResponse(
                body,
                status_code=503,
                media_type="application/problem+json",
                headers={"Retry-After": "1"},
            )
        return JSONResponse({"status": "ready", "checks": checks})

    async def _metrics(self, request: Request) -> Response:
        for collect in self._collectors:
            try:
                async with asyncio.timeout(COLLECT_TIMEOUT):
                    await collect()
            except Exception as exc:
                log.warning("metrics: a collector failed: %s: %s", type(exc).__name__, exc)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def _measure_lag(self) -> None:
        await metrics.measure_lag(self._group_consumers())


async def _check(name: str, check: Check) -> str | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check()
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:
        log.warning("readiness: %s failed: %s: %s", name, type(exc).__name__, exc)
        return "unreachable"
    return None
