"""Bearer API keys. Keys are stored hashed; each belongs to one tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ingress.problems import ProblemError
from ingress.runtime import RuntimeDep

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer wfk_…`")

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="workflow-api"'}


async def authenticate(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None:
        raise ProblemError(
            401,
            "send your API key as `Authorization: Bearer <key>`",
            kind="unauthorized",
            headers=UNAUTHORIZED_HEADERS,
        )
    tenant_id = await runtime.cached_keys.tenant_of(credentials.credentials)
    if tenant_id is None:
        raise ProblemError(
            401, "the API key is not valid", kind="unauthorized", headers=UNAUTHORIZED_HEADERS
        )
    return tenant_id


TenantId = Annotated[str, Depends(authenticate)]
