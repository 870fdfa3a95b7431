from __future__ import annotations

from bus.settings import KafkaSettings
from egress import EgressPolicy
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict
from storage.settings import S3Settings
from workflow.limits import Limits


class ExecutorSettings(KafkaSettings, S3Settings, Limits):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    executor_group_id: str = "executor"
    executor_concurrency: int = Field(default=4, ge=1, le=256)
    """Steps one process runs at once; image work uses a thread each."""
    image_provider_url: str | None = None
    """An external generation endpoint; unset means the built-in offline provider."""
    image_provider_timeout_seconds: float = 120
    http_timeout_seconds: float = Field(default=60, gt=0)
    """Per request of an `http.request` node (the node's timeoutSeconds bounds the whole step)."""
    http_node_allow: str = ""
    """Networks `http.request` nodes may reach beyond the public internet (e.g. `loopback`,
    CIDRs). Separate from the notifier's EGRESS_ALLOW: workflows are user code."""
    http_node_allow_http: bool = False
    environment: str = "development"
    startup_timeout_seconds: float = 15.0
    shutdown_drain_seconds: float = 60.0
    log_level: str = "INFO"
    executor_ops_port: int = Field(default=38002, ge=0, le=65535)
    """/healthz, /readyz and /metrics (bus.ops); 0 picks a free port (it is logged)."""
    ops_host: str = "127.0.0.1"
    """Where the ops port listens: loopback, as its /metrics has no token."""

    def http_node_policy(self) -> EgressPolicy:
        return EgressPolicy.parse(self.http_node_allow, allow_http=self.http_node_allow_http)

    @model_validator(mode="after")
    def _refuse_blanket_in_production(self) -> ExecutorSettings:
        if self.environment.lower() == "production" and self.http_node_policy().blanket:
            raise ValueError("HTTP_NODE_ALLOW allows every address; list the networks instead")
        return self
