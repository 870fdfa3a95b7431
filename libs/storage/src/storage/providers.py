"""Tenants' own model-provider credentials (`PUT /v1/providers/{name}`), the API key encrypted.

One document per tenant and provider in `provider_credentials` (unique on `tenantId` + `name`):
`apiKeyCiphertext` (a Fernet token, or null when no key was given), `apiKeyLast4` (shown in the
public view), `baseUrl`, `model`, `createdAt`, `updatedAt`. The plaintext key is never stored,
returned by a view or put into an error message.

The token encrypts `{"tenantId", "name", "apiKey"}` rather than the key alone, so a ciphertext
copied into another tenant's or provider's record does not decrypt there (Fernet has no
associated data). Keys come from `PROVIDER_CREDENTIALS_KEYS` (`storage.settings`): a
`MultiFernet` whose first key encrypts and every key decrypts, so a new key goes first and the
old ones stay until `rotate()` (or a new `put` of each record) has re-encrypted what they
encrypted. Without keys, per-tenant credentials are disabled: `put` raises, reads find nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.fernet import InvalidToken, MultiFernet
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.mongo import Document

__all__ = [
    "PROVIDERS",
    "REQUIRED",
    "CredentialsDisabled",
    "ProviderCredentials",
    "ProviderSecret",
    "ProviderView",
    "UndecryptableCredentials",
]

PROVIDERS = ("openai", "replicate", "fal", "comfyui")
"""The providers a tenant may hold credentials for (`offline`, the built-in renderer, needs
none)."""

REQUIRED: Mapping[str, str] = {
    "openai": "api_key",
    "replicate": "api_key",
    "fal": "api_key",
    "comfyui": "base_url",
}
"""What each provider's credentials cannot do without."""

LAST4_MIN_CHARS = 12
"""A key shorter than this shows no last four characters (they would be too much of it)."""

COLLECTION = "provider_credentials"
"""Its unique index on `tenantId` + `name` is made by `storage.mongo.ensure_indexes`."""


class CredentialsDisabled(RuntimeError):
    """No `PROVIDER_CREDENTIALS_KEYS`: credentials can be neither stored nor read."""

    def __init__(self) -> None:
        super().__init__(
            "per-tenant provider credentials are disabled: set PROVIDER_CREDENTIALS_KEYS"
        )


class UndecryptableCredentials(RuntimeError):
    """A stored key that no key of `PROVIDER_CREDENTIALS_KEYS` decrypts (or that was made for
    another record). The message names the tenant and provider, never the ciphertext."""

    def __init__(self, tenant_id: str, name: str) -> None:
        super().__init__(
            f"the {name} credentials of tenant {tenant_id!r} cannot be decrypted with any key "
            "of PROVIDER_CREDENTIALS_KEYS (was the key that encrypted them removed?); "
            "put them again"
        )
        self.tenant_id = tenant_id
        self.name = name


@dataclass(frozen=True)
class ProviderView:
    """What the API shows of stored credentials: never the key."""

    name: str
    api_key_set: bool
    api_key_last4: str | None
    base_url: str | None
    model: str | None
    updated_at: datetime


@dataclass(frozen=True)
class ProviderSecret:
    """The decrypted credentials, for the executor's provider call. `repr` hides the key."""

    api_key: str | None = field(repr=False)
    base_url: str | None
    model: str | None


def _last4(api_key: str | None) -> str | None:
    if api_key is None or len(api_key) < LAST4_MIN_CHARS:
        return None
    return api_key[-4:]


def _view(doc: Document) -> ProviderView:
    return ProviderView(
        name=str(doc["name"]),
        api_key_set=doc.get("apiKeyCiphertext") is not None,
        api_key_last4=doc.get("apiKeyLast4"),
        base_url=doc.get("baseUrl"),
        model=doc.get("model"),
        updated_at=doc["updatedAt"],
    )


def _now() -> datetime:
    # MongoDB keeps milliseconds: the view `put` answers equals what a later read gives.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def encrypt(fernet: MultiFernet, tenant_id: str, name: str, api_key: str) -> str:
    """The token stored for `api_key`: bound to its tenant and provider."""
    payload = json.dumps({"tenantId": tenant_id, "name": name, "apiKey": api_key})
    return fernet.encrypt(payload.encode()).decode()


def decrypt(fernet: MultiFernet, tenant_id: str, name: str, token: str) -> str:
    """The API key in `token`; UndecryptableCredentials when no key decrypts it or it was
    made for another tenant or provider."""
    try:
        payload = json.loads(fernet.decrypt(token.encode()))
    except (InvalidToken, ValueError):
        raise UndecryptableCredentials(tenant_id, name) from None
    if (
        not isinstance(payload, dict)
        or payload.get("tenantId") != tenant_id
        or payload.get("name") != name
        or not isinstance(payload.get("apiKey"), str)
    ):
        raise UndecryptableCredentials(tenant_id, name)
    api_key: str = payload["apiKey"]
    return api_key


class ProviderCredentials:
    """A tenant's credentials per provider. `fernet` is `settings.provider_fernet()`: None
    disables them (see the module's docstring)."""

    def __init__(self, db: AsyncDatabase[Document], fernet: MultiFernet | None) -> None:
        self._docs = db[COLLECTION]
        self._fernet = fernet

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise CredentialsDisabled
        return self._fernet

    async def put(
        self,
        tenant_id: str,
        name: str,
        *,
        api_key: str | None,
        base_url: str | None,
        model: str | None,
    ) -> ProviderView:
        """Store (replace) the tenant's credentials for `name`. CredentialsDisabled without
        keys; ValueError for an unknown provider or a missing required field."""
        fernet = self._require()
        if name not in REQUIRED:
            raise ValueError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
        required = REQUIRED[name]
        if {"api_key": api_key, "base_url": base_url}[required] is None:
            raise ValueError(f"{name} credentials need {required}")
        now = _now()
        fields: Document = {
            "apiKeyCiphertext": encrypt(fernet, tenant_id, name, api_key)
            if api_key is not None
            else None,
            "apiKeyLast4": _last4(api_key),
            "baseUrl": base_url,
            "model": model,
            "updatedAt": now,
        }
        where = {"tenantId": tenant_id, "name": name}
        try:
            await self._docs.update_one(
                where, {"$set": fields, "$setOnInsert": {"createdAt": now}}, upsert=True
            )
        except DuplicateKeyError:
            # Two first puts at once: the other inserted; ours replaces its fields.
            await self._docs.update_one(where, {"$set": fields})
        return _view({**where, **fields})

    async def get_view(self, tenant_id: str, name: str) -> ProviderView | None:
        if self._fernet is None:
            return None
        doc = await self._docs.find_one({"tenantId": tenant_id, "name": name})
        return _view(doc) if doc is not None else None

    async def list_views(self, tenant_id: str) -> list[ProviderView]:
        """The tenant's configured providers by name."""
        if self._fernet is None:
            return []
        docs = await self._docs.find({"tenantId": tenant_id}).to_list(None)
        return sorted((_view(d) for d in docs), key=lambda v: v.name)

    async def delete(self, tenant_id: str, name: str) -> None:
        """Forget the tenant's credentials for `name` (nothing there is fine). Works without
        keys too."""
        await self._docs.delete_one({"tenantId": tenant_id, "name": name})

    async def credentials(self, tenant_id: str, name: str) -> ProviderSecret | None:
        """The decrypted credentials, or None when the tenant has none for `name` (or they are
        disabled). UndecryptableCredentials when no key decrypts the stored key."""
        if self._fernet is None:
            return None
        doc = await self._docs.find_one({"tenantId": tenant_id, "name": name})
        if doc is None:
            return None
        token = doc.get("apiKeyCiphertext")
        return ProviderSecret(
            api_key=decrypt(self._fernet, tenant_id, name, token) if token is not None else None,
            base_url=doc.get("baseUrl"),
            model=doc.get("model"),
        )

    async def rotate(self) -> int:
        """Re-encrypt every stored key with the first key of PROVIDER_CREDENTIALS_KEYS, after
        which the others may be removed. Records no key decrypts are left as they are
        (`credentials` reports them). Returns how many were re-encrypted."""
        fernet = self._require()
        rotated = 0
        async for doc in self._docs.find({}):
            token = doc.get("apiKeyCiphertext")
            if not isinstance(token, str):
                continue
            with contextlib.suppress(InvalidToken):
                fresh = fernet.rotate(token.encode()).decode()
                result = await self._docs.update_one(
                    {"_id": doc["_id"], "apiKeyCiphertext": token},
                    {"$set": {"apiKeyCiphertext": fresh}},
                )
                rotated += result.modified_count
        return rotated
