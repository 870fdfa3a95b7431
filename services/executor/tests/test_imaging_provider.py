from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from executor.imaging import HttpProvider, ImageResult, OfflineProvider, ProviderError, generate
from imaging_samples import image_bytes, open_bytes

URL = "http://model.test/v1/generate"

Handler = Callable[[httpx.Request], httpx.Response]


async def _generate(handler: Handler, seen: list[httpx.Request] | None = None) -> ImageResult:
    def recording(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return handler(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
        return await HttpProvider(URL, 5.0, client).generate(
            prompt="a lighthouse",
            negative_prompt="blurry",
            width=64,
            height=48,
            seed=3,
            quality="draft",
        )


def _image_response(data: bytes, content_type: str = "image/png") -> Handler:
    return lambda _: httpx.Response(200, content=data, headers={"Content-Type": content_type})


async def test_http_provider_posts_the_request_and_returns_the_image() -> None:
    png = image_bytes((64, 48), (10, 20, 30))
    seen: list[httpx.Request] = []
    result = await _generate(_image_response(png), seen)
    assert result == ImageResult(png, "image/png", 64, 48, "png")
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == URL
    assert json.loads(request.content) == {
        "prompt": "a lighthouse",
        "negativePrompt": "blurry",
        "width": 64,
        "height": 48,
        "seed": 3,
        "quality": "draft",
    }


async def test_http_provider_reports_the_real_format_and_size() -> None:
    jpeg = image_bytes((30, 20), format="JPEG")
    result = await _generate(_image_response(jpeg, "image/jpeg"))
    assert (result.content_type, result.ext, result.width, result.height) == (
        "image/jpeg",
        "jpg",
        30,
        20,
    )


async def test_http_provider_reencodes_other_formats_as_png() -> None:
    gif = image_bytes((8, 8), (5,), mode="P", format="GIF")
    result = await _generate(_image_response(gif, "image/gif"))
    assert result.content_type == "image/png"
    assert open_bytes(result.data).format == "PNG"


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
async def test_http_provider_server_errors_are_retryable(status: int) -> None:
    with pytest.raises(ProviderError, match=str(status)) as caught:
        await _generate(lambda _: httpx.Response(status, text="overloaded"))
    assert caught.value.retryable
    assert caught.value.status_code == status


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_http_provider_client_errors_are_not_retryable(status: int) -> None:
    with pytest.raises(ProviderError, match="prompt rejected") as caught:
        await _generate(lambda _: httpx.Response(status, text="prompt rejected"))
    assert not caught.value.retryable


async def test_http_provider_timeout_is_retryable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(ProviderError, match="timed out") as caught:
        await _generate(slow)
    assert caught.value.retryable


async def test_http_provider_connection_failure_is_retryable() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ProviderError, match="unreachable") as caught:
        await _generate(down)
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"ok": true}', "application/json", "expected an image"),
        (b"not really a png", "image/png", "undecodable"),
    ],
)
async def test_http_provider_bad_answers_are_not_retryable(
    body: bytes, content_type: str, message: str
) -> None:
    with pytest.raises(ProviderError, match=message) as caught:
        await _generate(_image_response(body, content_type))
    assert not caught.value.retryable


async def test_offline_provider_matches_the_pure_function() -> None:
    result = await OfflineProvider().generate(
        prompt="a lighthouse", negative_prompt="blurry", width=48, height=32, seed=3, quality="high"
    )
    assert result == generate(prompt="a lighthouse", width=48, height=32, seed=3, quality="high")
