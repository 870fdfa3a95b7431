"""The committed OpenAPI document of the HTTP API: `python -m ingress.openapi [--check]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ingress.app import create_app
from ingress.settings import IngressSettings

OPENAPI_FILE = Path(__file__).resolve().parents[4] / "contracts" / "openapi.json"


def document() -> dict[str, Any]:
    return create_app(IngressSettings()).openapi()


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingress.openapi")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render(document())
    if args.check:
        current = OPENAPI_FILE.read_text() if OPENAPI_FILE.exists() else ""
        if current != text:
            print(f"{OPENAPI_FILE} is stale: run `make schemas`", file=sys.stderr)
            return 1
        return 0
    OPENAPI_FILE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
