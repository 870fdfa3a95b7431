"""The `workflow` command (clients/python) as a user runs it: the installed entry point as a
subprocess, configured by WORKFLOW_API_URL and WORKFLOW_API_KEY, against the whole system."""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

WORKFLOW = Path(sys.executable).with_name("workflow")
PORTRAIT = Path(__file__).resolve().parents[2] / "examples" / "studio-portrait.json"
FAILING = {
    "name": "resize an upload",
    "inputSchema": {"type": "object", "properties": {"asset": {"type": "string"}}},
    "nodes": [
        {
            "id": "shrink",
            "type": "image.resize",
            "params": {"image": "{{ inputs.asset }}", "width": 8, "height": 8},
        }
    ],
    "outputs": {"image": "{{ nodes.shrink.image }}"},
}
WAITS = {
    "name": "waits",
    "inputSchema": {"type": "object"},
    "nodes": [{"id": "nap", "type": "wait", "params": {"seconds": 300}}],
    "outputs": {"waited": "{{ nodes.nap.waited }}"},
}
# As documented in clients/python/README.md.
COMPLETED, USAGE, FAILED, CANCELED, INVALID, NOT_FOUND, AUTH, TIMEOUT, CONFLICT = (
    0,
    2,
    3,
    4,
    5,
    6,
    7,
    10,
    11,
)


def _cli(system: Any, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "WORKFLOW_API_URL": system.url,
        "WORKFLOW_API_KEY": key or system.key,
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [str(WORKFLOW), *args], env=env, capture_output=True, text=True, timeout=180
    )


def _put(system: Any, tmp_path: Path, definition: dict[str, Any]) -> str:
    workflow_id = f"cli-{secrets.token_hex(4)}"
    path = tmp_path / f"{workflow_id}.json"
    path.write_text(json.dumps(definition))
    done = _cli(system, "put", str(path), "--json")
    assert done.returncode == COMPLETED, done.stderr
    assert json.loads(done.stdout)["workflowId"] == workflow_id, "the id is the file's stem"
    return workflow_id


def test_put_registers_a_definition_under_the_given_id(system: Any) -> None:
    workflow_id = f"cli-{secrets.token_hex(4)}"
    first = _cli(system, "put", str(PORTRAIT), "--id", workflow_id)
    again = _cli(system, "put", str(PORTRAIT), "--id", workflow_id, "--json")
    assert first.returncode == COMPLETED, first.stderr
    assert first.stdout.startswith(f"{workflow_id} version 1"), first.stdout
    assert again.returncode == COMPLETED, again.stderr
    assert json.loads(again.stdout)["version"] == 1, "an identical definition adds no version"


def test_run_with_inputs_waits_shows_the_steps_and_downloads_the_images(
    system: Any, tmp_path: Path
) -> None:
    workflow_id = f"cli-{secrets.token_hex(4)}"
    assert _cli(system, "put", str(PORTRAIT), "--id", workflow_id).returncode == COMPLETED
    out = tmp_path / "out"
    done = _cli(
        system,
        "run",
        workflow_id,
        "-i",
        "prompt=Studio portrait, warm lighting",
        "-i",
        "options.quality=high",
        "--download",
        str(out),
    )
    assert done.returncode == COMPLETED, done.stderr
    assert "completed" in done.stdout
    for node in ("render", "warm", "square", "story"):
        assert node in done.stderr, f"the step display names {node}"
    sizes = {}
    for name in ("square", "story"):
        path = out / f"{name}.png"
        assert str(path) in done.stdout
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            sizes[name] = image.size
    assert sizes == {"square": (512, 512), "story": (540, 960)}


def test_run_json_output_parses_and_a_file_input_is_uploaded(system: Any, tmp_path: Path) -> None:
    picture = tmp_path / "in.png"
    Image.new("RGB", (20, 10), "red").save(picture)
    definition = {**FAILING, "name": "resize an upload"}
    workflow_id = _put(system, tmp_path, definition)
    done = _cli(system, "run", workflow_id, "--file", f"asset={picture}", "--json")
    assert done.returncode == COMPLETED, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "completed"
    [output] = run["outputs"]
    assert (output["name"], output["width"], output["height"]) == ("image", 8, 8)

    listed = _cli(system, "runs", "list", "--workflow", workflow_id, "--json")
    assert listed.returncode == COMPLETED, listed.stderr
    assert [r["runId"] for r in json.loads(listed.stdout)] == [run["runId"]]
    table = _cli(system, "runs", "list", "--workflow", workflow_id)
    assert run["runId"] in table.stdout
    got = _cli(system, "runs", "get", run["runId"], "--json")
    assert json.loads(got.stdout)["runId"] == run["runId"]


def test_invalid_inputs_exit_5_naming_the_failing_path(system: Any) -> None:
    workflow_id = f"cli-{secrets.token_hex(4)}"
    assert _cli(system, "put", str(PORTRAIT), "--id", workflow_id).returncode == COMPLETED
    done = _cli(system, "run", workflow_id, "-i", "prompt=x", "-i", "options.quality=best")
    assert done.returncode == INVALID, done.stderr
    assert "/inputs/options/quality" in done.stderr
    as_json = _cli(system, "run", workflow_id, "-i", "options.quality=best", "--json")
    assert as_json.returncode == INVALID
    problem = json.loads(as_json.stdout)
    assert problem["status"] == 422
    assert {e["path"] for e in problem["errors"]} >= {"/inputs/options/quality"}
    bad = _cli(system, "run", workflow_id, "-i", "prompt")
    assert bad.returncode == USAGE, bad.stderr


def test_a_failed_run_exits_3_with_its_error(system: Any, tmp_path: Path) -> None:
    workflow_id = _put(system, tmp_path, FAILING)
    done = _cli(system, "run", workflow_id, "-i", "asset=s3://workflow-uploads/nobody/gone.png")
    assert done.returncode == FAILED, done.stderr
    assert "failed" in done.stdout
    assert "shrink" in done.stdout, "the error names the node"


def test_unknown_workflows_and_runs_exit_6_and_a_wrong_key_exits_7(system: Any) -> None:
    assert _cli(system, "run", f"cli-missing-{secrets.token_hex(4)}").returncode == NOT_FOUND
    missing = _cli(system, "runs", "get", "run_" + "0" * 28)
    assert missing.returncode == NOT_FOUND
    assert "no run" in missing.stderr
    assert _cli(system, "runs", "list", key="wfk_wrong").returncode == AUTH


def test_cancel_ends_a_run_canceled_and_watch_exits_4(system: Any, tmp_path: Path) -> None:
    workflow_id = _put(system, tmp_path, WAITS)
    started = _cli(system, "run", workflow_id, "--no-wait", "--json")
    assert started.returncode == COMPLETED, started.stderr
    run_id = json.loads(started.stdout)["runId"]
    canceled = _cli(system, "runs", "cancel", run_id, "--json")
    assert canceled.returncode == COMPLETED, canceled.stderr
    assert json.loads(canceled.stdout)["runId"] == run_id
    watched = _cli(system, "runs", "watch", run_id)
    assert watched.returncode == CANCELED, watched.stderr
    assert "canceled" in watched.stdout


def test_cancelling_a_completed_run_exits_11(system: Any, tmp_path: Path) -> None:
    workflow_id = _put(system, tmp_path, {**FAILING, "inputSchema": {"type": "object"}})
    done = _cli(system, "run", workflow_id, "-i", "asset=s3://workflow-uploads/nobody/x.png")
    assert done.returncode == FAILED
    run_id = done.stdout.split()[0]
    refused = _cli(system, "runs", "cancel", run_id)
    assert refused.returncode == CONFLICT, refused.stderr
    assert "already failed" in refused.stderr


def test_a_run_still_going_when_the_timeout_passes_exits_10_and_keeps_running(
    system: Any, tmp_path: Path
) -> None:
    workflow_id = _put(system, tmp_path, WAITS)  # a five-minute wait: it cannot end first
    shown = _cli(system, "run", workflow_id, "--timeout", "1")
    assert shown.returncode == TIMEOUT, shown.stderr
    assert "after the wait" in shown.stderr
    as_json = _cli(system, "run", workflow_id, "--timeout", "1", "--json")
    assert as_json.returncode == TIMEOUT, as_json.stderr
    run = json.loads(as_json.stdout)
    assert run["status"] in ("queued", "running")
    runs = json.loads(_cli(system, "runs", "list", "--workflow", workflow_id, "--json").stdout)
    assert len(runs) == 2
    for r in runs:
        assert _cli(system, "runs", "cancel", r["runId"]).returncode == COMPLETED
