from __future__ import annotations

from bus.settings import KafkaSettings
from egress import EgressSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from storage.settings import S3Settings


class ExecutorSettings(KafkaSettings, S3Settings, EgressSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    executor_group_id: str = "executor"
    executor_concurrency: int = Field(default=4, ge=1, le=256)
    """Steps one process runs at once; image work uses a thread each."""
    executor_default_timeout_seconds: float = Field(default=300, gt=0)
    image_provider_url: str | None = None
    """An external generation endpoint; unset means the built-in offline provider."""
    image_provider_timeout_seconds: float = 120
    http_timeout_seconds: float = Field(default=60, gt=0)
    """Per request of an `http.request` node (the node's timeoutSeconds bounds the whole step)."""
    startup_timeout_seconds: float = 15.0
    shutdown_drain_seconds: float = 60.0
    log_level: str = "INFO"
