"""The admin API: API keys and tenant limits, for the operator (`ADMIN_API_KEY`).

Not part of the public OpenAPI document (tenants never call it); the README lists it. The
same operations are `python -m ingress.admin` commands.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from storage.keys import SCOPES, KeyInfo
from storage.tenants import LIMIT_FIELDS

from ingress.auth import AdminOnly
from ingress.body import parse, read_json
from ingress.problems import ProblemError
from ingress.ratelimit import resolve
from ingress.runtime import RuntimeDep

router = APIRouter(prefix="/v1/admin", dependencies=[AdminOnly], include_in_schema=False)

TenantIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class KeyRequest(_Model):
    tenant_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(default="", max_length=200)
    scopes: list[str] = Field(default_factory=lambda: list(SCOPES))


class KeyView(_Model):
    key_id: str
    tenant_id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = None


class CreatedKey(KeyView):
    key: str
    """Shown this once: only its hash is stored."""


class KeyList(_Model):
    items: list[KeyView]


class LimitsBody(_Model):
    """A number is the tenant's limit, null means none; a field left out means the default."""

    requests_per_second: float | None = Field(default=None, gt=0)
    runs_per_minute: int | None = Field(default=None, ge=1)
    concurrent_runs: int | None = Field(default=None, ge=1)
    stored_bytes: int | None = Field(default=None, ge=0)


class LimitsView(_Model):
    tenant_id: str
    own: dict[str, float | None]
    """What the tenant has of its own (null: unlimited)."""
    effective: dict[str, float | None]
    """What applies: its own, else the service defaults."""


def _view(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "tenant_id": info.tenant_id,
        "name": info.name,
        "prefix": info.prefix,
        "scopes": list(info.scopes),
        "created_at": info.created_at,
        "revoked_at": info.revoked_at,
    }


@router.post("/keys", status_code=201, response_model=CreatedKey, response_model_by_alias=True)
async def create_key(request: Request, runtime: RuntimeDep) -> CreatedKey:
    body = parse(KeyRequest, await read_json(request, runtime.settings))
    unknown = sorted(set(body.scopes) - set(SCOPES))
    if unknown:
        raise ProblemError(
            422, f"unknown scopes {unknown}; known: {', '.join(SCOPES)}", kind="invalid-request"
        )
    info, key = await runtime.keys.create(
        tenant_id=body.tenant_id, name=body.name, scopes=body.scopes, now=datetime.now(UTC)
    )
    return CreatedKey(**_view(info), key=key)


@router.get("/keys", response_model=KeyList, response_model_by_alias=True)
async def list_keys(
    runtime: RuntimeDep,
    tenant_id: Annotated[str, Query(alias="tenantId", min_length=1, max_length=128)],
) -> KeyList:
    """The tenant's keys (revoked ones too): their prefix, never the key or its hash."""
    return KeyList(items=[KeyView(**_view(k)) for k in await runtime.keys.list(tenant_id)])


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(
    runtime: RuntimeDep, key_id: Annotated[str, Path(pattern=r"^key_[0-9a-f]{28}$")]
) -> Response:
    """Revoke a key: every replica refuses it within `CACHE_SECONDS` (1 s). Idempotent."""
    if await runtime.keys.revoke(key_id, now=datetime.now(UTC)) is None:
        raise ProblemError(404, f"no key {key_id!r}", kind="not-found")
    return Response(status_code=204)


async def _limits_view(runtime: RuntimeDep, tenant_id: str) -> LimitsView:
    own = await runtime.tenants.limits(tenant_id)
    effective = resolve(runtime.settings, own)
    return LimitsView(
        tenant_id=tenant_id,
        own=own,
        effective={
            "requestsPerSecond": effective.requests_per_second,
            "runsPerMinute": effective.runs_per_minute,
            "concurrentRuns": effective.concurrent_runs,
            "storedBytes": effective.stored_bytes,
        },
    )


@router.get("/tenants/{tenant_id}/limits", response_model=LimitsView, response_model_by_alias=True)
async def get_limits(tenant_id: TenantIdPath, runtime: RuntimeDep) -> LimitsView:
    return await _limits_view(runtime, tenant_id)


@router.put("/tenants/{tenant_id}/limits", response_model=LimitsView, response_model_by_alias=True)
async def put_limits(tenant_id: TenantIdPath, request: Request, runtime: RuntimeDep) -> LimitsView:
    """Replace the tenant's own limits; every replica applies them within `CACHE_SECONDS`."""
    body = parse(LimitsBody, await read_json(request, runtime.settings))
    own = body.model_dump(by_alias=True, exclude_unset=True)
    assert set(own) <= set(LIMIT_FIELDS)
    await runtime.tenants.set_limits(tenant_id, own)
    return await _limits_view(runtime, tenant_id)
