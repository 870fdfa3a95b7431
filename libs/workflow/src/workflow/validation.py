"""Registration-time checks of a definition, run-time checks of inputs and of resolved params.

Every check reports every problem it finds, each with a JSON pointer to where it is.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import (
    ValidationError as SchemaValidationError,
)
from jsonschema.protocols import Validator
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails
from referencing.exceptions import Unresolvable

from workflow.catalog import CATALOG, NodeKind, NodeType, WorkflowRunParams, get_node_type
from workflow.dag import describe_cycle, find_cycles
from workflow.definition import WorkflowDefinition
from workflow.limits import Limits, exceeded
from workflow.schema_safety import (
    DATA_KEYWORDS,
    StepBudgetExceeded,
    resolves_locally,
    safe_validator,
    schema_problems,
    step_budget,
)
from workflow.template import Reference, TemplateSyntaxError, find_references

_DEFAULTS = Limits.model_construct()
"""Every limit at its default, without reading the environment (for callers with no settings)."""


class Problem(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    """JSON pointer to the offending value, e.g. ``/nodes/2/params/image``."""
    message: str


class ParamsError(ValueError):
    def __init__(self, node_type: str, problems: list[Problem]) -> None:
        details = "; ".join(f"{p.path}: {p.message}" for p in problems)
        super().__init__(f"invalid params for {node_type}: {details}")
        self.node_type = node_type
        self.problems = problems


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) from path parts."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: how every size limit measures a value."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def definition_size_problem(raw: Any, limits: Limits = _DEFAULTS) -> Problem | None:
    """A definition too large to look at further (the ingress answers it with a 413)."""
    size = json_size(raw)
    if size <= limits.max_definition_bytes:
        return None
    return Problem(
        path="",
        message=f"the definition is {size} bytes as compact JSON, over"
        f" {exceeded('max_definition_bytes', limits.max_definition_bytes)}",
    )


def parse_definition(
    raw: Mapping[str, Any], limits: Limits = _DEFAULTS
) -> tuple[WorkflowDefinition | None, list[Problem]]:
    """Build the definition model, then validate it; the model is None if it could not be built.

    The size and the node count are checked on the raw document, before any model is built.
    """
    too_large = definition_size_problem(raw, limits)
    if too_large is not None:
        return None, [too_large]
    nodes = raw.get("nodes")
    if isinstance(nodes, list) and len(nodes) > limits.max_nodes:
        return None, [
            Problem(
                path="/nodes",
                message=f"{len(nodes)} nodes is over {exceeded('max_nodes', limits.max_nodes)}",
            )
        ]
    try:
        # Strict: JSON `true` is no integer (the published schema says integer).
        defn = WorkflowDefinition.model_validate(raw, strict=True)
    except ValidationError as exc:
        return None, _pydantic_problems(exc.errors(), "", None)
    return defn, validate_definition(defn, limits)


def validate_definition(defn: WorkflowDefinition, limits: Limits = _DEFAULTS) -> list[Problem]:
    limit_problems = list(_limit_problems(defn, limits))
    schema_too_large = any(p.path == "/inputSchema" for p in limit_problems)
    return [
        *limit_problems,
        # A schema over its size limit is not evaluated further: that is what the limit bounds.
        *([] if schema_too_large else _input_schema_problems(defn.input_schema, limits)),
        *_duplicate_id_problems(defn),
        *_node_problems(defn),
        *_cycle_problems(defn),
        *_output_problems(defn),
    ]


def validate_inputs(
    schema: Mapping[str, Any], inputs: Any, limits: Limits = _DEFAULTS
) -> list[Problem]:
    """Check run inputs against the workflow's input schema (formats checked).

    Patterns run on RE2 and ``uniqueItems`` hashes (see ``workflow.schema_safety``); a schema
    stored before those checks existed that is unsafe to evaluate is refused, not evaluated.
    CPU-bound: callers on an event loop run it in a worker thread.
    """
    unsafe, validator = _vetted_validator(
        json.dumps(schema, sort_keys=True), limits.max_schema_expansion
    )
    if unsafe:
        return [
            Problem(path="/inputs", message=f"the workflow's input schema cannot be evaluated: {m}")
            for m in unsafe
        ]
    assert validator is not None
    try:
        with step_budget(limits.max_schema_steps):
            problems = {
                problem
                for error in validator.iter_errors(inputs)
                for problem in _input_problems(error)
            }
    except StepBudgetExceeded:
        return [
            Problem(
                path="/inputs",
                message="checking these inputs against the input schema takes more than"
                f" {exceeded('max_schema_steps', limits.max_schema_steps)} keyword evaluations",
            )
        ]
    except (Unresolvable, RecursionError) as exc:
        # Registration vets references and recursion; should one still slip through, the
        # caller gets a 422 naming the schema rather than an exception (a 500).
        reason = type(exc).__name__
        return [
            Problem(
                path="/inputs",
                message=f"the workflow's input schema cannot be evaluated ({reason})",
            )
        ]
    return sorted(problems, key=lambda p: (p.path, p.message))


@lru_cache(maxsize=256)
def _vetted_validator(
    schema_json: str, max_expansion: int
) -> tuple[tuple[str, ...], Validator | None]:
    """One safety check and one validator per distinct schema (keyed by its sorted JSON)."""
    schema = json.loads(schema_json)
    limits = Limits.model_construct(max_schema_expansion=max_expansion)
    unsafe = tuple(
        f"{pointer(*path) or '/'}: {message}" for path, message in schema_problems(schema, limits)
    )
    return unsafe, None if unsafe else safe_validator(schema)


def validate_params(
    node_type: NodeType, params: Mapping[str, Any], prefix: str = "/params"
) -> BaseModel:
    """Validate resolved params with the node type's model; raise ParamsError with every problem."""
    try:
        return node_type.params_model.model_validate(params)
    except ValidationError as exc:
        problems = _pydantic_problems(exc.errors(), prefix, node_type.params_model)
        raise ParamsError(node_type.name, problems) from exc


WorkflowRef = tuple[str, int | None]
"""A chained workflow: its id and version, None meaning the latest version."""


def chain_references(defn: WorkflowDefinition) -> list[WorkflowRef]:
    """The workflows a definition's ``workflow.run`` nodes start (map templates included).

    Each (workflowId, version) once, in document order, so a registry can fetch them
    breadth-first before calling :func:`find_chain_cycles`. References written with a template
    or otherwise invalid are left out: :func:`validate_definition` reports them.
    """
    return list(dict.fromkeys(ref for _, ref in _chain_references(defn)))


def find_chain_cycles(
    root_workflow_id: str,
    defn: WorkflowDefinition,
    lookup: Mapping[WorkflowRef, WorkflowDefinition],
) -> list[Problem]:
    """Loops in the chain of workflows ``defn`` (being registered as ``root_workflow_id``) starts.

    ``lookup`` holds the definitions the caller fetched for every reference reachable from
    ``defn``; a reference missing from it is an unknown workflow. A reference to the root's
    latest version is ``defn`` itself. Each problem points at the root's node the chain
    starts from.
    """
    problems: dict[tuple[str, str], Problem] = {}
    explored: set[WorkflowRef] = set()

    def visit(
        current: WorkflowDefinition, chain: tuple[WorkflowRef, ...], path: str | None
    ) -> None:
        for where, ref in _chain_references(current):
            at = path if path is not None else where
            if ref in chain:
                loop = chain[chain.index(ref) :]
                message = f"workflow chain loops: {_describe_chain((*loop, ref))}"
            elif ref not in lookup:
                message = f"unknown workflow {_describe_ref(ref)}"
                if len(chain) > 1:
                    message += f", started by {_describe_chain(chain)}"
            else:
                if ref not in explored:
                    explored.add(ref)
                    visit(lookup[ref], (*chain, ref), at)
                continue
            problems.setdefault((at, message), Problem(path=at, message=message))

    visit(defn, ((root_workflow_id, None),), None)
    return list(problems.values())


def _chain_references(defn: WorkflowDefinition) -> Iterator[tuple[str, WorkflowRef]]:
    """Each ``workflow.run`` node (or map template) with its pointer and literal reference."""
    for index, node in enumerate(defn.nodes):
        kind: Any = node.type
        params: Any = node.params
        path = pointer("nodes", index, "params")
        template = node.params.get("node")
        if node.type == "map" and isinstance(template, Mapping):
            kind, params = template.get("type"), template.get("params", {})
            path = pointer("nodes", index, "params", "node", "params")
        if kind != "workflow.run" or not isinstance(params, Mapping):
            continue
        try:
            run_params = WorkflowRunParams.model_validate(params)
            templated = find_references(run_params.workflow_id)
        except (ValidationError, TemplateSyntaxError):
            continue
        if not templated:
            yield path + "/workflowId", (run_params.workflow_id, run_params.version)


def _describe_ref(ref: WorkflowRef) -> str:
    workflow_id, version = ref
    return repr(workflow_id) if version is None else f"{workflow_id!r} version {version}"


def _describe_chain(chain: Sequence[WorkflowRef]) -> str:
    return " → ".join(
        workflow_id if version is None else f"{workflow_id}@{version}"
        for workflow_id, version in chain
    )


def _limit_problems(defn: WorkflowDefinition, limits: Limits) -> Iterator[Problem]:
    """The limits on work knowable from the definition alone (run-time sizes are checked
    again when known: references resolve to values registration cannot see)."""
    schema_size = json_size(defn.input_schema)
    if schema_size > limits.max_input_schema_bytes:
        yield Problem(
            path="/inputSchema",
            message=f"the input schema is {schema_size} bytes as compact JSON, over"
            f" {exceeded('max_input_schema_bytes', limits.max_input_schema_bytes)}",
        )
    yield from _timeout_problem(
        defn.timeout_seconds, ("timeoutSeconds",), "max_run_timeout_seconds", limits
    )
    if len(defn.nodes) > limits.max_nodes:
        yield Problem(
            path="/nodes",
            message=f"{len(defn.nodes)} nodes is over {exceeded('max_nodes', limits.max_nodes)}",
        )
    references = 0
    for index, node in enumerate(defn.nodes):
        yield from _timeout_problem(
            node.timeout_seconds,
            ("nodes", index, "timeoutSeconds"),
            "max_timeout_seconds",
            limits,
        )
        references += sum(_count_references(value) for value in node.params.values())
        params_size = json_size(node.params)
        if params_size > limits.max_resolved_value_bytes:
            yield Problem(
                path=pointer("nodes", index, "params"),
                message=f"the params are {params_size} bytes as compact JSON before any"
                f" reference is resolved, over"
                f" {exceeded('max_resolved_value_bytes', limits.max_resolved_value_bytes)}",
            )
        if node.type == "wait":
            yield from _at_most(
                node.params.get("seconds"),
                ("nodes", index, "params", "seconds"),
                "max_wait_node_seconds",
                limits,
            )
        if node.type == "map":
            yield from _map_limit_problems(node.params, index, limits)
    references += sum(_count_references(template) for template in defn.outputs.values())
    if references > limits.max_template_references:
        yield Problem(
            path="/nodes",
            message=f"the definition has {references} {{{{ … }}}} references, over"
            f" {exceeded('max_template_references', limits.max_template_references)}",
        )


def _map_limit_problems(params: Mapping[str, Any], index: int, limits: Limits) -> Iterator[Problem]:
    items = params.get("items")
    if isinstance(items, list) and len(items) > limits.max_map_items:
        yield Problem(
            path=pointer("nodes", index, "params", "items"),
            message=f"{len(items)} items is over {exceeded('max_map_items', limits.max_map_items)}",
        )
    yield from _at_most(
        params.get("concurrency"),
        ("nodes", index, "params", "concurrency"),
        "max_map_concurrency",
        limits,
    )
    template = params.get("node")
    if isinstance(template, Mapping):
        timeout = template.get("timeoutSeconds", template.get("timeout_seconds"))
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            yield from _timeout_problem(
                float(timeout),
                ("nodes", index, "params", "node", "timeoutSeconds"),
                "max_timeout_seconds",
                limits,
            )


def _timeout_problem(
    seconds: float | None, where: tuple[str | int, ...], limit: str, limits: Limits
) -> Iterator[Problem]:
    if seconds is None:
        return
    if not math.isfinite(seconds):
        yield Problem(path=pointer(*where), message="must be a finite number of seconds")
    else:
        yield from _at_most(seconds, where, limit, limits)


def _at_most(
    value: Any, where: tuple[str | int, ...], limit: str, limits: Limits
) -> Iterator[Problem]:
    """A literal number over a configured maximum (a reference is checked once resolved)."""
    maximum = getattr(limits, limit)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > maximum:
        yield Problem(path=pointer(*where), message=f"{value:g} is over {exceeded(limit, maximum)}")


def _count_references(value: Any) -> int:
    """``{{ … }}`` references in every string inside ``value`` (syntax errors count none:
    they are reported where they are written)."""
    count = 0
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            if "{{" in current:
                with contextlib.suppress(TemplateSyntaxError):
                    count += len(find_references(current))
        elif isinstance(current, Mapping):
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return count


def _input_schema_problems(schema: Mapping[str, Any], limits: Limits) -> list[Problem]:
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    problems = [
        Problem(
            path=pointer("inputSchema", *error.absolute_path),
            message=f"not a valid JSON Schema (2020-12): {error.message}",
        )
        for error in meta.iter_errors(schema)
    ]
    problems.extend(_unresolvable_ref_problems(schema, schema, ("inputSchema",)))
    if not problems:
        # Only a well-formed schema is walked for what would make it unsafe to evaluate.
        problems.extend(
            Problem(path=pointer("inputSchema", *path), message=message)
            for path, message in schema_problems(schema, limits)
        )
    if schema.get("type", "object") != "object":
        problems.append(
            Problem(
                path="/inputSchema/type",
                message='inputs are a JSON object, so the input schema needs "type": "object"',
            )
        )
    return problems


def _unresolvable_ref_problems(
    root: Mapping[str, Any], value: Any, path: tuple[str | int, ...]
) -> Iterator[Problem]:
    """``$ref`` must point inside the schema: nothing is ever fetched, so others never resolve.

    A subschema with its own ``$id`` is the root its local references point into.
    """
    if isinstance(value, list):
        for position, item in enumerate(value):
            yield from _unresolvable_ref_problems(root, item, (*path, position))
        return
    if not isinstance(value, Mapping):
        return
    if "$id" in value:
        root = value
    for key, item in value.items():
        if key == "$ref" and isinstance(item, str) and not resolves_locally(root, item):
            yield Problem(
                path=pointer(*path, key),
                message=f"$ref {item!r} does not resolve; use a pointer into this schema,"
                " such as #/$defs/<name>",
            )
        elif key not in DATA_KEYWORDS:
            yield from _unresolvable_ref_problems(root, item, (*path, key))


def _duplicate_id_problems(defn: WorkflowDefinition) -> Iterator[Problem]:
    first_index: dict[str, int] = {}
    for index, node in enumerate(defn.nodes):
        if node.id in first_index:
            yield Problem(
                path=pointer("nodes", index, "id"),
                message=f"duplicate node id {node.id!r}; /nodes/{first_index[node.id]} has it too",
            )
        else:
            first_index[node.id] = index


def _node_problems(defn: WorkflowDefinition) -> Iterator[Problem]:
    for index, node in enumerate(defn.nodes):
        node_type = get_node_type(node.type)
        if node_type is None:
            known = ", ".join(sorted(CATALOG))
            yield Problem(
                path=pointer("nodes", index, "type"),
                message=f"unknown node type {node.type!r}; known types: {known}",
            )
        templated: set[tuple[str | int, ...]] = set()
        """Param paths (relative to params) of strings with references or syntax errors."""
        for name, value in node.params.items():
            for where, references in _references_by_path(value, (name,)):
                path = pointer("nodes", index, "params", *where)
                if isinstance(references, Problem):
                    templated.add(where)  # its syntax error is the one to report
                    yield Problem(path=path, message=references.message)
                    continue
                if not references:
                    continue
                templated.add(where)
                if node_type is not None and _is_literal(node_type, name):
                    yield Problem(
                        path=path,
                        message=f"{name} must be written out literally: a reference such as"
                        f" {references[0]} is not allowed here",
                    )
                    continue
                item_allowed = node_type is not None and _in_item_scope(node_type, where)
                for reference in references:
                    problem = _reference_problem(defn, reference, item_allowed, node.id)
                    if problem:
                        yield Problem(path=path, message=problem)
        if node_type is not None:
            yield from _static_params_problems(
                node_type, node.params, templated, pointer("nodes", index, "params")
            )
        if node.type == "map":
            yield from _map_problems(node.params, node.retry is not None, templated, index)


def _is_literal(node_type: NodeType, name: str) -> bool:
    return name in node_type.literal_params or to_camel(name) in node_type.literal_params


def _in_item_scope(node_type: NodeType, where: tuple[str | int, ...]) -> bool:
    for scope in node_type.item_scope:
        parts = tuple(scope.split("."))
        if tuple(str(part) for part in where[: len(parts)]) == parts:
            return True
    return False


def _map_problems(
    params: Mapping[str, Any],
    has_retry: bool,
    templated: set[tuple[str | int, ...]],
    index: int,
) -> Iterator[Problem]:
    """A map's template must be an executable node whose params fit its type."""
    if has_retry:
        yield Problem(
            path=pointer("nodes", index, "retry"),
            message="a map node is not retried as a whole; set node.retry to retry each item",
        )
    template = params.get("node")
    if (
        not isinstance(template, Mapping)
        or not isinstance(template.get("type"), str)
        or ("node", "type") in templated
    ):
        return  # the map's own params model or the reference check reports it
    template_type = get_node_type(template["type"])
    if template_type is None:
        known = ", ".join(sorted(n for n, t in CATALOG.items() if t.kind is NodeKind.EXECUTABLE))
        yield Problem(
            path=pointer("nodes", index, "params", "node", "type"),
            message=f"unknown node type {template['type']!r}; executable types: {known}",
        )
        return
    if template_type.kind is not NodeKind.EXECUTABLE:
        yield Problem(
            path=pointer("nodes", index, "params", "node", "type"),
            message=f"a map template must be an executable node type;"
            f" {template_type.name!r} is a {template_type.kind} node",
        )
        return
    template_params = template.get("params", {})
    if isinstance(template_params, Mapping):
        inner = {where[2:] for where in templated if where[:2] == ("node", "params")}
        yield from _static_params_problems(
            template_type,
            template_params,
            inner,
            pointer("nodes", index, "params", "node", "params"),
        )


def _static_params_problems(
    node_type: NodeType,
    params: Mapping[str, Any],
    templated: set[tuple[str | int, ...]],
    prefix: str,
) -> list[Problem]:
    """Params problems knowable before resolution: templated values only count as present."""
    try:
        node_type.params_model.model_validate(params)
    except ValidationError as exc:
        errors = [
            error
            for error in exc.errors()
            if error["type"] == "extra_forbidden" or not _under_any(error["loc"], templated)
        ]
        return _pydantic_problems(errors, prefix, node_type.params_model)
    return []


def _under_any(location: tuple[str | int, ...], paths: set[tuple[str | int, ...]]) -> bool:
    return any(location[: len(path)] == path for path in paths)


def _cycle_problems(defn: WorkflowDefinition) -> Iterator[Problem]:
    index = {node.id: position for position, node in enumerate(defn.nodes)}
    for cycle in find_cycles(defn):
        if len(cycle) > 1:  # a self-reference is reported where it is written
            yield Problem(
                path=pointer("nodes", index[cycle[0]]),
                message=f"nodes {', '.join(cycle)} form a cycle: {describe_cycle(cycle)}",
            )


def _output_problems(defn: WorkflowDefinition) -> Iterator[Problem]:
    if not defn.outputs:
        yield Problem(path="/outputs", message="a workflow needs at least one output")
    for name, template in defn.outputs.items():
        path = pointer("outputs", name)
        try:
            references = find_references(template)
        except TemplateSyntaxError as exc:
            yield Problem(path=path, message=str(exc))
            continue
        if not references:
            yield Problem(
                path=path,
                message="an output must reference something, e.g. {{ nodes.<id>.<output> }}",
            )
        for reference in references:
            problem = _reference_problem(defn, reference, item_allowed=False, referrer=None)
            if problem:
                yield Problem(path=path, message=problem)


def _references_by_path(
    value: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], list[Reference] | Problem]]:
    """Each string inside ``value`` with its path and references (or its syntax problem)."""
    if isinstance(value, str):
        try:
            yield path, find_references(value)
        except TemplateSyntaxError as exc:
            yield path, Problem(path=pointer(*path), message=str(exc))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _references_by_path(item, (*path, key))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _references_by_path(item, (*path, position))


def _reference_problem(
    defn: WorkflowDefinition, reference: Reference, item_allowed: bool, referrer: str | None
) -> str | None:
    if reference.root == "item":
        return None if item_allowed else f"{reference}: item is only in scope in a map template"
    if reference.root != "nodes":
        return None
    node_id, output = str(reference.path[0]), str(reference.path[1])
    if node_id == referrer:
        return f"{reference}: node {node_id!r} refers to itself"
    target = defn.node(node_id)
    if target is None:
        known = ", ".join(dict.fromkeys(node.id for node in defn.nodes))
        return f"{reference}: unknown node {node_id!r}; nodes are: {known}"
    target_type = get_node_type(target.type)
    if (
        target_type is not None
        and not target_type.dynamic_outputs
        and output not in target_type.outputs
    ):
        outputs = ", ".join(target_type.outputs) or "none"
        return (
            f"{reference}: node {node_id!r} ({target.type}) has no output {output!r};"
            f" its outputs: {outputs}"
        )
    return None


def _pydantic_problems(
    errors: Sequence[ErrorDetails], prefix: str, params_model: type[BaseModel] | None
) -> list[Problem]:
    problems = []
    for error in errors:
        location = error["loc"]
        if error["type"] == "extra_forbidden" and params_model is not None:
            allowed = ", ".join(
                info.alias or name for name, info in params_model.model_fields.items()
            )
            message = f"unknown param {location[-1]!r}; allowed: {allowed}"
        elif error["type"] == "extra_forbidden":
            message = f"unknown field {location[-1]!r}"
        elif error["type"] == "missing":
            message = "required"
        else:
            message = error["msg"]
        problems.append(Problem(path=prefix + pointer(*location), message=message))
    return problems


def _input_problems(error: SchemaValidationError) -> Iterator[Problem]:
    path: Sequence[str | int] = ("inputs", *error.absolute_path)
    required = error.validator_value
    if error.validator == "required" and isinstance(error.instance, Mapping):
        for name in required if isinstance(required, list) else []:
            if name not in error.instance:
                yield Problem(path=pointer(*path, name), message="required")
        return
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        if not patterns:
            for name in error.instance:
                if name not in properties:
                    yield Problem(path=pointer(*path, name), message="unknown input")
            return
    yield Problem(path=pointer(*path), message=error.message)
