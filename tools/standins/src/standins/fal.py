"""A stand-in for fal's queue API (the `https://queue.fal.run` host).

Follows fal's Inference API reference and queue guide (https://fal.ai/docs/api-reference/
inference-api, https://docs.fal.ai/documentation/model-apis/inference/queue, the operation
pages "Get request result" and "Cancel a request"), the error references "Model Errors"
(https://fal.ai/docs/documentation/model-apis/errors) and "Request Error Types"
(https://docs.fal.ai/documentation/model-apis/request-errors), and the `fal-ai/flux/dev` output
schema, read 2026-11-29; and what the official client fal-client 1.0.3 (PyPI) sends and
parses (`fal_client/client.py`: `Authorization: Key <key>`, `?logs=true`, `Queued`,
`InProgress`, `Completed(logs, metrics, error, error_type)`, `FalClientHTTPError`).

- `POST /{owner}/{app}[/{path}]` (`Authorization: Key <id>:<secret>`) queues the JSON input and
  answers 200 `{status: "IN_QUEUE", request_id, gateway_request_id, response_url, status_url,
  cancel_url, logs: null, metrics: {}, queue_position}`. The three URLs use the owner and app
  only, without the endpoint path, as fal's are ("The status, result, and cancel URLs use only
  the owner and the app").
- `GET .../requests/{id}/status[?logs=1]`: `IN_QUEUE` (with `queue_position`) for
  `queue_seconds`, then `IN_PROGRESS` (with `logs`) for `processing_seconds`, then `COMPLETED`
  (with `logs` and `metrics.inference_time`); "The API returns 202 while the request is in the
  queue or in progress, and 200 when it is complete."
- `GET .../requests/{id}`: the model's own answer, status code included ("If the model
  returned an error, this operation returns the same error"). For any app: the `fal-ai/flux/dev`
  output `{images: [{url, width, height, content_type}], timings, seed, has_nsfw_concepts,
  prompt}`, `num_images` images (default 1) at `image_size` (a preset name or `{width,
  height}`, default `landscape_4_3`), JPEG or PNG per `output_format`. A prompt containing
  `FORBIDDEN` answers 422 `{"detail": [{"loc": ["body", "prompt"], "msg", "type":
  "content_policy_violation", "url", "input"}]}` with `X-Fal-Retryable: false`; a missing
  prompt or an out-of-range `num_images` answers 422 with the documented validation types.
- `PUT .../requests/{id}/cancel`: 202 `{"status": "CANCELLATION_REQUESTED"}` while queued or
  in progress (the stand-in's app stops at once: the request completes with error_type
  `client_cancelled`), 400 `{"status": "ALREADY_COMPLETED"}` once completed, 404
  `{"status": "NOT_FOUND"}` for an unknown id.
- Scripted 5xx on submit/status/cancel use the request-error shape `{detail, error_type}` plus
  `X-Fal-Error-Type`; on result, the model-error shape `{"detail": [{...}]}`.
- `expire_outputs()`: image URLs answer 404, as the CDN does once the object's lifecycle
  expiration (`X-Fal-Object-Lifecycle-Preference`) has deleted it.

Not simulated: the `workflows/` and `comfy/` namespaces, `status/stream` (SSE), webhooks
(`fal_webhook` is recorded, not called), `fal.run` (synchronous).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from standins.base import StandIn, StoredFile, base_url, iso, json_response

IMAGE_SIZES = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
DEFAULT_IMAGE_SIZE = "landscape_4_3"
CONTENT_POLICY_MSG = (
    "The content could not be processed because it contained material flagged by a content checker."
)
ERRORS_URL = "https://docs.fal.ai/errors/#{type}"
REQUEST_ERROR_TYPES = {
    500: ("internal_error", "Internal server error"),
    502: ("runner_incomplete_response", "Runner sent an incomplete response"),
    503: ("runner_scheduling_failure", "No runner could be allocated to handle the request"),
    504: ("request_timeout", "Request timed out"),
}


def model_error(
    loc: list[str], msg: str, type_: str, input_: Any, ctx: dict[str, Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "loc": loc,
        "msg": msg,
        "type": type_,
        "url": ERRORS_URL.format(type=type_),
    }
    if ctx is not None:
        error["ctx"] = ctx
    error["input"] = input_
    return error


@dataclass
class _Job:
    id: str
    app_id: str
    endpoint: str
    input: dict[str, Any]
    created: float
    created_mono: float
    queue_seconds: float
    processing_seconds: float
    canceled_mono: float | None = None
    files: list[str] = field(default_factory=list)
    webhook: str | None = None


class FalQueueStandIn(StandIn):
    """fal's queue on loopback. Routes: "submit" (alias "create"), "status", "result",
    "cancel" and "download" (`GET /files/...`, the image URLs)."""

    ROUTES = ("submit", "status", "result", "cancel", "download")
    ALIASES: ClassVar[Mapping[str, str]] = {"create": "submit"}
    TUNABLES = ("queue_seconds", "processing_seconds")

    def __init__(
        self,
        key: str = "standin-key-id:standin-key-secret",
        *,
        queue_seconds: float = 0.0,
        processing_seconds: float = 0.0,
    ) -> None:
        super().__init__()
        self.key = key
        self.queue_seconds = queue_seconds
        """How long a new request stays IN_QUEUE."""
        self.processing_seconds = processing_seconds
        """How long it then stays IN_PROGRESS."""
        self._jobs: dict[str, _Job] = {}
        self._remember_tunables()

    def _reset_state(self) -> None:
        self._jobs.clear()

    def _routes(self) -> Sequence[BaseRoute]:
        return [
            self._files_route(),
            Route("/{owner}/{app}/requests/{request_id}/status", self._status, methods=["GET"]),
            Route("/{owner}/{app}/requests/{request_id}/cancel", self._cancel, methods=["PUT"]),
            Route("/{owner}/{app}/requests/{request_id}", self._result, methods=["GET"]),
            Route("/{owner}/{app}", self._submit, methods=["POST"]),
            Route("/{owner}/{app}/{path:path}", self._submit, methods=["POST"]),
        ]

    # --- errors ----------------------------------------------------------------------------

    def _default_failure(self, route: str, status: int) -> tuple[Any, dict[str, str]]:
        if route == "download":
            return None, {}
        if status == 429:
            return {"detail": "Too many requests"}, {}
        if route == "result" and status >= 500:
            kind = "generation_timeout" if status == 504 else "internal_server_error"
            msg = "Generation timeout" if status == 504 else "Internal server error"
            return {"detail": [model_error(["body"], msg, kind, {})]}, {"x-fal-retryable": "true"}
        if status in REQUEST_ERROR_TYPES:
            error_type, detail = REQUEST_ERROR_TYPES[status]
            return {"detail": detail, "error_type": error_type}, {"x-fal-error-type": error_type}
        return {"detail": f"Scripted error {status}"}, {}

    def _refusal(self, headers: dict[str, str]) -> Response | None:
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if not auth:
            return json_response(
                {"detail": "Authentication is required to perform this action"}, 401
            )
        if scheme != "Key" or ":" not in value:
            return json_response(
                {
                    "detail": "Invalid Key Authorization header format. Expected "
                    "'<key_id>:<key_secret>'."
                },
                401,
            )
        if value.strip() != self.key:
            return json_response({"detail": "No user found for Key ID and Secret"}, 401)
        return None

    # --- endpoints -------------------------------------------------------------------------

    async def _submit(self, request: Request) -> Response:
        recorded, answer = await self._open(request, "submit")
        if answer is not None:
            return answer
        if not isinstance(recorded.json, dict):
            return json_response(
                {
                    "detail": [
                        model_error(
                            ["body"], "Input should be a valid dictionary", "dict_type", None
                        )
                    ]
                },
                422,
            )
        owner, app = request.path_params["owner"], request.path_params["app"]
        path = request.path_params.get("path")
        request_id = str(uuid.uuid4())
        job = _Job(
            id=request_id,
            app_id=f"{owner}/{app}",
            endpoint=f"{owner}/{app}/{path}" if path else f"{owner}/{app}",
            input=dict(recorded.json),
            created=time.time(),
            created_mono=time.monotonic(),
            queue_seconds=max(0.0, self.queue_seconds),
            processing_seconds=max(0.0, self.processing_seconds),
            webhook=recorded.query.get("fal_webhook"),
        )
        with self._lock:
            self._jobs[request_id] = job
            view = self._status_view(job, base_url(request), with_logs=False, submitted=True)
        return json_response(view, 200, {"x-fal-request-id": request_id})

    async def _status(self, request: Request) -> Response:
        recorded, answer = await self._open(request, "status")
        if answer is not None:
            return answer
        with_logs = recorded.query.get("logs", "").lower() in ("1", "true")
        with self._lock:
            job = self._job(request)
            if job is None:
                return json_response({"detail": "Request not found"}, 404)
            view = self._status_view(job, base_url(request), with_logs=with_logs)
        status = 200 if view["status"] == "COMPLETED" else 202
        return json_response(view, status, {"x-fal-request-id": job.id})

    async def _result(self, request: Request) -> Response:
        _, answer = await self._open(
            request,
            "result",
            scripted_headers={"x-fal-request-id": request.path_params["request_id"]},
        )
        if answer is not None:
            return answer
        root = base_url(request)
        with self._lock:
            job = self._job(request)
            if job is None:
                return json_response({"detail": "Request not found"}, 404)
            status, _, _ = self._state(job, time.monotonic())
            headers = {"x-fal-request-id": job.id}
            if status != "COMPLETED":
                return json_response({"detail": "Request is still in progress"}, 400, headers)
            if job.canceled_mono is not None:
                return json_response(
                    {
                        "detail": "Request was cancelled by the client",
                        "error_type": "client_cancelled",
                    },
                    499,
                    {**headers, "x-fal-error-type": "client_cancelled"},
                )
            errors = self._model_errors(job)
            if errors:
                return json_response(
                    {"detail": errors}, 422, {**headers, "x-fal-retryable": "false"}
                )
            return json_response(self._output(job, root), 200, headers)

    async def _cancel(self, request: Request) -> Response:
        _, answer = await self._open(request, "cancel")
        if answer is not None:
            return answer
        with self._lock:
            job = self._job(request)
            if job is None:
                return json_response({"status": "NOT_FOUND"}, 404)
            now = time.monotonic()
            if self._state(job, now)[0] == "COMPLETED":
                return json_response({"status": "ALREADY_COMPLETED"}, 400)
            job.canceled_mono = now
        return json_response({"status": "CANCELLATION_REQUESTED"}, 202)

    # --- the queue and the model -----------------------------------------------------------

    def _job(self, request: Request) -> _Job | None:
        job = self._jobs.get(request.path_params["request_id"])
        app_id = f"{request.path_params['owner']}/{request.path_params['app']}"
        return job if job is not None and job.app_id == app_id else None

    def _state(self, job: _Job, now: float) -> tuple[str, float | None, float | None]:
        """(status, started, completed) in monotonic time."""
        start = job.created_mono + job.queue_seconds
        end = start + job.processing_seconds
        if job.canceled_mono is not None and job.canceled_mono < end:
            started = start if job.canceled_mono >= start else None
            return "COMPLETED", started, job.canceled_mono
        if now < start:
            return "IN_QUEUE", None, None
        if now < end:
            return "IN_PROGRESS", start, None
        return "COMPLETED", start, end

    def _status_view(
        self, job: _Job, root: str, *, with_logs: bool, submitted: bool = False
    ) -> dict[str, Any]:
        now = time.monotonic()
        status, started, completed = (
            ("IN_QUEUE", None, None) if submitted else self._state(job, now)
        )
        base = f"{root}/{job.app_id}/requests/{job.id}"
        view: dict[str, Any] = {
            "status": status,
            "request_id": job.id,
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
            "logs": None,
            "metrics": {},
        }
        if submitted:
            view["gateway_request_id"] = job.id
        if status == "IN_QUEUE":
            view["queue_position"] = sum(
                1
                for other in self._jobs.values()
                if other.created_mono < job.created_mono
                and self._state(other, now)[0] == "IN_QUEUE"
            )
        if with_logs and started is not None:
            wall = job.created + (started - job.created_mono)
            view["logs"] = [
                {
                    "message": f"Running {job.endpoint}",
                    "level": "INFO",
                    "source": "user",
                    "timestamp": iso(wall),
                }
            ]
        if status == "COMPLETED" and completed is not None:
            if started is not None:
                view["metrics"] = {"inference_time": round(completed - started, 6)}
            if job.canceled_mono is not None:
                view["error"] = "Request was cancelled by the client"
                view["error_type"] = "client_cancelled"
            elif self._model_errors(job):
                view["error"] = self._model_errors(job)[0]["msg"]
        return view

    def _model_errors(self, job: _Job) -> list[dict[str, Any]]:
        body = job.input
        errors: list[dict[str, Any]] = []
        prompt = body.get("prompt")
        if prompt is None:
            errors.append(
                {
                    "loc": ["body", "prompt"],
                    "msg": "Field required",
                    "type": "missing",
                    "input": body,
                }
            )
        elif not isinstance(prompt, str):
            errors.append(
                model_error(
                    ["body", "prompt"], "Input should be a valid string", "string_type", prompt
                )
            )
        num = body.get("num_images", 1)
        if not isinstance(num, int) or isinstance(num, bool):
            errors.append(
                model_error(
                    ["body", "num_images"], "Input should be a valid integer", "int_type", num
                )
            )
        elif num < 1:
            errors.append(
                model_error(
                    ["body", "num_images"],
                    "Input should be greater than or equal to 1",
                    "greater_than_equal",
                    num,
                    {"ge": 1},
                )
            )
        elif num > 4:
            errors.append(
                model_error(
                    ["body", "num_images"],
                    "Input should be less than or equal to 4",
                    "less_than_equal",
                    num,
                    {"le": 4},
                )
            )
        size = body.get("image_size", DEFAULT_IMAGE_SIZE)
        if isinstance(size, str):
            if size not in IMAGE_SIZES:
                expected = list(IMAGE_SIZES)
                errors.append(
                    model_error(
                        ["body", "image_size"],
                        "Input should be " + ", ".join(f"'{s}'" for s in expected),
                        "one_of",
                        size,
                        {"expected": expected},
                    )
                )
        elif not (
            isinstance(size, dict)
            and all(
                isinstance(size.get(k), int) and 64 <= size[k] <= 4096 for k in ("width", "height")
            )
        ):
            errors.append(
                model_error(
                    ["body", "image_size"],
                    "Input should be a preset name or {width, height}",
                    "one_of",
                    size,
                )
            )
        if errors:
            return errors
        if isinstance(prompt, str) and "FORBIDDEN" in prompt:
            return [
                model_error(
                    ["body", "prompt"], CONTENT_POLICY_MSG, "content_policy_violation", prompt
                )
            ]
        return []

    def _output(self, job: _Job, root: str) -> dict[str, Any]:
        body = job.input
        size = body.get("image_size", DEFAULT_IMAGE_SIZE)
        width, height = (
            IMAGE_SIZES[size] if isinstance(size, str) else (size["width"], size["height"])
        )
        fmt = "png" if body.get("output_format") == "png" else "jpeg"
        seed = body.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            seed = int.from_bytes(hashlib.sha256(job.id.encode()).digest()[:4], "big")
        num = int(body.get("num_images", 1))
        if not job.files:
            for i in range(num):
                key = f"{job.id}/{i}.{fmt}"
                self._add_file(key, StoredFile(width, height, seed + i, fmt))
                job.files.append(key)
        return {
            "images": [
                {
                    "url": f"{root}/files/{key}",
                    "width": width,
                    "height": height,
                    "content_type": f"image/{fmt}",
                }
                for key in job.files
            ],
            "timings": {"inference": job.processing_seconds},
            "seed": seed,
            "has_nsfw_concepts": [False] * num,
            "prompt": body.get("prompt", ""),
        }
