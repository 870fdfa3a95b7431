"""A stand-in for Replicate's predictions API.

Follows Replicate's HTTP API reference (https://replicate.com/docs/reference/http:
`predictions.create`, `models.predictions.create`, `predictions.get`, `predictions.cancel`),
the topic pages "Create a prediction" (sync mode, `Prefer: wait`), "Rate limits" and the
2025-10-16 changelog "Set deadlines for predictions" (`Cancel-After`), read 2026-11-29, and
what the official client replicate 1.0.7 (PyPI) expects (`replicate/prediction.py`,
`client.py`: `Authorization: Bearer`, `RetryTransport` honouring `Retry-After` on GETs,
`ReplicateError.from_response` reading RFC 7807 problem details).

- `POST /v1/models/{owner}/{name}/predictions` and `POST /v1/predictions` (`version` as
  "<hash>", "owner/name" or "owner/name:<hash>") answer 201 with the prediction object
  `{id, model, version, input, output, logs, error, status, source, created_at, started_at,
  completed_at, data_removed, metrics, urls: {get, cancel, stream, web}}`, URLs on this server.
- `Prefer: wait` / `Prefer: wait=N` (1-60, default 60) holds the request until the prediction
  is terminal or N seconds pass. On timeout the object comes back "starting", as the API
  reference says ("If this time is exceeded the prediction will be returned in a "starting"
  state and need to be retrieved using the predictions.get endpoint"); `GET` then shows the
  real state. Without `Prefer`, create answers the new prediction, "starting".
- A prediction is "starting" for `starting_seconds`, "processing" for `processing_seconds`
  (both default 0), then "succeeded" with `output` a list of `num_outputs` (default 1) image
  URLs on `/files/...`, or "failed" when the prompt contains `FORBIDDEN`, with the error text
  Replicate's diffusion models raise for NSFW output. `POST .../cancel` answers 200 with the
  prediction, "canceled" unless it had already finished. `Cancel-After: <duration>` (Go
  syntax: "30s", "1m", "1h30m", "500ms") cancels at the deadline: "aborted" if it had not
  started, "canceled" if it was running (changelog 2025-10-16).
- Invalid input answers 422 `{"detail", "status", "title": "Input validation failed",
  "invalid_fields": [{"type", "field", "description"}]}`, the shape the live API returns;
  a missing or wrong token 401 `{"title": "Unauthenticated", "detail": "You did not pass a
  valid authentication token", "status": 401}`; `Authorization: Bearer <token>` and the
  older `Token <token>` are both accepted.
- Scripted 429s default to the documented body `{"detail": "Request was throttled. Your rate
  limit resets in ~1s.", "status": 429}` with `Retry-After: 1` (the docs show "~30s"; the
  message and header are DRF's throttling response, which sets `Retry-After` to the same wait).
- `expire_outputs()`: output URLs answer 404 (files deleted from replicate.delivery) and each
  prediction shows `data_removed: true`, `output: null`, `input: {}`, as API predictions do
  an hour after completing ("Inputs and outputs ... are deleted after an hour").

Not simulated: deployments, `GET /v1/predictions` (list), webhooks (recorded, not sent), the
`stream` URL (listed, not served).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from standins.base import StandIn, StoredFile, base_url, iso, json_response

NSFW_ERROR = "NSFW content detected. Try running it again, or try a different prompt."
UNAUTHENTICATED = {
    "title": "Unauthenticated",
    "detail": "You did not pass a valid authentication token",
    "status": 401,
}
MAX_WAIT_SECONDS = 60
TERMINAL = ("succeeded", "failed", "canceled", "aborted")
ASPECT_RATIOS = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "3:4": (896, 1152),
    "4:3": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
OUTPUT_FORMATS = ("png", "jpg", "webp")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration ("1h30m", "45s", "500ms"); None when it is not one."""
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            return None
        value, unit = float(match.group(1)), match.group(2)
        total += value * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
        pos = match.end()
    return total if pos == len(text) else None


def parse_prefer_wait(header: str | None) -> float | None:
    """Seconds to hold a create request for `Prefer: wait` / `wait=N`; None without it."""
    if not header:
        return None
    for part in header.split(","):
        token = part.strip()
        if token == "wait":
            return float(MAX_WAIT_SECONDS)
        if token.startswith("wait="):
            try:
                value = float(token.removeprefix("wait="))
            except ValueError:
                return float(MAX_WAIT_SECONDS)
            return max(1.0, min(value, float(MAX_WAIT_SECONDS)))
    return None


def _new_id() -> str:
    return base64.b32encode(secrets.token_bytes(16)).decode().lower().rstrip("=")[:26]


@dataclass
class _Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    created: float
    created_mono: float
    starting_seconds: float
    processing_seconds: float
    num_outputs: int
    width: int
    height: int
    fmt: str
    seed: int
    forbidden: bool
    deadline_mono: float | None = None
    canceled_mono: float | None = None
    files: list[str] = field(default_factory=list)
    data_removed: bool = False
    webhook: str | None = None


@dataclass(frozen=True)
class _State:
    status: str
    started_mono: float | None
    completed_mono: float | None


class ReplicateStandIn(StandIn):
    """Replicate's predictions API on loopback. Routes: "create" (both create endpoints),
    "status" (`GET /v1/predictions/{id}`), "cancel" and "download" (`GET /files/...`)."""

    ROUTES = ("create", "status", "cancel", "download")
    ALIASES: ClassVar[Mapping[str, str]] = {"get": "status"}
    TUNABLES = ("processing_seconds", "starting_seconds")

    def __init__(
        self,
        api_token: str = "r8_standin_token",
        *,
        processing_seconds: float = 0.0,
        starting_seconds: float = 0.0,
    ) -> None:
        super().__init__()
        self.api_token = api_token
        self.processing_seconds = processing_seconds
        """How long a new prediction stays "processing"."""
        self.starting_seconds = starting_seconds
        """How long a new prediction stays "starting" (a cold boot) before processing."""
        self._predictions: dict[str, _Prediction] = {}
        self._remember_tunables()

    def _reset_state(self) -> None:
        self._predictions.clear()

    def _routes(self) -> Sequence[BaseRoute]:
        return [
            Route("/v1/predictions", self._create, methods=["POST"]),
            Route("/v1/models/{owner}/{name}/predictions", self._create, methods=["POST"]),
            Route("/v1/predictions/{id}", self._get, methods=["GET"]),
            Route("/v1/predictions/{id}/cancel", self._cancel, methods=["POST"]),
            self._files_route(),
        ]

    # --- for tests -------------------------------------------------------------------------

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        """The prediction as `GET /v1/predictions/{id}` would show it (URLs relative)."""
        with self._lock:
            return self._render(self._predictions[prediction_id], "")

    def expire_outputs(self) -> None:
        with self._lock:
            super().expire_outputs()
            now = time.monotonic()
            for prediction in self._predictions.values():
                if self._state(prediction, now).status in TERMINAL:
                    prediction.data_removed = True

    # --- errors ----------------------------------------------------------------------------

    def _default_failure(self, route: str, status: int) -> tuple[Any, dict[str, str]]:
        if route == "download":
            return None, {}
        if status == 429:
            body = {
                "detail": "Request was throttled. Your rate limit resets in ~1s.",
                "status": 429,
            }
            return body, {"retry-after": "1"}
        if status == 401:
            return dict(UNAUTHENTICATED), {}
        titles = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        title = titles.get(status, "Error")
        return {"title": title, "detail": f"{title}.", "status": status}, {}

    def _refusal(self, headers: dict[str, str]) -> Response | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "token") and token.strip() == self.api_token:
            return None
        return json_response(UNAUTHENTICATED, 401)

    # --- endpoints -------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        recorded, answer = await self._open(request, "create")
        if answer is not None:
            return answer
        body = recorded.json
        if not isinstance(body, dict):
            return json_response(
                {
                    "title": "Invalid JSON",
                    "detail": "The request body is not a JSON object.",
                    "status": 400,
                },
                400,
            )
        owner = request.path_params.get("owner")
        name = request.path_params.get("name")
        invalid: list[dict[str, str]] = []
        if owner is not None:
            model = f"{owner}/{name}"
            version = "hidden"
        else:
            raw_version = body.get("version")
            if not isinstance(raw_version, str) or not raw_version:
                invalid.append(
                    {"type": "required", "field": "", "description": "version is required"}
                )
                model, version = "", ""
            else:
                model, version = self._resolve_version(raw_version)
        model_input = body.get("input")
        if not isinstance(model_input, dict):
            invalid.append({"type": "required", "field": "", "description": "input is required"})
            model_input = {}
        else:
            invalid += self._validate_input(model_input)
        if invalid:
            lines = "".join(
                f"- {f['field']}: {f['description']}\n" if f["field"] else f"- {f['description']}\n"
                for f in invalid
            )
            return json_response(
                {
                    "detail": lines,
                    "status": 422,
                    "title": "Input validation failed",
                    "invalid_fields": invalid,
                },
                422,
            )

        prediction = self._new_prediction(model, version, model_input, recorded.headers)
        webhook = body.get("webhook")
        prediction.webhook = webhook if isinstance(webhook, str) else None
        with self._lock:
            self._predictions[prediction.id] = prediction
        root = base_url(request)

        wait = parse_prefer_wait(recorded.headers.get("prefer"))
        if wait is None:
            return json_response(self._starting_view(prediction, root), 201)
        deadline = time.monotonic() + wait
        while True:
            now = time.monotonic()
            with self._lock:
                state = self._state(prediction, now)
                if state.status in TERMINAL:
                    return json_response(self._render(prediction, root), 201)
            if now >= deadline:
                return json_response(self._starting_view(prediction, root), 201)
            await asyncio.sleep(min(0.02, deadline - now))

    async def _get(self, request: Request) -> Response:
        return await self._prediction_endpoint(request, "status")

    async def _cancel(self, request: Request) -> Response:
        return await self._prediction_endpoint(request, "cancel")

    async def _prediction_endpoint(self, request: Request, route: str) -> Response:
        """`GET /v1/predictions/{id}` ("status") and `POST .../cancel` ("cancel"): the
        prediction as it is now, which a cancel first marks canceled unless it had finished;
        404 for an unknown id."""
        _, answer = await self._open(request, route)
        if answer is not None:
            return answer
        with self._lock:
            prediction = self._predictions.get(request.path_params["id"])
            if prediction is None:
                return json_response({"detail": "Not found.", "status": 404}, 404)
            if route == "cancel":
                now = time.monotonic()
                if self._state(prediction, now).status not in TERMINAL:
                    prediction.canceled_mono = now
            return json_response(self._render(prediction, base_url(request)))

    # --- the model -------------------------------------------------------------------------

    def _resolve_version(self, raw: str) -> tuple[str, str]:
        if ":" in raw:
            model, _, version = raw.partition(":")
            return model, version
        if "/" in raw:
            return raw, hashlib.sha256(raw.encode()).hexdigest()
        return "replicate/stand-in", raw

    def _validate_input(self, model_input: dict[str, Any]) -> list[dict[str, str]]:
        invalid: list[dict[str, str]] = []
        prompt = model_input.get("prompt")
        if prompt is None:
            invalid.append(
                {"type": "required", "field": "input", "description": "prompt is required"}
            )
        elif not isinstance(prompt, str):
            invalid.append(
                {
                    "type": "invalid_type",
                    "field": "input.prompt",
                    "description": "Invalid type. Expected: string, given: "
                    + type(prompt).__name__,
                }
            )
        num = model_input.get("num_outputs", 1)
        if not isinstance(num, int) or isinstance(num, bool):
            invalid.append(
                {
                    "type": "invalid_type",
                    "field": "input.num_outputs",
                    "description": "Invalid type. Expected: integer",
                }
            )
        elif num < 1:
            invalid.append(
                {
                    "type": "number_gte",
                    "field": "input.num_outputs",
                    "description": "Must be greater than or equal to 1",
                }
            )
        elif num > 4:
            invalid.append(
                {
                    "type": "number_lte",
                    "field": "input.num_outputs",
                    "description": "Must be less than or equal to 4",
                }
            )
        ratio = model_input.get("aspect_ratio")
        if ratio is not None and ratio not in ASPECT_RATIOS and ratio != "custom":
            allowed = ", ".join(f'"{r}"' for r in ASPECT_RATIOS)
            invalid.append(
                {
                    "type": "enum",
                    "field": "input.aspect_ratio",
                    "description": f"aspect_ratio must be one of the following: {allowed}",
                }
            )
        fmt = model_input.get("output_format")
        if fmt is not None and fmt not in OUTPUT_FORMATS:
            allowed = ", ".join(f'"{f}"' for f in OUTPUT_FORMATS)
            invalid.append(
                {
                    "type": "enum",
                    "field": "input.output_format",
                    "description": f"output_format must be one of the following: {allowed}",
                }
            )
        for side in ("width", "height"):
            value = model_input.get(side)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or not 64 <= value <= 4096
            ):
                invalid.append(
                    {
                        "type": "number_range",
                        "field": f"input.{side}",
                        "description": "Must be an integer between 64 and 4096",
                    }
                )
        return invalid

    def _new_prediction(
        self, model: str, version: str, model_input: dict[str, Any], headers: dict[str, str]
    ) -> _Prediction:
        prompt = str(model_input.get("prompt", ""))
        width, height = ASPECT_RATIOS.get(str(model_input.get("aspect_ratio", "1:1")), (1024, 1024))
        width = int(model_input.get("width", width))
        height = int(model_input.get("height", height))
        seed = model_input.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
        now_mono = time.monotonic()
        cancel_after = parse_duration(headers.get("cancel-after", ""))
        return _Prediction(
            id=_new_id(),
            model=model,
            version=version,
            input=dict(model_input),
            created=time.time(),
            created_mono=now_mono,
            starting_seconds=max(0.0, self.starting_seconds),
            processing_seconds=max(0.0, self.processing_seconds),
            num_outputs=int(model_input.get("num_outputs", 1)),
            width=width,
            height=height,
            fmt=str(model_input.get("output_format", "png")),
            seed=seed,
            forbidden="FORBIDDEN" in prompt,
            deadline_mono=now_mono + cancel_after if cancel_after is not None else None,
        )

    def _state(self, p: _Prediction, now: float) -> _State:
        start = p.created_mono + p.starting_seconds
        end = start + p.processing_seconds
        stops = [t for t in (p.canceled_mono, p.deadline_mono) if t is not None and t < end]
        stop = min(stops) if stops else None
        if stop is not None and now >= stop:
            if stop < start:
                # Cancel-After before the model started: "aborted"; an explicit cancel: "canceled".
                by_deadline = p.deadline_mono is not None and stop == p.deadline_mono
                return _State("aborted" if by_deadline else "canceled", None, stop)
            return _State("canceled", start, stop)
        if now < start:
            return _State("starting", None, None)
        if now < end:
            return _State("processing", start, None)
        return _State("failed" if p.forbidden else "succeeded", start, end)

    def _wall(self, p: _Prediction, mono: float | None) -> str | None:
        return None if mono is None else iso(p.created + (mono - p.created_mono))

    def _urls(self, p: _Prediction, root: str) -> dict[str, str]:
        return {
            "get": f"{root}/v1/predictions/{p.id}",
            "cancel": f"{root}/v1/predictions/{p.id}/cancel",
            "stream": f"{root}/v1/stream/{p.id}",
            "web": f"{root}/p/{p.id}",
        }

    def _starting_view(self, p: _Prediction, root: str) -> dict[str, Any]:
        return {
            "id": p.id,
            "model": p.model,
            "version": p.version,
            "input": p.input,
            "logs": "",
            "output": None,
            "data_removed": False,
            "error": None,
            "source": "api",
            "status": "starting",
            "created_at": iso(p.created),
            "started_at": None,
            "completed_at": None,
            "metrics": {},
            "urls": self._urls(p, root),
        }

    def _render(self, p: _Prediction, root: str) -> dict[str, Any]:
        """The prediction now; called with the lock held."""
        state = self._state(p, time.monotonic())
        view = self._starting_view(p, root)
        view["status"] = state.status
        view["started_at"] = self._wall(p, state.started_mono)
        view["completed_at"] = self._wall(p, state.completed_mono)
        logs = ""
        if state.started_mono is not None:
            logs = f"Using seed: {p.seed}\n"
        if state.status == "succeeded":
            logs += f"Generated {p.num_outputs} image(s) in {p.processing_seconds:.2f}s\n"
            if not p.files:
                ext = "jpg" if p.fmt == "jpg" else p.fmt
                for i in range(p.num_outputs):
                    key = f"{p.id}/out-{i}.{ext}"
                    self._add_file(key, StoredFile(p.width, p.height, p.seed + i, p.fmt))
                    p.files.append(key)
            view["output"] = [f"{root}/files/{key}" for key in p.files]
        elif state.status == "failed":
            view["error"] = NSFW_ERROR
            logs += f"Traceback (most recent call last):\nException: {NSFW_ERROR}\n"
        view["logs"] = logs
        if state.status in TERMINAL and state.completed_mono is not None:
            predict = state.completed_mono - state.started_mono if state.started_mono else 0.0
            view["metrics"] = {
                "predict_time": round(predict, 6),
                "total_time": round(state.completed_mono - p.created_mono, 6),
            }
            if state.status == "succeeded":
                view["metrics"]["image_count"] = p.num_outputs
        if p.data_removed:
            view["data_removed"] = True
            view["output"] = None
            view["input"] = {}
        return view
