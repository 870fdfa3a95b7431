"""A stand-in for a ComfyUI server's HTTP and WebSocket API.

Follows ComfyUI's server routes and messages as documented at
https://docs.comfy.org/development/comfyui-server/comms_routes and
https://docs.comfy.org/development/comfyui-server/comms_messages, and as implemented in
comfyanonymous/ComfyUI `server.py` and `execution.py` (`validate_prompt`, `validate_inputs`,
`PromptQueue`, `PromptExecutor.add_message` / `handle_execution_error`), read 2026-11-29. The
API-format graph is the one ComfyUI's "Save (API)" exports (see
script_examples/basic_api_example.py). ComfyUI has no authentication, rate limits or expiring
URLs.

- `POST /prompt {prompt, client_id?, extra_data?, prompt_id?, front?}` validates the graph as
  `execution.validate_prompt` does, over a table of core node classes (`NODE_CLASSES`): a node
  without `class_type` or of an unknown class answers 400 `missing_node_type`; a graph without
  an output node (SaveImage, PreviewImage) 400 `prompt_no_outputs`; missing required inputs
  (`required_input_missing`), malformed links (`bad_linked_input`), links to missing nodes
  (`exception_during_validation`, the KeyError ComfyUI hits) and links of the wrong type
  (`return_type_mismatch`) fail their outputs. When every output fails: 400 `{error: {type:
  "prompt_outputs_failed_validation", message, details, extra_info}, node_errors: {node_id:
  {errors, dependent_outputs, class_type}}}`; when some pass: 200 with those `node_errors`.
  Success: 200 `{prompt_id, number, node_errors}`.
- Execution is simulated, one prompt at a time: `processing_seconds` (default 0) spread over the
  nodes to run; every SaveImage produces `batch_size` PNGs of the graph's EmptyLatentImage
  `width` x `height` (512 x 512 x 1 without one), named `{filename_prefix}_{counter:05}_.png`;
  PreviewImage likewise, as `type: "temp"`. A node of class `fail_class_type` fails with
  `execution_error`; `POST /interrupt` stops the running prompt with `execution_interrupted`.
- `GET /history/{prompt_id}` answers `{}` until the prompt is done, then `{prompt_id: {prompt:
  [number, prompt_id, graph, extra_data, outputs_to_execute], outputs: {node_id: {images:
  [{filename, subfolder, type}]}}, status: {status_str, completed, messages: [[event, data],
  ...]}, meta}}`; `messages` holds execution_start, execution_cached and execution_success /
  execution_error / execution_interrupted, each with a millisecond `timestamp`.
- `GET /history[?max_items=]`, `POST /history {delete|clear}`, `GET /queue {queue_running,
  queue_pending}`, `POST /queue {delete|clear}`, `GET /prompt {exec_info: {queue_remaining}}`,
  `POST /interrupt [{prompt_id}]`, `GET /view?filename=&subfolder=&type=`, `GET /system_stats`.
- `/ws?clientId=`: `status` on connect and when the queue changes (to everyone), and, to the
  prompt's `client_id`, `execution_start`, `execution_cached`, `executing` (`node: null` when
  done), `progress` (KSampler steps), `executed` (output nodes), `execution_success` /
  `execution_error` / `execution_interrupted`, as JSON text frames `{type, data}`.

Not simulated: `/upload/image`, `/object_info`, binary preview frames, caching between prompts
(`execution_cached` always lists no nodes), widget value lists (`value_not_in_list`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import random
import string
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Lifespan
from starlette.websockets import WebSocket, WebSocketDisconnect

from standins import images
from standins.base import StandIn, StoredFile, json_response

INT, FLOAT, STRING, COMBO, BOOLEAN = "INT", "FLOAT", "STRING", "COMBO", "BOOLEAN"


@dataclass(frozen=True)
class NodeClass:
    required: Mapping[str, str]
    """Input name -> type: a link type ("MODEL", ...) or a widget type (INT, FLOAT, ...)."""
    returns: tuple[str, ...] = ()
    output_node: bool = False


_SAMPLER = {"seed": INT, "steps": INT, "cfg": FLOAT, "sampler_name": COMBO, "scheduler": COMBO}
NODE_CLASSES: dict[str, NodeClass] = {
    "CheckpointLoaderSimple": NodeClass({"ckpt_name": COMBO}, ("MODEL", "CLIP", "VAE")),
    "VAELoader": NodeClass({"vae_name": COMBO}, ("VAE",)),
    "LoraLoader": NodeClass(
        {
            "model": "MODEL",
            "clip": "CLIP",
            "lora_name": COMBO,
            "strength_model": FLOAT,
            "strength_clip": FLOAT,
        },
        ("MODEL", "CLIP"),
    ),
    "CLIPSetLastLayer": NodeClass({"clip": "CLIP", "stop_at_clip_layer": INT}, ("CLIP",)),
    "CLIPTextEncode": NodeClass({"text": STRING, "clip": "CLIP"}, ("CONDITIONING",)),
    "ConditioningCombine": NodeClass(
        {"conditioning_1": "CONDITIONING", "conditioning_2": "CONDITIONING"}, ("CONDITIONING",)
    ),
    "EmptyLatentImage": NodeClass({"width": INT, "height": INT, "batch_size": INT}, ("LATENT",)),
    "KSampler": NodeClass(
        {
            "model": "MODEL",
            **_SAMPLER,
            "positive": "CONDITIONING",
            "negative": "CONDITIONING",
            "latent_image": "LATENT",
            "denoise": FLOAT,
        },
        ("LATENT",),
    ),
    "KSamplerAdvanced": NodeClass(
        {
            "model": "MODEL",
            "add_noise": COMBO,
            "noise_seed": INT,
            "steps": INT,
            "cfg": FLOAT,
            "sampler_name": COMBO,
            "scheduler": COMBO,
            "positive": "CONDITIONING",
            "negative": "CONDITIONING",
            "latent_image": "LATENT",
            "start_at_step": INT,
            "end_at_step": INT,
            "return_with_leftover_noise": COMBO,
        },
        ("LATENT",),
    ),
    "LatentUpscale": NodeClass(
        {"samples": "LATENT", "upscale_method": COMBO, "width": INT, "height": INT, "crop": COMBO},
        ("LATENT",),
    ),
    "VAEDecode": NodeClass({"samples": "LATENT", "vae": "VAE"}, ("IMAGE",)),
    "VAEEncode": NodeClass({"pixels": "IMAGE", "vae": "VAE"}, ("LATENT",)),
    "LoadImage": NodeClass({"image": COMBO}, ("IMAGE", "MASK")),
    "ImageScale": NodeClass(
        {"image": "IMAGE", "upscale_method": COMBO, "width": INT, "height": INT, "crop": COMBO},
        ("IMAGE",),
    ),
    "SaveImage": NodeClass({"images": "IMAGE", "filename_prefix": STRING}, (), True),
    "PreviewImage": NodeClass({"images": "IMAGE"}, (), True),
}
_WIDGETS = {INT: int, FLOAT: float, STRING: str, BOOLEAN: bool}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _node_error(type_: str, message: str, details: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra}


def _error_body(error: dict[str, Any], node_errors: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": error, "node_errors": node_errors or {}}


@dataclass
class _Item:
    number: int
    prompt_id: str
    graph: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    generation: int

    def as_tuple(self) -> list[Any]:
        return [self.number, self.prompt_id, self.graph, self.extra_data, self.outputs]


@dataclass
class _Run:
    item: _Item
    interrupted: bool = False
    messages: list[list[Any]] = field(default_factory=list)


class ComfyUIStandIn(StandIn):
    """A ComfyUI server on loopback. Routes: "prompt", "history", "view" (alias "download"),
    "queue", "interrupt", "system_stats" and "ws"."""

    ROUTES = ("prompt", "history", "view", "queue", "interrupt", "system_stats", "ws")
    ALIASES: ClassVar[Mapping[str, str]] = {"download": "view", "create": "prompt"}
    TUNABLES = ("processing_seconds", "fail_class_type")

    def __init__(
        self,
        *,
        processing_seconds: float = 0.0,
        fail_class_type: str | None = None,
        node_classes: Mapping[str, NodeClass] | None = None,
    ) -> None:
        super().__init__()
        self.processing_seconds = processing_seconds
        """Simulated execution time of a prompt, spread over its nodes."""
        self.fail_class_type = fail_class_type
        """A node class (e.g. "KSampler") whose nodes fail with `execution_error`."""
        self.node_classes: dict[str, NodeClass] = dict(node_classes or NODE_CLASSES)
        self._number = 0
        self._generation = 0
        self._pending: list[_Item] = []
        self._running: _Run | None = None
        self._history: dict[str, dict[str, Any]] = {}
        self._submitted: list[dict[str, Any]] = []
        self._counters: dict[tuple[str, str], int] = {}
        self._sockets: dict[str, set[WebSocket]] = {}
        self._worker: asyncio.Task[None] | None = None
        self._remember_tunables()

    # --- for tests -------------------------------------------------------------------------

    @property
    def prompts(self) -> list[dict[str, Any]]:
        """Every accepted `POST /prompt`: {prompt_id, number, prompt (the graph), client_id,
        extra_data}, in order."""
        with self._lock:
            return [dict(p) for p in self._submitted]

    def graph(self, prompt_id: str) -> dict[str, Any]:
        """The API-format graph received for `prompt_id`."""
        with self._lock:
            for submitted in self._submitted:
                if submitted["prompt_id"] == prompt_id:
                    graph: dict[str, Any] = submitted["prompt"]
                    return graph
        raise KeyError(prompt_id)

    def _reset_state(self) -> None:
        self._generation += 1
        self._pending.clear()
        if self._running is not None:
            self._running.interrupted = True
        self._history.clear()
        self._submitted.clear()
        self._counters.clear()

    # --- the app ---------------------------------------------------------------------------

    def _routes(self) -> Sequence[BaseRoute]:
        return [
            Route("/prompt", self._post_prompt, methods=["POST"]),
            Route("/prompt", self._get_prompt, methods=["GET"]),
            Route("/history", self._get_history, methods=["GET"]),
            Route("/history", self._post_history, methods=["POST"]),
            Route("/history/{prompt_id}", self._get_history, methods=["GET"]),
            Route("/queue", self._get_queue, methods=["GET"]),
            Route("/queue", self._post_queue, methods=["POST"]),
            Route("/interrupt", self._interrupt, methods=["POST"]),
            Route("/view", self._view, methods=["GET", "HEAD"]),
            Route("/system_stats", self._system_stats, methods=["GET"]),
            WebSocketRoute("/ws", self._websocket),
        ]

    def _lifespan(self) -> Lifespan[Starlette] | None:
        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            self._ensure_worker()
            try:
                yield
            finally:
                worker, self._worker = self._worker, None
                if worker is not None:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker

        return lifespan

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    def _default_failure(self, route: str, status: int) -> tuple[Any, dict[str, str]]:
        if status >= 500:
            return "500 Internal Server Error\n\nServer got itself in trouble", {}
        if route in ("view", "queue", "interrupt", "history"):
            return None, {}
        return _error_body(_node_error("scripted", f"Scripted error {status}", "", {})), {}

    # --- validation ------------------------------------------------------------------------

    def _validate(
        self, graph: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, list[str], dict[str, Any]]:
        """(error, good outputs, node_errors), as execution.validate_prompt returns them."""
        outputs: list[str] = []
        for node_id, node in graph.items():
            title = node.get("_meta", {}).get("title") if isinstance(node, dict) else None
            if not isinstance(node, dict) or "class_type" not in node:
                return (
                    _node_error(
                        "missing_node_type",
                        f"Node '{title or f'ID #{node_id}'}' has no class_type. The workflow may "
                        "be corrupted or a custom node is missing.",
                        f"Node ID '#{node_id}'",
                        {"node_id": node_id, "class_type": None, "node_title": title},
                    ),
                    [],
                    {},
                )
            class_type = node["class_type"]
            node_class = self.node_classes.get(class_type)
            if node_class is None:
                title = title or class_type
                return (
                    _node_error(
                        "missing_node_type",
                        f"Node '{title}' not found. The custom node may not be installed.",
                        f"Node ID '#{node_id}'",
                        {"node_id": node_id, "class_type": class_type, "node_title": title},
                    ),
                    [],
                    {},
                )
            if node_class.output_node:
                outputs.append(node_id)
        if not outputs:
            return _node_error("prompt_no_outputs", "Prompt has no outputs", "", {}), [], {}

        validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
        node_errors: dict[str, Any] = {}
        failures: list[tuple[str, list[dict[str, Any]]]] = []
        good: list[str] = []
        for output in outputs:
            try:
                valid, reasons = self._validate_inputs(graph, output, validated)
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                valid = False
                reasons = [
                    _node_error(
                        "exception_during_validation",
                        "Exception when validating node",
                        str(exc),
                        {
                            "exception_type": type(exc).__name__,
                            "traceback": [
                                '  File "execution.py", line 1, in validate_inputs\n'
                                "    o_class_type = prompt[o_id]['class_type']\n"
                            ],
                        },
                    )
                ]
                validated[output] = (False, reasons)
            if valid:
                good.append(output)
                continue
            failures.append((output, reasons))
            for node_id, (ok, node_reasons) in validated.items():
                if ok or not node_reasons:
                    continue
                if node_id not in node_errors:
                    node_errors[node_id] = {
                        "errors": node_reasons,
                        "dependent_outputs": [],
                        "class_type": graph[node_id]["class_type"],
                    }
                node_errors[node_id]["dependent_outputs"].append(output)
        if not good:
            details = "\n".join(
                f"{reason['message']}: {reason['details']}" for _, rs in failures for reason in rs
            )
            error = _node_error(
                "prompt_outputs_failed_validation", "Prompt outputs failed validation", details, {}
            )
            return error, [], node_errors
        return None, good, node_errors

    def _validate_inputs(
        self,
        graph: dict[str, Any],
        node_id: str,
        validated: dict[str, tuple[bool, list[dict[str, Any]]]],
    ) -> tuple[bool, list[dict[str, Any]]]:
        if node_id in validated:
            return validated[node_id]
        node = graph[node_id]
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            inputs = {}
        node_class = self.node_classes[node["class_type"]]
        errors: list[dict[str, Any]] = []
        valid = True
        for name, input_type in node_class.required.items():
            if name not in inputs:
                errors.append(
                    _node_error(
                        "required_input_missing",
                        "Required input is missing",
                        name,
                        {"input_name": name},
                    )
                )
                continue
            value = inputs[name]
            config = [input_type, {}]
            if isinstance(value, list):
                if len(value) != 2:
                    errors.append(
                        _node_error(
                            "bad_linked_input",
                            "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                            name,
                            {"input_name": name, "input_config": config, "received_value": value},
                        )
                    )
                    continue
                source_id = str(value[0])
                source = graph[source_id]  # KeyError for a missing node, as in ComfyUI
                returns = self.node_classes[source["class_type"]].returns
                received = returns[int(value[1])]
                if received != input_type:
                    errors.append(
                        _node_error(
                            "return_type_mismatch",
                            "Return type mismatch between linked nodes",
                            f"{name}, {received} != {input_type}",
                            {
                                "input_name": name,
                                "input_config": config,
                                "received_type": received,
                                "linked_node": value,
                            },
                        )
                    )
                    continue
                upstream_ok, _ = self._validate_inputs(graph, source_id, validated)
                if not upstream_ok:
                    valid = False
                continue
            convert = _WIDGETS.get(input_type)
            if convert is not None:
                try:
                    convert(value)
                except (TypeError, ValueError) as exc:
                    errors.append(
                        _node_error(
                            "invalid_input_type",
                            f"Failed to convert an input value to a {input_type} value",
                            f"{name}, {value}, {exc}",
                            {
                                "input_name": name,
                                "input_config": config,
                                "received_value": value,
                                "exception_message": str(exc),
                            },
                        )
                    )
        result = (not errors and valid, errors)
        validated[node_id] = result
        return result

    # --- routes ----------------------------------------------------------------------------

    async def _post_prompt(self, request: Request) -> Response:
        recorded, answer = await self._open(request, "prompt")
        if answer is not None:
            return answer
        body = recorded.json if isinstance(recorded.json, dict) else {}
        graph = body.get("prompt")
        if not isinstance(graph, dict):
            no_prompt = _node_error("no_prompt", "No prompt provided", "No prompt provided", {})
            return json_response(_error_body(no_prompt), 400)
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        error, good, node_errors = self._validate(graph)
        if error is not None:
            return json_response(_error_body(error, node_errors), 400)
        extra_data = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        with self._lock:
            number = self._number
            self._number += 1
            if body.get("front"):
                number = -number
            item = _Item(number, prompt_id, graph, extra_data, good, self._generation)
            self._pending.append(item)
            self._pending.sort(key=lambda i: i.number)
            self._submitted.append(
                {
                    "prompt_id": prompt_id,
                    "number": number,
                    "prompt": graph,
                    "client_id": body.get("client_id"),
                    "extra_data": extra_data,
                }
            )
        self._ensure_worker()
        await self._broadcast_status()
        return json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def _get_prompt(self, request: Request) -> Response:
        await self._receive(request, "prompt")
        return json_response({"exec_info": {"queue_remaining": self._remaining()}})

    async def _get_history(self, request: Request) -> Response:
        recorded, answer = await self._open(request, "history")
        if answer is not None:
            return answer
        prompt_id = request.path_params.get("prompt_id")
        with self._lock:
            if prompt_id is not None:
                entry = self._history.get(prompt_id)
                return json_response({prompt_id: entry} if entry is not None else {})
            entries = list(self._history.items())
        max_items = recorded.query.get("max_items")
        if max_items is not None and max_items.isdigit():
            entries = entries[-int(max_items) :] if int(max_items) else []
        return json_response(dict(entries))

    async def _post_history(self, request: Request) -> Response:
        recorded, answer = await self._open(request, "history")
        if answer is not None:
            return answer
        body = recorded.json if isinstance(recorded.json, dict) else {}
        with self._lock:
            if body.get("clear"):
                self._history.clear()
            for prompt_id in body.get("delete") or []:
                self._history.pop(str(prompt_id), None)
        return Response(status_code=200)

    async def _get_queue(self, request: Request) -> Response:
        _, answer = await self._open(request, "queue")
        if answer is not None:
            return answer
        with self._lock:
            running = [self._running.item.as_tuple()] if self._running else []
            pending = [item.as_tuple() for item in self._pending]
        return json_response({"queue_running": running, "queue_pending": pending})

    async def _post_queue(self, request: Request) -> Response:
        recorded, answer = await self._open(request, "queue")
        if answer is not None:
            return answer
        body = recorded.json if isinstance(recorded.json, dict) else {}
        with self._lock:
            if body.get("clear"):
                self._pending.clear()
            doomed = {str(p) for p in body.get("delete") or []}
            self._pending = [item for item in self._pending if item.prompt_id not in doomed]
        await self._broadcast_status()
        return Response(status_code=200)

    async def _interrupt(self, request: Request) -> Response:
        recorded, answer = await self._open(request, "interrupt")
        if answer is not None:
            return answer
        target = recorded.json.get("prompt_id") if isinstance(recorded.json, dict) else None
        with self._lock:
            run = self._running
            if run is not None and (target is None or target == run.item.prompt_id):
                run.interrupted = True
        return Response(status_code=200)

    async def _view(self, request: Request) -> Response:
        recorded, answer = await self._open(request, "view")
        if answer is not None:
            return answer
        filename = recorded.query.get("filename", "")
        subfolder = recorded.query.get("subfolder", "")
        kind = recorded.query.get("type", "output")
        if kind not in ("output", "input", "temp") or not filename or ".." in filename + subfolder:
            return Response(status_code=400)
        with self._lock:
            stored = self._files.get(f"{kind}/{subfolder}/{filename}")
            expired = stored.expired if stored else False
        if stored is None or expired:
            return Response(status_code=404)
        data = await run_in_threadpool(
            images.render, stored.width, stored.height, stored.seed, "png"
        )
        return Response(
            data,
            media_type="image/png",
            headers={"content-disposition": f'filename="{filename}"'},
        )

    async def _system_stats(self, request: Request) -> Response:
        _, answer = await self._open(request, "system_stats")
        if answer is not None:
            return answer
        return json_response(
            {
                "system": {
                    "os": "posix",
                    "ram_total": 8 * 1024**3,
                    "ram_free": 4 * 1024**3,
                    "comfyui_version": "stand-in",
                    "python_version": platform.python_version(),
                    "pytorch_version": "none",
                    "embedded_python": False,
                    "argv": ["main.py"],
                },
                "devices": [
                    {
                        "name": "cpu",
                        "type": "cpu",
                        "index": None,
                        "vram_total": 0,
                        "vram_free": 0,
                        "torch_vram_total": 0,
                        "torch_vram_free": 0,
                    }
                ],
            }
        )

    async def _websocket(self, websocket: WebSocket) -> None:
        self._record_connection(websocket, "ws")
        if self._take_scripted("ws") is not None:
            await websocket.close(code=1008)
            return
        sid = websocket.query_params.get("clientId") or uuid.uuid4().hex
        await websocket.accept()
        with self._lock:
            self._sockets.setdefault(sid, set()).add(websocket)
        try:
            await websocket.send_text(json.dumps(self._status_message(sid)))
            while True:
                await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            with self._lock:
                self._sockets.get(sid, set()).discard(websocket)

    # --- the executor ----------------------------------------------------------------------

    def _remaining(self) -> int:
        with self._lock:
            return len(self._pending) + (1 if self._running else 0)

    def _status_message(self, sid: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": self._remaining()}}}
        if sid is not None:
            data["sid"] = sid
        return {"type": "status", "data": data}

    async def _send(self, client_id: str | None, event: str, data: dict[str, Any]) -> None:
        if client_id is None:
            return
        with self._lock:
            sockets = list(self._sockets.get(client_id, ()))
        text = json.dumps({"type": event, "data": data})
        for socket in sockets:
            with contextlib.suppress(Exception):
                await socket.send_text(text)

    async def _broadcast_status(self) -> None:
        text = json.dumps(self._status_message())
        with self._lock:
            sockets = [s for group in self._sockets.values() for s in group]
        for socket in sockets:
            with contextlib.suppress(Exception):
                await socket.send_text(text)

    async def _work(self) -> None:
        while True:
            with self._lock:
                item = self._pending.pop(0) if self._pending else None
                if item is not None:
                    self._running = _Run(item)
            if item is None:
                await asyncio.sleep(0.005)
                continue
            try:
                await self._broadcast_status()
                await self._execute(item)
            finally:
                with self._lock:
                    self._running = None
                await self._broadcast_status()

    def _order(self, graph: dict[str, Any], outputs: list[str]) -> list[str]:
        order: list[str] = []

        def visit(node_id: str) -> None:
            if node_id in order:
                return
            for value in (graph[node_id].get("inputs") or {}).values():
                if isinstance(value, list) and len(value) == 2 and str(value[0]) in graph:
                    visit(str(value[0]))
            order.append(node_id)

        for output in outputs:
            visit(output)
        return order

    def _latent(self, graph: dict[str, Any]) -> tuple[int, int, int]:
        for node_id in sorted(graph, key=lambda k: (len(k), k)):
            node = graph[node_id]
            if node.get("class_type") != "EmptyLatentImage":
                continue
            inputs = node.get("inputs") or {}
            try:
                return (
                    int(inputs["width"]),
                    int(inputs["height"]),
                    max(1, int(inputs["batch_size"])),
                )
            except (KeyError, TypeError, ValueError):
                continue
        return 512, 512, 1

    def _seed(self, graph: dict[str, Any]) -> int:
        for node in graph.values():
            inputs = node.get("inputs") or {}
            for key in ("seed", "noise_seed"):
                if isinstance(inputs.get(key), int):
                    seed: int = inputs[key]
                    return seed
        return 0

    async def _pause(self, run: _Run, seconds: float) -> bool:
        """Sleep `seconds`; False when the run was interrupted meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                if run.interrupted:
                    return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            await asyncio.sleep(min(0.005, left))

    def _message(self, run: _Run, event: str, data: dict[str, Any]) -> dict[str, Any]:
        data = {**data, "timestamp": _now_ms()}
        run.messages.append([event, data])
        return data

    async def _execute(self, item: _Item) -> None:
        run = self._running
        assert run is not None
        assert run.item is item
        client_id = item.extra_data.get("client_id")
        graph = item.graph
        pid = item.prompt_id
        await self._send(
            client_id, "execution_start", self._message(run, "execution_start", {"prompt_id": pid})
        )
        await self._send(
            client_id,
            "execution_cached",
            self._message(run, "execution_cached", {"nodes": [], "prompt_id": pid}),
        )
        order = self._order(graph, item.outputs)
        per_node = max(0.0, self.processing_seconds) / max(1, len(order))
        width, height, batch = self._latent(graph)
        seed = self._seed(graph)
        outputs: dict[str, Any] = {}
        executed: list[str] = []
        failed: dict[str, Any] | None = None
        interrupted_at: str | None = None
        for node_id in order:
            node = graph[node_id]
            class_type = node["class_type"]
            await self._send(
                client_id,
                "executing",
                {"node": node_id, "display_node": node_id, "prompt_id": pid},
            )
            if class_type in ("KSampler", "KSamplerAdvanced"):
                steps = max(1, min(int((node.get("inputs") or {}).get("steps", 1) or 1), 1000))
                ticks = min(steps, 10)
                for tick in range(1, ticks + 1):
                    if not await self._pause(run, per_node / ticks):
                        interrupted_at = node_id
                        break
                    await self._send(
                        client_id,
                        "progress",
                        {
                            "value": tick * steps // ticks,
                            "max": steps,
                            "prompt_id": pid,
                            "node": node_id,
                        },
                    )
            elif not await self._pause(run, per_node):
                interrupted_at = node_id
            if interrupted_at is not None:
                break
            if class_type == self.fail_class_type:
                failed = {
                    "prompt_id": pid,
                    "node_id": node_id,
                    "node_type": class_type,
                    "executed": list(executed),
                    "exception_message": f"Simulated failure of {class_type} (stand-in)",
                    "exception_type": "RuntimeError",
                    "traceback": [
                        '  File "execution.py", line 1, in execute\n'
                        "    output_data, output_ui, has_subgraph = await get_output_data(...)\n"
                    ],
                    "current_inputs": {},
                    "current_outputs": [],
                }
                break
            node_class = self.node_classes.get(class_type)
            if node_class is not None and node_class.output_node:
                ui = {"images": self._save(node, class_type, width, height, batch, seed)}
                outputs[node_id] = ui
                await self._send(
                    client_id,
                    "executed",
                    {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": pid},
                )
            executed.append(node_id)

        if interrupted_at is not None:
            data = self._message(
                run,
                "execution_interrupted",
                {
                    "prompt_id": pid,
                    "node_id": interrupted_at,
                    "node_type": graph[interrupted_at]["class_type"],
                    "executed": executed,
                },
            )
            await self._send(client_id, "execution_interrupted", data)
        elif failed is not None:
            await self._send(
                client_id, "execution_error", self._message(run, "execution_error", failed)
            )
        else:
            await self._send(client_id, "executing", {"node": None, "prompt_id": pid})
            data = self._message(run, "execution_success", {"prompt_id": pid})
            await self._send(client_id, "execution_success", data)
        success = interrupted_at is None and failed is None
        entry = {
            "prompt": item.as_tuple(),
            "outputs": outputs,
            "status": {
                "status_str": "success" if success else "error",
                "completed": success,
                "messages": run.messages,
            },
            "meta": {
                node_id: {
                    "node_id": node_id,
                    "display_node": node_id,
                    "parent_node": None,
                    "real_node_id": node_id,
                }
                for node_id in outputs
            },
        }
        with self._lock:
            if item.generation == self._generation:
                self._history[pid] = entry

    def _save(
        self, node: dict[str, Any], class_type: str, width: int, height: int, batch: int, seed: int
    ) -> list[dict[str, str]]:
        if class_type == "PreviewImage":
            kind = "temp"
            suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
            prefix = f"ComfyUI_temp_{suffix}"
        else:
            kind = "output"
            prefix = str((node.get("inputs") or {}).get("filename_prefix") or "ComfyUI")
        subfolder, _, name = prefix.replace("\\", "/").rpartition("/")
        saved: list[dict[str, str]] = []
        with self._lock:
            for index in range(batch):
                counter = self._counters.get((subfolder, name), 0) + 1
                self._counters[(subfolder, name)] = counter
                filename = f"{name}_{counter:05}_.png"
                self._files[f"{kind}/{subfolder}/{filename}"] = StoredFile(
                    width, height, seed + index, "png"
                )
                saved.append({"filename": filename, "subfolder": subfolder, "type": kind})
        return saved
