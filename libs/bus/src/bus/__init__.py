"""Kafka wiring shared by every service: broker factory, topics, CloudEvents envelope."""
