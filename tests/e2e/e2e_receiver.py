"""A scripted HTTP server on loopback: the outside world a workflow or webhook talks to."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.apps import RECEIVER_PORTS

_next_port = itertools.count(random.randrange(RECEIVER_PORTS[1] - RECEIVER_PORTS[0] + 1))


def serve_on_receiver_port(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A loopback server on a free port of `RECEIVER_PORTS`: the only loopback ports the
    system under test may call (EGRESS_ALLOW / HTTP_NODE_ALLOW in conftest.py).

    Ports are taken in turn, not lowest-free-first: a receiver must not inherit the port of an
    earlier test's receiver, whose late webhook retries would reach it."""
    low, high = RECEIVER_PORTS
    for _ in range(high - low + 1):
        port = low + next(_next_port) % (high - low + 1)
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
    raise RuntimeError(f"no free loopback port in {low}-{high}")


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """Answers each path with its scripted replies in turn (the last one repeats)."""

    def __init__(self) -> None:
        self.script: dict[str, list[Reply]] = defaultdict(list)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, self.command, dict(self.headers), body, time.time())
                    )
                    replies = receiver.script.get(self.path.split("?")[0]) or [Reply()]
                    reply = replies.pop(0) if len(replies) > 1 else replies[0]
                if reply.delay:
                    time.sleep(reply.delay)
                payload = json.dumps(reply.body if reply.body is not None else {"ok": True})
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload.encode())

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *_args: Any) -> None:
                return

        self.server = serve_on_receiver_port(Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def on(self, path: str, *replies: Reply) -> None:
        self.script[path] = list(replies)

    def calls(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.split("?")[0] == path]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
