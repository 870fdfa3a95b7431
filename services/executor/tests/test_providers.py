"""Each provider through its official client against a stand-in that speaks the provider's
documented HTTP protocol (tools/standins; the modules there name the API reference they
follow): success, queueing and polling, 429 with Retry-After, a content-policy refusal, a 500
then success, an expired output URL, cancellation, and what the step's error says."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from contracts.events import StepFailure
from egress import EgressPolicy, EgressRefused
from executor.imaging.codec import ImageLimits
from executor.providers import (
    ComfyUI,
    Credentials,
    FalQueue,
    GenerationRequest,
    GraphError,
    ImageProvider,
    OpenAIImages,
    ProviderClients,
    ProviderError,
    ReplicatePredictions,
)
from executor.service import classify
from PIL import Image
from standins import StandIn, wait_until
from standins.comfyui import ComfyUIStandIn
from standins.fal import FalQueueStandIn
from standins.openai import OpenAIImagesStandIn
from standins.replicate import ReplicateStandIn

GRAPH = json.loads(
    (Path(__file__).resolve().parents[3] / "examples/comfyui/txt2img.api.json").read_text()
)


@dataclass
class Served:
    standin: StandIn
    url: str


def _serve(standin: StandIn) -> Iterator[Served]:
    with standin.serve() as url:
        yield Served(standin, url)


@pytest.fixture(scope="module")
def openai_server() -> Iterator[Served]:
    yield from _serve(OpenAIImagesStandIn())


@pytest.fixture(scope="module")
def replicate_server() -> Iterator[Served]:
    yield from _serve(ReplicateStandIn())


@pytest.fixture(scope="module")
def fal_server() -> Iterator[Served]:
    yield from _serve(FalQueueStandIn())


@pytest.fixture(scope="module")
def comfy_server() -> Iterator[Served]:
    yield from _serve(ComfyUIStandIn())


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    for name in ("openai_server", "replicate_server", "fal_server", "comfy_server"):
        if name in request.fixturenames:
            request.getfixturevalue(name).standin.reset()


class _Clients(ProviderClients):
    """Loopback allowed (the stand-ins live there); `before_download` runs as each output is
    fetched, so a test can expire it at that moment."""

    before_download: Any = None

    def downloads(self) -> httpx.AsyncClient:
        client = super().downloads()
        hook = self.before_download
        if hook is not None:

            async def on_request(_: httpx.Request) -> None:
                hook()

            client.event_hooks["request"].append(on_request)
        return client


def _clients(**kw: Any) -> _Clients:
    return _Clients(
        policy=EgressPolicy.parse("loopback", allow_http=True),
        timeout=kw.pop("timeout", 10.0),
        poll_interval=0.05,
        limits=ImageLimits(),
    )


def _creds(server: Served, key: str, **kw: Any) -> Credentials:
    return Credentials(api_key=key, base_url=server.url, **kw)


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


OPENAI_KEY = "sk-standin-key"
REPLICATE_KEY = "r8_standin_token"
FAL_KEY = "standin-key-id:standin-key-secret"


def _openai(server: Served) -> tuple[OpenAIImages, Credentials]:
    return OpenAIImages(_clients()), _creds(server, OPENAI_KEY, model=None)


def _openai_v1(server: Served) -> Credentials:
    return Credentials(api_key=OPENAI_KEY, base_url=f"{server.url}/v1")


async def _provider_error(
    provider: ImageProvider, request: GenerationRequest, creds: Credentials
) -> ProviderError:
    """The ProviderError `provider.generate(request, creds)` raises (the test fails if it
    raises none)."""
    with pytest.raises(ProviderError) as caught:
        await provider.generate(request, creds)
    return caught.value


async def _failure(
    provider: ImageProvider, request: GenerationRequest, creds: Credentials
) -> StepFailure:
    """How the step fails when `provider.generate(request, creds)` raises a ProviderError."""
    return classify(await _provider_error(provider, request, creds))


# --- OpenAI ------------------------------------------------------------------------------


async def test_openai_decodes_base64_images_and_reports_its_request_id(
    openai_server: Served,
) -> None:
    provider = OpenAIImages(_clients())
    request = GenerationRequest(prompt="a red fox", width=1024, height=1536, count=2, seed=3)
    generation = await provider.generate(request, _openai_v1(openai_server))
    assert [(_size(i.data), i.content_type) for i in generation.images] == [
        ((1024, 1536), "image/png")
    ] * 2
    sent = openai_server.standin.requests_to("generate")[-1]
    assert sent.json["model"] == "gpt-image-1"
    assert sent.json["size"] == "1024x1536"
    assert sent.json["n"] == 2
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    meta = generation.metadata(duration_seconds=1.0)
    assert meta["name"] == "openai"
    assert meta["model"] == "gpt-image-1"
    assert str(meta["requestId"]).startswith("req_")
    assert meta["ignoredParams"] == ["seed"]


async def test_openai_url_outputs_are_downloaded_and_an_expired_one_fails_for_good(
    openai_server: Served,
) -> None:
    clients = _clients()
    provider = OpenAIImages(clients)
    request = GenerationRequest(
        prompt="a lighthouse",
        model="dall-e-2",
        width=512,
        height=512,
        options={"response_format": "url"},
    )
    generation = await provider.generate(request, _openai_v1(openai_server))
    assert _size(generation.images[0].data) == (512, 512)
    assert openai_server.standin.requests_to("download")

    clients.before_download = openai_server.standin.expire_outputs
    failure = await _failure(provider, request, _openai_v1(openai_server))
    assert (failure.code, failure.retryable) == ("provider_output_expired", False)
    assert "?" not in failure.message  # the URL's signature stays out of messages


async def test_openai_429_is_retryable_after_its_retry_after(openai_server: Served) -> None:
    openai_server.standin.fail_next("generate", 429, headers={"retry-after": "7"})
    failure = await _failure(
        OpenAIImages(_clients()), GenerationRequest(prompt="x"), _openai_v1(openai_server)
    )
    assert (failure.code, failure.retryable) == ("provider_rate_limited", True)
    assert failure.retry_after_seconds == 7
    assert "rate limit" in failure.message.lower()


async def test_openai_moderation_refusal_is_permanent_with_the_providers_message(
    openai_server: Served,
) -> None:
    failure = await _failure(
        OpenAIImages(_clients()),
        GenerationRequest(prompt="something FORBIDDEN"),
        _openai_v1(openai_server),
    )
    assert (failure.code, failure.retryable) == ("content_policy", False)
    assert "safety" in failure.message.lower()
    assert "moderation_blocked" in failure.message


async def test_openai_500_is_retryable_and_the_next_attempt_succeeds(
    openai_server: Served,
) -> None:
    openai_server.standin.fail_next("generate", 500)
    provider = OpenAIImages(_clients())
    error = await _provider_error(
        provider, GenerationRequest(prompt="x"), _openai_v1(openai_server)
    )
    assert (classify(error).code, error.retryable) == ("provider_unavailable", True)
    generation = await provider.generate(GenerationRequest(prompt="x"), _openai_v1(openai_server))
    assert len(generation.images) == 1


async def test_openai_a_wrong_key_is_a_permanent_auth_failure(openai_server: Served) -> None:
    creds = replace(_openai_v1(openai_server), api_key="sk-wrong")
    error = await _provider_error(OpenAIImages(_clients()), GenerationRequest(prompt="x"), creds)
    assert (error.code, error.retryable) == ("provider_auth_failed", False)
    assert "sk-wrong" not in str(error)


async def test_openai_a_slow_answer_times_out_retryably(openai_server: Served) -> None:
    openai_server.standin.delay_seconds = 2.0  # type: ignore[attr-defined]
    provider = OpenAIImages(
        _Clients(
            policy=EgressPolicy.parse("loopback", allow_http=True),
            timeout=0.3,
            poll_interval=0.05,
            limits=ImageLimits(),
        )
    )
    error = await _provider_error(
        provider, GenerationRequest(prompt="x"), _openai_v1(openai_server)
    )
    assert (error.code, error.retryable) == ("provider_timeout", True)


async def test_a_tenants_own_base_url_goes_through_the_egress_guard(
    openai_server: Served,
) -> None:
    closed = _Clients(
        policy=EgressPolicy.parse("", allow_http=True),
        timeout=5,
        poll_interval=0.05,
        limits=ImageLimits(),
    )
    tenant = replace(_openai_v1(openai_server), trusted=False, source="tenant")
    with pytest.raises(EgressRefused):
        await OpenAIImages(closed).generate(GenerationRequest(prompt="x"), tenant)
    # The operator's own address (settings) is trusted.
    generation = await OpenAIImages(closed).generate(
        GenerationRequest(prompt="x"), _openai_v1(openai_server)
    )
    assert generation.images


# --- Replicate ---------------------------------------------------------------------------


async def test_replicate_sync_wait_answers_a_fast_prediction_at_once(
    replicate_server: Served,
) -> None:
    provider = ReplicatePredictions(_clients())
    request = GenerationRequest(
        prompt="a fox",
        model="black-forest-labs/flux-schnell",
        count=2,
        seed=5,
        options={"aspect_ratio": "1:1"},
    )
    generation = await provider.generate(request, _creds(replicate_server, REPLICATE_KEY))
    assert len(generation.images) == 2
    standin = replicate_server.standin
    create = standin.requests_to("create")[-1]
    assert create.path == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert create.headers["prefer"].startswith("wait")
    assert create.json["input"] == {
        "prompt": "a fox",
        "seed": 5,
        "num_outputs": 2,
        "aspect_ratio": "1:1",
    }
    assert not standin.requests_to("status")  # answered by the sync wait, no polling
    assert generation.request_id
    assert generation.metadata(duration_seconds=1.0)["model"] == "black-forest-labs/flux-schnell"


async def test_replicate_polls_a_prediction_the_sync_wait_did_not_finish(
    replicate_server: Served,
) -> None:
    standin = replicate_server.standin
    standin.processing_seconds = 1.5  # type: ignore[attr-defined]
    provider = ReplicatePredictions(_clients(), sync_wait=1)
    generation = await provider.generate(
        GenerationRequest(prompt="slow"), _creds(replicate_server, REPLICATE_KEY)
    )
    assert generation.images
    assert standin.requests_to("status"), "the prediction was polled"


async def test_replicate_a_version_is_created_on_the_predictions_endpoint(
    replicate_server: Served,
) -> None:
    version = "a" * 64
    await ReplicatePredictions(_clients()).generate(
        GenerationRequest(prompt="x", model=f"stability-ai/sdxl:{version}"),
        _creds(replicate_server, REPLICATE_KEY),
    )
    create = replicate_server.standin.requests_to("create")[-1]
    assert (create.path, create.json["version"]) == ("/v1/predictions", version)


async def test_replicate_429_is_retryable_after_its_retry_after(replicate_server: Served) -> None:
    replicate_server.standin.fail_next("create", 429, headers={"retry-after": "12"})
    failure = await _failure(
        ReplicatePredictions(_clients()),
        GenerationRequest(prompt="x"),
        _creds(replicate_server, REPLICATE_KEY),
    )
    assert (failure.code, failure.retryable, failure.retry_after_seconds) == (
        "provider_rate_limited",
        True,
        12,
    )
    assert "throttled" in failure.message


async def test_replicate_nsfw_failure_is_a_permanent_content_policy_error(
    replicate_server: Served,
) -> None:
    failure = await _failure(
        ReplicatePredictions(_clients()),
        GenerationRequest(prompt="FORBIDDEN"),
        _creds(replicate_server, REPLICATE_KEY),
    )
    assert (failure.code, failure.retryable) == ("content_policy", False)
    assert "NSFW" in failure.message


async def test_replicate_500_then_success(replicate_server: Served) -> None:
    replicate_server.standin.fail_next("create", 500)
    provider = ReplicatePredictions(_clients())
    creds = _creds(replicate_server, REPLICATE_KEY)
    error = await _provider_error(provider, GenerationRequest(prompt="x"), creds)
    assert (error.code, error.retryable) == ("provider_unavailable", True)
    assert (await provider.generate(GenerationRequest(prompt="x"), creds)).images


async def test_replicate_an_output_deleted_before_download_fails_as_expired(
    replicate_server: Served,
) -> None:
    clients = _clients()
    clients.before_download = replicate_server.standin.expire_outputs
    error = await _provider_error(
        ReplicatePredictions(clients),
        GenerationRequest(prompt="x"),
        _creds(replicate_server, REPLICATE_KEY),
    )
    assert (error.code, error.retryable) == ("provider_output_expired", False)


async def test_replicate_invalid_input_is_permanent_with_the_providers_detail(
    replicate_server: Served,
) -> None:
    error = await _provider_error(
        ReplicatePredictions(_clients()),
        GenerationRequest(prompt="x", options={"num_outputs": 99}),
        _creds(replicate_server, REPLICATE_KEY),
    )
    assert (error.code, error.status_code) == ("provider_invalid_request", 422)


async def test_canceling_a_replicate_step_cancels_its_prediction(
    replicate_server: Served,
) -> None:
    standin = replicate_server.standin
    standin.processing_seconds = 30  # type: ignore[attr-defined]
    provider = ReplicatePredictions(_clients(), sync_wait=1)
    task = asyncio.create_task(
        provider.generate(GenerationRequest(prompt="x"), _creds(replicate_server, REPLICATE_KEY))
    )
    await _until(lambda: bool(standin.requests_to("status")))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert standin.requests_to("cancel")


# --- fal ---------------------------------------------------------------------------------


async def test_fal_follows_a_queued_request_to_its_result(fal_server: Served) -> None:
    standin = fal_server.standin
    standin.queue_seconds = 0.3  # type: ignore[attr-defined]
    standin.processing_seconds = 0.3  # type: ignore[attr-defined]
    generation = await FalQueue(_clients()).generate(
        GenerationRequest(
            prompt="a fox", width=640, height=480, size_given=True, model="fal-ai/flux/dev"
        ),
        _creds(fal_server, FAL_KEY),
    )
    assert _size(generation.images[0].data) == (640, 480)
    submit = standin.requests_to("submit")[-1]
    assert submit.path == "/fal-ai/flux/dev"
    assert submit.headers["authorization"] == f"Key {FAL_KEY}"
    assert submit.json["image_size"] == {"width": 640, "height": 480}
    assert len(standin.requests_to("status")) >= 2, "queued, then polled"
    assert generation.request_id == submit_request_id(standin)


def submit_request_id(standin: StandIn) -> str | None:
    results = standin.requests_to("result")
    return results[-1].path.rsplit("/", 1)[-1] if results else None


async def test_fal_429_on_submit_is_retryable_after_its_retry_after(fal_server: Served) -> None:
    fal_server.standin.fail_next("submit", 429, headers={"retry-after": "4"})
    failure = await _failure(
        FalQueue(_clients()), GenerationRequest(prompt="x"), _creds(fal_server, FAL_KEY)
    )
    assert (failure.code, failure.retryable, failure.retry_after_seconds) == (
        "provider_rate_limited",
        True,
        4,
    )


async def test_fal_content_policy_refusal_is_permanent(fal_server: Served) -> None:
    failure = await _failure(
        FalQueue(_clients()), GenerationRequest(prompt="FORBIDDEN"), _creds(fal_server, FAL_KEY)
    )
    assert (failure.code, failure.retryable) == ("content_policy", False)
    assert "content_policy_violation" in failure.message


async def test_fal_500_then_success(fal_server: Served) -> None:
    fal_server.standin.fail_next("submit", 500)
    provider = FalQueue(_clients())
    error = await _provider_error(
        provider, GenerationRequest(prompt="x"), _creds(fal_server, FAL_KEY)
    )
    assert (error.code, error.retryable) == ("provider_unavailable", True)
    assert (
        await provider.generate(GenerationRequest(prompt="x"), _creds(fal_server, FAL_KEY))
    ).images


async def test_fal_an_expired_output_fails_for_good(fal_server: Served) -> None:
    clients = _clients()
    clients.before_download = fal_server.standin.expire_outputs
    error = await _provider_error(
        FalQueue(clients), GenerationRequest(prompt="x"), _creds(fal_server, FAL_KEY)
    )
    assert (error.code, error.retryable) == ("provider_output_expired", False)


async def test_canceling_a_fal_step_cancels_its_request(fal_server: Served) -> None:
    standin = fal_server.standin
    standin.queue_seconds = 30  # type: ignore[attr-defined]
    task = asyncio.create_task(
        FalQueue(_clients()).generate(GenerationRequest(prompt="x"), _creds(fal_server, FAL_KEY))
    )
    await _until(lambda: bool(standin.requests_to("status")))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert standin.requests_to("cancel")


# --- ComfyUI -----------------------------------------------------------------------------


def _comfy(prompt: str = "a fox", **inputs: Any) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompt,
        graph=GRAPH,
        graph_inputs={
            "Positive prompt.text": prompt,
            "Latent size.width": 320,
            "Latent size.height": 256,
            "3.seed": 42,
            **inputs,
        },
    )


async def test_comfyui_runs_the_graph_with_our_inputs_placed_and_fetches_its_images(
    comfy_server: Served,
) -> None:
    standin = comfy_server.standin
    standin.processing_seconds = 0.3  # type: ignore[attr-defined]
    creds = Credentials(base_url=comfy_server.url)
    generation = await ComfyUI(_clients()).generate(_comfy(), creds)
    assert [_size(i.data) for i in generation.images] == [(320, 256)]
    sent = standin.requests_to("prompt")[0].json["prompt"]
    assert sent["6"]["inputs"]["text"] == "a fox"
    assert sent["5"]["inputs"]["width"] == 320
    assert sent["3"]["inputs"]["seed"] == 42
    assert GRAPH["6"]["inputs"]["text"] != "a fox", "the node's own graph is not changed"
    assert len(standin.requests_to("history")) >= 2, "polled until done"
    assert standin.requests_to("view")
    assert generation.metadata(duration_seconds=1.0)["model"] == GRAPH["4"]["inputs"]["ckpt_name"]
    assert generation.request_id


async def test_comfyui_a_refused_graph_names_the_failing_node(comfy_server: Served) -> None:
    graph = json.loads(json.dumps(GRAPH))
    del graph["6"]["inputs"]["clip"]
    request = replace(_comfy(), graph=graph)
    failure = await _failure(ComfyUI(_clients()), request, Credentials(base_url=comfy_server.url))
    assert (failure.code, failure.retryable) == ("provider_invalid_request", False)
    assert "node 6 (CLIPTextEncode)" in failure.message


async def test_comfyui_a_node_failing_while_running_surfaces_comfyuis_error(
    comfy_server: Served,
) -> None:
    comfy_server.standin.fail_class_type = "KSampler"  # type: ignore[attr-defined]
    failure = await _failure(ComfyUI(_clients()), _comfy(), Credentials(base_url=comfy_server.url))
    assert (failure.code, failure.retryable) == ("provider_failed", False)
    assert "node 3 (KSampler) failed" in failure.message


async def test_comfyui_graph_inputs_must_name_a_node(comfy_server: Served) -> None:
    request = _comfy(**{"Nope.text": "x"})
    with pytest.raises(GraphError, match="Nope"):
        await ComfyUI(_clients()).generate(request, Credentials(base_url=comfy_server.url))
    assert classify(GraphError("x")).code == "invalid_params"


async def test_canceling_a_comfyui_step_interrupts_its_prompt(comfy_server: Served) -> None:
    standin = comfy_server.standin
    standin.processing_seconds = 30  # type: ignore[attr-defined]
    task = asyncio.create_task(
        ComfyUI(_clients()).generate(_comfy(), Credentials(base_url=comfy_server.url))
    )
    await _until(lambda: len(standin.requests_to("history")) >= 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert standin.requests_to("interrupt") or any(
        "delete" in (r.json or {}) for r in standin.requests_to("queue")
    )


async def _until(condition: Any) -> None:
    # The stand-in answers from its own thread: poll it from one too, off the event loop.
    assert await asyncio.to_thread(wait_until, condition, 10.0)
