"""The client against a mocked API (respx): retries, idempotency, typed errors, parsing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from workflow_client import Client, InvalidInput, NotFound, RateLimited, RetryPolicy
from workflow_client import client as sync_module

URL = "http://api.test"
RUN = {
    "runId": "run_" + "0" * 28,
    "workflowId": "wf",
    "workflowVersion": 1,
    "status": "completed",
    "outputs": [{"name": "picture", "type": "image", "ref": "s3://b/k", "url": "http://s3/k"}],
    "createdAt": "2026-11-29T20:00:00Z",
}


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the client takes between tries, recorded instead of slept."""
    taken: list[float] = []
    monkeypatch.setattr(sync_module, "_sleep", taken.append)
    return taken


def _problem(status: int, **extra: Any) -> dict[str, Any]:
    return {"type": "about:blank", "title": "problem", "status": status, **extra}


@respx.mock
def test_429_and_503_are_retried_after_retry_after_then_the_run_is_returned(
    pauses: list[float],
) -> None:
    route = respx.post(f"{URL}/v1/workflows/wf/run").mock(
        side_effect=[
            httpx.Response(429, json=_problem(429), headers={"Retry-After": "3"}),
            httpx.Response(503, json=_problem(503), headers={"Retry-After": "1"}),
            httpx.Response(200, json=RUN),
        ]
    )
    with Client(URL, "wfk_test") as client:
        run = client.run("wf", {"prompt": "a cat"})
    assert route.call_count == 3
    assert pauses == [3.0, 1.0]
    assert run.status == "completed"
    assert run.outputs["picture"].ref == "s3://b/k"


@respx.mock
def test_the_idempotency_key_is_the_same_on_every_retry_and_new_per_call(
    pauses: list[float],
) -> None:
    route = respx.post(f"{URL}/v1/workflows/wf/run").mock(
        side_effect=[
            httpx.Response(503, json=_problem(503), headers={"Retry-After": "0"}),
            httpx.Response(429, json=_problem(429), headers={"Retry-After": "0"}),
            httpx.Response(200, json=RUN),
            httpx.Response(200, json=RUN),
        ]
    )
    with Client(URL, "wfk_test") as client:
        client.run("wf", {"prompt": "a cat"})
        client.runs.create("wf", {"prompt": "a dog"})
    keys = [call.request.headers["Idempotency-Key"] for call in route.calls]
    assert keys[0] == keys[1] == keys[2], "one logical call, one key"
    assert keys[3] != keys[0], "another call, another key"
    assert route.calls[0].request.headers["Authorization"] == "Bearer wfk_test"
    assert route.calls[3].request.headers["Prefer"] == "respond-async"


@respx.mock
def test_a_limit_that_lasts_past_the_tries_raises_rate_limited_with_retry_after(
    pauses: list[float],
) -> None:
    respx.get(f"{URL}/v1/workflows").mock(
        return_value=httpx.Response(429, json=_problem(429), headers={"Retry-After": "2"})
    )
    with (
        Client(URL, "k", retry=RetryPolicy(max_attempts=3)) as client,
        pytest.raises(RateLimited) as raised,
    ):
        client.workflows.list()
    assert pauses == [2.0, 2.0]
    assert raised.value.retry_after == 2.0


@respx.mock
def test_without_retry_after_the_backoff_grows_and_is_capped(pauses: list[float]) -> None:
    respx.get(f"{URL}/v1/workflows").mock(return_value=httpx.Response(503, json=_problem(503)))
    policy = RetryPolicy(max_attempts=6, backoff=1.0, max_backoff=4.0)
    with Client(URL, "k", retry=policy) as client, pytest.raises(Exception, match="503"):
        client.workflows.list()
    assert len(pauses) == 5
    bounds = [1, 2, 4, 4, 4]
    assert all(b / 2 <= p <= b for p, b in zip(pauses, bounds, strict=True)), pauses


@respx.mock
def test_a_422_raises_invalid_input_with_every_failing_path() -> None:
    respx.post(f"{URL}/v1/workflows/wf/run").mock(
        return_value=httpx.Response(
            422,
            json=_problem(
                422,
                detail="the inputs do not match the workflow's input schema",
                errors=[
                    {"path": "/inputs/prompt", "message": "is too short"},
                    {"path": "/inputs/options/quality", "message": "not one of draft, high"},
                ],
            ),
            headers={"Content-Type": "application/problem+json"},
        )
    )
    with Client(URL, "k") as client, pytest.raises(InvalidInput) as raised:
        client.run("wf", {"prompt": "", "options": {"quality": "x"}})
    error = raised.value
    assert error.status == 422
    assert error.paths == ["/inputs/prompt", "/inputs/options/quality"]
    assert "/inputs/options/quality" in str(error)


@respx.mock
def test_a_404_raises_not_found_and_is_not_retried(pauses: list[float]) -> None:
    route = respx.get(f"{URL}/v1/runs/run_x").mock(
        return_value=httpx.Response(404, json=_problem(404, detail="no run 'run_x'"))
    )
    with Client(URL, "k") as client, pytest.raises(NotFound, match="no run"):
        client.runs.get("run_x")
    assert route.call_count == 1
    assert pauses == []


@respx.mock
def test_fields_a_newer_server_adds_are_ignored() -> None:
    newer = {
        **RUN,
        "costCents": 3,
        "outputs": [{**RUN["outputs"][0], "blurhash": "LKO2"}],
        "steps": [
            {"nodeId": "a", "type": "text.template", "status": "succeeded", "attempt": 1, "x": 1}
        ],
    }
    respx.get(f"{URL}/v1/runs/{RUN['runId']}").mock(return_value=httpx.Response(200, json=newer))
    with Client(URL, "k") as client:
        run = client.runs.get(str(RUN["runId"]))
    assert run.outputs["picture"].url == "http://s3/k"
    assert run.steps[0].node_id == "a"


@respx.mock
def test_runs_list_follows_next_cursor() -> None:
    first = dict(RUN, runId="run_" + "2" * 28)
    second = dict(RUN, runId="run_" + "1" * 28)
    route = respx.get(f"{URL}/v1/runs").mock(
        side_effect=[
            httpx.Response(200, json={"items": [first], "nextCursor": first["runId"]}),
            httpx.Response(200, json={"items": [second], "nextCursor": None}),
        ]
    )
    with Client(URL, "k") as client:
        ids = [r.run_id for r in client.runs.list(workflow_id="wf", page_size=1)]
    assert ids == [first["runId"], second["runId"]]
    assert route.calls[1].request.url.params["cursor"] == first["runId"]


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLOW_API_URL", "http://from-env:1/")
    monkeypatch.setenv("WORKFLOW_API_KEY", "wfk_env")
    with Client() as client:
        assert client.config.base_url == "http://from-env:1"
        assert client.config.api_key == "wfk_env"
    with Client("http://arg:2", "wfk_arg") as client:
        assert client.config.base_url == "http://arg:2"
        assert client.config.api_key == "wfk_arg"


@respx.mock
def test_an_upload_answers_the_s3_reference_to_pass_as_an_input(tmp_path: Any) -> None:
    asset = {
        "ref": "s3://uploads/t/abc.png",
        "url": "http://s3/abc.png",
        "contentType": "image/png",
        "bytes": 8,
    }
    route = respx.post(f"{URL}/v1/assets").mock(return_value=httpx.Response(201, json=asset))
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    with Client(URL, "wfk_test") as client:
        assert client.assets.upload(image) == "s3://uploads/t/abc.png"
        assert client.assets.create(b"\x89PNG\r\n\x1a\n").content_type == "image/png"
    assert route.calls[0].request.headers["content-type"] == "image/png"
