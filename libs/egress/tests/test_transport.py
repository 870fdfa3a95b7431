"""The guarded client against a real HTTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import egress
import httpx
import pytest
from egress import EgressPolicy, EgressRefused


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (self.headers.get("Host") or "").encode()
        status = 302 if self.path == "/redirect" else 200
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "http://127.0.0.1:1/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


async def test_loopback_is_refused_by_default(server: int) -> None:
    async with egress.client(EgressPolicy(allow_http=True)) as http:
        with pytest.raises(EgressRefused, match="loopback"):
            await http.get(f"http://127.0.0.1:{server}/")
        with pytest.raises(EgressRefused, match="localhost"):
            await http.get(f"http://localhost:{server}/")


async def test_allowed_loopback_connects_with_the_host_name_kept(server: int) -> None:
    policy = EgressPolicy.parse("loopback", allow_http=True)
    async with egress.client(policy) as http:
        r = await http.get(f"http://localhost:{server}/")
        assert r.status_code == 200
        assert r.text == f"localhost:{server}"
        redirect = await http.get(f"http://localhost:{server}/redirect")
        assert redirect.status_code == 302  # not followed


async def test_names_are_checked_after_resolution(server: int) -> None:
    # loopback is allowed as a category only for literal loopback: "localhost" resolves to
    # 127.0.0.1, and the resolved address is what is checked before connecting.
    policy = EgressPolicy.parse("private", allow_http=True)
    async with egress.client(policy) as http:
        with pytest.raises(EgressRefused):
            await http.get(f"http://localhost:{server}/")


async def test_unresolvable_host_is_a_connection_error() -> None:
    async with egress.client(EgressPolicy(allow_http=True), timeout=5) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("http://no-such-host.invalid/")


async def test_a_port_outside_the_allowed_range_is_refused_before_connecting(server: int) -> None:
    others = EgressPolicy.parse(f"loopback:{server + 1}", allow_http=True)
    async with egress.client(others) as http:
        with pytest.raises(EgressRefused, match=f"not on port {server}"):
            await http.get(f"http://127.0.0.1:{server}/")
        with pytest.raises(EgressRefused, match=f"not on port {server}"):
            await http.get(f"http://localhost:{server}/")
    exact = EgressPolicy.parse(f"loopback:{server}", allow_http=True)
    async with egress.client(exact) as http:
        assert (await http.get(f"http://localhost:{server}/")).status_code == 200
