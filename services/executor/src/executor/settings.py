from __future__ import annotations

from typing import Literal

from bus.settings import KafkaSettings
from egress import EgressPolicy
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from storage.settings import MongoSettings, ProviderSecretsSettings, S3Settings
from workflow.limits import Limits


class ExecutorSettings(KafkaSettings, S3Settings, MongoSettings, ProviderSecretsSettings, Limits):
    """MongoDB is used only for tenants' provider credentials, when PROVIDER_CREDENTIALS_KEYS
    is set."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    executor_group_id: str = "executor"
    executor_concurrency: int = Field(default=4, ge=1, le=256)
    """Steps one process runs at once; image work uses a thread each."""
    image_provider: Literal["offline", "openai", "replicate", "fal", "comfyui"] = "offline"
    """The provider of an `image.generate` node that names none: the offline renderer unless
    the deployment sets a real one."""
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    """An OpenAI-compatible server instead of api.openai.com (Azure OpenAI's /openai/v1/,
    a local server)."""
    openai_image_model: str | None = None
    """Default model; unset means gpt-image-1."""
    replicate_api_token: SecretStr | None = None
    replicate_base_url: str | None = None
    replicate_model: str | None = None
    """Default model (`owner/name`, `owner/name:version` or `deployments/owner/name`); unset
    means black-forest-labs/flux-schnell."""
    fal_key: SecretStr | None = None
    fal_queue_url: str | None = None
    """Unset means https://queue.fal.run."""
    fal_model: str | None = None
    """Default model id; unset means fal-ai/flux/schnell."""
    comfyui_url: str | None = None
    """A ComfyUI server, e.g. http://comfy.internal:8188."""
    comfyui_api_key: SecretStr | None = None
    """Sent as a bearer token, for a ComfyUI behind an authenticating proxy."""
    provider_request_timeout_seconds: float = Field(default=120, gt=0, le=3600)
    """Per HTTP request to a provider; the node's timeoutSeconds bounds the whole step."""
    provider_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often a queued generation (Replicate, fal, ComfyUI) is asked for its status."""
    provider_egress_allow: str = ""
    """Networks a tenant's own provider base URL, and every output URL a provider returns,
    may reach beyond the public internet (as HTTP_NODE_ALLOW). Addresses in settings are the
    operator's and trusted."""
    provider_egress_allow_http: bool = False
    provider_credentials_cache_seconds: float = Field(default=15, ge=0, le=3600)
    """How long a tenant's provider credentials are reused before being read again."""
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

    def provider_policy(self) -> EgressPolicy:
        return EgressPolicy.parse(
            self.provider_egress_allow, allow_http=self.provider_egress_allow_http
        )

    @model_validator(mode="after")
    def _refuse_blanket_in_production(self) -> ExecutorSettings:
        if self.environment.lower() == "production" and self.http_node_policy().blanket:
            raise ValueError("HTTP_NODE_ALLOW allows every address; list the networks instead")
        if self.environment.lower() == "production" and self.provider_policy().blanket:
            raise ValueError(
                "PROVIDER_EGRESS_ALLOW allows every address; list the networks instead"
            )
        return self
