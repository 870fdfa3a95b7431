from __future__ import annotations

from bus.settings import KafkaSettings
from pydantic_settings import SettingsConfigDict
from storage.settings import MongoSettings


class NotifierSettings(KafkaSettings, MongoSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    notifier_group_id: str = "notifier"
    startup_timeout_seconds: float = 15.0
    log_level: str = "INFO"
