"""Which provider runs a node, and with whose credentials.

A node names its provider (`"provider": "replicate"`), else the deployment's IMAGE_PROVIDER
applies. Credentials are the tenant's own (`PUT /v1/providers/{name}`) when it has set them,
field by field over the executor's settings; a provider left without what it needs fails the
step at once, naming the setting."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final, Protocol

from storage.providers import UndecryptableCredentials

from executor.providers.base import (
    Credentials,
    ImageProvider,
    ProviderError,
    ProviderName,
)

REQUIREMENTS: Final[Mapping[str, tuple[str, str]]] = {
    "openai": ("api_key", "OPENAI_API_KEY"),
    "replicate": ("api_key", "REPLICATE_API_TOKEN"),
    "fal": ("api_key", "FAL_KEY"),
    "comfyui": ("base_url", "COMFYUI_URL"),
}
"""What each provider cannot work without, and the executor setting that gives it."""


class TenantSecret(Protocol):
    @property
    def api_key(self) -> str | None: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...


class TenantCredentials(Protocol):
    async def credentials(self, tenant_id: str, name: str) -> TenantSecret | None: ...


@dataclass
class _Cached:
    expires: float
    secret: TenantSecret | None


class Providers:
    def __init__(
        self,
        implementations: Mapping[str, ImageProvider],
        deployment: Mapping[str, Credentials],
        *,
        default: ProviderName,
        tenants: TenantCredentials | None = None,
        cache_seconds: float = 15.0,
    ) -> None:
        self._implementations = implementations
        self._deployment = deployment
        self.default = default
        self._tenants = tenants
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], _Cached] = {}

    async def resolve(self, tenant_id: str, name: str | None) -> tuple[ImageProvider, Credentials]:
        chosen = name or self.default
        provider = self._implementations.get(chosen)
        if provider is None:
            # Registration refuses unknown names; this is a definition from a newer version.
            raise ProviderError(
                "provider_not_configured",
                f"this executor has no provider {chosen!r}",
                provider=chosen,
            )
        creds = self._deployment.get(chosen, Credentials())
        secret = await self._tenant(tenant_id, chosen) if chosen in REQUIREMENTS else None
        if secret is not None:
            creds = Credentials(
                api_key=secret.api_key or creds.api_key,
                base_url=secret.base_url or creds.base_url,
                model=secret.model or creds.model,
                # A tenant's own address is user-given: it goes through the egress guard.
                trusted=secret.base_url is None and creds.trusted,
                source="tenant",
            )
        requirement = REQUIREMENTS.get(chosen)
        if requirement is not None and not getattr(creds, requirement[0]):
            field, setting = requirement
            what = "API key" if field == "api_key" else "server URL"
            raise ProviderError(
                "provider_not_configured",
                f"{chosen} has no {what}: set {setting} on the executor, or "
                f"{'apiKey' if field == 'api_key' else 'baseUrl'} with PUT /v1/providers/{chosen}",
                provider=chosen,
            )
        return provider, creds

    async def _tenant(self, tenant_id: str, name: str) -> TenantSecret | None:
        if self._tenants is None:
            return None
        key = (tenant_id, name)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached.expires > now:
            return cached.secret
        try:
            secret = await self._tenants.credentials(tenant_id, name)
        except UndecryptableCredentials as exc:
            # No retry can mend it: the tenant must put its credentials again.
            raise ProviderError("provider_not_configured", str(exc), provider=name) from exc
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = _Cached(now + self._cache_seconds, secret)
        return secret


def deployment_credentials(
    entries: Mapping[str, tuple[str | None, str | None, str | None]],
) -> dict[str, Credentials]:
    """(api_key, base_url, model) per provider from settings: trusted addresses."""
    return {
        name: replace(Credentials(), api_key=key, base_url=url, model=model)
        for name, (key, url, model) in entries.items()
    }
