"""The shell-sourceable ``.stack/env`` file: devstack owns some keys, others may append theirs."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

HEADER = "# Endpoints of the local stack, written by `python -m devstack up`."

OWNED_KEYS: tuple[str, ...] = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "MONGODB_URL",
    "MONGODB_DATABASE",
    "S3_ENDPOINT",
    "S3_PUBLIC_ENDPOINT",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "S3_REGION",
    "S3_OUTPUTS_BUCKET",
    "S3_UPLOADS_BUCKET",
)


def _key_of(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or "=" not in stripped:
        return None
    key = stripped.split("=", 1)[0].strip()
    if key.startswith("export "):
        key = key[len("export ") :].strip()
    return key


def parse_env(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (optionally ``export``-prefixed, values shell-quoted) to a dict."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        key = _key_of(line)
        if key is None:
            continue
        raw = line.split("=", 1)[1].strip()
        try:
            parts = shlex.split(raw, comments=True)
        except ValueError:
            parts = [raw]
        result[key] = " ".join(parts)
    return result


def render_env(values: Mapping[str, str], existing: str | None = None) -> str:
    """The new file: ``values`` first (in their order), then every line of ``existing`` that
    sets a key not in ``values`` (or is a comment other than our header), unchanged."""
    lines = [HEADER]
    lines += [f"{key}={shlex.quote(value)}" for key, value in values.items()]
    for line in (existing or "").splitlines():
        if line.strip() == HEADER:
            continue
        key = _key_of(line)
        if key is not None and key in values:
            continue
        if not line.strip() and lines and not lines[-1].strip():
            continue
        lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n"


def write_env(path: Path, values: Mapping[str, str]) -> None:
    """Merge ``values`` into the env file at ``path`` atomically, keeping others' lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        existing: str | None = path.read_text()
    except FileNotFoundError:
        existing = None
    text = render_env(values, existing)
    if text == existing:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_env_file(path: Path) -> dict[str, str]:
    try:
        return parse_env(path.read_text())
    except FileNotFoundError:
        return {}
