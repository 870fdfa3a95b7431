"""``{{ … }}`` references: parsing and resolution. A reference is a path lookup, never code.

Grammar (whitespace inside the braces is optional)::

    reference := "{{" root ("." segment)* "}}"
    root      := "inputs" | "item"              (any number of segments)
               | "nodes" "." id "." output ...  (at least node id and output)
    segment   := identifier | non-negative integer (a list index)

Every ``{{`` opens a reference; there is no escape. A ``}}`` outside a reference is text.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

Root = Literal["inputs", "nodes", "item"]
Segment: TypeAlias = str | int

ROOTS: tuple[Root, ...] = ("inputs", "nodes", "item")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"0|[1-9][0-9]*")
_OPEN, _CLOSE = "{{", "}}"


@dataclass(frozen=True)
class Reference:
    root: Root
    path: tuple[Segment, ...] = ()

    @property
    def expression(self) -> str:
        return ".".join([self.root, *map(str, self.path)])

    def __str__(self) -> str:
        return f"{{{{ {self.expression} }}}}"


class TemplateError(ValueError):
    pass


class TemplateSyntaxError(TemplateError):
    def __init__(self, text: str, position: int, reason: str) -> None:
        super().__init__(f"{reason} (at character {position} of {text!r})")
        self.text = text
        self.position = position
        self.reason = reason


class ResolutionError(TemplateError):
    def __init__(self, reference: Reference, missing: Segment | None, reason: str) -> None:
        super().__init__(f"cannot resolve {reference}: {reason}")
        self.reference = reference
        self.missing = missing
        """The first path segment (or root) that could not be found."""
        self.reason = reason


class ValueTooLarge(TemplateError):
    """Resolving would build a value larger than the caller's ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the resolved value is larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


Part: TypeAlias = str | Reference


def parse(text: str) -> list[Part]:
    """Split a string into literal text and references; raise TemplateSyntaxError if malformed."""
    return list(_iter_parts(text))


def _iter_parts(text: str) -> Iterator[Part]:
    """`parse`, one part at a time: a bounded resolution stops parsing where it stops."""
    position = 0
    while (start := text.find(_OPEN, position)) >= 0:
        end = text.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            raise TemplateSyntaxError(text, start, "'{{' is never closed with '}}'")
        if start > position:
            yield text[position:start]
        yield _parse_expression(text, start, text[start + len(_OPEN) : end])
        position = end + len(_CLOSE)
    if position < len(text):
        yield text[position:]


def _parse_expression(text: str, start: int, inner: str) -> Reference:
    expression = inner.strip()
    if not expression:
        raise TemplateSyntaxError(text, start, "empty reference '{{ }}'")
    root, *rest = expression.split(".")
    if root not in ROOTS:
        raise TemplateSyntaxError(
            text, start, f"unknown root {root!r} in {expression!r}; use inputs, nodes or item"
        )
    path: list[Segment] = []
    for segment in rest:
        if _INDEX.fullmatch(segment):
            path.append(int(segment))
        elif _IDENTIFIER.fullmatch(segment):
            path.append(segment)
        else:
            raise TemplateSyntaxError(
                text,
                start,
                f"invalid path segment {segment!r} in {expression!r}; segments are names"
                " (letters, digits, _ and -) or list indexes, separated by '.'",
            )
    if root == "nodes" and (len(path) < 2 or not all(isinstance(s, str) for s in path[:2])):
        raise TemplateSyntaxError(
            text, start, f"{expression!r} must name a node and its output: nodes.<id>.<output>"
        )
    return Reference(root, tuple(path))


def find_references(value: Any) -> list[Reference]:
    """Every reference in a string or nested dicts/lists of strings, in document order."""
    if isinstance(value, str):
        return [part for part in parse(value) if isinstance(part, Reference)]
    if isinstance(value, Mapping):
        return [ref for item in value.values() for ref in find_references(item)]
    if isinstance(value, list | tuple):
        return [ref for item in value for ref in find_references(item)]
    return []


def resolve(value: Any, context: Mapping[str, Any], *, max_bytes: int | None = None) -> Any:
    """Replace references with values from ``context`` (keys inputs, nodes and maybe item).

    A string that is exactly one reference becomes the referenced value, keeping its type;
    references inside longer strings are interpolated as text.

    With ``max_bytes``, the result's size as compact JSON is counted while resolving, and
    :class:`ValueTooLarge` is raised as soon as the count passes it: the work done is bounded
    by ``max_bytes`` (plus the text of ``value``), however many references point at however
    large a value. The count skips JSON escapes, so it can be below the exact size; a caller
    that needs the exact size measures the (now bounded) result.
    """
    budget = _Budget(max_bytes) if max_bytes is not None else None
    return _resolve(value, context, budget)


class _Budget:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.left = max_bytes

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise ValueTooLarge(self.max_bytes)

    def spend_value(self, value: Any) -> None:
        """Spend a referenced value's size, walking it no further than the budget left."""
        self.spend(_json_size(value, self.left + 1))


def _resolve(value: Any, context: Mapping[str, Any], budget: _Budget | None) -> Any:
    if isinstance(value, str):
        parts = _iter_parts(value)
        first, second = next(parts, None), next(parts, None)
        if isinstance(first, Reference) and second is None:
            found = lookup(first, context)
            if budget is not None:
                budget.spend_value(found)
            return found
        if budget is not None:
            budget.spend(2)
        texts: list[str] = []
        for part in itertools.chain((p for p in (first, second) if p is not None), parts):
            if isinstance(part, Reference):
                found = lookup(part, context)
                if budget is not None:
                    # Measured before `_as_text` builds the text of a large value.
                    budget.spend_value(found)
                texts.append(_as_text(found))
            else:
                if budget is not None:
                    budget.spend(_str_size(part))
                texts.append(part)
        return "".join(texts)
    if isinstance(value, Mapping):
        if budget is not None:
            budget.spend(2 + sum(_str_size(str(key)) + 4 for key in value))
        return {key: _resolve(item, context, budget) for key, item in value.items()}
    if isinstance(value, list | tuple):
        if budget is not None:
            budget.spend(2 + len(value))
        return [_resolve(item, context, budget) for item in value]
    if budget is not None:
        budget.spend_value(value)
    return value


def _str_size(text: str) -> int:
    """UTF-8 bytes of ``text`` (without JSON quotes and escapes)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _json_size(value: Any, cap: int) -> int:
    """About the bytes of ``value`` as compact JSON, or any number above ``cap`` once the
    count passes it: each node visited adds at least one byte, so at most ``cap`` are."""
    size = 0
    stack = [value]
    while stack and size <= cap:
        item = stack.pop()
        if isinstance(item, str):
            size += _str_size(item) + 2
        elif isinstance(item, Mapping):
            size += 2 + len(item)
            if size > cap:  # before walking a huge container: every entry costs a byte
                break
            for key, nested in item.items():
                size += _str_size(str(key)) + 3
                stack.append(nested)
        elif isinstance(item, list | tuple):
            size += 2 + len(item)
            if size > cap:
                break
            stack.extend(item)
        elif item is None or isinstance(item, bool):
            size += 4
        elif isinstance(item, int | float):
            size += len(repr(item))
        else:
            size += len(str(item))
    return size


def lookup(reference: Reference, context: Mapping[str, Any]) -> Any:
    if reference.root not in context:
        raise ResolutionError(reference, reference.root, f"{reference.root!r} is not in scope")
    current: Any = context[reference.root]
    walked: str = reference.root
    for segment in reference.path:
        found, current = _step(current, segment)
        if not found:
            raise ResolutionError(reference, segment, f"{walked} has no {segment!r}")
        walked = f"{walked}.{segment}"
    return current


def _step(current: Any, segment: Segment) -> tuple[bool, Any]:
    if isinstance(current, Mapping):
        key = str(segment)
        return (True, current[key]) if key in current else (False, None)
    if (
        isinstance(current, Sequence)
        and not isinstance(current, str | bytes)
        and isinstance(segment, int)
        and segment < len(current)
    ):
        return True, current[segment]
    return False, None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
