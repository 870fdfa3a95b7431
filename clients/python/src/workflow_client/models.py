"""What the client returns: the contract models, parsed tolerantly, and a few wrappers.

The contract models forbid unknown fields (the server must not send what it did not
document), but a client must keep working when a newer server adds a field. Responses are
validated against the contract first; when the only complaints are unknown fields, those
fields are dropped and the rest is validated again. Every other mismatch still raises."""

from __future__ import annotations

import contextlib
import copy
import mimetypes
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar, overload
from urllib.parse import urlsplit, urlunsplit

import httpx
from contracts.api import AssetResource, WebhookSecret, WorkflowResource
from contracts.run import OutputAsset, RunError, RunResource, RunStatus, StepView
from pydantic import BaseModel, ValidationError

from workflow_client.errors import DownloadError

__all__ = [
    "AssetResource",
    "Output",
    "Outputs",
    "Run",
    "RunEvent",
    "RunStatus",
    "WebhookSecret",
    "WorkflowResource",
    "parse",
]

M = TypeVar("M", bound=BaseModel)
TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})


def _drop(data: Any, loc: Sequence[int | str]) -> None:
    *parents, last = loc
    for key in parents:
        data = data[key]
    if isinstance(data, dict):
        data.pop(last, None)


def parse(model: type[M], data: Any) -> M:
    """`data` as `model`, ignoring fields the contract does not know (see the module doc)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = exc.errors()
        if not problems or any(p["type"] != "extra_forbidden" for p in problems):
            raise
        pruned = copy.deepcopy(data)
        # Deepest first, so dropping one field never moves the path of another.
        for loc in sorted((p["loc"] for p in problems), key=len, reverse=True):
            _drop(pruned, loc)
        return model.model_validate(pruned)


_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}
_MAX_NAME = 120


def safe_file_name(name: str) -> str:
    """`name` as one file name that stays in its directory: output names come from workflow
    authors (`../../x`, `/abs` and `a/b` are valid names), so every character but letters,
    digits, `_`, `.` and `-` becomes `_`, and leading dots too (no `.`, `..` or hidden file)."""
    safe = re.sub(r"[^\w.-]", "_", name)[:_MAX_NAME]
    safe = re.sub(r"^\.+", lambda m: "_" * len(m.group()), safe)
    return safe or "output"


def redact(url: str) -> str:
    """`url` without its query and fragment: a presigned URL's query is its credential."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an invalid URL>"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _scrub(text: str, url: str) -> str:
    query = urlsplit(url).query
    text = text.replace(url, redact(url))
    return text.replace(query, "…") if query else text


@dataclass(frozen=True)
class Output:
    """One output of a run: an asset (`ref`, `url`) or a value (`value`)."""

    asset: OutputAsset
    timeout: float = 60.0

    @property
    def name(self) -> str:
        return self.asset.name

    @property
    def type(self) -> str:
        return self.asset.type

    @property
    def ref(self) -> str | None:
        return self.asset.ref

    @property
    def url(self) -> str | None:
        return self.asset.url

    @property
    def value(self) -> Any:
        return self.asset.value

    def _name_parts(self) -> tuple[str, str]:
        content_type = self.asset.content_type or ""
        ext = _EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ""
        suffix = f"-{self.asset.index}" if self.asset.index is not None else ""
        return safe_file_name(f"{self.asset.name}{suffix}"), re.sub(r"[^\w.-]", "_", ext)

    def file_name(self) -> str:
        """The name `download(directory)` saves it as: `<name>.<ext>`, `<name>-<index>.<ext>`
        for a list output, reduced to a safe file name (see `safe_file_name`)."""
        stem, ext = self._name_parts()
        return stem + ext

    def _target(self, path: str | Path, taken: set[str] | None = None) -> Path:
        target = Path(path)
        if not target.is_dir():
            return target
        directory = target
        stem, ext = self._name_parts()
        name = stem + ext
        if taken is not None:
            counter = 0
            while name.casefold() in taken:  # casefold: macOS and Windows ignore case
                counter += 1
                name = f"{stem}-{counter}{ext}"
            taken.add(name.casefold())
        target = directory / name
        if not target.resolve().is_relative_to(directory.resolve()):
            raise DownloadError(
                f"output {self.name!r}: {name!r} is not a file name in {directory}",
                output=self.name,
                url=redact(self.asset.url or ""),
            )
        return target

    def _url(self) -> str:
        if not self.asset.url:
            raise ValueError(f"output {self.name!r} has no URL to download (type {self.type})")
        return self.asset.url

    def _error(self, exc: Exception, url: str, target: Path) -> DownloadError:
        status = None
        if isinstance(exc, httpx.HTTPStatusError):
            status = exc.response.status_code
            detail = f"HTTP {status} {exc.response.reason_phrase}".rstrip()
        elif isinstance(exc, httpx.HTTPError):
            detail = _scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), url)
        else:
            detail = f"cannot write {target}: {exc}"
        return DownloadError(
            f"output {self.name!r}: cannot download {redact(url)}: {detail}",
            output=self.name,
            url=redact(url),
            status=status,
        )

    @staticmethod
    def _temporary(target: Path) -> tuple[Path, IO[bytes]]:
        # In the target's directory, so that os.replace is a rename; opened with "x" (a new
        # file, mode per umask), never through a name an attacker could have prepared.
        part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
        return part, part.open("xb")

    def download(self, path: str | Path, *, _taken: set[str] | None = None) -> Path:
        """Save the asset to `path` (a file, or a directory to save it in under
        `file_name()`). The bytes go to a temporary file replaced into place once complete:
        a failed download leaves no partial file and keeps what `path` held. Raises
        `DownloadError` (no presigned query in its message)."""
        target, url = self._target(path, _taken), self._url()
        part: Path | None = None
        try:
            part, out = self._temporary(target)
            # A presigned URL carries its own authorization: no API key goes to the store.
            with out, httpx.stream("GET", url, timeout=self.timeout) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    out.write(chunk)
            os.replace(part, target)
            part = None
        except (httpx.HTTPError, OSError) as exc:
            raise self._error(exc, url, target) from None
        finally:
            if part is not None:
                with contextlib.suppress(OSError):
                    part.unlink()
        return target

    async def adownload(self, path: str | Path, *, _taken: set[str] | None = None) -> Path:
        """`download` for asyncio code."""
        target, url = self._target(path, _taken), self._url()
        part: Path | None = None
        try:
            part, out = self._temporary(target)
            with out:
                async with (
                    httpx.AsyncClient(timeout=self.timeout) as http,
                    http.stream("GET", url) as response,
                ):
                    response.raise_for_status()
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
            os.replace(part, target)
            part = None
        except (httpx.HTTPError, OSError) as exc:
            raise self._error(exc, url, target) from None
        finally:
            if part is not None:
                with contextlib.suppress(OSError):
                    part.unlink()
        return target


class Outputs(Sequence[Output]):
    """A run's outputs, by position or by name (`outputs["square"]`, the first of that name)."""

    def __init__(self, items: Sequence[Output]) -> None:
        self._items = list(items)

    @overload
    def __getitem__(self, key: int) -> Output: ...
    @overload
    def __getitem__(self, key: slice) -> Sequence[Output]: ...
    @overload
    def __getitem__(self, key: str) -> Output: ...
    def __getitem__(self, key: int | slice | str) -> Output | Sequence[Output]:
        if isinstance(key, str):
            for item in self._items:
                if item.name == key:
                    return item
            raise KeyError(key)
        return self._items[key]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Output]:
        return iter(self._items)

    def __contains__(self, key: object) -> bool:
        return any(item.name == key for item in self._items) or key in self._items

    def names(self) -> list[str]:
        return list(dict.fromkeys(item.name for item in self._items))

    def all(self, name: str) -> list[Output]:
        """Every output of `name` (a list output has several, by `index`)."""
        return [item for item in self._items if item.name == name]

    def download(self, directory: str | Path) -> dict[int, Path]:
        """Save every output that has a URL in `directory` (created if needed), by position.
        Names that reduce to the same file name get a counter (`a-0.png`, `a-0-1.png`), so
        no output overwrites another."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        taken: set[str] = set()
        return {
            position: item.download(folder, _taken=taken)
            for position, item in enumerate(self._items)
            if item.url
        }

    async def adownload(self, directory: str | Path) -> dict[int, Path]:
        """`download` for asyncio code."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a local directory)
        taken: set[str] = set()
        return {
            position: await item.adownload(folder, _taken=taken)
            for position, item in enumerate(self._items)
            if item.url
        }


class Run:
    """A run as the API returns it (`resource`, the contract model) with outputs by name."""

    def __init__(self, resource: RunResource, *, download_timeout: float = 60.0) -> None:
        self.resource = resource
        self.outputs = Outputs([Output(o, download_timeout) for o in resource.outputs])

    @property
    def run_id(self) -> str:
        return self.resource.run_id

    @property
    def workflow_id(self) -> str:
        return self.resource.workflow_id

    @property
    def workflow_version(self) -> int:
        return self.resource.workflow_version

    @property
    def status(self) -> RunStatus:
        return self.resource.status

    @property
    def finished(self) -> bool:
        return self.resource.status in TERMINAL

    @property
    def error(self) -> RunError | None:
        return self.resource.error

    @property
    def steps(self) -> list[StepView]:
        return self.resource.steps

    @property
    def metadata(self) -> dict[str, Any]:
        return self.resource.metadata

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-ready camelCase, as the API sent it."""
        return self.resource.model_dump(mode="json", by_alias=True)

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, {self.resource.workflow_id!r}, status={self.status.value!r})"


@dataclass(frozen=True)
class RunEvent:
    """One Server-Sent Event of `GET /v1/runs/{id}/events`.

    `type` is `run` (the whole run: first and last), or `step.started`, `step.succeeded`,
    `step.failed`, `step.progress`, `run.started`, `run.completed`, …; `data` its JSON.
    """

    type: str
    data: dict[str, Any]
    id: str | None = None
    run: Run | None = field(default=None, compare=False)

    @property
    def node_id(self) -> str | None:
        node = self.data.get("nodeId")
        return node if isinstance(node, str) else None
