"""Bearer API keys: each belongs to one tenant, carries scopes and is rate limited.

Authenticating a request also decides whether the key may do what the route does (its
scope, from the table below, so the routes only ask for the tenant) and whether the tenant
is within its requests per second. A refusal names the scope or the limit. The admin API and
`/metrics` take the operator's keys instead (`require_admin`, `require_metrics`).
"""

from __future__ import annotations

import hmac
import time
from typing import Annotated

from bus import logs
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from workflow.limits import exceeded

from ingress import ratelimit
from ingress.problems import ProblemError
from ingress.runtime import RuntimeDep

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer wfk_…`")

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="workflow-api"'}
RATELIMIT_STATE = "ratelimit"
"""`request.state` key of the decisions made on this request; `app.RateLimitHeaders` adds
their fields to the response, whatever it is."""

EVERY_SCOPE = ("runs:write", "runs:read", "workflows:write")


def required_scopes(method: str, path: str) -> tuple[str, ...]:
    """The scopes a request needs, from its method and path. Reading the registry needs any
    valid key (a caller that starts runs must see the input schema); a path not known here
    needs every scope, so a new route is closed until it is named (a test checks them all)."""
    reading = method in ("GET", "HEAD")
    if path.startswith("/v1/workflows"):
        if path.endswith("/run") and method == "POST":
            return ("runs:write",)
        return () if reading else ("workflows:write",)
    if path.startswith("/v1/runs"):
        return ("runs:read",) if reading else ("runs:write",)
    # An upload is the input of a run; the webhook signing secret lets its holder forge
    # deliveries of runs: both go with starting runs.
    if path.startswith(("/v1/assets", "/v1/webhooks")):
        return ("runs:write",)
    # A tenant's provider credentials are its configuration, like its workflows; even reading
    # them (which provider, whose base URL) is not for a key that only starts runs.
    if path.startswith("/v1/providers"):
        return ("workflows:write",)
    return EVERY_SCOPE


async def authenticate(
    request: Request,
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
    grant = await runtime.cached_keys.grant(credentials.credentials)
    if grant is None:
        raise ProblemError(
            401, "the API key is not valid", kind="unauthorized", headers=UNAUTHORIZED_HEADERS
        )
    limits = await runtime.cached_limits.of(grant.tenant_id)
    if limits.requests_per_second is not None:
        decision = runtime.request_rate.check(
            grant.tenant_id, limits.requests_per_second, time.monotonic()
        )
        setattr(request.state, RATELIMIT_STATE, [decision])
        if not decision.allowed:
            value = f"{limits.requests_per_second:g}/s"
            raise ProblemError(
                429,
                f"too many requests: {exceeded('tenant_requests_per_second', value)} "
                f"(bursts of {ratelimit.BURST_FACTOR:g} times that); retry after the seconds in "
                "Retry-After",
                kind="rate-limited",
                headers=ratelimit.headers([decision]),
            )
    # Every line logged for this request from here on names its tenant (bus.logs).
    logs.bind(tenantId=grant.tenant_id)
    needed = required_scopes(request.method, request.url.path)
    missing = [s for s in needed if s not in grant.scopes]
    if missing:
        raise ProblemError(
            403,
            f"this API key lacks the scope {', '.join(missing)} "
            f"(it has: {', '.join(sorted(grant.scopes)) or 'none'})",
            kind="forbidden",
        )
    return grant.tenant_id


TenantId = Annotated[str, Depends(authenticate)]


def _matches(given: str, expected: SecretStr | None) -> bool:
    return expected is not None and hmac.compare_digest(
        given.encode(), expected.get_secret_value().encode()
    )


async def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The operator's key (`ADMIN_API_KEY`); without one set, the admin API does not exist."""
    expected = runtime.settings.admin_api_key
    if expected is None:
        raise ProblemError(404, "the admin API is not enabled (ADMIN_API_KEY)", kind="not-found")
    if credentials is None:
        raise ProblemError(
            401,
            "send the admin key as `Authorization: Bearer <key>`",
            kind="unauthorized",
            headers=UNAUTHORIZED_HEADERS,
        )
    if not _matches(credentials.credentials, expected):
        raise ProblemError(403, "the admin API needs the admin key", kind="forbidden")


async def require_metrics(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """`METRICS_TOKEN` or the admin key: metrics name tenants and workflows."""
    if credentials is None:
        raise ProblemError(
            401,
            "send the metrics token or the admin key as `Authorization: Bearer <token>`",
            kind="unauthorized",
            headers=UNAUTHORIZED_HEADERS,
        )
    settings = runtime.settings
    if not (
        _matches(credentials.credentials, settings.metrics_token)
        or _matches(credentials.credentials, settings.admin_api_key)
    ):
        raise ProblemError(
            403, "/metrics needs the metrics token or the admin key", kind="forbidden"
        )


AdminOnly = Depends(require_admin)
