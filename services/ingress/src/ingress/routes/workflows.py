"""The workflow registry: immutable versions, validated at registration."""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Annotated, Any

from contracts.api import ProblemItem, WorkflowList, WorkflowResource
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from storage.workflows import WorkflowRecord
from workflow.definition import WorkflowDefinition, canonical_json, definition_hash
from workflow.validation import (
    Problem,
    chain_references,
    definition_size_problem,
    find_chain_cycles,
    parse_definition,
)

from ingress.auth import TenantId
from ingress.body import read_json
from ingress.problems import ProblemError
from ingress.runtime import Runtime, RuntimeDep
from ingress.workflow_openapi import workflow_document

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])

MAX_CHAIN_FETCH = 200
OPENAPI_CACHE_SIZE = 256
OPENAPI_CACHE_BYTES = 32 * 1024 * 1024
"""Workflow documents kept built: most are a few dozen kilobytes, but a definition's
description alone may be half a megabyte, so the bytes are bounded too."""

DocumentKey = tuple[str, str, int, bool, str, str]

WorkflowIdPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", description="Your name for it.")
]


OPENAPI_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An OpenAPI 3.1 document of running this workflow: "
        "`POST /v1/workflows/{workflowId}/run` with its own input schema and named outputs, "
        "for client generators.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["openapi", "info", "paths"],
                    "properties": {"openapi": {"type": "string", "const": "3.1.0"}},
                }
            }
        },
    }
}


def resource(record: WorkflowRecord) -> WorkflowResource:
    definition = json.loads(record.definition_json)
    return WorkflowResource(
        workflow_id=record.workflow_id,
        version=record.version,
        name=record.name,
        description=definition.get("description"),
        definition=definition,
        created_at=record.created_at,
    )


@router.put(
    "/{workflow_id}",
    response_model=WorkflowResource,
    response_model_by_alias=True,
    status_code=201,
    responses={200: {"description": "Unchanged: the current version"}},
)
async def register_workflow(
    workflow_id: WorkflowIdPath,
    request: Request,
    response: Response,
    tenant_id: TenantId,
    runtime: RuntimeDep,
) -> WorkflowResource:
    """Register a definition. A changed one becomes a new immutable version (201); an identical
    one returns the current version (200)."""
    limits = runtime.settings
    raw = await read_json(request, limits)
    if not isinstance(raw, dict):
        raise ProblemError(422, "the definition must be a JSON object", kind="invalid-definition")
    too_large = definition_size_problem(raw, limits)
    if too_large is not None:
        raise ProblemError(413, too_large.message, kind="definition-too-large")
    # Validation walks a tenant's document and compiles its schema: CPU work kept off the
    # event loop, so other requests (and /healthz) are answered meanwhile.
    defn, problems = await run_in_threadpool(parse_definition, raw, limits)
    if defn is not None and not problems:
        problems = await _chain_problems(runtime, tenant_id, workflow_id, defn)
    if defn is None or problems:
        raise ProblemError(
            422,
            f"the definition has {len(problems)} problem(s)",
            kind="invalid-definition",
            errors=[ProblemItem(path=p.path, message=p.message) for p in problems],
        )
    record, created = await runtime.workflows.register(
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        name=defn.name,
        definition_json=canonical_json(defn),
        definition_hash=definition_hash(defn),
        now=datetime.now(UTC),
    )
    runtime.cached_workflows.forget(tenant_id, workflow_id)
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/workflows/{workflow_id}/versions/{record.version}"
    return resource(record)


async def _chain_problems(
    runtime: Runtime, tenant_id: str, workflow_id: str, defn: WorkflowDefinition
) -> list[Problem]:
    """Fetch every workflow this one chains to, transitively, and look for a loop back."""
    lookup: dict[tuple[str, int | None], WorkflowDefinition] = {}
    pending = list(chain_references(defn))
    while pending and len(lookup) < MAX_CHAIN_FETCH:
        ref = pending.pop()
        if ref in lookup:
            continue
        target_id, version = ref
        if target_id == workflow_id and version is None:
            lookup[ref] = defn
            continue
        record = (
            await runtime.workflows.get(tenant_id, target_id, version)
            if version is not None
            else await runtime.workflows.latest(tenant_id, target_id)
        )
        if record is None:
            continue
        found = runtime.definitions.of(record)
        lookup[ref] = found
        pending.extend(chain_references(found))
    return find_chain_cycles(workflow_id, defn, lookup)


@router.get("", response_model=WorkflowList, response_model_by_alias=True)
async def list_workflows(tenant_id: TenantId, runtime: RuntimeDep) -> WorkflowList:
    """The latest version of each of your workflows."""
    records = await runtime.workflows.list_latest(tenant_id)
    return WorkflowList(items=[resource(r) for r in records])


@router.get("/{workflow_id}", response_model=WorkflowResource, response_model_by_alias=True)
async def get_workflow(
    workflow_id: WorkflowIdPath, tenant_id: TenantId, runtime: RuntimeDep
) -> WorkflowResource:
    return resource(await _latest(runtime, tenant_id, workflow_id))


@router.get(
    "/{workflow_id}/versions/{version}",
    response_model=WorkflowResource,
    response_model_by_alias=True,
)
async def get_workflow_version(
    workflow_id: WorkflowIdPath,
    version: Annotated[int, Path(ge=1)],
    tenant_id: TenantId,
    runtime: RuntimeDep,
) -> WorkflowResource:
    return resource(await _version(runtime, tenant_id, workflow_id, version))


@router.get("/{workflow_id}/openapi.json", response_class=JSONResponse, responses=OPENAPI_RESPONSES)
async def get_workflow_openapi(
    workflow_id: WorkflowIdPath, request: Request, tenant_id: TenantId, runtime: RuntimeDep
) -> Response:
    """The OpenAPI document of running the latest version of this workflow."""
    record = await _latest(runtime, tenant_id, workflow_id)
    return await _openapi(runtime, request, record, pinned=False)


@router.get(
    "/{workflow_id}/versions/{version}/openapi.json",
    response_class=JSONResponse,
    responses=OPENAPI_RESPONSES,
)
async def get_workflow_version_openapi(
    workflow_id: WorkflowIdPath,
    version: Annotated[int, Path(ge=1)],
    request: Request,
    tenant_id: TenantId,
    runtime: RuntimeDep,
) -> Response:
    """The OpenAPI document of running this version of the workflow (requests name it)."""
    record = await _version(runtime, tenant_id, workflow_id, version)
    return await _openapi(runtime, request, record, pinned=True)


async def _latest(runtime: Runtime, tenant_id: str, workflow_id: str) -> WorkflowRecord:
    record = await runtime.workflows.latest(tenant_id, workflow_id)
    if record is None:
        raise ProblemError(404, f"no workflow {workflow_id!r}", kind="not-found")
    return record


async def _version(
    runtime: Runtime, tenant_id: str, workflow_id: str, version: int
) -> WorkflowRecord:
    record = await runtime.workflows.get(tenant_id, workflow_id, version)
    if record is None:
        raise ProblemError(
            404, f"workflow {workflow_id!r} has no version {version}", kind="not-found"
        )
    return record


class DocumentCache:
    """Built workflow documents (their JSON), least recently used first out.

    A version is immutable, so its document only changes with what the key holds: who asks,
    which version, whether the document is pinned to it, and the base URL it names. Read and
    written on the event loop only, so it needs no lock."""

    def __init__(
        self, size: int = OPENAPI_CACHE_SIZE, max_bytes: int = OPENAPI_CACHE_BYTES
    ) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.total = 0
        self.bodies: OrderedDict[DocumentKey, bytes] = OrderedDict()

    def get(self, key: DocumentKey) -> bytes | None:
        body = self.bodies.get(key)
        if body is not None:
            self.bodies.move_to_end(key)
        return body

    def put(self, key: DocumentKey, body: bytes) -> None:
        old = self.bodies.pop(key, None)
        self.total -= len(old) if old is not None else 0
        self.bodies[key] = body
        self.total += len(body)
        while len(self.bodies) > self.size or (self.total > self.max_bytes and self.bodies):
            _, evicted = self.bodies.popitem(last=False)
            self.total -= len(evicted)


def _document_cache(request: Request) -> DocumentCache:
    # One per application (not per process): an application's store and limits are its own.
    state = request.app.state
    cache = getattr(state, "workflow_documents", None)
    if not isinstance(cache, DocumentCache):
        cache = state.workflow_documents = DocumentCache()
    return cache


async def _openapi(
    runtime: Runtime, request: Request, record: WorkflowRecord, *, pinned: bool
) -> Response:
    base_url = str(request.base_url)
    key: DocumentKey = (
        record.tenant_id,
        record.workflow_id,
        record.version,
        pinned,
        base_url,
        # Versions are never deleted, so never reused; the hash makes sure all the same.
        record.definition_hash,
    )
    cache = _document_cache(request)
    body = cache.get(key)
    if body is None:
        # Building it evaluates a tenant's schema (does `{}` pass?): off the loop, and so is
        # rendering it as JSON.
        body = await run_in_threadpool(_render, runtime, record, base_url, pinned)
        cache.put(key, body)
    return Response(body, media_type="application/json")


def _render(runtime: Runtime, record: WorkflowRecord, base_url: str, pinned: bool) -> bytes:
    doc = workflow_document(
        workflow_id=record.workflow_id,
        version=record.version,
        definition=runtime.definitions.of(record),
        base_url=base_url,
        pinned=pinned,
        limits=runtime.settings,
    )
    # The bytes a JSONResponse of it would send, so a cached answer is the same answer.
    return bytes(JSONResponse(doc).body)
