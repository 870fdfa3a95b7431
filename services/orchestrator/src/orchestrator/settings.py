from __future__ import annotations

from bus.settings import KafkaSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from storage.settings import MongoSettings
from workflow.limits import Limits


class OrchestratorSettings(KafkaSettings, MongoSettings, Limits):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    orchestrator_group_id: str = "orchestrator"
    orchestrator_max_in_flight: int = Field(default=256, ge=1, le=10_000)
    """Events handled at once by this process (different runs; one run's are in order)."""
    hot_runs: int = Field(default=10_000, ge=0)
    """Runs whose latest state is kept in memory (saves a read per event)."""
    claim_release_interval_seconds: float = Field(default=0.25, gt=0)
    """Claims of carried-out changes are removed in one request this often."""
    shutdown_timeout_seconds: float = Field(default=20, gt=0)
    step_timeout_grace_seconds: float = Field(default=5, ge=0)
    """How long after a step's timeout the orchestrator re-drives it if no result came."""
    watchdog_seconds: float = Field(default=30, gt=0)
    """A run still queued, or a change not carried out, this long is re-driven."""
    sweep_interval_seconds: float = Field(default=0.5, gt=0)
    timer_lease_seconds: float = Field(default=30, gt=0)
    startup_timeout_seconds: float = 15.0
    log_level: str = "INFO"
    orchestrator_ops_port: int = Field(default=38001, ge=0, le=65535)
    """/healthz, /readyz and /metrics (bus.ops); 0 picks a free port (it is logged)."""
    ops_host: str = "127.0.0.1"
    """Where the ops port listens: loopback, as its /metrics has no token."""
