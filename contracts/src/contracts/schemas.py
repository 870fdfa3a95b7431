"""JSON Schema of every event, generated from the models and committed under contracts/schemas.

`python -m contracts.schemas` rewrites the files; `--check` exits 1 when they differ from the
models and names any breaking change (removed or retyped field, new required field).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contracts.compat import breaking_changes
from contracts.events import EVENT_MODELS

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "events"


def event_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, one per event type."""
    out: dict[str, dict[str, Any]] = {}
    for model in EVENT_MODELS:
        schema = model.model_json_schema(by_alias=True, mode="serialization")
        schema["$id"] = f"urn:{model.event_type}"
        schema["x-cloudevents-type"] = model.event_type
        out[f"{model.event_type}.json"] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_or_check(
    prog: str, path: Path, document: Callable[[], dict[str, Any]], argv: list[str] | None
) -> int:
    """The command of a committed document (OpenAPI, AsyncAPI): write it, or with `--check`
    exit 1 when the file differs from what the code generates."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render(document())
    if args.check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print(f"{path} is stale: run `make schemas`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    return 0


def committed_schemas(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def check(directory: Path = SCHEMA_DIR) -> list[str]:
    """Differences between the models and the committed files, breaking ones spelled out."""
    problems: list[str] = []
    generated = event_schemas()
    committed = committed_schemas(directory)
    for name in sorted(committed.keys() - generated.keys()):
        problems.append(f"{name}: event type removed (breaking)")
    for name, schema in generated.items():
        old = committed.get(name)
        if old is None:
            problems.append(f"{name}: not committed (run python -m contracts.schemas)")
        elif old != schema:
            breaking = breaking_changes(old, schema)
            kind = "; ".join(breaking) + " (breaking)" if breaking else "additive change"
            problems.append(f"{name}: differs from the committed schema: {kind}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.schemas")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    generated = event_schemas()
    for stale in SCHEMA_DIR.glob("*.json"):
        if stale.name not in generated:
            stale.unlink()
    for name, schema in generated.items():
        (SCHEMA_DIR / name).write_text(render(schema))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
