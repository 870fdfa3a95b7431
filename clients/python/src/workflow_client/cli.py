"""`workflow`: the command line on top of the client (Typer, Rich).

Exit codes (also in the package README): see `ExitCode`."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import IntEnum
from itertools import islice
from pathlib import Path
from queue import Empty, Queue
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from workflow_client.client import Client
from workflow_client.errors import (
    BadRequest,
    Conflict,
    DownloadError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    WaitTimeout,
    WorkflowAPIError,
)
from workflow_client.inputs import InputError, assign, build_inputs
from workflow_client.models import Run, RunEvent, RunStatus


class ExitCode(IntEnum):
    OK = 0  # done; for `run`/`watch`: the run completed
    ERROR = 1  # anything else the API refused, or a bug
    USAGE = 2  # bad arguments (Click's own code), e.g. `-i` without `=`
    FAILED = 3  # the run ended `failed`
    CANCELED = 4  # the run ended `canceled`
    INVALID = 5  # the request was invalid: 400, 413, 415, 422 (with the failing paths)
    NOT_FOUND = 6  # 404: no such workflow, version or run
    AUTH = 7  # 401 or 403: no key, a wrong key, or a missing scope
    UNAVAILABLE = 8  # the API is unreachable, or answered 503 after every retry
    RATE_LIMITED = 9  # 429 after every retry
    TIMEOUT = 10  # the run had not ended when --timeout passed (it keeps running)
    CONFLICT = 11  # 409, e.g. cancelling a run that already completed
    DOWNLOAD = 12  # the run completed but an output could not be downloaded (--download)


_BY_ERROR: list[tuple[type[WorkflowAPIError], ExitCode]] = [
    (InvalidInput, ExitCode.INVALID),
    (BadRequest, ExitCode.INVALID),
    (NotFound, ExitCode.NOT_FOUND),
    (Unauthorized, ExitCode.AUTH),
    (Forbidden, ExitCode.AUTH),
    (RateLimited, ExitCode.RATE_LIMITED),
    (Unavailable, ExitCode.UNAVAILABLE),
    (Conflict, ExitCode.CONFLICT),
]
_BY_STATUS = {
    RunStatus.COMPLETED: ExitCode.OK,
    RunStatus.FAILED: ExitCode.FAILED,
    RunStatus.CANCELED: ExitCode.CANCELED,
}
_STYLE = {
    "completed": "green",
    "succeeded": "green",
    "failed": "red",
    "canceled": "yellow",
    "running": "cyan",
    "retrying": "yellow",
}

app = typer.Typer(
    name="workflow",
    help="Run workflows of the Workflow API. WORKFLOW_API_URL and WORKFLOW_API_KEY configure "
    "it (make up writes both to .stack/env).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Runs: list, get, cancel, watch.", no_args_is_help=True)
assets_app = typer.Typer(help="Input assets.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhooks.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(assets_app, name="assets")
app.add_typer(webhooks_app, name="webhooks")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _client(ctx: typer.Context) -> Client:
    url, key = ctx.obj or (None, None)
    return Client(url, key)


def _print_json(value: Any) -> None:
    # Plain stdout, not Rich: no wrapping or markup that would break a JSON parser.
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def exit_code_for(error: WorkflowAPIError) -> ExitCode:
    for cls, code in _BY_ERROR:
        if isinstance(error, cls):
            return code
    return ExitCode.ERROR


@contextmanager
def _handled(as_json: bool) -> Iterator[None]:
    """API errors become a message on stderr (the problem document on stdout with --json)
    and the exit code that names them."""
    try:
        yield
    except WorkflowAPIError as exc:
        if as_json:
            _print_json(exc.problem or {"status": exc.status, "title": exc.title})
        err.print(f"[red]error:[/red] {exc}", markup=True)
        raise typer.Exit(exit_code_for(exc)) from None
    except WaitTimeout as exc:
        run: Run | None = exc.run
        if as_json and run is not None:
            _print_json(run.to_dict())
        err.print(f"[yellow]{exc}[/yellow]", markup=True)
        raise typer.Exit(ExitCode.TIMEOUT) from None
    except DownloadError as exc:  # its message has no presigned query
        err.print(f"[red]error:[/red] {exc}", markup=True)
        raise typer.Exit(ExitCode.DOWNLOAD) from None
    except InputError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True)
        raise typer.Exit(ExitCode.USAGE) from None


@app.callback()
def main_options(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(envvar="WORKFLOW_API_URL", help="The API's base URL.")
    ] = None,
    key: Annotated[
        str | None, typer.Option(envvar="WORKFLOW_API_KEY", help="The API key (wfk_…).")
    ] = None,
) -> None:
    ctx.obj = (url, key)


def _steps_table(run: Run | None, steps: dict[str, dict[str, Any]], status: str) -> Group:
    title = Text(f"{run.workflow_id} v{run.workflow_version}  {run.run_id}  " if run else "")
    title.append(status, style=_STYLE.get(status, ""))
    table = Table(box=None, pad_edge=False)
    for column in ("step", "type", "status", "detail"):
        table.add_column(column)
    for node_id, step in steps.items():
        state = str(step.get("status", ""))
        table.add_row(
            node_id,
            str(step.get("type", "")),
            Text(state, style=_STYLE.get(state, "")),
            str(step.get("detail", "")),
        )
    return Group(title, table)


def _took(data: dict[str, Any]) -> str:
    try:
        started = datetime.fromisoformat(str(data["startedAt"]))
        finished = datetime.fromisoformat(str(data["finishedAt"]))
    except (KeyError, ValueError):
        return ""
    return f"{(finished - started).total_seconds():.2f} s"


_END = object()


def _events(client: Client, run_id: str, timeout: float) -> Iterator[RunEvent]:
    """The run's events, raising `WaitTimeout` once `timeout` seconds have passed.

    The stream is read in a thread: between events only keep-alive comments arrive, which
    no read timeout would cut, so the deadline is kept by the reader of the queue instead.
    The stream is closed when it ends, or, once the reader stopped early, at its next event
    (the thread is a daemon: leaving the command closes the connection in any case)."""
    queue: Queue[object] = Queue()
    stop = threading.Event()

    def pump() -> None:
        try:
            with client.runs.stream(run_id) as events:
                for event in events:
                    if stop.is_set():
                        return
                    queue.put(event)
        except BaseException as exc:  # handed to the main thread, which raises it
            queue.put(exc)
        queue.put(_END)

    threading.Thread(target=pump, name=f"sse-{run_id}", daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                item = queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except Empty:
                raise WaitTimeout(client.runs.get(run_id)) from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, RunEvent)
            yield item
    finally:
        stop.set()


def _watch(client: Client, run_id: str, live_output: bool, timeout: float) -> Run:
    """Follow the run's events until it ends, showing its steps live on stderr."""
    started = time.monotonic()
    steps: dict[str, dict[str, Any]] = {}
    status, current, final = "queued", None, None
    with Live(
        _steps_table(None, steps, status),
        console=err,
        refresh_per_second=8,
        transient=False,
        auto_refresh=live_output,
    ) as live:
        for event in _events(client, run_id, timeout):
            if event.run is not None:
                current = event.run
                status = current.status.value
                for step in current.steps:
                    row = steps.setdefault(step.node_id, {})
                    row.update(type=step.type, status=step.status.value)
                    if step.error is not None:
                        row["detail"] = step.error.message
                    elif step.started_at and step.finished_at:
                        took = (step.finished_at - step.started_at).total_seconds()
                        row["detail"] = f"{took:.2f} s"
                    elif step.items_total is not None:
                        row["detail"] = f"{step.items_done or 0}/{step.items_total} items"
                if current.finished:
                    final = current
            elif event.type.startswith("step.") and event.node_id:
                row = steps.setdefault(event.node_id, {})
                kind = event.type.removeprefix("step.")
                row["status"] = "running" if kind == "started" else kind
                error = event.data.get("error")
                if isinstance(error, dict) and "message" in error:
                    row["detail"] = error["message"]
                elif kind == "succeeded":
                    row["detail"] = _took(event.data)
            elif event.type.startswith("run."):
                status = event.type.removeprefix("run.")
                if status == "started":
                    status = "running"
            live.update(_steps_table(current, steps, status), refresh=True)
    if final is not None:
        return final
    left = timeout - (time.monotonic() - started)
    if left <= 0:
        raise WaitTimeout(client.runs.get(run_id))
    return client.runs.wait(run_id, timeout=left)


def _show_run(run: Run, downloaded: dict[int, Path]) -> None:
    out.print(f"{run.run_id}  {run.workflow_id} v{run.workflow_version}  {run.status.value}")
    if run.error is not None:
        where = f" at {run.error.node_id}" if run.error.node_id else ""
        out.print(f"error{where}: {run.error.code}: {run.error.message}")
    for position, output in enumerate(run.outputs):
        label = (
            output.name if output.asset.index is None else f"{output.name}[{output.asset.index}]"
        )
        if position in downloaded:
            out.print(f"  {label}: {downloaded[position]}")
        elif output.url or output.ref:
            out.print(f"  {label}: {output.url or output.ref}")
        else:
            out.print(f"  {label}: {json.dumps(output.value, ensure_ascii=False)}")


def _finish(run: Run, download: Path | None, as_json: bool) -> None:
    downloaded: dict[int, Path] = {}
    if download is not None and run.status is RunStatus.COMPLETED:
        downloaded = run.outputs.download(download)
    if as_json:
        _print_json(run.to_dict())
    else:
        _show_run(run, downloaded)
    code = _BY_STATUS.get(run.status)
    if code is None:  # only with --no-wait: started, not finished
        code = ExitCode.OK
    raise typer.Exit(code)


@app.command()
def put(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Definition JSON.")],
    workflow_id: Annotated[
        str | None, typer.Option("--id", help="The workflow id (default: the file's stem).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a workflow definition (a changed one becomes a new version)."""
    with _handled(as_json), _client(ctx) as client:
        try:
            workflow = client.workflows.put(workflow_id or file.stem, file)
        except ValueError as exc:
            raise InputError(f"{file}: {exc}") from None
    if as_json:
        _print_json(workflow.model_dump(mode="json", by_alias=True))
    else:
        out.print(f"{workflow.workflow_id} version {workflow.version}  ({workflow.name})")


@app.command()
def run(
    ctx: typer.Context,
    workflow_id: Annotated[str, typer.Argument(help="The workflow to run.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "-i",
            "--input",
            help="PATH=VALUE, e.g. -i prompt='a cat' -i options.quality=high; "
            "VALUE is JSON when it parses as JSON, else text.",
        ),
    ] = None,
    files: Annotated[
        list[str] | None,
        typer.Option("--file", help="PATH=FILE: upload FILE and pass its s3:// reference."),
    ] = None,
    version: Annotated[int | None, typer.Option(help="Pin a workflow version.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the end.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 300.0,
    download: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Save the asset outputs in this directory."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a workflow; by default wait for it, showing its steps as they happen."""
    if download is not None and not wait:
        raise typer.BadParameter("--download needs --wait (the default)", param_hint="--download")
    with _handled(as_json), _client(ctx) as client:
        body = build_inputs(inputs or [])
        for item in files or []:
            path, sep, name = item.partition("=")
            if not sep or not name:
                raise InputError(f"--file {item!r}: expected PATH=FILE, e.g. image=./in.png")
            try:
                ref = client.assets.upload(Path(name))
            except (OSError, ValueError) as exc:
                raise InputError(f"--file {item!r}: {exc}") from None
            assign(body, path, ref)
        if not wait:
            started = client.runs.create(workflow_id, body, version=version)
            if as_json:
                _print_json(started.to_dict())
            else:
                out.print(f"{started.run_id}  {started.status.value}")
            raise typer.Exit(ExitCode.OK)
        # --timeout bounds everything from the run request on, its retries included.
        started_at = time.monotonic()
        if as_json:
            finished = client.run(workflow_id, body, version=version, timeout=timeout)
        else:
            started = client.runs.create(workflow_id, body, version=version, timeout=timeout)
            left = timeout - (time.monotonic() - started_at)
            finished = _watch(client, started.run_id, err.is_terminal, left)
        _finish(finished, download, as_json)


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    workflow_id: Annotated[str | None, typer.Option("--workflow", help="Only this one.")] = None,
    status: Annotated[RunStatus | None, typer.Option(help="Only runs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Your runs, newest first."""
    with _handled(as_json), _client(ctx) as client:
        found = list(
            islice(
                client.runs.list(
                    workflow_id=workflow_id,
                    status=status.value if status else None,
                    page_size=min(limit, 100),
                ),
                limit,
            )
        )
    if as_json:
        _print_json([r.to_dict() for r in found])
        return
    table = Table(box=None, pad_edge=False)
    # Run ids are what a user copies: never cut, whatever the terminal's width.
    table.add_column("run", no_wrap=True, min_width=len("run_") + 28)
    for column in ("workflow", "status", "created"):
        table.add_column(column, no_wrap=True)
    for r in found:
        table.add_row(
            r.run_id,
            f"{r.workflow_id} v{r.workflow_version}",
            Text(r.status.value, style=_STYLE.get(r.status.value, "")),
            r.resource.created_at.isoformat(timespec="seconds"),
        )
    out.print(table)


@runs_app.command("get")
def runs_get(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument()],
    as_json: JsonOpt = False,
) -> None:
    """A run as it is now (exit 0 whatever its status)."""
    with _handled(as_json), _client(ctx) as client:
        found = client.runs.get(run_id)
    if as_json:
        _print_json(found.to_dict())
    else:
        _show_run(found, {})
        for step in found.steps:
            out.print(f"  step {step.node_id} ({step.type}): {step.status.value}")


@runs_app.command("cancel")
def runs_cancel(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument()],
    as_json: JsonOpt = False,
) -> None:
    """Cancel a queued or running run (a finished one: exit 11)."""
    with _handled(as_json), _client(ctx) as client:
        canceled = client.runs.cancel(run_id)
    if as_json:
        _print_json(canceled.to_dict())
    else:
        out.print(f"{canceled.run_id}  {canceled.status.value}")


@runs_app.command("watch")
def runs_watch(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument()],
    download: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Save the asset outputs in this directory."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 3600.0,
    as_json: JsonOpt = False,
) -> None:
    """Follow a run's steps until it ends; the exit code says how it ended."""
    with _handled(as_json), _client(ctx) as client:
        if as_json:
            finished = client.runs.wait(run_id, timeout=timeout)
        else:
            finished = _watch(client, run_id, err.is_terminal, timeout)
        _finish(finished, download, as_json)


@assets_app.command("upload")
def assets_upload(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    content_type: Annotated[
        str | None, typer.Option(help="Default: from the file's name or first bytes.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload an input asset and print its s3:// reference."""
    with _handled(as_json), _client(ctx) as client:
        try:
            asset = client.assets.create(path, content_type=content_type)
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from None
    if as_json:
        _print_json(asset.model_dump(mode="json", by_alias=True))
    else:
        out.print(asset.ref)


@webhooks_app.command("secret")
def webhooks_secret(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The tenant's webhook signing secret (whsec_…), to verify deliveries with."""
    with _handled(as_json), _client(ctx) as client:
        secret = client.webhooks.secret()
    if as_json:
        _print_json(secret.model_dump(mode="json", by_alias=True))
    else:
        out.print(secret.secret)


def main() -> None:
    app()
