from __future__ import annotations

from bus.settings import KafkaSettings
from pydantic_settings import SettingsConfigDict
from storage.settings import MongoSettings


class OrchestratorSettings(KafkaSettings, MongoSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    orchestrator_group_id: str = "orchestrator"
    startup_timeout_seconds: float = 15.0
    log_level: str = "INFO"
