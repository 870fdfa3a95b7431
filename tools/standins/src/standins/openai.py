"""A stand-in for OpenAI's Images API: `POST /v1/images/generations`.

Follows the OpenAI API reference "Images > Create image"
(https://platform.openai.com/docs/api-reference/images/create) as generated into the official
Python SDK, openai 3.57.0 (`openai/types/images_response.py`, `image.py`,
`image_generate_params.py`), read 2026-11-29:

- `gpt-image-*` models always answer base64 (`data[].b64_json`) with `usage`, and echo
  `background`, `output_format`, `quality` and `size`; they reject `response_format` with
  400 `unknown_parameter` ("Unknown parameter: 'response_format'.", as the live API answers);
  sizes `1024x1024`, `1536x1024`, `1024x1536`, `auto`; `n` 1-10.
- `dall-e-2` (the API's default model) and `dall-e-3` answer `response_format` "url" (the
  default) or "b64_json"; URLs point at this server's `/files/...` and, like the real ones
  (Azure Blob Storage SAS URLs, valid 60 minutes), expire (`expire_outputs()`); dall-e-3 adds
  `revised_prompt` and takes `n=1` only.
- Errors are `{"error": {"message", "type", "param", "code"}}`. A prompt containing
  `FORBIDDEN` gets the safety refusal: 400 `moderation_blocked` (type
  `image_generation_user_error`) for gpt-image models, 400 `content_policy_violation` (type
  `invalid_request_error`) for DALL-E, with the messages the live API sends. Authentication
  is `Authorization: Bearer <key>`; a missing or wrong key gets the documented 401.
- Every response carries `x-request-id`, `openai-version`, `openai-processing-ms` and the
  `x-ratelimit-*` headers (names and duration format from the rate-limits guide,
  https://platform.openai.com/docs/guides/rate-limits); scripted 429s add `retry-after`
  (seconds), which the SDK's retry loop reads.

Not simulated: `/v1/images/edits` and `/variations`, streaming (`stream: true` answers 400).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from standins import images
from standins.base import StandIn, StoredFile, base_url, json_response

GPT_IMAGE_SIZES = ("1024x1024", "1024x1536", "1536x1024", "auto")
DALLE_SIZES = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
}
GPT_IMAGE_QUALITIES = ("auto", "low", "medium", "high")
DALLE_QUALITIES = ("standard", "hd")
OUTPUT_FORMATS = ("png", "jpeg", "webp")
BACKGROUNDS = ("transparent", "opaque", "auto")
# Output image tokens per (quality, size), from OpenAI's gpt-image-1 pricing table.
IMAGE_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
URL_TTL_SECONDS = 3600

SAFETY_GPT_IMAGE = (
    "Your request was rejected by the safety system. If you believe this is an error, contact "
    "us at help.openai.com and include the request ID {request_id}."
)
SAFETY_DALLE = (
    "Your request was rejected as a result of our safety system. Your prompt may contain text "
    "that is not allowed by our safety system."
)
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    "username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)
SERVER_ERROR = (
    "The server had an error processing your request. Sorry about that! You can retry your "
    "request, or contact us through our help center at help.openai.com if you encounter this "
    "error repeatedly."
)
# An expired SAS URL on Azure Blob Storage (where DALL-E URLs live) answers 403
# AuthenticationFailed with this XML, not 404: the blob may still exist, the signature's
# validity window is what has passed.
AZURE_EXPIRED = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
    "<Message>Server failed to authenticate the request. Make sure the value of Authorization "
    "header is formed correctly including the signature.\nRequestId:{request_id}\n"
    "Time:{time}</Message><AuthenticationErrorDetail>Signature not valid in the specified time "
    "frame: Start [{start}] - Expiry [{expiry}] - Current [{current}]</AuthenticationErrorDetail>"
    "</Error>"
)


def openai_error(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _mask(key: str) -> str:
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "big")


class OpenAIImagesStandIn(StandIn):
    """OpenAI Images on loopback. Routes: "generate" (`POST /v1/images/generations`) and
    "download" (`GET /files/{name}`, the DALL-E URLs)."""

    ROUTES = ("generate", "download")
    ALIASES: ClassVar[Mapping[str, str]] = {"create": "generate"}
    TUNABLES = ("delay_seconds",)

    def __init__(self, api_key: str = "sk-standin-key", *, delay_seconds: float = 0.0) -> None:
        super().__init__()
        self.api_key = api_key
        self.delay_seconds = delay_seconds
        """Seconds each generation takes before answering (for timeout tests)."""
        self._remember_tunables()

    def _routes(self) -> Sequence[BaseRoute]:
        return [
            Route("/v1/images/generations", self._generate, methods=["POST"]),
            self._files_route(),
        ]

    # --- errors ----------------------------------------------------------------------------

    def _default_failure(self, route: str, status: int) -> tuple[Any, dict[str, str]]:
        if route == "download":
            return None, {}
        if status == 429:
            body = openai_error(
                "Rate limit reached for gpt-image-1 in organization org-standin on images per "
                "minute (IPM): Limit 5, Used 5, Requested 1. Please try again in 1s. Visit "
                "https://platform.openai.com/account/rate-limits to learn more.",
                "requests",
                code="rate_limit_exceeded",
            )
            return body, {"retry-after": "1", "x-ratelimit-remaining-requests": "0"}
        if status == 401:
            return openai_error(
                "Incorrect API key provided: sk-******. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                code="invalid_api_key",
            ), {}
        if status == 503:
            return openai_error(
                "The engine is currently overloaded, please try again later.", "server_error"
            ), {}
        if status >= 500:
            return openai_error(SERVER_ERROR, "server_error"), {}
        return openai_error(f"Scripted error {status}.", "invalid_request_error"), {}

    def _expired_file_response(self) -> Response:
        now = time.time()
        fmt = "%a, %d %b %Y %H:%M:%S GMT"
        body = AZURE_EXPIRED.format(
            request_id=uuid.uuid4(),
            time=time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(now)),
            expiry=time.strftime(fmt, time.gmtime(now - 60)),
            start=time.strftime(fmt, time.gmtime(now - 60 - URL_TTL_SECONDS)),
            current=time.strftime(fmt, time.gmtime(now)),
        )
        return Response(body, status_code=403, media_type="application/xml")

    # --- the endpoint ----------------------------------------------------------------------

    def _headers(self, request_id: str, started: float) -> dict[str, str]:
        return {
            "x-request-id": request_id,
            "openai-organization": "org-standin",
            "openai-version": "2020-10-01",
            "openai-processing-ms": str(int((time.monotonic() - started) * 1000)),
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "100000",
            "x-ratelimit-remaining-tokens": "99000",
            "x-ratelimit-reset-tokens": "600ms",
        }

    async def _generate(self, request: Request) -> Response:
        started = time.monotonic()
        request_id = "req_" + secrets.token_hex(16)
        recorded = await self._receive(request, "generate")

        def error(status: int, body: dict[str, Any]) -> Response:
            return json_response(body, status, self._headers(request_id, started))

        auth = recorded.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if not auth or scheme.lower() != "bearer" or not token.strip():
            return error(401, openai_error(NO_KEY, "invalid_request_error"))
        if token.strip() != self.api_key:
            return error(
                401,
                openai_error(
                    f"Incorrect API key provided: {_mask(token.strip())}. You can find your API "
                    "key at https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    code="invalid_api_key",
                ),
            )
        scripted = self._take_scripted("generate", self._headers(request_id, started))
        if scripted is not None:
            return scripted
        body = recorded.json
        if not isinstance(body, dict):
            return error(400, openai_error(BAD_JSON, "invalid_request_error"))

        problem = self._validate(body)
        if problem is not None:
            return error(400, problem)
        model = str(body.get("model") or "dall-e-2")
        prompt = str(body["prompt"])
        gpt_image = model.startswith("gpt-image")

        if "FORBIDDEN" in prompt:
            if gpt_image:
                refusal = openai_error(
                    SAFETY_GPT_IMAGE.format(request_id=request_id),
                    "image_generation_user_error",
                    code="moderation_blocked",
                )
            else:
                refusal = openai_error(
                    SAFETY_DALLE, "invalid_request_error", code="content_policy_violation"
                )
            return error(400, refusal)

        if self.delay_seconds > 0:
            await asyncio.sleep(self.delay_seconds)

        n = int(body.get("n") or 1)
        if gpt_image:
            payload = await self._gpt_image(body, model, prompt, n)
        else:
            payload = await self._dalle(request, body, model, prompt, n)
        return json_response(payload, 200, self._headers(request_id, started))

    def _validate(self, body: dict[str, Any]) -> dict[str, Any] | None:
        invalid = "invalid_request_error"
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return openai_error(
                "Missing required parameter: 'prompt'.",
                invalid,
                "prompt",
                "missing_required_parameter",
            )
        model = body.get("model") or "dall-e-2"
        if not isinstance(model, str) or not (
            model.startswith("gpt-image") or model in DALLE_SIZES
        ):
            return openai_error(
                f"Invalid value for 'model' = {model}.", invalid, "model", "invalid_value"
            )
        gpt_image = model.startswith("gpt-image")
        if body.get("stream"):
            return openai_error(
                "Streaming is not supported by this stand-in.", invalid, "stream", "invalid_value"
            )
        n = body.get("n", 1)
        if n is not None:
            if not isinstance(n, int) or isinstance(n, bool):
                return openai_error(
                    "Invalid type for 'n': expected an integer, but got "
                    f"{type(n).__name__} instead.",
                    invalid,
                    "n",
                    "invalid_type",
                )
            if n < 1:
                return openai_error(
                    f"Invalid 'n': integer below minimum value. Expected a value >= 1, but got {n} "
                    "instead.",
                    invalid,
                    "n",
                    "integer_below_min_value",
                )
            if n > 10:
                return openai_error(
                    "Invalid 'n': integer above maximum value. Expected a value <= 10, but got "
                    f"{n} instead.",
                    invalid,
                    "n",
                    "integer_above_max_value",
                )
            if model == "dall-e-3" and n != 1:
                return openai_error("You must provide n=1 for this model.", invalid, "n", None)
        sizes = GPT_IMAGE_SIZES if gpt_image else DALLE_SIZES[model]
        size = body.get("size")
        if size is not None and size not in sizes:
            listed = ", ".join(f"'{s}'" for s in sizes[:-1]) + f", and '{sizes[-1]}'"
            return openai_error(
                f"Invalid value: '{size}'. Supported values are: {listed}.",
                invalid,
                "size",
                "invalid_value",
            )
        if gpt_image:
            if "response_format" in body:
                return openai_error(
                    "Unknown parameter: 'response_format'.",
                    invalid,
                    "response_format",
                    "unknown_parameter",
                )
            for name, allowed in (
                ("quality", GPT_IMAGE_QUALITIES),
                ("output_format", OUTPUT_FORMATS),
                ("background", BACKGROUNDS),
            ):
                value = body.get(name)
                if value is not None and value not in allowed:
                    listed = ", ".join(f"'{a}'" for a in allowed)
                    return openai_error(
                        f"Invalid value: '{value}'. Supported values are: {listed}.",
                        invalid,
                        name,
                        "invalid_value",
                    )
        else:
            response_format = body.get("response_format")
            if response_format is not None and response_format not in ("url", "b64_json"):
                return openai_error(
                    f"Invalid value: '{response_format}'. Supported values are: 'url' and "
                    "'b64_json'.",
                    invalid,
                    "response_format",
                    "invalid_value",
                )
            quality = body.get("quality")
            if quality is not None and quality not in DALLE_QUALITIES:
                return openai_error(
                    f"Invalid value: '{quality}'. Supported values are: 'standard' and 'hd'.",
                    invalid,
                    "quality",
                    "invalid_value",
                )
        return None

    async def _gpt_image(
        self, body: dict[str, Any], model: str, prompt: str, n: int
    ) -> dict[str, Any]:
        size = body.get("size") or "auto"
        size = "1024x1024" if size == "auto" else size
        quality = body.get("quality") or "auto"
        quality = "medium" if quality == "auto" else quality
        fmt = body.get("output_format") or "png"
        background = body.get("background") or "auto"
        background = "opaque" if background == "auto" else background
        width, height = (int(v) for v in size.split("x"))
        data = []
        for i in range(n):
            raw = await run_in_threadpool(
                images.render, width, height, _seed(model, prompt, i), fmt
            )
            data.append({"b64_json": base64.b64encode(raw).decode()})
        text_tokens = max(1, len(prompt.split()))
        image_tokens = IMAGE_TOKENS[quality][size] * n
        return {
            "created": int(time.time()),
            "background": background,
            "data": data,
            "output_format": fmt,
            "quality": quality,
            "size": size,
            "usage": {
                "input_tokens": text_tokens,
                "input_tokens_details": {"image_tokens": 0, "text_tokens": text_tokens},
                "output_tokens": image_tokens,
                "output_tokens_details": {"image_tokens": image_tokens, "text_tokens": 0},
                "total_tokens": text_tokens + image_tokens,
            },
        }

    async def _dalle(
        self, request: Request, body: dict[str, Any], model: str, prompt: str, n: int
    ) -> dict[str, Any]:
        size = body.get("size") or "1024x1024"
        width, height = (int(v) for v in size.split("x"))
        as_url = (body.get("response_format") or "url") == "url"
        data: list[dict[str, Any]] = []
        now = time.time()
        for i in range(n):
            seed = _seed(model, prompt, i)
            item: dict[str, Any]
            if as_url:
                name = f"img-{secrets.token_urlsafe(18)}.png"
                self._add_file(name, StoredFile(width, height, seed, "png"))
                query = (
                    f"st={_sas_time(now)}&se={_sas_time(now + URL_TTL_SECONDS)}&sp=r&sv=2021-08-06"
                    f"&sr=b&sig={secrets.token_urlsafe(32)}"
                )
                item = {"url": f"{base_url(request)}/files/{name}?{query}"}
            else:
                raw = await run_in_threadpool(images.render, width, height, seed, "png")
                item = {"b64_json": base64.b64encode(raw).decode()}
            if model == "dall-e-3":
                item["revised_prompt"] = f"A detailed, high-quality image of {prompt}"
            data.append(item)
        return {"created": int(now), "data": data}


def _sas_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H%%3A%M%%3A%SZ", time.gmtime(ts))
