"""Downloading outputs: safe file names, no collisions, atomic writes, typed errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from contracts.run import RunResource
from typer.testing import CliRunner
from workflow_client import DownloadError, Run, WorkflowError
from workflow_client.cli import ExitCode, app
from workflow_client.models import safe_file_name

API = "http://api.test"
SIGNED = "?X-Amz-Algorithm=AWS4&X-Amz-Signature=deadbeefcafe"
RUN_ID = "run_" + "0" * 28


def _output(name: str, url: str, index: int | None = None) -> dict[str, Any]:
    output = {"name": name, "type": "image", "ref": "s3://b/k", "url": url}
    output["contentType"] = "image/png"
    if index is not None:
        output["index"] = index
    return output


def _run(*outputs: dict[str, Any]) -> Run:
    return Run(
        RunResource.model_validate(
            {
                "runId": RUN_ID,
                "workflowId": "wf",
                "workflowVersion": 1,
                "status": "completed",
                "outputs": list(outputs),
                "createdAt": "2026-11-29T20:00:00Z",
            }
        )
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../x", "___.._x"),
        ("/abs", "_abs"),
        ("a/b", "a_b"),
        (".", "_"),
        ("..", "__"),
        ("", "output"),
        ("a\\b:c", "a_b_c"),
        ("square", "square"),
    ],
)
def test_output_names_are_reduced_to_safe_file_names(name: str, expected: str) -> None:
    assert safe_file_name(name) == expected


@respx.mock
def test_a_download_never_writes_outside_the_target_directory(tmp_path: Path) -> None:
    respx.get(url__startswith="http://s3/").mock(return_value=httpx.Response(200, content=b"png"))
    target = tmp_path / "out"
    run = _run(
        _output("../../escape", "http://s3/1"),
        _output("/abs", "http://s3/2"),
        _output("a/b", "http://s3/3"),
        _output("..", "http://s3/4"),
    )
    saved = run.outputs.download(target)
    names = {p.name for p in saved.values()}
    assert names == {"___.._escape.png", "_abs.png", "a_b.png", "__.png"}
    for path in saved.values():
        assert path.resolve().is_relative_to(target.resolve())
        assert path.read_bytes() == b"png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@respx.mock
def test_outputs_whose_names_collide_do_not_overwrite_each_other(tmp_path: Path) -> None:
    respx.get("http://s3/first").mock(return_value=httpx.Response(200, content=b"first"))
    respx.get("http://s3/second").mock(return_value=httpx.Response(200, content=b"second"))
    run = _run(_output("a", "http://s3/first", index=0), _output("a-0", "http://s3/second"))
    saved = run.outputs.download(tmp_path)
    assert saved[0].name == "a-0.png"
    assert saved[1].name == "a-0-1.png"
    assert saved[0].read_bytes() == b"first"
    assert saved[1].read_bytes() == b"second"


def _failing_body() -> Iterator[bytes]:
    yield b"partial"
    raise httpx.ReadError("connection reset")


@respx.mock
def test_a_failed_download_leaves_no_partial_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    respx.get("http://s3/k").mock(
        side_effect=lambda request: httpx.Response(200, content=_failing_body())
    )
    existing = tmp_path / "kept.png"
    existing.write_bytes(b"old")
    output = _run(_output("picture", "http://s3/k" + SIGNED)).outputs["picture"]
    with pytest.raises(DownloadError):
        output.download(existing)
    with pytest.raises(DownloadError):
        output.download(tmp_path)
    assert existing.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.png"]


async def _failing_async_body() -> AsyncIterator[bytes]:
    yield b"partial"
    raise httpx.ReadError("connection reset")


@respx.mock
async def test_a_failed_async_download_leaves_no_partial_file_and_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    respx.get("http://s3/k").mock(return_value=httpx.Response(200, content=_failing_async_body()))
    existing = tmp_path / "picture.png"
    existing.write_bytes(b"old")
    output = _run(_output("picture", "http://s3/k" + SIGNED)).outputs["picture"]
    with pytest.raises(DownloadError):
        await output.adownload(tmp_path)
    assert existing.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picture.png"]  # noqa: ASYNC240


@respx.mock
async def test_an_async_download_replaces_the_file_once_complete(tmp_path: Path) -> None:
    respx.get("http://s3/k").mock(return_value=httpx.Response(200, content=b"new"))
    (tmp_path / "picture.png").write_bytes(b"old")
    run = _run(_output("picture", "http://s3/k"))
    saved = await run.outputs.adownload(tmp_path)
    assert saved[0].read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picture.png"]  # noqa: ASYNC240


@respx.mock
def test_a_download_error_is_typed_and_hides_the_presigned_query(tmp_path: Path) -> None:
    respx.get("http://s3/k").mock(return_value=httpx.Response(403, text="SignatureDoesNotMatch"))
    output = _run(_output("picture", "http://s3/k" + SIGNED)).outputs["picture"]
    with pytest.raises(DownloadError) as raised:
        output.download(tmp_path)
    error = raised.value
    assert isinstance(error, WorkflowError)
    assert error.status == 403
    assert error.url == "http://s3/k"
    assert "X-Amz-Signature" not in str(error)
    assert "deadbeef" not in str(error)
    assert "http://s3/k" in str(error)


@respx.mock
def test_a_transport_error_of_a_download_hides_the_presigned_query(tmp_path: Path) -> None:
    url = "http://s3/k" + SIGNED
    respx.get("http://s3/k").mock(side_effect=httpx.ConnectError(f"cannot connect to {url}"))
    output = _run(_output("picture", url)).outputs["picture"]
    with pytest.raises(DownloadError) as raised:
        output.download(tmp_path)
    assert "X-Amz-Signature" not in str(raised.value)
    assert "deadbeef" not in str(raised.value)


def _completed(url: str) -> dict[str, Any]:
    return {
        "runId": RUN_ID,
        "workflowId": "wf",
        "workflowVersion": 1,
        "status": "completed",
        "outputs": [_output("picture", url)],
        "createdAt": "2026-11-29T20:00:00Z",
    }


@respx.mock
def test_the_cli_maps_a_failed_download_to_its_exit_code_without_the_signature(
    tmp_path: Path,
) -> None:
    respx.get(f"{API}/v1/runs/{RUN_ID}").mock(
        return_value=httpx.Response(200, json=_completed("http://s3/k" + SIGNED))
    )
    respx.get("http://s3/k").mock(return_value=httpx.Response(500))
    result = CliRunner().invoke(
        app,
        [
            "--url",
            API,
            "--key",
            "k",
            "runs",
            "watch",
            RUN_ID,
            "--json",
            "--download",
            str(tmp_path),
        ],
    )
    assert result.exit_code == ExitCode.DOWNLOAD == 12
    assert "X-Amz-Signature" not in result.output
    assert "deadbeef" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_cli_refuses_download_without_wait(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["--url", API, "run", "wf", "--no-wait", "--download", str(tmp_path)]
    )
    assert result.exit_code == ExitCode.USAGE == 2
    assert "--download needs --wait" in result.output
