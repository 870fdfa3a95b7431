"""Registration-time checks of a definition, run-time checks of inputs and of resolved params.

Every check reports every problem it finds, each with a JSON pointer to where it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import (
    ValidationError as SchemaValidationError,
)
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from workflow.catalog import CATALOG, NodeType, get_node_type
from workflow.dag import describe_cycle, find_cycles
from workflow.definition import WorkflowDefinition
from workflow.template import Reference, TemplateSyntaxError, find_references


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


def parse_definition(raw: Mapping[str, Any]) -> tuple[WorkflowDefinition | None, list[Problem]]:
    """Build the definition model, then validate it; the model is None if it could not be built."""
    try:
        defn = WorkflowDefinition.model_validate(raw)
    except ValidationError as exc:
        return None, _pydantic_problems(exc.errors(), "", None)
    return defn, validate_definition(defn)


def validate_definition(defn: WorkflowDefinition) -> list[Problem]:
    return [
        *_input_schema_problems(defn.input_schema),
        *_duplicate_id_problems(defn),
        *_node_problems(defn),
        *_cycle_problems(defn),
        *_output_problems(defn),
    ]


def validate_inputs(schema: Mapping[str, Any], inputs: Any) -> list[Problem]:
    """Check run inputs against the workflow's input schema (formats checked)."""
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    problems = {
        problem for error in validator.iter_errors(inputs) for problem in _input_problems(error)
    }
    return sorted(problems, key=lambda p: (p.path, p.message))


def validate_params(
    node_type: NodeType, params: Mapping[str, Any], prefix: str = "/params"
) -> BaseModel:
    """Validate resolved params with the node type's model; raise ParamsError with every problem."""
    try:
        return node_type.params_model.model_validate(params)
    except ValidationError as exc:
        problems = _pydantic_problems(exc.errors(), prefix, node_type.params_model)
        raise ParamsError(node_type.name, problems) from exc


def _input_schema_problems(schema: Mapping[str, Any]) -> list[Problem]:
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    problems = [
        Problem(
            path=pointer("inputSchema", *error.absolute_path),
            message=f"not a valid JSON Schema (2020-12): {error.message}",
        )
        for error in meta.iter_errors(schema)
    ]
    problems.extend(_unresolvable_ref_problems(schema, schema, ("inputSchema",)))
    if schema.get("type", "object") != "object":
        problems.append(
            Problem(
                path="/inputSchema/type",
                message='inputs are a JSON object, so the input schema needs "type": "object"',
            )
        )
    return problems


_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})


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
        if key == "$ref" and isinstance(item, str) and not _resolves_locally(root, item):
            yield Problem(
                path=pointer(*path, key),
                message=f"$ref {item!r} does not resolve; use a pointer into this schema,"
                " such as #/$defs/<name>",
            )
        elif key not in _DATA_KEYWORDS:
            yield from _unresolvable_ref_problems(root, item, (*path, key))


def _resolves_locally(root: Mapping[str, Any], ref: str) -> bool:
    if not ref.startswith("#"):
        return False
    if ref == "#":
        return True
    if not ref.startswith("#/"):
        return unquote(ref[1:]) in _anchors(root)
    current: Any = root
    for raw in ref[2:].split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False
    return True


def _anchors(value: Any) -> set[str]:
    if isinstance(value, list):
        return {anchor for item in value for anchor in _anchors(item)}
    if not isinstance(value, Mapping):
        return set()
    found = {value[key] for key in ("$anchor", "$dynamicAnchor") if isinstance(value.get(key), str)}
    for key, item in value.items():
        if key not in _DATA_KEYWORDS:
            found |= _anchors(item)
    return found


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
        templated: set[str] = set()
        for name, value in node.params.items():
            for path, references in _references_by_path(value, ("nodes", index, "params", name)):
                if isinstance(references, Problem):
                    templated.add(name)  # its syntax error is the one to report
                    yield references
                    continue
                if references:
                    templated.add(name)
                item_allowed = node_type is not None and name in node_type.item_scope
                for reference in references:
                    problem = _reference_problem(defn, reference, item_allowed, node.id)
                    if problem:
                        yield Problem(path=path, message=problem)
        if node_type is not None:
            yield from _static_params_problems(node_type, node.params, templated, index)


def _static_params_problems(
    node_type: NodeType, params: Mapping[str, Any], templated: set[str], index: int
) -> list[Problem]:
    """Params problems knowable before resolution: templated params only count as present."""
    try:
        node_type.params_model.model_validate(params)
    except ValidationError as exc:
        skipped = {(name,) for name in templated}
        errors = [
            error
            for error in exc.errors()
            if error["loc"][:1] not in skipped or error["type"] == "extra_forbidden"
        ]
        return _pydantic_problems(errors, pointer("nodes", index, "params"), node_type.params_model)
    return []


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
) -> Iterator[tuple[str, list[Reference] | Problem]]:
    """Each string inside ``value`` with its pointer and references (or its syntax problem)."""
    if isinstance(value, str):
        try:
            yield pointer(*path), find_references(value)
        except TemplateSyntaxError as exc:
            yield pointer(*path), Problem(path=pointer(*path), message=str(exc))
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
    if target_type is not None and output not in target_type.outputs:
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
