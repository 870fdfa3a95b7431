"""Tenant-written JSON Schema, made safe to evaluate on shared machines.

A tenant's ``inputSchema`` is evaluated against every run's inputs inside the ingress, so it
must not be able to take the process down. Three things would let it, with the stock
``jsonschema`` validator:

* patterns (``pattern``, ``patternProperties``) run on Python's backtracking ``re``, where
  ``^(a+)+$`` against 40 characters takes longer than the age of the universe. Here every
  pattern runs on RE2, which is linear in the input; a pattern RE2 cannot compile
  (backreferences, lookaround) is refused at registration.
* ``$ref`` cycles that never descend into the instance (``{"$ref": "#"}``) recurse until the
  stack ends, and a DAG of in-place references (``allOf`` of two references to a schema that
  is itself ``allOf`` of two references …) evaluates exponentially many subschemas. Both are
  found on the schema alone, at registration: the number of subschemas one instance location
  can be checked against is bounded by ``MAX_SCHEMA_EXPANSION``.
* ``uniqueItems`` compares every pair of items (4,000 objects: 14 s). Here items are hashed
  into keys with JSON Schema's equality (``1 == 1.0``, ``true != 1``, objects unordered).

``$dynamicRef`` and references that leave the schema are refused (nothing is ever fetched),
as is ``unevaluatedProperties`` next to ``patternProperties`` (jsonschema evaluates that
combination with ``re`` internally, out of reach of the RE2 keywords below).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache, wraps
from typing import Any
from urllib.parse import unquote

import re2  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from referencing import Registry

from workflow.limits import Limits, exceeded

Path = tuple[str | int, ...]

_IN_PLACE_ONE = ("not", "if", "then", "else")
"""Keywords whose subschema applies to the same instance location (an in-place applicator)."""
_IN_PLACE_LIST = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAP = ("dependentSchemas",)
_DESCEND_ONE = (
    "additionalProperties",
    "propertyNames",
    "items",
    "contains",
    "unevaluatedItems",
    "unevaluatedProperties",
)
"""Keywords whose subschema applies to a child of the instance: a cycle through one of these
ends when the (size-limited) instance does."""
_DESCEND_LIST = ("prefixItems",)
_DESCEND_MAP = ("properties", "patternProperties")
_CONTAINER_MAP = ("$defs", "definitions")
"""Subschemas that only apply when referenced."""
_IN_PLACE = frozenset((*_IN_PLACE_ONE, *_IN_PLACE_LIST, *_IN_PLACE_MAP))


def _subschemas(keyword: str, value: Any) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """The subschemas directly under one keyword, each with its path below the keyword."""
    if keyword in _IN_PLACE_ONE or keyword in _DESCEND_ONE:
        yield (), value
    elif (keyword in _IN_PLACE_LIST or keyword in _DESCEND_LIST) and isinstance(value, list):
        yield from (((index,), item) for index, item in enumerate(value))
    elif (
        keyword in _IN_PLACE_MAP or keyword in _DESCEND_MAP or keyword in _CONTAINER_MAP
    ) and isinstance(value, Mapping):
        yield from (((name,), item) for name, item in value.items())


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a tenant's bad pattern is a 422, not a line on stderr
    return options


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The RE2 program for an ECMA-262-style pattern; raises ``re2.error`` if RE2 cannot."""
    return re2.compile(pattern, _re2_options())


def _search(pattern: str, text: str) -> bool:
    try:
        return compile_pattern(pattern).search(text) is not None
    except (re2.error, UnicodeError):
        # Refused at registration; a schema stored before that, or text RE2 cannot encode,
        # simply does not match rather than falling back to a backtracking engine.
        return False


def schema_problems(schema: Any, limits: Limits) -> list[tuple[Path, str]]:
    """Everything that makes ``schema`` unsafe to evaluate, each with its path in the schema."""
    return list(_SchemaGraph(schema).problems(limits.max_schema_expansion))


class _SchemaGraph:
    """Every subschema as a node; edges are the in-place applicators and ``$ref``."""

    def __init__(self, root: Any) -> None:
        self.paths: dict[int, Path] = {}
        self.edges: dict[int, list[tuple[int, Path]]] = {}
        self.found: list[tuple[Path, str]] = []
        self.uses_pattern_properties = False
        self.unevaluated_properties_at: Path | None = None
        self._walk(root)

    def _walk(self, root: Any) -> None:
        """Structure first, so each subschema is named by where it is written; then each
        ``$ref`` becomes an edge (a target outside any keyword is walked from the ``$ref``)."""
        pending: list[tuple[Any, Path, Any]] = [(root, (), root)]
        refs: list[tuple[int, Path, Any, str]] = []
        while pending:
            while pending:
                node, path, base = pending.pop()
                if not isinstance(node, Mapping) or id(node) in self.paths:
                    continue
                self.paths[id(node)] = path
                if "$id" in node:
                    base = node  # local references inside resolve against this subschema
                edges = self.edges.setdefault(id(node), [])
                for keyword, value in node.items():
                    for where, subschema in _subschemas(keyword, value):
                        at = (*path, keyword, *where)
                        pending.append((subschema, at, base))
                        if keyword in _IN_PLACE and isinstance(subschema, Mapping):
                            edges.append((id(subschema), at))
                    self._check_keyword(keyword, value, (*path, keyword))
                    if keyword == "$ref" and isinstance(value, str):
                        refs.append((id(node), (*path, keyword), base, value))
            for source, at, base, ref in refs:
                target = _resolve(base, ref)
                if isinstance(target, Mapping):
                    self.edges[source].append((id(target), at))
                    pending.append((target, at, base))
            refs.clear()

    def _check_keyword(self, keyword: str, value: Any, path: Path) -> None:
        if keyword == "patternProperties" and isinstance(value, Mapping):
            self.uses_pattern_properties = True
            for pattern in value:
                self._check_pattern(pattern, (*path, pattern))
        elif keyword == "pattern" and isinstance(value, str):
            self._check_pattern(value, path)
        elif keyword == "unevaluatedProperties":
            self.unevaluated_properties_at = path
        elif keyword == "$dynamicRef":
            self.found.append((path, "$dynamicRef is not supported; use $ref"))

    def _check_pattern(self, pattern: str, path: Path) -> None:
        try:
            compile_pattern(pattern)
        except re2.error as exc:
            reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
            self.found.append(
                (
                    path,
                    f"pattern {pattern!r} is not supported ({reason}): patterns run on a"
                    " linear-time engine without backreferences or lookaround",
                )
            )

    def problems(self, max_expansion: int) -> Iterator[tuple[Path, str]]:
        yield from self.found
        if self.uses_pattern_properties and self.unevaluated_properties_at is not None:
            yield (
                self.unevaluated_properties_at,
                "unevaluatedProperties cannot be combined with patternProperties here;"
                " use additionalProperties",
            )
        yield from self._expansion_problems(max_expansion)

    def _expansion_problems(self, max_expansion: int) -> Iterator[tuple[Path, str]]:
        """In-place cycles, and in-place fan-out past the limit, by one iterative DFS."""
        cost: dict[int, int] = {}
        on_stack: set[int] = set()
        for start in self.paths:
            if start in cost:
                continue
            stack: list[tuple[int, Iterator[tuple[int, Path]]]] = [(start, iter(self.edges[start]))]
            on_stack.add(start)
            while stack:
                node, successors = stack[-1]
                advanced = False
                for target, where in successors:
                    if target in on_stack:
                        yield (
                            where,
                            "$ref makes a cycle that never reaches a part of the inputs;"
                            " the schema would recurse forever",
                        )
                        return
                    if target not in cost:
                        on_stack.add(target)
                        stack.append((target, iter(self.edges.get(target, []))))
                        advanced = True
                        break
                if advanced:
                    continue
                stack.pop()
                on_stack.discard(node)
                total = 1 + sum(cost[target] for target, _ in self.edges.get(node, []))
                if total > max_expansion:
                    yield (
                        self.paths[node],
                        f"one value would be checked against more than {max_expansion}"
                        f" subschemas (allOf/anyOf/oneOf/$ref nest too widely):"
                        f" {exceeded('max_schema_expansion', max_expansion)}",
                    )
                    return
                cost[node] = total


_MISSING = object()


def resolves_locally(base: Any, ref: str) -> bool:
    """Whether ``ref`` points into ``base`` (a JSON pointer or an anchor), not elsewhere."""
    return _resolve(base, ref) is not _MISSING


def _resolve(base: Any, ref: str) -> Any:
    """What a local ``$ref`` points at, ``_MISSING`` if nothing."""
    if not ref.startswith("#"):
        return _MISSING
    if ref == "#":
        return base
    if not ref.startswith("#/"):
        anchor = unquote(ref[1:])
        found = next(_anchored(base, anchor), _MISSING)
        return found
    current: Any = base
    for raw in ref[2:].split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _anchored(value: Any, anchor: str) -> Iterator[Any]:
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, list):
            pending.extend(current)
        elif isinstance(current, Mapping):
            if anchor in (current.get("$anchor"), current.get("$dynamicAnchor")):
                yield current
            pending.extend(v for k, v in current.items() if k not in DATA_KEYWORDS)


DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})


# --- the keywords replaced in the validator ---------------------------------------------


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in instance
        if key not in properties and not any(_search(p, key) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        names = ", ".join(repr(extra) for extra in sorted(extras))
        if patterns:
            yield ValidationError(f"{names} do(es) not match any of the regexes: {patterns}")
        else:
            yield ValidationError(f"Additional properties are not allowed ({names} unexpected)")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = equality_key(item)
        if key in seen:
            yield ValidationError(f"has non-unique elements ({item!r} appears twice)")
            return
        seen.add(key)


def equality_key(value: Any) -> Any:
    """A hashable key equal for two JSON values exactly when JSON Schema calls them equal.

    Numbers compare by value (``1`` and ``1.0`` are one number; Python's int/float equality and
    hashing already agree on that), booleans are not numbers, objects ignore key order.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return ("nan",)
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null",)
    if isinstance(value, list):
        return ("array", tuple(equality_key(item) for item in value))
    if isinstance(value, Mapping):
        return ("object", frozenset((key, equality_key(item)) for key, item in value.items()))
    return ("other", repr(value))


def _regex_format(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    try:
        compile_pattern(instance)
    except re2.error:
        return False
    return True


def _format_checker() -> FormatChecker:
    checker = FormatChecker()
    checker.checks("regex", raises=())(_regex_format)
    return checker


class StepBudgetExceeded(Exception):
    """Raised inside an evaluation that used up its ``MAX_SCHEMA_STEPS``."""


_steps_left: ContextVar[list[int] | None] = ContextVar("schema_steps_left", default=None)
"""The evaluation in progress in this context (thread), as a mutable one-item counter."""

KeywordFn = Callable[[Any, Any, Any, Any], Any]


def _counted(keyword: KeywordFn) -> KeywordFn:
    """``keyword`` charging one step to the running evaluation's budget.

    Some schemas are only expensive with the inputs at hand (``anyOf`` branches that both
    recurse into nested arrays double the work per level), so registration cannot refuse
    them; counting every keyword evaluated bounds them all.
    """

    @wraps(keyword)
    def counted(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        left = _steps_left.get()
        if left is not None:
            left[0] -= 1
            if left[0] < 0:
                raise StepBudgetExceeded
        return keyword(validator, value, instance, schema)

    return counted


@contextmanager
def step_budget(steps: int) -> Iterator[None]:
    """Evaluations inside may take ``steps`` keyword evaluations, then StepBudgetExceeded."""
    token = _steps_left.set([steps])
    try:
        yield
    finally:
        _steps_left.reset(token)


_KEYWORDS: dict[str, KeywordFn] = {
    **Draft202012Validator.VALIDATORS,
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}

SafeValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    validators={name: _counted(keyword) for name, keyword in _KEYWORDS.items()},
)
"""Draft 2020-12 with every pattern on RE2, a hashing ``uniqueItems`` and a step budget."""


def safe_validator(schema: Mapping[str, Any]) -> Validator:
    """A validator for an already vetted schema; an empty registry so nothing is fetched."""
    validator: Validator = SafeValidator(
        schema, format_checker=_format_checker(), registry=Registry()
    )
    return validator
