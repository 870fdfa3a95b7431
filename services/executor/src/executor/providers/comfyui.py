"""A ComfyUI server's HTTP API (ComfyUI has no official client): queue an API-format graph with
`POST /prompt`, wait for its entry in `/history/{prompt_id}`, fetch each output image with
`/view`, then delete the entry. A step canceled here removes the prompt from the queue, or
interrupts it if it is running.

Our values are placed into the graph by `graph_inputs`: keys are `<node>.<input>`, where
<node> is a node id or a node's title (`_meta.title`, as ComfyUI's "Save (API)" exports it).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Final

import httpx

from executor.imaging.result import ImageResult
from executor.providers.base import (
    Credentials,
    Generation,
    GenerationRequest,
    ProviderError,
    ProviderName,
    status_error,
    transport_failure,
)
from executor.providers.clients import ProviderClients
from executor.providers.download import describe

log = logging.getLogger("executor.providers")

CANCEL_TIMEOUT: Final = 10.0
MAX_IMAGE_BYTES: Final = 64 * 1024 * 1024


class GraphError(ValueError):
    """The graph or its inputs do not fit together: the workflow author's mistake."""


class ComfyUI:
    name: ProviderName = "comfyui"

    def __init__(self, clients: ProviderClients) -> None:
        self._clients = clients

    async def generate(self, request: GenerationRequest, creds: Credentials) -> Generation:
        if request.graph is None:
            raise GraphError("a comfyui image.generate needs `graph` or `graphAsset`")
        graph = place_inputs(request.graph, request.graph_inputs)
        headers = {"Authorization": f"Bearer {creds.api_key}"} if creds.api_key else None
        base = (creds.base_url or "").rstrip("/")
        async with self._clients.client(creds, headers=headers) as http:
            prompt_id = await self._queue(http, base, graph)
            try:
                entry = await self._wait(http, base, prompt_id)
            except asyncio.CancelledError:
                await self._cancel(http, base, prompt_id)
                raise
            try:
                images = await self._images(http, base, prompt_id, entry)
            finally:
                await self._forget(http, base, prompt_id)
        return Generation(
            images=images,
            provider=self.name,
            model=request.model or _checkpoint(graph) or "comfyui graph",
            request_id=prompt_id,
        )

    async def _call(
        self, http: httpx.AsyncClient, method: str, url: str, **kwargs: Any
    ) -> httpx.Response:
        try:
            return await http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise transport_failure(exc, self.name, f"{method} {url}") from exc

    async def _queue(self, http: httpx.AsyncClient, base: str, graph: dict[str, Any]) -> str:
        client_id = uuid.uuid4().hex
        response = await self._call(
            http, "POST", f"{base}/prompt", json={"prompt": graph, "client_id": client_id}
        )
        body = _json(response)
        if response.status_code == 400 or (response.status_code < 400 and body.get("node_errors")):
            raise ProviderError(
                "provider_invalid_request",
                f"the graph was refused: {describe_refusal(body)}",
                provider=self.name,
                status_code=response.status_code,
            )
        if response.status_code >= 400:
            raise status_error(self.name, response.status_code, response.text[:300])
        prompt_id = body.get("prompt_id")
        if not isinstance(prompt_id, str):
            raise ProviderError(
                "provider_bad_output",
                "POST /prompt answered without a prompt_id",
                provider=self.name,
            )
        return prompt_id

    async def _wait(self, http: httpx.AsyncClient, base: str, prompt_id: str) -> dict[str, Any]:
        while True:
            response = await self._call(http, "GET", f"{base}/history/{prompt_id}")
            if response.status_code >= 400:
                raise status_error(self.name, response.status_code, response.text[:300])
            entry = _json(response).get(prompt_id)
            if isinstance(entry, dict):
                status = entry.get("status") or {}
                if status.get("completed") or status.get("status_str") in ("success", "error"):
                    return entry
            await asyncio.sleep(self._clients.poll_interval)

    async def _images(
        self, http: httpx.AsyncClient, base: str, prompt_id: str, entry: dict[str, Any]
    ) -> list[ImageResult]:
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            code, message = execution_failure(status.get("messages") or [])
            raise ProviderError(code, message, provider=self.name, request_id=prompt_id)
        images: list[ImageResult] = []
        for node_output in (entry.get("outputs") or {}).values():
            for image in (node_output or {}).get("images") or []:
                if image.get("type") != "output":
                    continue  # previews and temporary files are not the graph's results
                response = await self._call(
                    http,
                    "GET",
                    f"{base}/view",
                    params={
                        "filename": image.get("filename", ""),
                        "subfolder": image.get("subfolder", ""),
                        "type": "output",
                    },
                )
                if response.status_code >= 400:
                    raise status_error(self.name, response.status_code, "fetching an output")
                if len(response.content) > MAX_IMAGE_BYTES:
                    raise ProviderError(
                        "provider_bad_output", "an output image over 64 MiB", provider=self.name
                    )
                images.append(
                    await asyncio.to_thread(
                        describe, response.content, self._clients.limits, self.name
                    )
                )
        if not images:
            raise ProviderError(
                "provider_bad_output",
                f"prompt {prompt_id} finished without an output image (is there a SaveImage node?)",
                provider=self.name,
                request_id=prompt_id,
            )
        return images

    async def _cancel(self, http: httpx.AsyncClient, base: str, prompt_id: str) -> None:
        """Queued: delete it. Running: interrupt it (named, for servers that take a prompt id;
        older ones interrupt whatever runs, which is checked to be ours first)."""
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                await asyncio.shield(self._stop(http, base, prompt_id))
            log.info("comfyui prompt %s canceled", prompt_id)
        except (ProviderError, httpx.HTTPError, TimeoutError, ValueError) as exc:
            log.warning("comfyui prompt %s: cancel failed: %r", prompt_id, exc)

    async def _stop(self, http: httpx.AsyncClient, base: str, prompt_id: str) -> None:
        await http.post(f"{base}/queue", json={"delete": [prompt_id]})
        queue = (await http.get(f"{base}/queue")).json()
        running = [item[1] for item in queue.get("queue_running", []) if len(item) > 1]
        if prompt_id in running:
            await http.post(f"{base}/interrupt", json={"prompt_id": prompt_id})

    async def _forget(self, http: httpx.AsyncClient, base: str, prompt_id: str) -> None:
        try:
            await http.post(f"{base}/history", json={"delete": [prompt_id]})
        except httpx.HTTPError as exc:
            log.info("comfyui prompt %s: history not deleted: %r", prompt_id, exc)


def place_inputs(graph: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `graph` with each `<node id or title>.<input>` set to its value."""
    placed = copy.deepcopy(dict(graph))
    for key, value in inputs.items():
        node_ref, dot, input_name = key.rpartition(".")
        if not dot or not node_ref or not input_name:
            raise GraphError(f"graphInputs key {key!r} is not `<node id or title>.<input>`")
        node = placed.get(node_ref)
        if not isinstance(node, dict):
            titled = [
                n
                for n in placed.values()
                if isinstance(n, dict) and (n.get("_meta") or {}).get("title") == node_ref
            ]
            if len(titled) > 1:
                raise GraphError(
                    f"graphInputs {key!r}: {len(titled)} nodes are titled {node_ref!r}"
                )
            node = titled[0] if titled else None
        if node is None:
            raise GraphError(f"graphInputs {key!r}: no node has the id or title {node_ref!r}")
        node_inputs = node.setdefault("inputs", {})
        if not isinstance(node_inputs, dict):
            raise GraphError(f"graphInputs {key!r}: that node's inputs are not an object")
        node_inputs[input_name] = value
    return placed


def describe_refusal(body: Mapping[str, Any]) -> str:
    """ComfyUI's validation answer, in one line: the error and each failing node's errors."""
    error = body.get("error") or {}
    parts = [str(error.get("message") or "invalid prompt")]
    details = error.get("details")
    if details:
        parts[0] += f": {details}"
    for node_id, node in (body.get("node_errors") or {}).items():
        if not isinstance(node, dict):
            continue
        errors = "; ".join(
            f"{e.get('message')}" + (f" ({e.get('details')})" if e.get("details") else "")
            for e in node.get("errors") or []
            if isinstance(e, dict)
        )
        parts.append(f"node {node_id} ({node.get('class_type')}): {errors}")
    return " | ".join(parts)[:1000]


def execution_failure(messages: list[Any]) -> tuple[Any, str]:
    """What ComfyUI's history says went wrong: the failing node's error, or an interruption."""
    for message in messages:
        if not (isinstance(message, list) and len(message) == 2 and isinstance(message[1], dict)):
            continue
        kind, data = message
        if kind == "execution_error":
            return (
                "provider_failed",
                f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                f"{data.get('exception_type', 'error')}: {data.get('exception_message')}".strip(),
            )
        if kind == "execution_interrupted":
            return (
                "provider_canceled",
                f"interrupted at node {data.get('node_id')} ({data.get('node_type')})",
            )
    return "provider_failed", "the prompt ended in error without saying why"


def _checkpoint(graph: Mapping[str, Any]) -> str | None:
    for node in graph.values():
        if isinstance(node, dict) and "ckpt_name" in (node.get("inputs") or {}):
            name = node["inputs"]["ckpt_name"]
            return name if isinstance(name, str) else None
    return None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
