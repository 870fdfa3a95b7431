"""Identifiers whose lexical order is their creation order (newest-first listing by _id)."""

from __future__ import annotations

import secrets
import time


def time_ordered_id(prefix: str, now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{prefix}_{ms:012x}{secrets.token_hex(8)}"
