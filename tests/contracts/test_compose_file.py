"""docker-compose.yml stays a valid description of the same system `make run` starts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from bus.topics import Topic

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_runs_every_server_and_service_with_health_checks() -> None:
    services = _compose()["services"]
    for name in ("kafka", "mongo", "minio", "ingress", "orchestrator", "executor", "notifier"):
        assert "healthcheck" in services[name], name
    for name in ("ingress", "orchestrator", "executor", "notifier"):
        assert services[name]["build"]["args"]["SERVICE"] == name


def test_each_worker_is_healthy_when_its_ops_port_answers_readyz() -> None:
    from devstack.apps import OPS_PORTS
    from executor.settings import ExecutorSettings
    from notifier.settings import NotifierSettings
    from orchestrator.settings import OrchestratorSettings

    services = _compose()["services"]
    defaults = {
        name: model.model_fields[f"{name}_ops_port"].default
        for name, model in (
            ("orchestrator", OrchestratorSettings),
            ("executor", ExecutorSettings),
            ("notifier", NotifierSettings),
        )
    }
    assert defaults == OPS_PORTS  # what devstack waits on is what the services open
    for name, port in defaults.items():
        assert f"127.0.0.1:{port}/readyz" in " ".join(services[name]["healthcheck"]["test"])


def test_compose_creates_exactly_the_registered_topics() -> None:
    script = "\n".join(_compose()["services"]["topics"]["command"])
    for topic in Topic:
        assert topic.value in script


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_the_compose_client_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no docker compose client on this machine (the engine is not needed)")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
