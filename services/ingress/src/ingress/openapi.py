"""The committed OpenAPI document of the HTTP API: `python -m ingress.openapi [--check]`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from contracts.schemas import write_or_check
from ingress.app import create_app
from ingress.settings import IngressSettings

OPENAPI_FILE = Path(__file__).resolve().parents[4] / "contracts" / "openapi.json"


def document() -> dict[str, Any]:
    return create_app(IngressSettings()).openapi()


def main(argv: list[str] | None = None) -> int:
    return write_or_check("python -m ingress.openapi", OPENAPI_FILE, document, argv)


if __name__ == "__main__":
    sys.exit(main())
