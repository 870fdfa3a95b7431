"""What every stand-in shares: the request log, the failure script, the expiring output files
and the way it is served.

- `.requests` lists every request received (route, method, path, query, headers, JSON body),
  in order; `requests_to(route)` those of one route.
- `fail_next(route, status, body=None, headers=None, times=1)` makes the next `times`
  requests to `route` answer `status` with `body` (by default the body the provider documents
  for that status) and `headers`, after the request was recorded and authenticated. Calls
  queue up: `fail_next("create", 500); fail_next("create", 429)` answers 500, then 429, then
  normally.
- `expire_outputs()` makes every output URL issued so far answer as the provider's CDN does
  once the file has expired.
- `reset()` forgets requests, script, jobs and files, and restores the tunable attributes
  (`processing_seconds`, ...) to their constructor values; a test module can share one server
  and reset it between tests.

All state sits behind one lock: tests read and script it from their own thread while the
server runs in another.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Lifespan

from standins import images
from standins.server import serve, serve_picking


@dataclass(frozen=True)
class RecordedRequest:
    route: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case names."""
    json: Any
    """The parsed JSON body, or None when there was none or it was not JSON."""
    body: bytes = b""
    at: float = 0.0
    """time.time() when it arrived."""


@dataclass
class _Scripted:
    status: int
    body: Any
    headers: dict[str, str]
    remaining: int


@dataclass
class StoredFile:
    """An output file the stand-in serves under /files/..., rendered on request."""

    width: int
    height: int
    seed: int
    fmt: str = "png"
    expired: bool = False
    meta: dict[str, str] = field(default_factory=dict)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def body_response(body: Any, status: int, headers: Mapping[str, str] | None = None) -> Response:
    """A scripted body: JSON for dicts and lists, text for strings, empty for None."""
    if body is None:
        return Response(b"", status_code=status, headers=dict(headers or {}))
    if isinstance(body, str | bytes):
        hdrs = {"content-type": "text/plain; charset=utf-8", **dict(headers or {})}
        return Response(body, status_code=status, headers=hdrs)
    return json_response(body, status, headers)


def base_url(request: HTTPConnection) -> str:
    """The scheme and host the client used, so output URLs reach this server however it was
    addressed."""
    return str(request.base_url).rstrip("/")


def iso(ts: float) -> str:
    """An RFC 3339 UTC timestamp with microseconds, as Replicate and fal write them."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    return f"{whole}.{int(ts % 1 * 1_000_000):06d}Z"


class StandIn:
    ROUTES: ClassVar[tuple[str, ...]] = ()
    """The route names `fail_next` accepts."""
    ALIASES: ClassVar[Mapping[str, str]] = {}
    TUNABLES: ClassVar[tuple[str, ...]] = ()
    """Attributes `reset()` restores to their constructor values."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._script: dict[str, deque[_Scripted]] = {}
        self._files: dict[str, StoredFile] = {}
        self._tunable_defaults: dict[str, Any] = {}
        self._app: Starlette | None = None

    # --- for tests -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, route: str) -> list[RecordedRequest]:
        name = self._route_name(route)
        with self._lock:
            return [r for r in self._requests if r.route == name]

    def fail_next(
        self,
        route: str,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests to `route` with `status`, `body` (None: the body the
        provider documents for `status`) and `headers` (added to the documented ones)."""
        name = self._route_name(route)
        if times < 1:
            raise ValueError("times must be at least 1")
        default_body, default_headers = self._default_failure(name, status)
        entry = _Scripted(
            status=status,
            body=default_body if body is None else body,
            headers={**default_headers, **{k.lower(): v for k, v in (headers or {}).items()}},
            remaining=times,
        )
        with self._lock:
            self._script.setdefault(name, deque()).append(entry)

    def expire_outputs(self) -> None:
        """Every output URL issued so far now answers as the provider's CDN does after expiry."""
        with self._lock:
            for stored in self._files.values():
                stored.expired = True

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._files.clear()
            for name, value in self._tunable_defaults.items():
                setattr(self, name, value)
            self._reset_state()

    @property
    def app(self) -> Starlette:
        with self._lock:
            if self._app is None:
                self._app = Starlette(routes=self._routes(), lifespan=self._lifespan())
            return self._app

    @contextlib.contextmanager
    def serve(self, port: int | None = None) -> Iterator[str]:
        """Serve on 127.0.0.1 (`port` or a free one); yields the base URL."""
        with serve(self.app, port) as url:
            yield url

    @contextlib.contextmanager
    def serve_picking(
        self, pick_port: Callable[[], int], attempts: int | None = None
    ) -> Iterator[str]:
        """Serve on a port offered by `pick_port` (e.g. `round_robin_ports(28000, 28999)`)."""
        with serve_picking(self.app, pick_port, attempts) as url:
            yield url

    # --- for subclasses --------------------------------------------------------------------

    def _routes(self) -> Sequence[BaseRoute]:
        raise NotImplementedError

    def _lifespan(self) -> Lifespan[Starlette] | None:
        return None

    def _reset_state(self) -> None:
        """Forget jobs; called with the lock held."""

    def _remember_tunables(self) -> None:
        self._tunable_defaults = {name: getattr(self, name) for name in self.TUNABLES}

    def _default_failure(self, route: str, status: int) -> tuple[Any, dict[str, str]]:
        """The body and headers the provider documents for `status` on `route`."""
        return {"error": f"scripted {status}"}, {}

    def _route_name(self, route: str) -> str:
        name = self.ALIASES.get(route, route)
        if name not in self.ROUTES:
            raise ValueError(f"unknown route {route!r}; one of {', '.join(self.ROUTES)}")
        return name

    async def _receive(self, request: Request, route: str) -> RecordedRequest:
        raw = await request.body()
        parsed: Any = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        recorded = RecordedRequest(
            route=route,
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=parsed,
            body=raw,
            at=time.time(),
        )
        with self._lock:
            self._requests.append(recorded)
        return recorded

    async def _open(
        self,
        request: Request,
        route: str,
        *,
        authenticate: bool = True,
        scripted_headers: Mapping[str, str] | None = None,
    ) -> tuple[RecordedRequest, Response | None]:
        """What every endpoint does first, in this order: record the request to `route`, refuse
        it without valid credentials (`_refusal`; skipped when not `authenticate`), then take a
        scripted failure (with `scripted_headers` under its own). The response is the answer
        when there is one; None: the endpoint goes on."""
        recorded = await self._receive(request, route)
        if authenticate:
            refused = self._refusal(recorded.headers)
            if refused is not None:
                return recorded, refused
        return recorded, self._take_scripted(route, scripted_headers)

    def _refusal(self, headers: dict[str, str]) -> Response | None:
        """The provider's answer to a request with these (lower-case) headers when they do not
        authenticate it; None lets it through. The default lets everything through."""
        return None

    def _record_connection(self, conn: HTTPConnection, route: str) -> None:
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    route=route,
                    method="GET",
                    path=conn.url.path,
                    query=dict(conn.query_params),
                    headers={k.lower(): v for k, v in conn.headers.items()},
                    json=None,
                    at=time.time(),
                )
            )

    def _take_scripted(
        self, route: str, headers: Mapping[str, str] | None = None
    ) -> Response | None:
        """The scripted answer for this request to `route`, if one is queued (consumed)."""
        with self._lock:
            queue = self._script.get(route)
            if not queue:
                return None
            entry = queue[0]
            entry.remaining -= 1
            if entry.remaining <= 0:
                queue.popleft()
        return body_response(entry.body, entry.status, {**dict(headers or {}), **entry.headers})

    # --- output files ----------------------------------------------------------------------

    def _add_file(self, key: str, stored: StoredFile) -> None:
        with self._lock:
            self._files[key] = stored

    def _files_route(self) -> Route:
        return Route("/files/{key:path}", self._serve_file, methods=["GET", "HEAD"])

    async def _serve_file(self, request: Request) -> Response:
        _, answer = await self._open(request, "download", authenticate=False)
        if answer is not None:
            return answer
        key = request.path_params["key"]
        with self._lock:
            stored = self._files.get(key)
            expired = stored.expired if stored else False
        if stored is None:
            return self._missing_file_response()
        if expired:
            return self._expired_file_response()
        data = await run_in_threadpool(
            images.render, stored.width, stored.height, stored.seed, stored.fmt
        )
        return Response(
            data,
            media_type=images.content_type(stored.fmt),
            headers={"cache-control": "public, max-age=3600"},
        )

    def _missing_file_response(self) -> Response:
        return Response(b"Not Found", status_code=404, media_type="text/plain")

    def _expired_file_response(self) -> Response:
        return self._missing_file_response()
