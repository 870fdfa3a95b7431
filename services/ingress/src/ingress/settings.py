from __future__ import annotations

from bus.settings import KafkaSettings
from egress import EgressSettings
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from storage.settings import MongoSettings, ProviderSecretsSettings, S3Settings
from workflow.limits import Limits


class IngressSettings(
    KafkaSettings, MongoSettings, S3Settings, ProviderSecretsSettings, EgressSettings, Limits
):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    ingress_host: str = "127.0.0.1"
    ingress_port: int = 38000
    max_wait_seconds: float = Field(default=60, gt=0, le=600)
    """The longest a run request waits for the run to end before answering 202."""
    idempotency_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    watchdog_seconds: float = Field(default=30, gt=0)
    """A run still queued this long after it was stored is started by the sweeper (its
    request message was lost)."""
    cache_seconds: float = Field(default=1.0, ge=0)
    """How long a key's tenant and a workflow's latest version are reused without a read."""
    sse_keepalive_seconds: float = Field(default=15, gt=0)
    webhook_secret_grace_seconds: float = Field(default=24 * 3600, ge=0)
    """How long a rotated-out webhook signing secret still signs deliveries."""
    admin_api_key: SecretStr | None = None
    """Bearer key of the admin API (`/v1/admin/…`: API keys, tenant limits) and `/metrics`;
    unset, the admin API answers 404."""
    metrics_token: SecretStr | None = None
    """Another bearer token `/metrics` accepts (for a scraper that should not hold the admin
    key)."""
    mongodb_timeout_seconds: float = Field(default=2.0, gt=0)
    """How long a request waits for MongoDB to be reachable before it is answered 503."""
    mongodb_socket_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long a request waits for one MongoDB answer before it is answered 503."""
    publish_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long a run request waits for Kafka to take its message; after that the run stays
    stored with its message pending (the sweeper publishes it) and the request is answered."""
    dependency_retry_after_seconds: int = Field(default=5, ge=1)
    """`Retry-After` of a 503 answered while MongoDB, Kafka or S3 is unreachable."""
    startup_timeout_seconds: float = 15.0
    log_level: str = "INFO"
    access_log: bool = False
    """A log line per HTTP request (uvicorn's access log)."""
