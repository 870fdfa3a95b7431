"""A tenant's own model-provider credentials: `PUT/GET/DELETE /v1/providers/{name}` and the list.

The API key is stored encrypted (`storage.providers`) and never leaves again: answers carry
whether one is set and, for a long one, its last four characters. Nothing here puts a value
of the body into a problem or a log line: a malformed body is answered with the paths and
pydantic's messages only (never its `input`), and the parse error is not chained to the
problem, so no traceback could show it either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from contracts.api import ProblemItem
from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from storage.providers import PROVIDERS, REQUIRED, ProviderView

from ingress.auth import TenantId
from ingress.body import pointer, read_json
from ingress.problems import ProblemError
from ingress.runtime import RuntimeDep

router = APIRouter(prefix="/v1/providers", tags=["providers"])

ProviderName = Literal["openai", "replicate", "fal", "comfyui"]
OFFLINE = "offline"
DISABLED = "per-tenant provider credentials are disabled: set PROVIDER_CREDENTIALS_KEYS"
DISABLED_RETRY_AFTER_SECONDS = 3600
"""`Retry-After` of the 503 while credentials are disabled: only an operator can change that."""

NamePath = Annotated[
    str,
    Path(
        description="The provider: `openai`, `replicate`, `fal` or `comfyui` (`offline`, the "
        "built-in renderer, needs no credentials).",
        json_schema_extra={"enum": list(PROVIDERS)},
    ),
]

API_KEY_PATTERN = r"^[!-~]+$"
"""Printable ASCII without spaces: it is sent in an HTTP header."""
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"
URL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)
"""What RFC 3986 allows in a URI."""

WIRE_NAMES = {"api_key": "apiKey", "base_url": "baseUrl"}


class ProviderCredentialsRequest(BaseModel):
    """Credentials for one provider. `openai`, `replicate` and `fal` need `apiKey`; `comfyui`
    needs `baseUrl` (and takes an `apiKey`, sent as a bearer token to a proxy in front of it)."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")

    api_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        pattern=API_KEY_PATTERN,
        description="The provider's API key: stored encrypted, never shown again.",
    )
    base_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="An absolute http(s) URL without credentials: an OpenAI-compatible server "
        "(Azure, local), a Replicate-compatible base, fal's queue base URL, or the ComfyUI "
        "server.",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=TEXT_PATTERN,
        description="This tenant's default model for the provider.",
    )


class ProviderResource(BaseModel):
    """Stored credentials as the API shows them: never the key."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, frozen=True)

    name: ProviderName
    api_key_set: bool
    api_key_last4: str | None = Field(
        default=None, description="The key's last four characters (none for a short key)."
    )
    base_url: str | None
    model: str | None
    updated_at: datetime


class ProviderList(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[ProviderResource]


def _resource(view: ProviderView) -> ProviderResource:
    return ProviderResource(
        name=view.name,
        api_key_set=view.api_key_set,
        api_key_last4=view.api_key_last4,
        base_url=view.base_url,
        model=view.model,
        updated_at=view.updated_at,
    )


def _provider(name: str) -> str:
    """`name` when it is a provider that takes credentials: 422 for offline, else 404."""
    if name == OFFLINE:
        raise ProblemError(
            422,
            "the offline provider needs no credentials",
            kind="provider-needs-no-credentials",
            errors=[ProblemItem(path="/name", message="offline needs no credentials")],
        )
    if name not in PROVIDERS:
        raise ProblemError(
            404, f"no such provider; the providers are {', '.join(PROVIDERS)}", kind="not-found"
        )
    return name


def _parse(data: Any) -> ProviderCredentialsRequest:
    """The body, or a 422 that names paths and rules only: never a value of the body."""
    if not isinstance(data, dict):
        raise ProblemError(422, "the body must be a JSON object", kind="invalid-request")
    try:
        return ProviderCredentialsRequest.model_validate(data, strict=True)
    except ValidationError as exc:
        errors = [
            ProblemItem(path=pointer(e["loc"]), message=e["msg"])
            for e in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
    # Raised outside the handler of the ValidationError: not chained to it (its text has the
    # values).
    raise ProblemError(422, "the request body is not valid", kind="invalid-request", errors=errors)


def base_url_problem(url: str) -> str | None:
    """Why `url` cannot be a provider's base URL, without repeating it; None when it can."""
    if not set(url) <= URL_CHARS:
        return "baseUrl must be a URL: spaces and characters outside RFC 3986 must be escaped"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "baseUrl is not a valid URL (a port is 1 to 65535, an IPv6 address in brackets)"
    if parts.scheme not in ("http", "https"):
        return "baseUrl must be an absolute http:// or https:// URL"
    if "@" in parts.netloc:
        return "baseUrl must not carry credentials (user:password@); send the key as apiKey"
    if not parts.hostname:
        return "baseUrl must name a host"
    if port == 0:
        return "baseUrl is not a valid URL (a port is 1 to 65535, an IPv6 address in brackets)"
    return None


def _check(name: str, body: ProviderCredentialsRequest) -> None:
    problems: list[ProblemItem] = []
    required = REQUIRED[name]
    if getattr(body, required) is None:
        wire = WIRE_NAMES[required]
        problems.append(ProblemItem(path=f"/{wire}", message=f"{name} needs {wire}"))
    if body.base_url is not None:
        why = base_url_problem(body.base_url)
        if why is not None:
            problems.append(ProblemItem(path="/baseUrl", message=why))
    if problems:
        raise ProblemError(
            422,
            "; ".join(p.message for p in problems),
            kind="invalid-provider-credentials",
            errors=problems,
        )


@router.get("", response_model=ProviderList, response_model_by_alias=True)
async def list_providers(tenant_id: TenantId, runtime: RuntimeDep) -> ProviderList:
    """The providers this tenant has credentials for (empty while per-tenant credentials are
    disabled on the server)."""
    views = await runtime.providers.list_views(tenant_id)
    return ProviderList(items=[_resource(v) for v in views])


@router.put(
    "/{name}",
    response_model=ProviderResource,
    response_model_by_alias=True,
    responses={
        503: {
            "description": "Per-tenant provider credentials are disabled on this server "
            "(PROVIDER_CREDENTIALS_KEYS), or a dependency is unavailable: retry after "
            "`Retry-After` seconds."
        }
    },
)
async def put_provider(
    name: NamePath, request: Request, tenant_id: TenantId, runtime: RuntimeDep
) -> ProviderResource:
    """Store this tenant's credentials for the provider, replacing any before. Runs of this
    tenant use them instead of the server's own."""
    provider = _provider(name)
    if not runtime.providers.enabled:
        raise ProblemError(
            503,
            DISABLED,
            kind="provider-credentials-disabled",
            headers={"Retry-After": str(DISABLED_RETRY_AFTER_SECONDS)},
        )
    body = _parse(await read_json(request, runtime.settings))
    _check(provider, body)
    view = await runtime.providers.put(
        tenant_id, provider, api_key=body.api_key, base_url=body.base_url, model=body.model
    )
    return _resource(view)


@router.get("/{name}", response_model=ProviderResource, response_model_by_alias=True)
async def get_provider(
    name: NamePath, tenant_id: TenantId, runtime: RuntimeDep
) -> ProviderResource:
    """This tenant's credentials for the provider, without the key; 404 when it has none."""
    provider = _provider(name)
    view = await runtime.providers.get_view(tenant_id, provider)
    if view is None:
        raise ProblemError(404, f"no credentials for {provider}", kind="not-found")
    return _resource(view)


@router.delete("/{name}", status_code=204, response_class=Response)
async def delete_provider(name: NamePath, tenant_id: TenantId, runtime: RuntimeDep) -> Response:
    """Forget this tenant's credentials for the provider (204 whether or not it had any)."""
    await runtime.providers.delete(tenant_id, _provider(name))
    return Response(status_code=204)
