"""Tenants' provider credentials: the key helpers alone, then the repository against the real
MongoDB-wire server (round trip, rotation, an undecryptable record, views without the key)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet, MultiFernet
from devstack.api import Endpoints
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase
from storage import mongo
from storage.mongo import Document
from storage.providers import (
    COLLECTION,
    CredentialsDisabled,
    ProviderCredentials,
    ProviderSecret,
    UndecryptableCredentials,
    decrypt,
    encrypt,
)
from storage.settings import ProviderSecretsSettings, provider_fernet

API_KEY = "sk-test-" + "x" * 24 + "WXYZ"


def _key() -> str:
    return Fernet.generate_key().decode()


def _fernet(keys: str) -> MultiFernet:
    fernet = provider_fernet(keys)
    assert fernet is not None
    return fernet


async def _api_key(repo: ProviderCredentials, tenant_id: str, name: str) -> str | None:
    secret = await repo.credentials(tenant_id, name)
    assert secret is not None
    return secret.api_key


# --- the keys and the tokens, no I/O ---------------------------------------------------------


def test_no_keys_means_disabled_and_blanks_are_ignored() -> None:
    assert provider_fernet(None) is None
    assert provider_fernet("") is None
    assert provider_fernet(SecretStr(" , ")) is None
    assert ProviderSecretsSettings(provider_credentials_keys=None).provider_fernet() is None


def test_a_value_that_is_no_fernet_key_is_named_by_position_not_by_value() -> None:
    bad = "not-a-fernet-key-but-a-secret-value"
    with pytest.raises(ValueError, match="key 2 of 2") as caught:
        provider_fernet(f"{_key()}, {bad}")
    assert bad not in str(caught.value)


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old, new = _key(), _key()
    token = encrypt(_fernet(old), "t1", "openai", API_KEY)
    both = _fernet(f"{new},{old}")
    assert decrypt(both, "t1", "openai", token) == API_KEY
    fresh = encrypt(both, "t1", "openai", API_KEY)
    assert decrypt(_fernet(new), "t1", "openai", fresh) == API_KEY
    with pytest.raises(UndecryptableCredentials):
        decrypt(_fernet(old), "t1", "openai", fresh)


def test_a_token_is_bound_to_its_tenant_and_provider() -> None:
    fernet = _fernet(_key())
    token = encrypt(fernet, "t1", "openai", API_KEY)
    assert API_KEY not in token
    for tenant, name in (("t2", "openai"), ("t1", "fal")):
        with pytest.raises(UndecryptableCredentials) as caught:
            decrypt(fernet, tenant, name, token)
        assert tenant in str(caught.value)
        assert name in str(caught.value)
        assert token not in str(caught.value)


def test_the_secret_hides_its_key_from_repr() -> None:
    secret = ProviderSecret(api_key=API_KEY, base_url=None, model="gpt-image-1")
    assert API_KEY not in repr(secret)
    assert "gpt-image-1" in repr(secret)


# --- the repository against the real server --------------------------------------------------


@pytest.fixture
async def db(stack: Endpoints) -> AsyncIterator[AsyncDatabase[Document]]:
    client = mongo.connect(stack.mongodb_url, app_name="tests")
    database = client[f"test_{secrets.token_hex(4)}"]
    await mongo.ensure_indexes(database)
    yield database
    await client.drop_database(database.name)
    await client.close()


@pytest.mark.integration
async def test_credentials_round_trip_and_views_never_hold_the_key(
    db: AsyncDatabase[Document],
) -> None:
    repo = ProviderCredentials(db, provider_fernet(_key()))
    view = await repo.put("t1", "openai", api_key=API_KEY, base_url=None, model="gpt-image-1")
    assert (view.name, view.api_key_set, view.api_key_last4, view.model) == (
        "openai",
        True,
        "WXYZ",
        "gpt-image-1",
    )
    assert API_KEY not in repr(view)
    assert await repo.get_view("t1", "openai") == view
    assert await repo.list_views("t1") == [view]
    assert await repo.credentials("t1", "openai") == ProviderSecret(
        api_key=API_KEY, base_url=None, model="gpt-image-1"
    )

    # The stored document has only the ciphertext.
    [doc] = await db[COLLECTION].find({"tenantId": "t1"}).to_list(None)
    assert API_KEY not in repr(doc)
    assert doc["apiKeyCiphertext"]
    assert doc["apiKeyLast4"] == "WXYZ"

    # A put replaces; another tenant sees nothing; delete is idempotent.
    comfy = await repo.put("t1", "comfyui", api_key=None, base_url="http://gpu:8188", model=None)
    assert (comfy.api_key_set, comfy.api_key_last4, comfy.base_url) == (
        False,
        None,
        "http://gpu:8188",
    )
    assert await repo.credentials("t1", "comfyui") == ProviderSecret(
        api_key=None, base_url="http://gpu:8188", model=None
    )
    assert [v.name for v in await repo.list_views("t1")] == ["comfyui", "openai"]
    assert await repo.list_views("t2") == []
    assert await repo.credentials("t2", "openai") is None
    await repo.delete("t1", "openai")
    await repo.delete("t1", "openai")
    assert await repo.get_view("t1", "openai") is None
    assert await repo.credentials("t1", "openai") is None


@pytest.mark.integration
async def test_a_short_key_shows_no_last_four_and_a_put_replaces_every_field(
    db: AsyncDatabase[Document],
) -> None:
    repo = ProviderCredentials(db, provider_fernet(_key()))
    await repo.put("t1", "fal", api_key=API_KEY, base_url="https://queue.fal.run", model="m")
    view = await repo.put("t1", "fal", api_key="short", base_url=None, model=None)
    assert (view.api_key_set, view.api_key_last4, view.base_url, view.model) == (
        True,
        None,
        None,
        None,
    )
    assert await repo.credentials("t1", "fal") == ProviderSecret("short", None, None)
    assert await db[COLLECTION].count_documents({"tenantId": "t1"}) == 1


@pytest.mark.integration
async def test_rotation_with_two_keys(db: AsyncDatabase[Document]) -> None:
    old, new = _key(), _key()
    before = ProviderCredentials(db, provider_fernet(old))
    await before.put("t1", "replicate", api_key=API_KEY, base_url=None, model=None)

    # The new key goes first: the old record still decrypts, new ones use the new key.
    both = ProviderCredentials(db, provider_fernet(f"{new},{old}"))
    assert await _api_key(both, "t1", "replicate") == API_KEY
    await both.put("t2", "replicate", api_key=API_KEY, base_url=None, model=None)
    only_new = ProviderCredentials(db, provider_fernet(new))
    assert await _api_key(only_new, "t2", "replicate") == API_KEY
    with pytest.raises(UndecryptableCredentials):
        await only_new.credentials("t1", "replicate")

    # rotate() re-encrypts the old record under the new key; then the old key can go.
    assert await both.rotate() == 2
    assert await _api_key(only_new, "t1", "replicate") == API_KEY


@pytest.mark.integration
async def test_a_record_no_key_decrypts_is_a_clear_error(db: AsyncDatabase[Document]) -> None:
    await ProviderCredentials(db, provider_fernet(_key())).put(
        "tenant-a", "openai", api_key=API_KEY, base_url=None, model=None
    )
    [doc] = await db[COLLECTION].find({"tenantId": "tenant-a"}).to_list(None)
    other = ProviderCredentials(db, provider_fernet(_key()))
    with pytest.raises(UndecryptableCredentials) as caught:
        await other.credentials("tenant-a", "openai")
    message = str(caught.value)
    assert "'tenant-a'" in message
    assert "openai" in message
    assert doc["apiKeyCiphertext"] not in message
    assert API_KEY not in message
    # The view needs no decryption: the tenant still sees what it configured.
    view = await other.get_view("tenant-a", "openai")
    assert view is not None
    assert view.api_key_set


@pytest.mark.integration
async def test_without_keys_nothing_is_stored_or_read(db: AsyncDatabase[Document]) -> None:
    await ProviderCredentials(db, provider_fernet(_key())).put(
        "t1", "openai", api_key=API_KEY, base_url=None, model=None
    )
    disabled = ProviderCredentials(db, None)
    assert not disabled.enabled
    with pytest.raises(CredentialsDisabled, match="set PROVIDER_CREDENTIALS_KEYS"):
        await disabled.put("t1", "openai", api_key=API_KEY, base_url=None, model=None)
    assert await disabled.list_views("t1") == []
    assert await disabled.get_view("t1", "openai") is None
    assert await disabled.credentials("t1", "openai") is None


@pytest.mark.integration
async def test_put_refuses_unknown_providers_and_missing_required_fields(
    db: AsyncDatabase[Document],
) -> None:
    repo = ProviderCredentials(db, provider_fernet(_key()))
    with pytest.raises(ValueError, match="unknown provider"):
        await repo.put("t1", "offline", api_key=None, base_url=None, model=None)
    with pytest.raises(ValueError, match="need api_key"):
        await repo.put("t1", "openai", api_key=None, base_url="https://x", model=None)
    with pytest.raises(ValueError, match="need base_url"):
        await repo.put("t1", "comfyui", api_key=API_KEY, base_url=None, model=None)
    assert await db[COLLECTION].count_documents({}) == 0
