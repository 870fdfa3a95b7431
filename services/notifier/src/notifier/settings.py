from __future__ import annotations

from datetime import timedelta

from bus.settings import KafkaSettings
from egress import EgressSettings
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict
from storage.settings import MongoSettings, S3Settings
from workflow.limits import Limits

from notifier.retries import DEFAULT_SCHEDULE, RetrySchedule


class NotifierSettings(KafkaSettings, MongoSettings, S3Settings, EgressSettings, Limits):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    notifier_group_id: str = "notifier"
    startup_timeout_seconds: float = 15.0
    log_level: str = "INFO"
    notifier_ops_port: int = Field(default=38003, ge=0, le=65535)
    """/healthz, /readyz and /metrics (bus.ops); 0 picks a free port (it is logged)."""
    ops_host: str = "127.0.0.1"
    """Where the ops port listens: loopback, as its /metrics has no token."""

    notifier_retry_schedule: str = DEFAULT_SCHEDULE
    """Seconds before each attempt, comma separated; its length is the number of attempts."""
    notifier_retry_jitter: float = Field(default=0.1, ge=0, lt=1)
    notifier_max_retry_after_seconds: float = Field(default=86400, gt=0)
    notifier_attempt_timeout_seconds: float = Field(default=15, gt=0)
    notifier_host_concurrency: int = Field(default=4, ge=1)
    """Attempts in flight at once to one endpoint host:port."""
    notifier_concurrency: int = Field(default=64, ge=1)
    notifier_poll_seconds: float = Field(default=1.0, gt=0)
    notifier_lease_seconds: float | None = Field(default=None, gt=0)
    """How long a claimed attempt is ours; default twice the timeout plus 30 s."""

    @model_validator(mode="after")
    def _valid_schedule(self) -> NotifierSettings:
        self.retry_schedule()
        if self.lease <= timedelta(seconds=self.notifier_attempt_timeout_seconds):
            raise ValueError("NOTIFIER_LEASE_SECONDS must exceed the attempt timeout")
        return self

    def retry_schedule(self) -> RetrySchedule:
        return RetrySchedule.parse(
            self.notifier_retry_schedule,
            jitter=self.notifier_retry_jitter,
            max_retry_after=self.notifier_max_retry_after_seconds,
        )

    @property
    def lease(self) -> timedelta:
        seconds = self.notifier_lease_seconds
        if seconds is None:
            seconds = 2 * self.notifier_attempt_timeout_seconds + 30
        return timedelta(seconds=seconds)
