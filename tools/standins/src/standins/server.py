"""Run an ASGI app with uvicorn on 127.0.0.1 in a background thread, for the length of a
`with` block.

    with serve(app) as url:            # a free port chosen by the kernel
        httpx.get(f"{url}/v1/...")

    with serve_picking(app, round_robin_ports(28000, 28999)) as url:
        ...                            # a port the picker offers (e2e tests: RECEIVER_PORTS)

The socket is bound here, before uvicorn starts, so the port is known and held without a race;
the block starts once the server accepts connections (waited for with a deadline, no fixed
sleep), and uvicorn is asked to exit, and joined, when the block ends.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0


class RoundRobinPorts:
    """A port picker that offers the ports of `low`-`high` in turn, from a random start.

    In turn, not lowest-free-first: a new server must not inherit the port of an earlier
    test's server, whose late callers (retries, webhooks) would reach it. The same policy as
    tests/e2e/e2e_receiver.py `serve_on_receiver_port`."""

    def __init__(self, low: int, high: int) -> None:
        if high < low:
            raise ValueError(f"empty port range {low}-{high}")
        self.low = low
        self.span = high - low + 1
        self._counter = itertools.count(random.randrange(self.span))
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self.low + next(self._counter) % self.span


def round_robin_ports(low: int, high: int) -> RoundRobinPorts:
    """See `RoundRobinPorts`."""
    return RoundRobinPorts(low, high)


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _bind_picked(pick_port: Callable[[], int], attempts: int) -> socket.socket:
    last: OSError | None = None
    for _ in range(attempts):
        port = pick_port()
        try:
            return _bind(port)
        except OSError as exc:
            last = exc
    raise RuntimeError(f"no free loopback port after {attempts} attempts") from last


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _run(app: ASGIApp, sock: socket.socket) -> Iterator[str]:
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        lifespan="auto",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"standin:{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not (server.started and _accepts(port)):
            if not thread.is_alive():
                raise RuntimeError(f"the server on port {port} stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server on port {port} did not start in time")
            time.sleep(0.005)
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT)
        if thread.is_alive():  # pragma: no cover - a request that never ends
            server.force_exit = True
            thread.join(SHUTDOWN_TIMEOUT)
        sock.close()


@contextlib.contextmanager
def serve(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (`port`, or a free one); yields "http://127.0.0.1:PORT"."""
    with _run(app, _bind(port or 0)) as url:
        yield url


@contextlib.contextmanager
def serve_picking(
    app: ASGIApp, pick_port: Callable[[], int], attempts: int | None = None
) -> Iterator[str]:
    """Serve `app` on the first port offered by `pick_port` that can be bound.

    `attempts` defaults to the picker's span (every port of a `round_robin_ports` range once)."""
    tries = attempts if attempts is not None else int(getattr(pick_port, "span", 100))
    with _run(app, _bind_picked(pick_port, tries)) as url:
        yield url


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
