"""One handler per executable node type. A handler takes its validated params and a context
that reads and writes assets; image work runs in a worker thread, off the event loop."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from contracts.events import AssetInfo
from egress import ACCEPT_ENCODING, BodyTooLarge, UndecodableBody, read_bounded
from pydantic import BaseModel
from storage.assets import AssetStore, owned_by
from workflow import catalog as c
from workflow.limits import Limits, exceeded

from executor.imaging import ops
from executor.imaging.codec import ImageLimits, check_size
from executor.imaging.result import ImageResult
from executor.providers import GenerationRequest, GraphError, Providers

DEFAULT_LIMITS: Final = Limits.model_construct()
"""The documented defaults, without reading the environment (a service passes its settings)."""


@dataclass
class NodeResult:
    outputs: dict[str, Any] = field(default_factory=dict)
    assets: list[AssetInfo] = field(default_factory=list)


class HttpCallFailed(Exception):
    """The target answered with a non-2xx status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"the target answered HTTP {status}: {body[:300]}")
        self.status = status
        # Overload, throttling and server errors may pass; other client errors will not.
        self.retryable = status >= 500 or status in (408, 425, 429)


class ResponseTooLarge(Exception):
    """Over MAX_HTTP_RESPONSE_BYTES on the wire or after decoding; not retryable."""

    def __init__(self, limit: int, stage: str) -> None:
        super().__init__(
            f"the response is larger than {exceeded('max_http_response_bytes', limit)} {stage}"
        )


class InvalidResponse(Exception):
    """The target's body cannot be decoded (an encoding we did not ask for, or corrupt)."""


@dataclass(frozen=True)
class NodeContext:
    tenant_id: str
    run_id: str
    node_id: str
    attempt: int
    store: AssetStore
    outputs_bucket: str
    providers: Providers
    http: httpx.AsyncClient
    limits: Limits = field(default_factory=lambda: DEFAULT_LIMITS)

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits.of(self.limits)

    async def read(self, ref: str) -> bytes:
        """Only the tenant's own assets: its uploads and its runs' outputs."""
        return await self.store.get(ref, tenant_id=self.tenant_id)

    async def image_output(self, name: str, image: ImageResult) -> NodeResult:
        """Write under a key fixed by run, node and attempt: a redelivered step overwrites its
        own object instead of leaving a second one."""
        key = f"runs/{self.run_id}/{self.node_id}/{self.attempt}/{name}.{image.ext}"
        ref = await self.store.put(
            self.outputs_bucket,
            key,
            image.data,
            content_type=image.content_type,
            metadata=owned_by(self.tenant_id),
        )
        info = AssetInfo(
            ref=ref,
            content_type=image.content_type,
            bytes=len(image.data),
            width=image.width,
            height=image.height,
        )
        return NodeResult(outputs={name: ref}, assets=[info])

    async def image_outputs(self, images: list[ImageResult]) -> NodeResult:
        """Several images of one step: the first is `image`, all of them are `images`."""
        result = NodeResult()
        refs: list[str] = []
        for index, image in enumerate(images):
            one = await self.image_output("image" if index == 0 else f"image-{index + 1}", image)
            refs.extend(one.outputs.values())
            result.assets.extend(one.assets)
        result.outputs = {"image": refs[0], "images": refs}
        return result


NodeHandler = Callable[[Any, NodeContext], Awaitable[NodeResult]]


async def generate(p: c.GenerateParams, ctx: NodeContext) -> NodeResult:
    check_size(p.width, p.height, ctx.image_limits, what="the image to generate")
    provider, creds = await ctx.providers.resolve(ctx.tenant_id, p.provider)
    graph = p.graph if p.graph_asset is None else await _graph(p.graph_asset, ctx)
    request = GenerationRequest(
        prompt=p.prompt,
        negative_prompt=p.negative_prompt,
        width=p.width,
        height=p.height,
        size_given=bool({"width", "height"} & p.model_fields_set),
        seed=p.seed,
        quality=p.quality,
        count=p.count,
        model=p.model,
        options=p.options,
        graph=graph,
        graph_inputs=p.graph_inputs,
    )
    started = time.monotonic()
    generation = await provider.generate(request, creds)
    took = time.monotonic() - started
    result = await ctx.image_outputs(generation.images[: p.count])
    result.outputs["provider"] = generation.metadata(took)
    return result


MAX_GRAPH_BYTES: Final = 1024 * 1024


async def _graph(ref: str, ctx: NodeContext) -> dict[str, Any]:
    data = await ctx.read(ref)
    if len(data) > MAX_GRAPH_BYTES:
        raise GraphError(f"the graph asset is over {MAX_GRAPH_BYTES} bytes")
    try:
        graph = json.loads(data)
    except ValueError as exc:
        raise GraphError(f"the graph asset is not JSON: {exc}") from None
    if not isinstance(graph, dict):
        raise GraphError("the graph asset is not a JSON object in ComfyUI's API format")
    return graph


async def adjust(p: c.AdjustParams, ctx: NodeContext) -> NodeResult:
    data = await ctx.read(p.image)
    image = await asyncio.to_thread(
        ops.adjust,
        data,
        brightness=p.brightness,
        contrast=p.contrast,
        saturation=p.saturation,
        temperature=p.temperature,
        limits=ctx.image_limits,
    )
    return await ctx.image_output("image", image)


async def resize(p: c.ResizeParams, ctx: NodeContext) -> NodeResult:
    data = await ctx.read(p.image)
    image = await asyncio.to_thread(
        ops.resize,
        data,
        width=p.width,
        height=p.height,
        fit=p.fit,
        background=p.background,
        limits=ctx.image_limits,
    )
    return await ctx.image_output("image", image)


async def crop(p: c.CropParams, ctx: NodeContext) -> NodeResult:
    data = await ctx.read(p.image)
    image = await asyncio.to_thread(
        ops.crop, data, x=p.x, y=p.y, width=p.width, height=p.height, limits=ctx.image_limits
    )
    return await ctx.image_output("image", image)


async def text(p: c.TextParams, ctx: NodeContext) -> NodeResult:
    data = await ctx.read(p.image)
    image = await asyncio.to_thread(
        ops.text,
        data,
        text=p.text,
        x=p.x,
        y=p.y,
        size=p.size,
        color=p.color,
        limits=ctx.image_limits,
    )
    return await ctx.image_output("image", image)


async def composite(p: c.CompositeParams, ctx: NodeContext) -> NodeResult:
    base, overlay = await asyncio.gather(ctx.read(p.image), ctx.read(p.overlay))
    image = await asyncio.to_thread(
        ops.composite,
        base,
        overlay,
        x=p.x,
        y=p.y,
        opacity=p.opacity,
        limits=ctx.image_limits,
    )
    return await ctx.image_output("image", image)


async def convert(p: c.ConvertParams, ctx: NodeContext) -> NodeResult:
    data = await ctx.read(p.image)
    image = await asyncio.to_thread(
        ops.convert, data, format=p.format, quality=p.quality, limits=ctx.image_limits
    )
    return await ctx.image_output("image", image)


async def template(p: c.TemplateParams, ctx: NodeContext) -> NodeResult:
    return NodeResult(outputs={"text": p.template})


async def http_request(p: c.HttpRequestParams, ctx: NodeContext) -> NodeResult:
    """Call an outside endpoint through the egress guard (no private addresses, no redirects).

    The body is read raw and decoded by `egress.read_bounded`: MAX_HTTP_RESPONSE_BYTES holds on
    the wire and after decoding, and decompression stops at the limit (no gzip bombs)."""
    headers = httpx.Headers({"Idempotency-Key": f"{ctx.run_id}/{ctx.node_id}", **p.headers})
    # Only encodings read_bounded decodes; a server is free to send identity.
    headers["Accept-Encoding"] = ACCEPT_ENCODING
    request = ctx.http.build_request(
        p.method, p.url, headers=headers, json=p.body if p.body is not None else None
    )
    limit = ctx.limits.max_http_response_bytes
    response = await ctx.http.send(request, stream=True)
    try:
        raw = await read_bounded(response, limit)
    except BodyTooLarge as exc:
        raise ResponseTooLarge(limit, exc.stage) from None
    except UndecodableBody as exc:
        raise InvalidResponse(str(exc)) from None
    finally:
        await response.aclose()
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    if not response.is_success:
        raise HttpCallFailed(response.status_code, text)
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return NodeResult(
        outputs={"status": response.status_code, "body": body, "headers": dict(response.headers)}
    )


HANDLERS: Mapping[str, NodeHandler] = {
    "image.generate": generate,
    "image.adjust": adjust,
    "image.resize": resize,
    "image.crop": crop,
    "image.text": text,
    "image.composite": composite,
    "image.convert": convert,
    "text.template": template,
    "http.request": http_request,
}


def missing_handlers(handlers: Mapping[str, NodeHandler] = HANDLERS) -> list[str]:
    """Executable node types of the catalog this executor cannot run."""
    return sorted(
        name
        for name, node_type in c.CATALOG.items()
        if node_type.kind is c.NodeKind.EXECUTABLE and name not in handlers
    )


def params_for(node_type: str, raw: Mapping[str, Any]) -> BaseModel:
    model = c.CATALOG[node_type].params_model
    return model.model_validate(raw)
