"""MongoDB and S3 connection settings, and the keys of per-tenant provider credentials, mixed
into each service's own settings model."""

from __future__ import annotations

from datetime import timedelta

from cryptography.fernet import Fernet, MultiFernet
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from storage.assets import S3Config


class MongoSettings(BaseSettings):
    mongodb_url: str = "mongodb://127.0.0.1:37017"
    mongodb_database: str = "workflow"


class S3Settings(BaseSettings):
    s3_endpoint: str = "http://127.0.0.1:38333"
    s3_public_endpoint: str | None = Field(
        default=None, description="Host callers use to fetch presigned URLs; default s3_endpoint."
    )
    s3_access_key: str = "devstack"
    s3_secret_key: SecretStr = SecretStr("devstack-secret-key")
    s3_region: str = "us-east-1"
    s3_outputs_bucket: str = "workflow-outputs"
    s3_uploads_bucket: str = "workflow-uploads"
    s3_url_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    def s3_config(self) -> S3Config:
        return S3Config(
            endpoint=self.s3_endpoint,
            public_endpoint=self.s3_public_endpoint or self.s3_endpoint,
            access_key=self.s3_access_key,
            secret_key=self.s3_secret_key.get_secret_value(),
            region=self.s3_region,
        )

    @property
    def s3_url_expiry(self) -> timedelta:
        return timedelta(seconds=self.s3_url_expiry_seconds)


class ProviderSecretsSettings(BaseSettings):
    """The keys that encrypt tenants' model-provider credentials (`storage.providers`)."""

    provider_credentials_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys: the first encrypts, every one decrypts "
        "(rotation). Unset: per-tenant provider credentials are disabled.",
    )

    def provider_fernet(self) -> MultiFernet | None:
        """The keys as one MultiFernet, or None when none is set. A value that is not a Fernet
        key raises ValueError naming its position, never the value."""
        return provider_fernet(self.provider_credentials_keys)


def provider_fernet(keys: SecretStr | str | None) -> MultiFernet | None:
    """`PROVIDER_CREDENTIALS_KEYS` (comma-separated Fernet keys, blanks ignored) as a
    MultiFernet whose first key encrypts; None when it holds no key."""
    raw = keys.get_secret_value() if isinstance(keys, SecretStr) else keys or ""
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts:
        return None
    fernets: list[Fernet] = []
    for position, part in enumerate(parts, start=1):
        try:
            fernets.append(Fernet(part))
        except (ValueError, TypeError):
            raise ValueError(
                f"PROVIDER_CREDENTIALS_KEYS: key {position} of {len(parts)} is not a Fernet key "
                '(32 url-safe base64-encoded bytes); make one with `python -c "from '
                'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`'
            ) from None
    return MultiFernet(fernets)
