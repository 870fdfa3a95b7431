from __future__ import annotations

from bus.settings import KafkaSettings
from egress import EgressSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from storage.settings import MongoSettings, S3Settings
from workflow.limits import Limits


class IngressSettings(KafkaSettings, MongoSettings, S3Settings, EgressSettings, Limits):
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
    startup_timeout_seconds: float = 15.0
    log_level: str = "INFO"
    access_log: bool = False
    """A log line per HTTP request (uvicorn's access log)."""
