"""What the client returns: the contract models, parsed tolerantly, and a few wrappers.

The contract models forbid unknown fields (the server must not send what it did not
document), but a client must keep working when a newer server adds a field. Responses are
validated against the contract first; when the only complaints are unknown fields, those
fields are dropped and the rest is validated again. Every other mismatch still raises."""

from __future__ import annotations

import copy
import mimetypes
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx
from contracts.api import AssetResource, WebhookSecret, WorkflowResource
from contracts.run import OutputAsset, RunError, RunResource, RunStatus, StepView
from pydantic import BaseModel, ValidationError

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

    def _target(self, path: str | Path) -> Path:
        target = Path(path)
        if target.is_dir():
            content_type = self.asset.content_type or ""
            ext = _EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ""
            suffix = f"-{self.asset.index}" if self.asset.index is not None else ""
            target = target / f"{self.asset.name}{suffix}{ext}"
        return target

    def _url(self) -> str:
        if not self.asset.url:
            raise ValueError(f"output {self.name!r} has no URL to download (type {self.type})")
        return self.asset.url

    def download(self, path: str | Path) -> Path:
        """Save the asset to `path` (a file, or a directory to save it in by its name)."""
        target, url = self._target(path), self._url()
        # A presigned URL carries its own authorization: no API key goes to the object store.
        with httpx.stream("GET", url, timeout=self.timeout) as response:
            response.raise_for_status()
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return target

    async def adownload(self, path: str | Path) -> Path:
        """`download` for asyncio code."""
        target, url = self._target(path), self._url()
        async with (
            httpx.AsyncClient(timeout=self.timeout) as http,
            http.stream("GET", url) as response,
        ):
            response.raise_for_status()
            with target.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
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
