from __future__ import annotations

import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image
from standins.replicate import NSFW_ERROR, ReplicateStandIn, parse_duration, parse_prefer_wait
from standins.server import wait_until

TOKEN = "r8_test_token"
MODEL_PATH = "/v1/models/black-forest-labs/flux-schnell/predictions"


@pytest.fixture(scope="module")
def standin() -> ReplicateStandIn:
    return ReplicateStandIn(TOKEN)


@pytest.fixture(scope="module")
def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def poll(
    client: httpx.Client, prediction: dict[str, Any], statuses: tuple[str, ...]
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(client.get(prediction["urls"]["get"]).json())
        return seen["status"] in statuses

    assert wait_until(reached, timeout=5)
    return seen


def test_create_answers_201_starting_then_get_shows_the_output_urls(
    api: tuple[ReplicateStandIn, httpx.Client],
) -> None:
    _, client = api
    response = client.post(MODEL_PATH, json={"input": {"prompt": "a cat", "num_outputs": 2}})
    assert response.status_code == 201
    created = response.json()
    assert created["status"] == "starting"
    assert created["model"] == "black-forest-labs/flux-schnell"
    assert (
        created["urls"]["get"]
        == f"{str(client.base_url).rstrip('/')}/v1/predictions/{created['id']}"
    )
    assert set(created) >= {
        "id",
        "version",
        "input",
        "output",
        "logs",
        "error",
        "created_at",
        "started_at",
        "completed_at",
        "data_removed",
        "metrics",
        "urls",
    }
    done = poll(client, created, ("succeeded",))
    assert len(done["output"]) == 2
    assert done["metrics"]["predict_time"] >= 0
    image = httpx.get(done["output"][0])
    assert image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (1024, 1024)


def test_prefer_wait_holds_until_the_prediction_is_done(
    api: tuple[ReplicateStandIn, httpx.Client],
) -> None:
    standin, client = api
    standin.processing_seconds = 0.2
    response = client.post(
        "/v1/predictions",
        json={
            "version": "owner/model:abc123",
            "input": {"prompt": "a dog", "aspect_ratio": "16:9"},
        },
        headers={"Prefer": "wait"},
    )
    body = response.json()
    assert (response.status_code, body["status"]) == (201, "succeeded")
    assert (body["model"], body["version"]) == ("owner/model", "abc123")
    assert body["output"][0].endswith("/out-0.png")


def test_prefer_wait_that_times_out_returns_starting_and_polling_finishes(
    api: tuple[ReplicateStandIn, httpx.Client],
) -> None:
    standin, client = api
    standin.processing_seconds = 2.0
    started = time.monotonic()
    response = client.post(
        MODEL_PATH, json={"input": {"prompt": "slow"}}, headers={"Prefer": "wait=1"}
    )
    assert 1.0 <= time.monotonic() - started < 2.0
    body = response.json()
    assert (body["status"], body["output"]) == ("starting", None)
    assert client.get(body["urls"]["get"]).json()["status"] == "processing"
    assert poll(client, body, ("succeeded",))["output"]


def test_cancel_stops_a_running_prediction_but_not_a_finished_one(
    api: tuple[ReplicateStandIn, httpx.Client],
) -> None:
    standin, client = api
    standin.processing_seconds = 30
    running = client.post(MODEL_PATH, json={"input": {"prompt": "long"}}).json()
    canceled = client.post(running["urls"]["cancel"])
    assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")
    assert client.get(running["urls"]["get"]).json()["status"] == "canceled"
    standin.processing_seconds = 0
    finished = client.post(
        MODEL_PATH, json={"input": {"prompt": "quick"}}, headers={"Prefer": "wait"}
    )
    assert client.post(finished.json()["urls"]["cancel"]).json()["status"] == "succeeded"


def test_cancel_after_aborts_before_start_and_cancels_while_running(
    api: tuple[ReplicateStandIn, httpx.Client],
) -> None:
    standin, client = api
    standin.starting_seconds = 30
    queued = client.post(
        MODEL_PATH, json={"input": {"prompt": "x"}}, headers={"Cancel-After": "100ms"}
    )
    assert poll(client, queued.json(), ("aborted",))["started_at"] is None
    standin.starting_seconds = 0
    standin.processing_seconds = 30
    running = client.post(
        MODEL_PATH, json={"input": {"prompt": "x"}}, headers={"Cancel-After": "0.1s"}
    )
    assert poll(client, running.json(), ("canceled",))["started_at"] is not None


def test_forbidden_prompt_ends_failed_with_the_nsfw_error(
    api: tuple[ReplicateStandIn, httpx.Client],
) -> None:
    _, client = api
    body = client.post(
        MODEL_PATH, json={"input": {"prompt": "FORBIDDEN"}}, headers={"Prefer": "wait"}
    ).json()
    assert (body["status"], body["error"], body["output"]) == ("failed", NSFW_ERROR, None)


def test_invalid_input_is_a_422_problem_with_invalid_fields(
    api: tuple[ReplicateStandIn, httpx.Client],
) -> None:
    _, client = api
    response = client.post(MODEL_PATH, json={"input": {"num_outputs": 9}})
    assert response.status_code == 422
    body = response.json()
    assert body["title"] == "Input validation failed"
    assert body["status"] == 422
    assert (
        body["detail"]
        == "- input: prompt is required\n- input.num_outputs: Must be less than or equal to 4\n"
    )
    assert {"type": "required", "field": "input", "description": "prompt is required"} in body[
        "invalid_fields"
    ]
    no_version = client.post("/v1/predictions", json={"input": {"prompt": "x"}})
    assert no_version.status_code == 422
    assert no_version.json()["invalid_fields"][0]["description"] == "version is required"


def test_bearer_and_token_schemes_pass_a_wrong_token_gets_401(
    served: tuple[ReplicateStandIn, str],
) -> None:
    standin, url = served
    standin.reset()
    body = {"input": {"prompt": "x"}}
    assert (
        httpx.post(
            f"{url}{MODEL_PATH}", json=body, headers={"Authorization": f"Token {TOKEN}"}
        ).status_code
        == 201
    )
    wrong = httpx.post(f"{url}{MODEL_PATH}", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid authentication token",
        "status": 401,
    }


def test_scripted_429_uses_the_documented_throttle_body(
    api: tuple[ReplicateStandIn, httpx.Client],
) -> None:
    standin, client = api
    standin.fail_next("create", 429, headers={"Retry-After": "2"})
    throttled = client.post(MODEL_PATH, json={"input": {"prompt": "x"}})
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "2"
    assert throttled.json()["detail"].startswith("Request was throttled. Your rate limit resets in")
    assert client.post(MODEL_PATH, json={"input": {"prompt": "x"}}).status_code == 201


def test_expire_outputs_removes_data_and_the_files_404(
    api: tuple[ReplicateStandIn, httpx.Client],
) -> None:
    standin, client = api
    done = client.post(
        MODEL_PATH, json={"input": {"prompt": "x"}}, headers={"Prefer": "wait"}
    ).json()
    url = done["output"][0]
    assert httpx.get(url).status_code == 200
    standin.expire_outputs()
    assert httpx.get(url).status_code == 404
    after = client.get(done["urls"]["get"]).json()
    assert (after["data_removed"], after["output"], after["status"]) == (True, None, "succeeded")


def test_header_parsers() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    assert parse_duration("soon") is None
    assert parse_prefer_wait("wait") == 60
    assert parse_prefer_wait("wait=5") == 5
    assert parse_prefer_wait("respond-async") is None
