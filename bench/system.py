"""The system under test: the four services as child processes on a database of their own."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from common import log
from devstack import apps
from devstack.api import Endpoints
from devstack.settings import Settings
from workflow.limits import Limits

SERVICES: tuple[str, ...] = tuple(apps.SERVICES)
TENANT = "bench"
WORKFLOW_ID = "bench-echo"
WORKFLOW: dict[str, Any] = {
    "name": "Bench echo",
    "description": "One text.template node: the smallest run that crosses every service.",
    "inputSchema": {
        "type": "object",
        "required": ["x"],
        "additionalProperties": False,
        "properties": {"x": {"type": "string", "maxLength": 200}},
    },
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "{{ inputs.x }}"}}],
    "outputs": {"text": "{{ nodes.say.text }}"},
}
SERVICE_ENV = {
    "PYTHONUNBUFFERED": "1",
    "MAX_WAIT_SECONDS": "60",
}
# Service settings worth printing next to the figures (the rest are addresses and secrets).
INTERESTING_SETTING = re.compile(
    r"concurren|consumers|group_id|prefix|max_wait|watchdog|sweep|poll|interval|partition"
)


@dataclass
class System:
    url: str
    env: dict[str, str]
    logs: Path
    database: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def mongodb_url(self) -> str:
        return self.env["MONGODB_URL"]


@contextmanager
def services(settings: Settings, endpoints: Endpoints, port: int) -> Iterator[System]:
    """The four services as child processes on a fresh database; on the way out they get
    SIGTERM (and are waited for) and the database is dropped, even on error."""
    # Detached services of `make up` would share the consumer groups and run other code.
    apps.stop(settings, say=lambda m: log(f"detached {m}"))
    env = dict(os.environ)
    env.update(endpoints.as_env())
    env.update(SERVICE_ENV)
    env["INGRESS_PORT"] = str(port)
    # A fresh database: the bench measures the system on the history it loads itself, not on
    # whatever a developer's database holds.
    database = f"bench_{uuid.uuid4().hex[:8]}"
    env["MONGODB_DATABASE"] = database
    logs = settings.logs_dir / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    system = System(url=f"http://127.0.0.1:{port}", env=env, logs=logs, database=database)
    try:
        system.procs.update(apps.launch(env, logs))
        apps.await_ready(system.url, logs, system.procs, env=env)
        yield system
    finally:
        apps.terminate(system.procs)
        if system.procs:
            log("services stopped")
        drop_database(system)


def drop_database(system: System) -> None:
    from pymongo import MongoClient

    try:
        with MongoClient[dict[str, Any]](
            system.mongodb_url, serverSelectionTimeoutMS=10_000
        ) as client:
            client.drop_database(system.database)
        log(f"dropped database {system.database}")
    except Exception as exc:  # the stack may be restarting; say so rather than hide it
        log(f"could not drop database {system.database}: {type(exc).__name__}: {exc}")


def create_key(env: dict[str, str], tenant: str = TENANT) -> str:
    out = subprocess.run(
        # The bench measures the system, not the tenant's rate limits and quotas.
        [
            sys.executable,
            "-m",
            "ingress.admin",
            "create-key",
            "--tenant",
            tenant,
            "--limits",
            "unlimited",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip().splitlines()[-1]


def register(
    system: System, key: str, workflow_id: str = WORKFLOW_ID, name: str = "Bench echo"
) -> None:
    r = httpx.put(
        f"{system.url}/v1/workflows/{workflow_id}",
        json={**WORKFLOW, "name": name},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    if r.status_code not in (200, 201):
        raise RuntimeError(f"registering {workflow_id} failed: {r.status_code} {r.text}")


def log_offsets(system: System) -> dict[str, int]:
    out = {}
    for name in SERVICES:
        path = system.logs / f"{name}.log"
        out[name] = path.stat().st_size if path.exists() else 0
    return out


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d{3})")


def _time_and_message(line: str) -> tuple[str, str]:
    """A log line's time and message: a JSON line's fields (bus.logs), else the plain text."""
    text = line.rstrip()
    if text.startswith("{"):
        try:
            fields = json.loads(text)
        except ValueError:
            return text, text
        if isinstance(fields, dict):
            when = str(fields.get("time", "")).replace("T", " ")
            return when, str(fields.get("message", "")).rstrip()
    return text, text


def handler_ms_per_run(system: System, since: dict[str, int], runs: int) -> dict[str, float]:
    """Per service, the summed FastStream ``Received`` → ``Processed`` time per run (ms).

    Pairs lines first in, first out, so it is exact only without overlapping messages
    (concurrency 1). A service whose log has no such pairs is left out; an empty result means
    the log format changed.
    """
    out: dict[str, float] = {}
    if runs <= 0:
        return out
    for name in SERVICES:
        path = system.logs / f"{name}.log"
        try:
            with path.open("rb") as f:
                f.seek(since.get(name, 0))
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            continue
        total = 0.0
        pairs = 0
        pending: list[float] = []
        for line in lines:
            at_text, text = _time_and_message(line)
            if text.endswith("Received"):
                kind = "Received"
            elif text.endswith("Processed"):
                kind = "Processed"
            else:
                continue
            match = _LOG_TIME.match(at_text)
            if match is None:
                continue
            at = datetime.strptime(match.group(1).replace(".", ","), "%Y-%m-%d %H:%M:%S,%f")
            if kind == "Received":
                pending.append(at.timestamp())
            elif pending:
                total += (at.timestamp() - pending.pop(0)) * 1000
                pairs += 1
        if pairs:
            out[name] = total / runs
    return out


def service_settings(env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Per service, the settings that shape its throughput, as the bench's services see them
    (each service's pydantic settings model read with the services' environment). A service
    whose settings cannot be read (being changed) is reported as such."""
    out: dict[str, dict[str, str]] = {}
    for name in SERVICES:
        try:
            module = importlib.import_module(f"{name}.settings")
            from pydantic_settings import BaseSettings

            models = [
                obj
                for obj in vars(module).values()
                if inspect.isclass(obj)
                and issubclass(obj, BaseSettings)
                and obj.__module__ == module.__name__
            ]
            values: dict[str, str] = {}
            with mock.patch.dict(os.environ, env, clear=True):
                for model in models:
                    instance = model()
                    for key, value in instance.model_dump().items():
                        # Limits (workflow.limits) bound tenants' work, not throughput.
                        if INTERESTING_SETTING.search(key) and key not in Limits.model_fields:
                            values[key.upper()] = str(value)
            out[name] = values
        except Exception as exc:
            out[name] = {"(unreadable)": f"{type(exc).__name__}: {exc}"[:120]}
    return out
