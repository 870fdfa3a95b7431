from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image
from standins.openai import OpenAIImagesStandIn

KEY = "sk-test-key-0123456789"


@pytest.fixture(scope="module")
def standin() -> OpenAIImagesStandIn:
    return OpenAIImagesStandIn(KEY)


@pytest.fixture(scope="module")
def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def generate(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/images/generations", json=body)


def test_gpt_image_answers_n_base64_pngs_of_the_size_with_usage(
    api: tuple[OpenAIImagesStandIn, httpx.Client],
) -> None:
    standin, client = api
    response = generate(client, model="gpt-image-1", prompt="a red fox", n=2, size="1536x1024")
    assert response.status_code == 200
    body = response.json()
    assert body["size"] == "1536x1024"
    assert body["output_format"] == "png"
    assert (
        body["usage"]["total_tokens"]
        == body["usage"]["input_tokens"] + body["usage"]["output_tokens"]
    )
    assert len(body["data"]) == 2
    image = Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"])))
    assert (image.format, image.size) == ("PNG", (1536, 1024))
    assert response.headers["x-request-id"].startswith("req_")
    assert "x-ratelimit-remaining-requests" in response.headers
    [recorded] = standin.requests_to("generate")
    assert recorded.json["prompt"] == "a red fox"
    assert recorded.headers["authorization"] == f"Bearer {KEY}"


def test_the_same_request_gives_the_same_image(
    api: tuple[OpenAIImagesStandIn, httpx.Client],
) -> None:
    _, client = api
    first = generate(client, model="gpt-image-1", prompt="same", size="1024x1024").json()
    second = generate(client, model="gpt-image-1", prompt="same", size="1024x1024").json()
    assert first["data"][0]["b64_json"] == second["data"][0]["b64_json"]


def test_gpt_image_rejects_response_format(api: tuple[OpenAIImagesStandIn, httpx.Client]) -> None:
    _, client = api
    response = generate(client, model="gpt-image-1", prompt="x", response_format="b64_json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_parameter"


def test_invalid_size_is_a_400_naming_the_size_param(
    api: tuple[OpenAIImagesStandIn, httpx.Client],
) -> None:
    _, client = api
    response = generate(client, model="gpt-image-1", prompt="x", size="512x512")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        "size",
        "invalid_value",
    )


def test_forbidden_prompt_is_blocked_by_moderation_for_gpt_image_and_policy_for_dalle(
    api: tuple[OpenAIImagesStandIn, httpx.Client],
) -> None:
    _, client = api
    blocked = generate(client, model="gpt-image-1", prompt="something FORBIDDEN")
    assert blocked.status_code == 400
    assert blocked.json()["error"]["code"] == "moderation_blocked"
    assert blocked.json()["error"]["type"] == "image_generation_user_error"
    dalle = generate(client, model="dall-e-3", prompt="something FORBIDDEN")
    assert dalle.status_code == 400
    assert dalle.json()["error"]["code"] == "content_policy_violation"


def test_dalle_urls_serve_the_png_until_they_expire_with_azures_403(
    api: tuple[OpenAIImagesStandIn, httpx.Client],
) -> None:
    standin, client = api
    body = generate(client, model="dall-e-3", prompt="a lighthouse", size="1024x1792").json()
    [item] = body["data"]
    assert item["revised_prompt"]
    image = httpx.get(item["url"])
    assert image.status_code == 200
    assert Image.open(io.BytesIO(image.content)).size == (1024, 1792)
    standin.expire_outputs()
    expired = httpx.get(item["url"])
    assert expired.status_code == 403
    assert "AuthenticationFailed" in expired.text


def test_missing_and_wrong_keys_get_the_documented_401s(
    served: tuple[OpenAIImagesStandIn, str],
) -> None:
    _, url = served
    missing = httpx.post(f"{url}/v1/images/generations", json={"prompt": "x"})
    assert missing.status_code == 401
    assert "didn't provide an API key" in missing.json()["error"]["message"]
    wrong = httpx.post(
        f"{url}/v1/images/generations",
        json={"prompt": "x"},
        headers={"Authorization": "Bearer sk-wrong-0000000000"},
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"


def test_scripted_429_then_500_then_success(api: tuple[OpenAIImagesStandIn, httpx.Client]) -> None:
    standin, client = api
    standin.fail_next("generate", 429, headers={"retry-after": "2"})
    standin.fail_next("generate", 500)
    limited = generate(client, model="gpt-image-1", prompt="x")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert "x-request-id" in limited.headers
    failed = generate(client, model="gpt-image-1", prompt="x")
    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "server_error"
    assert generate(client, model="gpt-image-1", prompt="x").status_code == 200
    assert len(standin.requests_to("generate")) == 3


def test_delay_seconds_holds_the_answer(api: tuple[OpenAIImagesStandIn, httpx.Client]) -> None:
    standin, client = api
    standin.delay_seconds = 0.3
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/v1/images/generations",
            json={"model": "gpt-image-1", "prompt": "slow", "size": "1024x1024"},
            timeout=0.1,
        )
    started = time.monotonic()
    assert generate(client, model="gpt-image-1", prompt="slow").status_code == 200
    assert time.monotonic() - started >= 0.3
