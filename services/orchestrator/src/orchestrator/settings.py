from __future__ import annotations

from bus.settings import KafkaSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from storage.settings import MongoSettings


class OrchestratorSettings(KafkaSettings, MongoSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    orchestrator_group_id: str = "orchestrator"
    orchestrator_consumers: int = Field(default=3, ge=1, le=64)
    """Consumers in this process; each owns some partitions (at most the partition count
    across all instances is useful)."""
    default_step_timeout_seconds: float = Field(default=900, gt=0)
    """A step without its own timeoutSeconds is re-driven after this long."""
    max_chain_depth: int = Field(default=5, ge=1, le=50)
    step_timeout_grace_seconds: float = Field(default=5, ge=0)
    """How long after a step's timeout the orchestrator re-drives it if no result came."""
    watchdog_seconds: float = Field(default=30, gt=0)
    sweep_interval_seconds: float = Field(default=0.5, gt=0)
    timer_lease_seconds: float = Field(default=30, gt=0)
    startup_timeout_seconds: float = 15.0
    log_level: str = "INFO"
