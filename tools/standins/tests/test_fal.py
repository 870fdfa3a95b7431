from __future__ import annotations

from typing import Any

import httpx
import pytest
from standins.fal import FalQueueStandIn
from standins.server import wait_until

KEY = "key-id:key-secret"


@pytest.fixture(scope="module")
def standin() -> FalQueueStandIn:
    return FalQueueStandIn(KEY)


@pytest.fixture(scope="module")
def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Key {KEY}"}


def submit(
    client: httpx.Client, body: dict[str, Any], app: str = "fal-ai/flux/dev"
) -> dict[str, Any]:
    response = client.post(f"/{app}", json=body)
    assert response.status_code == 200
    submitted: dict[str, Any] = response.json()
    return submitted


def test_submit_answers_the_queue_urls_without_the_endpoint_path(
    api: tuple[FalQueueStandIn, httpx.Client],
) -> None:
    standin, client = api
    submitted = submit(client, {"prompt": "a cat"})
    request_id = submitted["request_id"]
    base = f"{str(client.base_url).rstrip('/')}/fal-ai/flux/requests/{request_id}"
    assert submitted["status"] == "IN_QUEUE"
    assert submitted["response_url"] == base
    assert submitted["status_url"] == f"{base}/status"
    assert submitted["cancel_url"] == f"{base}/cancel"
    assert submitted["gateway_request_id"] == request_id
    assert standin.requests_to("submit")[0].path == "/fal-ai/flux/dev"


def test_status_goes_in_queue_in_progress_completed_with_202_then_200(
    api: tuple[FalQueueStandIn, httpx.Client],
) -> None:
    standin, client = api
    standin.queue_seconds = 0.3
    standin.processing_seconds = 0.3
    submitted = submit(client, {"prompt": "a cat"})
    seen: list[tuple[int, str]] = []
    last: dict[str, Any] = {}

    def completed() -> bool:
        response = client.get(submitted["status_url"], params={"logs": 1})
        last.update(response.json())
        if not seen or seen[-1] != (response.status_code, last["status"]):
            seen.append((response.status_code, last["status"]))
        return bool(last["status"] == "COMPLETED")

    assert wait_until(completed, timeout=5)
    assert seen == [(202, "IN_QUEUE"), (202, "IN_PROGRESS"), (200, "COMPLETED")]
    assert last["metrics"]["inference_time"] >= 0.3
    assert last["logs"][0]["message"]


def test_in_queue_status_counts_the_requests_ahead(
    api: tuple[FalQueueStandIn, httpx.Client],
) -> None:
    standin, client = api
    standin.queue_seconds = 30
    submit(client, {"prompt": "first"})
    second = submit(client, {"prompt": "second"})
    assert second["queue_position"] == 1
    assert client.get(second["status_url"]).json()["queue_position"] == 1


def test_result_is_the_flux_dev_output_with_downloadable_images(
    api: tuple[FalQueueStandIn, httpx.Client],
) -> None:
    _, client = api
    submitted = submit(
        client, {"prompt": "a cat", "num_images": 2, "image_size": "square", "seed": 7}
    )
    assert wait_until(lambda: client.get(submitted["status_url"]).status_code == 200)
    result = client.get(submitted["response_url"])
    assert result.status_code == 200
    body = result.json()
    assert (body["seed"], body["prompt"], body["has_nsfw_concepts"]) == (7, "a cat", [False, False])
    first = body["images"][0]
    assert (first["width"], first["height"], first["content_type"]) == (512, 512, "image/jpeg")
    assert httpx.get(first["url"]).headers["content-type"] == "image/jpeg"


def test_result_before_completion_is_refused(api: tuple[FalQueueStandIn, httpx.Client]) -> None:
    standin, client = api
    standin.queue_seconds = 30
    submitted = submit(client, {"prompt": "x"})
    assert client.get(submitted["response_url"]).status_code == 400


def test_forbidden_prompt_result_is_a_422_content_policy_violation(
    api: tuple[FalQueueStandIn, httpx.Client],
) -> None:
    _, client = api
    submitted = submit(client, {"prompt": "FORBIDDEN thing"})
    assert wait_until(lambda: client.get(submitted["status_url"]).status_code == 200)
    result = client.get(submitted["response_url"])
    assert result.status_code == 422
    [error] = result.json()["detail"]
    assert (error["type"], error["loc"]) == ("content_policy_violation", ["body", "prompt"])
    assert result.headers["x-fal-retryable"] == "false"


def test_missing_prompt_result_is_a_422_validation_error(
    api: tuple[FalQueueStandIn, httpx.Client],
) -> None:
    _, client = api
    submitted = submit(client, {"num_images": 9})
    assert wait_until(lambda: client.get(submitted["status_url"]).status_code == 200)
    result = client.get(submitted["response_url"])
    assert result.status_code == 422
    assert [e["loc"] for e in result.json()["detail"]] == [
        ["body", "prompt"],
        ["body", "num_images"],
    ]


def test_cancel_while_queued_then_already_completed_and_not_found(
    api: tuple[FalQueueStandIn, httpx.Client],
) -> None:
    standin, client = api
    standin.queue_seconds = 30
    submitted = submit(client, {"prompt": "x"})
    cancel = client.put(submitted["cancel_url"])
    assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    status = client.get(submitted["status_url"]).json()
    assert (status["status"], status["error_type"]) == ("COMPLETED", "client_cancelled")
    again = client.put(submitted["cancel_url"])
    assert (again.status_code, again.json()) == (400, {"status": "ALREADY_COMPLETED"})
    unknown = client.put(submitted["cancel_url"].replace(submitted["request_id"], "nope"))
    assert (unknown.status_code, unknown.json()) == (404, {"status": "NOT_FOUND"})


def test_wrong_key_gets_401(served: tuple[FalQueueStandIn, str]) -> None:
    _, url = served
    response = httpx.post(
        f"{url}/fal-ai/flux/dev", json={"prompt": "x"}, headers={"Authorization": "Key a:b"}
    )
    assert (response.status_code, response.json()) == (
        401,
        {"detail": "No user found for Key ID and Secret"},
    )


def test_scripted_failures_on_submit_status_and_result(
    api: tuple[FalQueueStandIn, httpx.Client],
) -> None:
    standin, client = api
    standin.fail_next("submit", 429)
    assert client.post("/fal-ai/flux/dev", json={"prompt": "x"}).status_code == 429
    submitted = submit(client, {"prompt": "x"})
    standin.fail_next("status", 500)
    failed = client.get(submitted["status_url"])
    assert (failed.status_code, failed.json()["error_type"]) == (500, "internal_error")
    assert failed.headers["x-fal-error-type"] == "internal_error"
    standin.fail_next("result", 500)
    assert (
        client.get(submitted["response_url"]).json()["detail"][0]["type"] == "internal_server_error"
    )
    assert client.get(submitted["response_url"]).status_code == 200


def test_expired_image_urls_answer_404(api: tuple[FalQueueStandIn, httpx.Client]) -> None:
    standin, client = api
    submitted = submit(client, {"prompt": "x"})
    assert wait_until(lambda: client.get(submitted["status_url"]).status_code == 200)
    url = client.get(submitted["response_url"]).json()["images"][0]["url"]
    assert httpx.get(url).status_code == 200
    standin.expire_outputs()
    assert httpx.get(url).status_code == 404
