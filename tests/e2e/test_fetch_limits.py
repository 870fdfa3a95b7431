"""What the system fetches, decodes and stores for a tenant is bounded, end to end: a gzip bomb
behind http.request, an image bomb as a run's input, oversized or untyped uploads, and
webhooks or http.request pointed at the stack's own ports."""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import pytest
from devstack.settings import Settings
from e2e_helpers import register
from e2e_receiver import serve_on_receiver_port
from minio import Minio
from workflow.limits import Limits

pytestmark = pytest.mark.e2e

MAX_RESPONSE = Limits.model_fields["max_http_response_bytes"].default
MAX_UPLOAD = Limits.model_fields["max_upload_bytes"].default


def _double_gzip_bomb(size: int = 200 * 1024 * 1024) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1024 * 1024)
    inner = b"".join(packer.compress(block) for _ in range(size // len(block))) + packer.flush()
    return gzip.compress(inner)


def _serving(body: bytes, headers: dict[str, str]) -> Iterator[str]:
    """A loopback server on a receiver port answering every GET with `body` and `headers`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = serve_on_receiver_port(Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def bomb_server() -> Iterator[str]:
    """Serves a few hundred bytes that are 200 MB after `Content-Encoding: gzip, gzip`."""
    yield from _serving(
        _double_gzip_bomb(),
        {"Content-Type": "application/json", "Content-Encoding": "gzip, gzip"},
    )


def _call(url: str) -> dict[str, Any]:
    return {
        "name": "call out",
        "inputSchema": {"type": "object"},
        "nodes": [{"id": "call", "type": "http.request", "params": {"url": url}}],
        "outputs": {"status": "{{ nodes.call.status }}"},
    }


def _failed_step(system: Any, definition: dict[str, Any], inputs: dict[str, Any]) -> Any:
    with system.client() as c:
        workflow_id = register(c, definition)
        r = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": inputs})
    run = r.json()
    assert run["status"] == "failed", run
    [step] = run["steps"]
    assert len(step["attempts"]) == 1, step  # a limit is not retried
    return run, step["attempts"][-1]["error"]


def test_a_double_gzip_response_is_cut_at_the_limit(system: Any, bomb_server: str) -> None:
    run, error = _failed_step(system, _call(f"{bomb_server}/bomb"), {})
    assert error["code"] == "response_too_large"
    assert f"MAX_HTTP_RESPONSE_BYTES ({MAX_RESPONSE}) after decoding" in error["message"]
    assert "MAX_HTTP_RESPONSE_BYTES" in run["error"]["message"]


def _png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(1000)))
        + chunk(b"IEND", b"")
    )


def test_an_image_bomb_input_fails_its_run_with_a_clear_error(system: Any) -> None:
    definition = {
        "name": "thumb",
        "inputSchema": {"type": "object", "properties": {"asset": {"type": "string"}}},
        "nodes": [
            {
                "id": "thumb",
                "type": "image.resize",
                "params": {"image": "{{ inputs.asset }}", "width": 64, "height": 64},
            }
        ],
        "outputs": {"thumb": "{{ nodes.thumb.image }}"},
    }
    with system.client() as c:
        up = c.post("/v1/assets", content=_png_bomb(), headers={"Content-Type": "image/png"})
        assert up.status_code == 201, up.text
    started = time.monotonic()
    run, error = _failed_step(system, definition, {"asset": up.json()["ref"]})
    assert error["code"] == "image_too_large"
    assert "over the limit MAX_IMAGE_PIXELS (40000000)" in error["message"]
    assert run["error"]["nodeId"] == "thumb"
    print(f"image bomb run failed in {time.monotonic() - started:.2f} s")


def _uploads(system: Any) -> set[str]:
    """The e2e tenant's stored uploads (compared before and after: a refusal adds none)."""
    env = system.env
    endpoint = urlsplit(env["S3_ENDPOINT"])
    s3 = Minio(
        endpoint.netloc,
        access_key=env["S3_ACCESS_KEY"],
        secret_key=env["S3_SECRET_KEY"],
        secure=endpoint.scheme == "https",
        region=env.get("S3_REGION") or None,
    )
    listing = s3.list_objects(env["S3_UPLOADS_BUCKET"], prefix="e2e/", recursive=True)
    return {str(o.object_name) for o in listing}


def _raw_post(system: Any, head: dict[str, str], body_chunks: Iterable[bytes] = ()) -> str:
    """POST /v1/assets over a plain socket (to send what httpx will not: a huge declared
    length with `Expect: 100-continue`); returns the response's status line and head."""
    port = urlsplit(system.url).port
    lines = [
        "POST /v1/assets HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Authorization: Bearer {system.key}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in head.items()),
    ]
    with socket.create_connection(("127.0.0.1", port or 80), timeout=60) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            for part in body_chunks:
                sock.sendall(part)
        except OSError:
            pass  # the server answered and closed before the whole body was sent
        answer = b""
        try:
            while got := sock.recv(65536):  # the server closes after its answer
                answer += got
        except ConnectionResetError:
            pass  # closed with our body unread: its answer may be lost
        interim = b"HTTP/1.1 100 Continue\r\n\r\n"
        if answer.startswith(interim):
            answer = answer[len(interim) :]
        return answer.decode(errors="replace")


def test_an_upload_declaring_more_than_the_limit_is_413_before_its_body_is_sent(
    system: Any,
) -> None:
    before = _uploads(system)
    answer = _raw_post(
        system,
        {
            "Content-Type": "image/png",
            "Content-Length": str(MAX_UPLOAD + 1),
            "Expect": "100-continue",
        },
    )
    assert answer.startswith("HTTP/1.1 413"), answer
    assert f"MAX_UPLOAD_BYTES ({MAX_UPLOAD})" in answer
    assert _uploads(system) == before


def test_a_streamed_upload_passing_the_limit_is_refused_and_nothing_is_stored(
    system: Any,
) -> None:
    before = _uploads(system)
    block = bytes(1024 * 1024)

    def chunked() -> Iterator[bytes]:
        # No length is declared: the limit is found while streaming, after several S3 parts.
        for _ in range(MAX_UPLOAD // len(block) + 1):
            yield b"%x\r\n%s\r\n" % (len(block), block)
        yield b"0\r\n\r\n"

    answer = _raw_post(
        system, {"Content-Type": "image/png", "Transfer-Encoding": "chunked"}, chunked()
    )
    # The server refuses once the body passes the limit and closes the connection; the
    # answer may be lost to a reset while the client is still sending. What counts is that
    # no object was stored.
    if answer:
        assert answer.startswith("HTTP/1.1 413"), answer
    assert _uploads(system) == before


def test_an_upload_of_an_unsupported_type_is_415_naming_the_allowed_types(system: Any) -> None:
    before = _uploads(system)
    with system.client() as c:
        r = c.post("/v1/assets", content=b"PK\x03\x04", headers={"Content-Type": "application/zip"})
        missing = c.post("/v1/assets", content=b"abc", headers={"Content-Type": ""})
    assert r.status_code == 415, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "application/zip" in r.json()["detail"]
    assert "image/png" in r.json()["detail"]
    assert missing.status_code == 415, missing.text
    assert _uploads(system) == before


def test_an_accepted_upload_reports_its_size(system: Any) -> None:
    with system.client() as c:
        r = c.post("/v1/assets", content=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    assert r.json()["bytes"] == 5


def _stack_ports() -> dict[str, int]:
    s = Settings.from_env()
    return {
        "Kafka": s.kafka_port,
        "MongoDB": s.mongodb_port,
        "PostgreSQL": s.postgres_port,
        "S3": s.s3_port,
    }


@pytest.mark.parametrize("name", ["Kafka", "MongoDB", "PostgreSQL", "S3"])
def test_a_webhook_to_a_stack_port_is_refused(system: Any, name: str) -> None:
    port = _stack_ports()[name]
    with system.client() as c:
        workflow_id = register(c, _call("https://example.com/"))
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {}, "webhook": f"http://127.0.0.1:{port}/hook"},
        )
    assert r.status_code == 422, r.text
    assert f"not on port {port}" in r.text


@pytest.mark.parametrize("name", ["Kafka", "MongoDB", "PostgreSQL", "S3"])
def test_an_http_request_to_a_stack_port_is_refused(system: Any, name: str) -> None:
    port = _stack_ports()[name]
    _, error = _failed_step(system, _call(f"http://127.0.0.1:{port}/"), {})
    assert error["code"] == "egress_refused"
    assert f"not on port {port}" in error["message"]


MAX_STEP_OUTPUT = Limits.model_fields["max_step_output_bytes"].default


@pytest.fixture(scope="module")
def large_json_server() -> Iterator[str]:
    """Serves a JSON body within MAX_HTTP_RESPONSE_BYTES but over MAX_STEP_OUTPUT_BYTES."""
    body = json.dumps({"blob": "x" * (MAX_STEP_OUTPUT + 64 * 1024)}).encode()
    assert len(body) < MAX_RESPONSE

    yield from _serving(body, {"Content-Type": "application/json"})


def test_a_step_whose_outputs_are_over_the_limit_fails_and_its_run_names_it(
    system: Any, large_json_server: str
) -> None:
    run, error = _failed_step(system, _call(f"{large_json_server}/large"), {})
    assert error["code"] == "outputs_too_large"
    assert "MAX_STEP_OUTPUT_BYTES" in error["message"]
    assert "MAX_STEP_OUTPUT_BYTES" in run["error"]["message"]
