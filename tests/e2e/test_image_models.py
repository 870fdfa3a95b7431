"""A workflow whose image.generate uses each real provider, against its stand-in on loopback
(tools/standins), on the real stack: the tenant's own credentials (PUT /v1/providers), the
stored output image, the step's provider record, Retry-After honoured between attempts, a
provider without credentials failing at once, and a cancel reaching the provider."""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from devstack.apps import RECEIVER_PORTS
from e2e_helpers import poll, register
from PIL import Image
from standins import StandIn, round_robin_ports, wait_until
from standins.comfyui import ComfyUIStandIn
from standins.fal import FalQueueStandIn
from standins.openai import OpenAIImagesStandIn
from standins.replicate import ReplicateStandIn

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "providers"
PORTS = round_robin_ports(*RECEIVER_PORTS)
"""The stack's executor may reach loopback on the receivers' ports only (PROVIDER_EGRESS_ALLOW),
so a tenant's base URL pointing there goes through the egress guard like a real one."""


@dataclass
class Provider:
    name: str
    standin: StandIn
    url: str
    key: str | None

    def credentials(self) -> dict[str, Any]:
        base = f"{self.url}/v1" if self.name == "openai" else self.url
        return {"baseUrl": base, **({"apiKey": self.key} if self.key else {})}


@pytest.fixture(scope="module")
def providers() -> Iterator[dict[str, Provider]]:
    standins: dict[str, tuple[StandIn, str | None]] = {
        "openai": (OpenAIImagesStandIn(api_key="sk-e2e-openai-key"), "sk-e2e-openai-key"),
        "replicate": (ReplicateStandIn(api_token="r8_e2e_token"), "r8_e2e_token"),
        "fal": (FalQueueStandIn(key="e2e-id:e2e-secret"), "e2e-id:e2e-secret"),
        "comfyui": (ComfyUIStandIn(), None),
    }
    served: dict[str, Provider] = {}
    stack = []
    try:
        for name, (standin, key) in standins.items():
            ctx = standin.serve_picking(PORTS)
            served[name] = Provider(name, standin, ctx.__enter__(), key)
            stack.append(ctx)
        yield served
    finally:
        for ctx in reversed(stack):
            ctx.__exit__(None, None, None)


@pytest.fixture
def tenant(system: Any, providers: dict[str, Provider]) -> Iterator[httpx.Client]:
    """A new tenant whose provider credentials point at the stand-ins."""
    body = {"tenantId": f"models-{secrets.token_hex(4)}", "name": "image models"}
    with system.client(key=system.env["ADMIN_API_KEY"], timeout=30) as admin:
        created = admin.post("/v1/admin/keys", json=body)
    assert created.status_code == 201, created.text
    with system.client(created.json()["key"], timeout=90) as c:
        for provider in providers.values():
            put = c.put(f"/v1/providers/{provider.name}", json=provider.credentials())
            assert put.status_code == 200, put.text
            provider.standin.reset()
        yield c


def _example(name: str) -> dict[str, Any]:
    workflow: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return workflow


def _run(c: httpx.Client, workflow_id: str, prompt: str, *, wait: bool = True) -> dict[str, Any]:
    headers = {"Prefer": "wait=60" if wait else "respond-async"}
    r = c.post(
        f"/v1/workflows/{workflow_id}/run", json={"inputs": {"prompt": prompt}}, headers=headers
    )
    assert r.status_code in (200, 201, 202), r.text
    run: dict[str, Any] = r.json()
    return run


def _image(url: str) -> Image.Image:
    data = httpx.get(url, timeout=30).raise_for_status().content
    return Image.open(io.BytesIO(data))


def _step(run: dict[str, Any], node_id: str) -> dict[str, Any]:
    step: dict[str, Any] = next(s for s in run["steps"] if s["nodeId"] == node_id)
    return step


EXPECTED_SIZE = {
    "openai": (1024, 1024),
    "replicate": None,
    "fal": (1024, 1024),
    "comfyui": (512, 512),
}
FIRST_CALL = {"openai": "generate", "replicate": "create", "fal": "submit", "comfyui": "prompt"}


@pytest.mark.parametrize("name", ["openai", "replicate", "fal", "comfyui"])
def test_a_workflow_generates_through_each_provider_and_stores_its_image(
    name: str, tenant: httpx.Client, providers: dict[str, Provider]
) -> None:
    provider = providers[name]
    workflow_id = register(tenant, _example(name))
    run = poll(tenant, _run(tenant, workflow_id, f"a lighthouse at dawn via {name}")["runId"])
    assert run["status"] == "completed", run

    outputs = {o["name"]: o for o in run["outputs"]}
    image = outputs["image"]
    stored = _image(image["url"])
    assert (stored.width, stored.height) == (image["width"], image["height"])
    if EXPECTED_SIZE[name] is not None:
        assert stored.size == EXPECTED_SIZE[name]
    assert _image(outputs["square"]["url"]).size == (512, 512)

    record = _step(run, "render")["provider"]
    assert record["name"] == name
    assert record["requestId"]
    assert record["durationSeconds"] >= 0
    assert outputs["provider"]["value"]["requestId"] == record["requestId"]

    calls = provider.standin.requests_to(FIRST_CALL[name])
    assert len(calls) == 1
    if name == "comfyui":
        sent = calls[0].json["prompt"]
        assert sent["6"]["inputs"]["text"] == f"a lighthouse at dawn via {name}"
    else:
        assert provider.key is not None
        assert provider.key in calls[0].headers["authorization"]
        sent = calls[0].json["input"] if name == "replicate" else calls[0].json
        assert sent["prompt"] == f"a lighthouse at dawn via {name}"


def test_a_rate_limited_generation_is_retried_after_the_providers_retry_after(
    tenant: httpx.Client, providers: dict[str, Provider]
) -> None:
    replicate = providers["replicate"].standin
    replicate.fail_next("create", 429, headers={"retry-after": "2"})
    workflow = _example("replicate")
    # The node's own backoff is far shorter than the provider's wait.
    workflow["nodes"][0]["retry"] = {
        "maxAttempts": 3,
        "backoff": {"initialSeconds": 0.1, "factor": 1, "maxSeconds": 30},
    }
    workflow_id = register(tenant, workflow)
    run = poll(tenant, _run(tenant, workflow_id, "busy")["runId"])
    assert run["status"] == "completed", run

    step = _step(run, "render")
    assert step["attempt"] == 2
    first = step["attempts"][0]
    assert first["error"]["code"] == "provider_rate_limited"
    assert first["error"]["retryAfterSeconds"] == 2
    creates = replicate.requests_to("create")
    assert len(creates) == 2
    assert creates[1].at - creates[0].at >= 2, "the second attempt waited for Retry-After"


def test_a_content_policy_refusal_fails_the_run_at_once_with_the_providers_message(
    tenant: httpx.Client,
) -> None:
    workflow_id = register(tenant, _example("openai"))
    run = poll(tenant, _run(tenant, workflow_id, "something FORBIDDEN")["runId"])
    assert run["status"] == "failed"
    step = _step(run, "render")
    assert step["error"]["code"] == "content_policy"
    assert "safety" in step["error"]["message"].lower()
    assert step["attempt"] == 1, "a refusal is not retried, whatever the policy allows"


def test_a_provider_without_credentials_fails_the_step_at_once_naming_the_setting(
    system: Any,
) -> None:
    body = {"tenantId": f"models-{secrets.token_hex(4)}", "name": "no keys"}
    with system.client(key=system.env["ADMIN_API_KEY"], timeout=30) as admin:
        key = admin.post("/v1/admin/keys", json=body).raise_for_status().json()["key"]
    with system.client(key, timeout=90) as c:
        workflow_id = register(c, _example("fal"))
        started = time.monotonic()
        run = poll(c, _run(c, workflow_id, "no key")["runId"])
    assert run["status"] == "failed"
    step = _step(run, "render")
    assert step["error"]["code"] == "provider_not_configured"
    assert "FAL_KEY" in step["error"]["message"]
    assert "PUT /v1/providers/fal" in step["error"]["message"]
    assert step["attempt"] == 1, "not retried"
    assert time.monotonic() - started < 30, "failed at once, not after the step's timeout"


def test_canceling_a_run_cancels_the_providers_queued_request(
    tenant: httpx.Client, providers: dict[str, Provider]
) -> None:
    fal = providers["fal"].standin
    fal.queue_seconds = 120  # type: ignore[attr-defined]
    try:
        workflow_id = register(tenant, _example("fal"))
        run_id = _run(tenant, workflow_id, "never mind", wait=False)["runId"]
        assert wait_until(lambda: bool(fal.requests_to("status")), timeout=30)
        canceled = tenant.post(f"/v1/runs/{run_id}/cancel")
        assert canceled.status_code in (200, 202), canceled.text
        assert wait_until(lambda: bool(fal.requests_to("cancel")), timeout=30)
        assert poll(tenant, run_id)["status"] == "canceled"
    finally:
        fal.reset()


def test_the_step_record_says_when_a_node_asked_for_params_a_provider_lacks(
    tenant: httpx.Client,
) -> None:
    workflow = _example("openai")
    workflow["nodes"][0]["params"]["seed"] = 7
    workflow_id = register(tenant, workflow)
    run = poll(tenant, _run(tenant, workflow_id, "seeded")["runId"])
    assert run["status"] == "completed", run
    assert _step(run, "render")["provider"]["ignoredParams"] == ["seed"]
    assert datetime.fromisoformat(run["completedAt"])


def test_a_comfyui_graph_uploaded_as_an_asset_runs_like_an_inline_one(
    tenant: httpx.Client, providers: dict[str, Provider]
) -> None:
    workflow = _example("comfyui")
    params = workflow["nodes"][0]["params"]
    graph = params.pop("graph")
    uploaded = tenant.post(
        "/v1/assets", content=json.dumps(graph), headers={"Content-Type": "application/json"}
    )
    assert uploaded.status_code == 201, uploaded.text
    params["graphAsset"] = uploaded.json()["ref"]
    params["graphInputs"]["Latent size.width"] = 256
    workflow_id = register(tenant, workflow)
    run = poll(tenant, _run(tenant, workflow_id, "from an asset")["runId"])
    assert run["status"] == "completed", run
    image = next(o for o in run["outputs"] if o["name"] == "image")
    assert _image(image["url"]).size == (256, 512)
    sent = providers["comfyui"].standin.requests_to("prompt")[-1].json["prompt"]
    assert sent["6"]["inputs"]["text"] == "from an asset"
    assert sent["4"] == graph["4"]
