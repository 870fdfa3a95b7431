"""The stack's key for tenants' provider credentials: made once, kept in .stack/env."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from devstack import apps, envfile
from devstack.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


def test_the_key_is_made_once_and_kept_beside_the_other_values(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    envfile.write_env(settings.env_file, {"ADMIN_API_KEY": "wfadmin_x"})
    key = apps.ensure_provider_keys(settings)
    Fernet(key)  # a valid Fernet key
    assert apps.ensure_provider_keys(settings) == key
    recorded = envfile.read_env_file(settings.env_file)
    assert recorded == {"PROVIDER_CREDENTIALS_KEYS": key, "ADMIN_API_KEY": "wfadmin_x"}


def test_the_services_get_it_and_the_provider_egress_of_the_receivers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROVIDER_CREDENTIALS_KEYS", raising=False)
    monkeypatch.delenv("PROVIDER_EGRESS_ALLOW", raising=False)
    settings = _settings(tmp_path)
    env = apps.service_env(settings)
    assert env["PROVIDER_CREDENTIALS_KEYS"] == apps.ensure_provider_keys(settings)
    assert env["PROVIDER_EGRESS_ALLOW"] == env["HTTP_NODE_ALLOW"] == apps.LOOPBACK_RECEIVERS
    assert env["PROVIDER_EGRESS_ALLOW_HTTP"] == "true"
    assert (
        apps.service_env(settings)["PROVIDER_CREDENTIALS_KEYS"] == env["PROVIDER_CREDENTIALS_KEYS"]
    )


def test_a_key_set_in_the_environment_is_used_and_not_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = Fernet.generate_key().decode()
    monkeypatch.setenv("PROVIDER_CREDENTIALS_KEYS", own)
    settings = _settings(tmp_path)
    assert apps.service_env(settings)["PROVIDER_CREDENTIALS_KEYS"] == own
    assert "PROVIDER_CREDENTIALS_KEYS" not in envfile.read_env_file(settings.env_file)
