"""The Python client (clients/python) against the whole system: runs waited for and their
images downloaded, a run's events streamed, typed errors, a real 429 retried, webhook
deliveries verified, and the asyncio client."""

from __future__ import annotations

import io
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from e2e_receiver import Receiver, serve_on_receiver_port
from PIL import Image
from workflow_client import AsyncClient, Client, InvalidInput, NotFound, WebhookVerificationError
from workflow_client import client as client_module

pytestmark = pytest.mark.e2e

PICTURES = {
    "name": "two pictures",
    "inputSchema": {
        "type": "object",
        "required": ["prompt"],
        "properties": {
            "prompt": {"type": "string", "minLength": 1},
            "options": {
                "type": "object",
                "properties": {"quality": {"enum": ["draft", "high"]}},
            },
        },
    },
    "nodes": [
        {
            "id": "render",
            "type": "image.generate",
            "params": {"prompt": "{{ inputs.prompt }}", "width": 96, "height": 64, "seed": 3},
        },
        {
            "id": "small",
            "type": "image.resize",
            "params": {"image": "{{ nodes.render.image }}", "width": 32, "height": 24},
        },
    ],
    "outputs": {"picture": "{{ nodes.render.image }}", "thumb": "{{ nodes.small.image }}"},
}
ECHO = {
    "name": "echo",
    "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "hi {{ inputs.x }}"}}],
    "outputs": {"text": "{{ nodes.say.text }}"},
}


def _client(system: Any, key: str | None = None) -> Client:
    return Client(system.url, key or system.key, timeout=90)


def _put(client: Client, definition: dict[str, Any]) -> str:
    workflow_id = f"client-{secrets.token_hex(4)}"
    client.workflows.put(workflow_id, definition)
    return workflow_id


def _image(path: Path) -> tuple[str, tuple[int, int]]:
    with Image.open(io.BytesIO(path.read_bytes())) as image:
        return str(image.format), image.size


def test_run_and_wait_returns_the_outputs_and_downloads_the_images(
    system: Any, tmp_path: Path
) -> None:
    with _client(system) as client:
        workflow_id = _put(client, PICTURES)
        run = client.run(workflow_id, {"prompt": "a lighthouse", "options": {"quality": "high"}})
        assert run.status == "completed", run.error
        assert run.outputs.names() == ["picture", "thumb"]
        picture = run.outputs["picture"].download(tmp_path)
        thumb = run.outputs["thumb"].download(tmp_path / "thumb-copy.png")
    assert picture == tmp_path / "picture.png"
    assert _image(picture) == ("PNG", (96, 64))
    assert _image(thumb) == ("PNG", (32, 24))
    assert run.outputs["picture"].ref is not None
    assert run.outputs["picture"].ref.startswith("s3://")


class _Gate:
    """An HTTP endpoint an `http.request` node calls, answering only once opened: the run
    cannot pass its first step before the test has its event stream."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.opened.wait(timeout=60)
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = serve_on_receiver_port(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/gate"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gate() -> Iterator[_Gate]:
    made = _Gate()
    try:
        yield made
    finally:
        made.close()


def test_runs_stream_yields_the_steps_of_a_two_node_run_in_order(system: Any, gate: _Gate) -> None:
    definition = {
        "name": "call then say",
        "inputSchema": {"type": "object"},
        "nodes": [
            {"id": "call", "type": "http.request", "params": {"url": gate.url}},
            {
                "id": "say",
                "type": "text.template",
                "params": {"template": "status {{ nodes.call.status }}"},
            },
        ],
        "outputs": {"text": "{{ nodes.say.text }}"},
    }
    with _client(system) as client:
        workflow_id = _put(client, definition)
        started = client.runs.create(workflow_id, {})
        events = []
        for event in client.runs.stream(started.run_id):
            events.append(event)
            if len(events) == 1:
                assert event.type == "run", "the stream starts with the run as it is"
                gate.opened.set()
    steps = [(e.type, e.node_id) for e in events if e.type.startswith("step.")]
    succeeded = [node for kind, node in steps if kind == "step.succeeded"]
    assert succeeded == ["call", "say"], steps
    assert steps.index(("step.started", "say")) > steps.index(("step.succeeded", "call"))
    assert steps[-1] == ("step.succeeded", "say")
    last = events[-1]
    assert last.type == "run"
    assert last.run is not None
    assert last.run.status == "completed"
    assert last.run.outputs["text"].value == "status 200"
    assert "run.completed" in [e.type for e in events]


def test_invalid_inputs_raise_invalid_input_naming_every_failing_path(system: Any) -> None:
    with _client(system) as client:
        workflow_id = _put(client, PICTURES)
        with pytest.raises(InvalidInput) as raised:
            client.run(workflow_id, {"prompt": "", "options": {"quality": "best"}})
        with pytest.raises(NotFound):
            client.runs.get("run_" + "0" * 28)
    assert raised.value.status == 422
    assert set(raised.value.paths) == {"/inputs/prompt", "/inputs/options/quality"}


def _limited_key(system: Any, limits: dict[str, Any]) -> str:
    """A key of a new tenant with `limits` (the shared e2e tenant has none)."""
    tenant = f"client-{secrets.token_hex(4)}"
    with system.client(key=system.env["ADMIN_API_KEY"], timeout=30) as admin:
        admin.put(f"/v1/admin/tenants/{tenant}/limits", json=limits).raise_for_status()
        created = admin.post("/v1/admin/keys", json={"tenantId": tenant, "name": "client"})
        created.raise_for_status()
        key: str = created.json()["key"]
        return key


def test_requests_answered_429_are_retried_and_no_run_is_started_twice(
    system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(client_module, "_sleep", sleep)
    # One request a second (bursts of 2): back-to-back calls pass it within a few calls.
    with _client(system, _limited_key(system, {"requestsPerSecond": 1})) as client:
        workflow_id = _put(client, ECHO)
        runs = []
        for n in range(20):
            runs.append(client.run(workflow_id, {"x": str(n)}))
            if pauses and len(runs) >= 3:
                break
        listed = list(client.runs.list(workflow_id=workflow_id))
    assert pauses, "the tenant's limit was never reached"
    assert all(p >= 1 for p in pauses), "each pause honours Retry-After (at least 1 s)"
    assert [r.status for r in runs] == ["completed"] * len(runs)
    assert [r.outputs["text"].value for r in runs] == [f"hi {n}" for n in range(len(runs))]
    assert sorted(r.run_id for r in listed) == sorted(r.run_id for r in runs), (
        "a retried run request started one run"
    )


def test_webhooks_verify_accepts_a_real_delivery_and_rejects_a_tampered_one(
    system: Any,
) -> None:
    receiver = Receiver()
    try:
        with _client(system) as client:
            workflow_id = _put(client, ECHO)
            run = client.run(workflow_id, {"x": "hook"}, webhook=f"{receiver.url}/hook")
            assert receiver.wait_for(lambda: bool(receiver.calls("/hook")), timeout=30)
            [delivery] = receiver.calls("/hook")
            payload = client.webhooks.verify(delivery.headers, delivery.body)
            assert payload["type"] == "run.completed"
            assert payload["data"]["runId"] == run.run_id

            tampered = delivery.body.replace(b'"hi hook"', b'"hi evil"')
            assert tampered != delivery.body
            with pytest.raises(WebhookVerificationError):
                client.webhooks.verify(delivery.headers, tampered)
            forged = {**delivery.headers, "webhook-signature": "v1,AAAA"}
            with pytest.raises(WebhookVerificationError):
                client.webhooks.verify(forged, delivery.body)
            with pytest.raises(WebhookVerificationError):
                client.webhooks.verify(delivery.headers, delivery.body, secret="whsec_" + "A" * 32)
    finally:
        receiver.close()


async def test_the_async_client_runs_waits_and_downloads(system: Any, tmp_path: Path) -> None:
    async with AsyncClient(system.url, system.key, timeout=90) as client:
        workflow_id = f"client-{secrets.token_hex(4)}"
        await client.workflows.put(workflow_id, PICTURES)
        run = await client.run(workflow_id, {"prompt": "an async lighthouse"})
        assert run.status == "completed", run.error
        saved = await run.outputs["thumb"].adownload(tmp_path)
        again = await client.runs.get(run.run_id)
        listed = [r.run_id async for r in client.runs.list(workflow_id=workflow_id)]
        with pytest.raises(InvalidInput) as raised:
            await client.run(workflow_id, {"prompt": 3})
    assert _image(saved) == ("PNG", (32, 24))
    assert again.status == "completed"
    assert listed == [run.run_id]
    assert raised.value.paths == ["/inputs/prompt"]
