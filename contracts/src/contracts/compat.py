"""Backward-compatibility rules for event schemas within one major version.

Allowed: new optional fields, new definitions, looser descriptions. Breaking: a removed field, a
field whose type changed, a field that became required.
"""

from __future__ import annotations

from typing import Any


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved: dict[str, Any] = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return resolved
    return schema


def _types(schema: dict[str, Any], root: dict[str, Any]) -> frozenset[str]:
    schema = _resolve(schema, root)
    if "type" in schema:
        t = schema["type"]
        return frozenset(t if isinstance(t, list) else [t])
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        return frozenset().union(*(_types(v, root) for v in variants))
    if "$ref" in schema:
        return frozenset([schema["$ref"]])
    return frozenset()


def breaking_changes(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str = "",
    old_root: dict[str, Any] | None = None,
    new_root: dict[str, Any] | None = None,
) -> list[str]:
    old_root = old_root if old_root is not None else old
    new_root = new_root if new_root is not None else new
    old = _resolve(old, old_root)
    new = _resolve(new, new_root)
    problems: list[str] = []
    old_props: dict[str, Any] = old.get("properties", {})
    new_props: dict[str, Any] = new.get("properties", {})
    for name, old_prop in old_props.items():
        where = f"{path}/{name}"
        if name not in new_props:
            problems.append(f"{where} removed")
            continue
        new_prop = new_props[name]
        old_t, new_t = _types(old_prop, old_root), _types(new_prop, new_root)
        if old_t and new_t and not old_t <= new_t:
            problems.append(f"{where} retyped from {sorted(old_t)} to {sorted(new_t)}")
        problems += breaking_changes(old_prop, new_prop, where, old_root, new_root)
    for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
        problems.append(f"{path}/{name} became required")
    return problems
