"""The `Prefer` request header (RFC 7240): `respond-async` and `wait=<seconds>`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preference:
    respond_async: bool = False
    wait: float | None = None


def parse_prefer(values: list[str]) -> Preference:
    respond_async = False
    wait: float | None = None
    for value in values:
        for token in value.split(","):
            name, _, arg = token.strip().partition("=")
            name = name.strip().lower()
            arg = arg.strip().strip('"')
            if name == "respond-async":
                respond_async = True
            elif name == "wait":
                try:
                    wait = max(0.0, float(arg))
                except ValueError:
                    continue
    return Preference(respond_async=respond_async, wait=wait)
