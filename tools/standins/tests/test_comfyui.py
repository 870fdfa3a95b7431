from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from standins.comfyui import ComfyUIStandIn
from standins.server import wait_until
from websockets.sync.client import connect

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "comfyui" / "txt2img.api.json"


@pytest.fixture(scope="module")
def standin() -> ComfyUIStandIn:
    return ComfyUIStandIn()


@pytest.fixture
def graph() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(EXAMPLE.read_text())
    loaded["5"]["inputs"].update(width=64, height=48, batch_size=2)
    return loaded


def finished(client: httpx.Client, prompt_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = {}

    def done() -> bool:
        entry.update(client.get(f"/history/{prompt_id}").json())
        return prompt_id in entry

    assert wait_until(done, timeout=5)
    result: dict[str, Any] = entry[prompt_id]
    return result


def test_the_example_graph_is_a_real_api_export() -> None:
    graph = json.loads(EXAMPLE.read_text())
    assert {node["class_type"] for node in graph.values()} == {
        "CheckpointLoaderSimple",
        "CLIPTextEncode",
        "EmptyLatentImage",
        "KSampler",
        "VAEDecode",
        "SaveImage",
    }
    assert all(set(node) == {"inputs", "class_type", "_meta"} for node in graph.values())
    assert graph["6"]["_meta"]["title"] == "Positive prompt"


def test_a_valid_prompt_runs_and_its_images_are_in_history_and_view(
    api: tuple[ComfyUIStandIn, httpx.Client], graph: dict[str, Any]
) -> None:
    standin, client = api
    graph["6"]["inputs"]["text"] = "a lighthouse at dusk"
    response = client.post("/prompt", json={"prompt": graph, "client_id": "c1"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"prompt_id", "number", "node_errors"}
    assert body["node_errors"] == {}
    assert standin.graph(body["prompt_id"])["6"]["inputs"]["text"] == "a lighthouse at dusk"
    entry = finished(client, body["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    assert entry["status"]["completed"] is True
    assert [m[0] for m in entry["status"]["messages"]] == [
        "execution_start",
        "execution_cached",
        "execution_success",
    ]
    assert entry["prompt"][1] == body["prompt_id"]
    assert entry["prompt"][3] == {"client_id": "c1"}
    images = entry["outputs"]["9"]["images"]
    assert [i["filename"] for i in images] == ["ComfyUI_00001_.png", "ComfyUI_00002_.png"]
    view = client.get("/view", params=images[0])
    assert view.status_code == 200
    assert Image.open(io.BytesIO(view.content)).size == (64, 48)
    assert client.get("/view", params={"filename": "nope.png", "type": "output"}).status_code == 404


def test_history_is_empty_until_done(
    api: tuple[ComfyUIStandIn, httpx.Client], graph: dict[str, Any]
) -> None:
    standin, client = api
    standin.processing_seconds = 0.3
    prompt_id = client.post("/prompt", json={"prompt": graph}).json()["prompt_id"]
    assert client.get(f"/history/{prompt_id}").json() == {}
    finished(client, prompt_id)
    assert prompt_id in client.get("/history").json()


def test_unknown_class_type_is_a_missing_node_type_400(
    api: tuple[ComfyUIStandIn, httpx.Client], graph: dict[str, Any]
) -> None:
    _, client = api
    graph["3"]["class_type"] = "KSamplerDeluxe"
    response = client.post("/prompt", json={"prompt": graph})
    assert response.status_code == 400
    body = response.json()
    assert body["node_errors"] == {}
    assert body["error"]["type"] == "missing_node_type"
    assert body["error"]["extra_info"] == {
        "node_id": "3",
        "class_type": "KSamplerDeluxe",
        "node_title": "Sampler",
    }
    assert set(body["error"]) == {"type", "message", "details", "extra_info"}


def test_a_graph_without_an_output_node_is_prompt_no_outputs(
    api: tuple[ComfyUIStandIn, httpx.Client], graph: dict[str, Any]
) -> None:
    _, client = api
    del graph["9"]
    response = client.post("/prompt", json={"prompt": graph})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "prompt_no_outputs"


def test_bad_inputs_fail_validation_with_node_errors(
    api: tuple[ComfyUIStandIn, httpx.Client], graph: dict[str, Any]
) -> None:
    _, client = api
    del graph["6"]["inputs"]["text"]
    graph["8"]["inputs"]["vae"] = ["4", 1]
    response = client.post("/prompt", json={"prompt": graph})
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    errors = body["node_errors"]
    assert errors["6"]["errors"][0]["type"] == "required_input_missing"
    assert errors["6"]["dependent_outputs"] == ["9"]
    assert errors["6"]["class_type"] == "CLIPTextEncode"
    assert errors["8"]["errors"][0]["type"] == "return_type_mismatch"
    dangling = copy.deepcopy(graph)
    dangling["9"]["inputs"]["images"] = ["42", 0]
    failed = client.post("/prompt", json={"prompt": dangling}).json()
    assert failed["node_errors"]["9"]["errors"][0]["type"] == "exception_during_validation"
    assert client.post("/prompt", json={"client_id": "x"}).json()["error"]["type"] == "no_prompt"


def test_a_failing_node_class_ends_in_execution_error(
    api: tuple[ComfyUIStandIn, httpx.Client], graph: dict[str, Any]
) -> None:
    standin, client = api
    standin.fail_class_type = "KSampler"
    prompt_id = client.post("/prompt", json={"prompt": graph}).json()["prompt_id"]
    entry = finished(client, prompt_id)
    assert (entry["status"]["status_str"], entry["status"]["completed"]) == ("error", False)
    event, data = entry["status"]["messages"][-1]
    assert event == "execution_error"
    assert {
        "prompt_id",
        "node_id",
        "node_type",
        "exception_message",
        "exception_type",
        "traceback",
    } <= set(data)
    assert (data["node_id"], data["node_type"]) == ("3", "KSampler")
    assert entry["outputs"] == {}


def test_interrupt_stops_the_running_prompt_and_queue_delete_drops_a_pending_one(
    api: tuple[ComfyUIStandIn, httpx.Client], graph: dict[str, Any]
) -> None:
    standin, client = api
    standin.processing_seconds = 5
    running = client.post("/prompt", json={"prompt": graph}).json()["prompt_id"]
    pending = client.post("/prompt", json={"prompt": graph}).json()["prompt_id"]
    assert wait_until(lambda: client.get("/queue").json()["queue_running"] != [])
    queue = client.get("/queue").json()
    assert queue["queue_running"][0][1] == running
    assert [item[1] for item in queue["queue_pending"]] == [pending]
    assert client.post("/queue", json={"delete": [pending]}).status_code == 200
    assert client.get("/queue").json()["queue_pending"] == []
    assert client.post("/interrupt").status_code == 200
    entry = finished(client, running)
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert client.get(f"/history/{pending}").json() == {}
    assert client.post("/history", json={"delete": [running]}).status_code == 200
    assert client.get(f"/history/{running}").json() == {}


def test_websocket_reports_the_run_to_its_client(
    served: tuple[ComfyUIStandIn, str], graph: dict[str, Any]
) -> None:
    standin, url = served
    standin.reset()
    with connect(url.replace("http://", "ws://") + "/ws?clientId=me", open_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello == {
            "type": "status",
            "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "me"},
        }
        prompt_id = httpx.post(f"{url}/prompt", json={"prompt": graph, "client_id": "me"}).json()[
            "prompt_id"
        ]
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] not in ("execution_success", "execution_error"):
            events.append(json.loads(ws.recv(timeout=5)))
    kinds = [e["type"] for e in events if e["type"] != "status"]
    assert kinds[:3] == ["execution_start", "execution_cached", "executing"]
    assert "progress" in kinds
    executed = next(e for e in events if e["type"] == "executed")
    assert executed["data"]["node"] == "9"
    assert executed["data"]["prompt_id"] == prompt_id
    assert events[-2] == {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}}
    assert events[-1]["type"] == "execution_success"


def test_scripted_prompt_failure(
    api: tuple[ComfyUIStandIn, httpx.Client], graph: dict[str, Any]
) -> None:
    standin, client = api
    standin.fail_next("prompt", 500)
    assert client.post("/prompt", json={"prompt": graph}).status_code == 500
    assert client.post("/prompt", json={"prompt": graph}).status_code == 200
