"""Kafka connection settings, mixed into each service's own settings model."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class KafkaSettings(BaseSettings):
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:39092", description="Comma-separated host:port list."
    )
    kafka_topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Put before every topic name: a namespace of its own for a test run.",
    )
