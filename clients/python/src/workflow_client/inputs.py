"""`-i key.path=value` assignments of the CLI, built into the inputs object."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


class InputError(ValueError):
    """An assignment that cannot be applied; the message says which and why."""


def parse_value(text: str) -> Any:
    """JSON when `text` is valid JSON (`3`, `true`, `null`, `[1, 2]`, `{"a": 1}`, `"quoted"`),
    else the text itself: `prompt=a cat` needs no quotes."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def assign(target: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at the dotted `path` of `target`, making the objects on the way."""
    keys = path.split(".")
    if not path or any(not k for k in keys):
        raise InputError(f"{path!r}: a path is names separated by dots, e.g. options.quality")
    node = target
    for depth, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(keys[: depth + 1])
            raise InputError(f"{path!r}: {where} is already set to {child!r}, not an object")
        node = child
    node[keys[-1]] = value


def build_inputs(assignments: Iterable[str]) -> dict[str, Any]:
    """`["prompt=a cat", "options.quality=high", "n=2"]` → `{"prompt": "a cat",
    "options": {"quality": "high"}, "n": 2}`; a later assignment of a path wins."""
    inputs: dict[str, Any] = {}
    for item in assignments:
        path, sep, text = item.partition("=")
        if not sep:
            raise InputError(f"{item!r}: expected PATH=VALUE, e.g. prompt='a cat'")
        assign(inputs, path.strip(), parse_value(text))
    return inputs
