"""Which provider runs a node and with whose credentials: the node's choice, else the
deployment's; the tenant's own credentials over the executor's settings; nothing configured
fails the step at once, for good, naming the setting."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from executor.providers import Credentials, Offline, ProviderError, Providers
from executor.providers.base import Generation, GenerationRequest, ProviderName
from executor.service import classify
from storage.providers import UndecryptableCredentials


class _Named(Offline):
    def __init__(self, name: ProviderName) -> None:
        self.name = name

    async def generate(self, request: GenerationRequest, creds: Credentials) -> Generation:
        raise AssertionError("not called")


@dataclass(frozen=True)
class _Secret:
    api_key: str | None = None
    base_url: str | None = None
    model: str | None = None


class _Tenants:
    def __init__(self, secrets: dict[tuple[str, str], _Secret]) -> None:
        self.secrets = secrets
        self.reads = 0

    async def credentials(self, tenant_id: str, name: str) -> _Secret | None:
        self.reads += 1
        return self.secrets.get((tenant_id, name))


NAMES: tuple[ProviderName, ...] = ("offline", "openai", "replicate", "fal", "comfyui")


def _providers(
    deployment: dict[str, Credentials] | None = None,
    tenants: _Tenants | None = None,
    default: ProviderName = "offline",
) -> Providers:
    return Providers(
        {n: _Named(n) for n in NAMES}, deployment or {}, default=default, tenants=tenants
    )


async def test_a_node_without_a_provider_gets_the_deployments_default() -> None:
    provider, _ = await _providers(default="offline").resolve("t1", None)
    assert provider.name == "offline"
    deployed = {"fal": Credentials(api_key="fal-key")}
    provider, creds = await _providers(deployed, default="fal").resolve("t1", None)
    assert (provider.name, creds.api_key) == ("fal", "fal-key")


@pytest.mark.parametrize(
    ("name", "setting"),
    [
        ("openai", "OPENAI_API_KEY"),
        ("replicate", "REPLICATE_API_TOKEN"),
        ("fal", "FAL_KEY"),
        ("comfyui", "COMFYUI_URL"),
    ],
)
async def test_a_provider_without_credentials_fails_at_once_naming_the_setting(
    name: str, setting: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        await _providers().resolve("t1", name)
    failure = classify(caught.value)
    assert (failure.code, failure.retryable) == ("provider_not_configured", False)
    assert setting in failure.message
    assert f"PUT /v1/providers/{name}" in failure.message


async def test_the_tenants_credentials_win_field_by_field_and_its_base_url_is_untrusted() -> None:
    deployed = {
        "openai": Credentials(api_key="sk-ops", base_url="https://gw.internal/v1", model="m0")
    }
    tenants = _Tenants({("t1", "openai"): _Secret(api_key="sk-tenant")})
    _, creds = await _providers(deployed, tenants).resolve("t1", "openai")
    assert (creds.api_key, creds.base_url, creds.model) == (
        "sk-tenant",
        "https://gw.internal/v1",
        "m0",
    )
    assert (creds.trusted, creds.source) == (True, "tenant")

    tenants.secrets[("t2", "openai")] = _Secret(api_key="k", base_url="https://mine.example/v1")
    _, own = await _providers(deployed, tenants).resolve("t2", "openai")
    assert (own.base_url, own.trusted) == ("https://mine.example/v1", False)

    _, other = await _providers(deployed, tenants).resolve("t3", "openai")
    assert (other.api_key, other.source) == ("sk-ops", "settings")


async def test_a_tenants_credentials_are_read_once_per_cache_period() -> None:
    tenants = _Tenants({("t1", "fal"): _Secret(api_key="k")})
    providers = _providers(tenants=tenants)
    for _ in range(3):
        await providers.resolve("t1", "fal")
    assert tenants.reads == 1


async def test_offline_needs_no_credentials_and_no_lookup() -> None:
    tenants = _Tenants({})
    provider, _ = await _providers(tenants=tenants).resolve("t1", "offline")
    assert provider.name == "offline"
    assert tenants.reads == 0


class _Broken:
    async def credentials(self, tenant_id: str, name: str) -> _Secret | None:
        raise UndecryptableCredentials(tenant_id, name)


async def test_credentials_no_key_decrypts_fail_the_step_for_good_naming_tenant_and_provider() -> (
    None
):
    with pytest.raises(ProviderError) as caught:
        await _providers(tenants=_Broken()).resolve("t9", "replicate")  # type: ignore[arg-type]
    failure = classify(caught.value)
    assert (failure.code, failure.retryable) == ("provider_not_configured", False)
    assert "t9" in failure.message
    assert "replicate" in failure.message
