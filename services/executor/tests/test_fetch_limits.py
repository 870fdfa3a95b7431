"""What the executor fetches and decodes is bounded: image sizes (decompression bombs),
produced images, and http.request responses on the wire and after decoding."""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import httpx
import pytest
from executor import nodes
from executor.imaging import ImageLimits, ImageTooLarge, decode, ops
from executor.imaging.codec import configure_pillow
from executor.nodes import NodeContext, ResponseTooLarge
from executor.providers import Offline, ProviderError, Providers
from executor.providers import download as download_module
from executor.providers.download import fetch_image
from executor.service import classify
from imaging_samples import image_bytes
from PIL import Image
from storage.assets import AssetStore
from workflow import catalog as c
from workflow.limits import Limits

TINY = ImageLimits(side=64, pixels=1000)


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header declares `width` x `height`."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(1000)))
        + _chunk(b"IEND", b"")
    )


BOMB = png_bomb()


def test_a_png_declaring_100000_squared_pixels_is_refused_from_its_header() -> None:
    assert len(BOMB) < 100
    with pytest.raises(ImageTooLarge, match=r"over the limit MAX_IMAGE_PIXELS \(40000000\)"):
        decode(BOMB)


def test_pillows_own_bomb_check_agrees_and_fails_the_same_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    configure_pillow(TINY)
    assert TINY.pixels == Image.MAX_IMAGE_PIXELS
    # 2,500 pixels is over twice the limit: Pillow refuses inside Image.open.
    with pytest.raises(ImageTooLarge, match=r"2500 pixels, over the limit MAX_IMAGE_PIXELS"):
        decode(image_bytes((50, 50)), TINY)


def test_a_side_over_the_limit_is_refused_even_when_the_pixels_fit() -> None:
    with pytest.raises(ImageTooLarge, match=r"100x2: a side over the limit MAX_IMAGE_SIDE \(64\)"):
        decode(image_bytes((100, 2)), TINY)


def test_images_within_the_limits_decode() -> None:
    assert decode(image_bytes((64, 15)), TINY).size == (64, 15)


OPS: list[Callable[[bytes], object]] = [
    lambda data: ops.adjust(data, brightness=1.2),
    lambda data: ops.resize(data, width=10, height=10),
    lambda data: ops.crop(data, x=0, y=0, width=1, height=1),
    lambda data: ops.text(data, text="hi", x=0, y=0),
    lambda data: ops.convert(data, format="jpeg"),
    lambda data: ops.composite(data, image_bytes((4, 4))),
    lambda data: ops.composite(image_bytes((4, 4)), data),
]


@pytest.mark.parametrize("op", OPS)
def test_every_image_operation_refuses_a_bomb_input(op: Callable[[bytes], object]) -> None:
    with pytest.raises(ImageTooLarge, match="MAX_IMAGE_PIXELS"):
        op(BOMB)


def test_a_resize_target_over_the_limits_is_refused_before_it_is_allocated() -> None:
    small = image_bytes((8, 8))
    with pytest.raises(ImageTooLarge, match=r"the resized image is 40x40 \(1,600 pixels\)"):
        ops.resize(small, width=40, height=40, limits=TINY)
    with pytest.raises(ImageTooLarge, match="MAX_IMAGE_SIDE"):
        ops.resize(small, width=65, height=1, limits=TINY)
    assert ops.resize(small, width=30, height=30, limits=TINY).width == 30


class _NoProvider(Offline):
    calls = 0

    async def generate(self, *_: Any, **__: Any) -> Any:
        self.calls += 1
        raise AssertionError("the provider must not be asked for an image over the limits")


def _ctx(
    limits: Limits, http: httpx.AsyncClient | None = None, provider: Any = None
) -> NodeContext:
    return NodeContext(
        tenant_id="t",
        run_id="run_1",
        node_id="n",
        attempt=1,
        store=cast(AssetStore, None),
        outputs_bucket="outputs",
        providers=Providers({"offline": provider or _NoProvider()}, {}, default="offline"),
        http=http or httpx.AsyncClient(),
        limits=limits,
    )


async def test_generate_checks_the_requested_size_before_asking_the_provider() -> None:
    provider = _NoProvider()
    limits = Limits.model_construct(max_image_side=1024, max_image_pixels=1_000_000)
    params = c.GenerateParams.model_validate({"prompt": "x", "width": 2048, "height": 512})
    with pytest.raises(ImageTooLarge, match="MAX_IMAGE_SIDE") as caught:
        await nodes.generate(params, _ctx(limits, provider=provider))
    assert provider.calls == 0
    failure = classify(caught.value)
    assert (failure.code, failure.retryable) == ("image_too_large", False)


async def test_a_provider_output_that_is_a_bomb_fails_as_image_too_large() -> None:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=BOMB, headers={"Content-Type": "image/png"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(ImageTooLarge, match="MAX_IMAGE_PIXELS"):
            await fetch_image(
                client, "http://cdn.test/out.png", provider="replicate", limits=ImageLimits()
            )


def _zeros_gzip(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    out = b"".join(packer.compress(block) for _ in range(size // len(block)))
    return out + packer.flush()


class _Raw(httpx.AsyncByteStream):
    """A body handed over as sent (bytes content would be read, and decoded, by httpx)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self._body), 16_384):
            yield self._body[i : i + 16_384]


def _answer(body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, headers=headers, stream=_Raw(body))


async def _http_request(answer: httpx.Response, seen: list[httpx.Request]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    limits = Limits.model_construct(max_http_response_bytes=65_536)
    params = c.HttpRequestParams.model_validate(
        {"url": "https://api.test/x", "headers": {"accept-encoding": "br"}}
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        return await nodes.http_request(params, _ctx(limits, http=http))


async def test_a_double_gzip_response_is_cut_at_the_limit() -> None:
    bomb = gzip.compress(_zeros_gzip(200 << 20))
    answer = _answer(bomb, {"Content-Encoding": "gzip, gzip"})
    seen: list[httpx.Request] = []
    with pytest.raises(ResponseTooLarge) as caught:
        await _http_request(answer, seen)
    assert str(caught.value) == (
        "the response is larger than the limit MAX_HTTP_RESPONSE_BYTES (65536) after decoding"
    )
    failure = classify(caught.value)
    assert (failure.code, failure.retryable) == ("response_too_large", False)
    # We ask only for what we decode, whatever the node's headers say.
    assert seen[0].headers["accept-encoding"] == "gzip, deflate"


async def test_a_response_over_the_limit_on_the_wire_is_refused() -> None:
    answer = _answer(bytes(70_000))
    with pytest.raises(ResponseTooLarge, match=r"\(65536\) on the wire"):
        await _http_request(answer, [])


async def test_an_encoded_response_within_the_limit_is_decoded() -> None:
    answer = _answer(
        gzip.compress(b'{"ok": true}'),
        {"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    result = await _http_request(answer, [])
    assert result.outputs["body"] == {"ok": True}


async def test_an_encoding_we_did_not_ask_for_fails_without_retrying() -> None:
    answer = _answer(b"\x00", {"Content-Encoding": "br"})
    with pytest.raises(nodes.InvalidResponse) as caught:
        await _http_request(answer, [])
    failure = classify(caught.value)
    assert (failure.code, failure.retryable) == ("invalid_response", False)


async def test_a_provider_output_download_is_bounded_on_the_wire_and_after_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(download_module, "MAX_IMAGE_BYTES", 65_536)
    bomb = gzip.compress(_zeros_gzip(64 << 20))

    def answer(_: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "image/png", "Content-Encoding": "gzip, gzip"}
        return _answer(bomb, headers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(ProviderError, match="larger than 65536 bytes after decoding") as caught:
            await fetch_image(
                client, "http://cdn.test/out.png", provider="fal", limits=ImageLimits()
            )
    assert caught.value.retryable is False
