"""One workflow's run endpoint as its own OpenAPI 3.1 document, for client generators.

The API's main document describes `POST /v1/workflows/{workflow_id}/run` for every workflow,
so its `inputs` and `outputs` are any JSON. This document describes one workflow (one version
of it): `inputs` is the workflow's own `inputSchema` and a run's outputs are named by the
definition's `outputs`, so a generated client has typed inputs and named outputs.

Pure: the definition, its id and version, the server's base URL and limits in, a document out.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any
from urllib.parse import quote, unquote

from contracts.api import RunRequest
from contracts.run import RunResource
from workflow.definition import WorkflowDefinition
from workflow.limits import Limits
from workflow.validation import validate_inputs

from ingress.openapi_problems import WHY, document_problems

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "HTTPBearer"
"""As in the main document, so a client configured for one authenticates for the other."""
CANCEL_AFTER_PATTERN = r"^[0-9]{1,15}(\.[0-9]{1,9})?s?$"
DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
NAMED_SCHEMAS = frozenset(
    {"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"}
)
"""Keywords whose keys are names (of properties, …), never keywords: a property may be called
`enum` or `$ref`."""
NOT_FOUND = "No such workflow (or version), or it belongs to another tenant."


def _camel(text: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", text) if w)


REVERSIBLE_ID = re.compile(r"[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*")
"""Ids whose PascalCase form gives them back (split before each capital, lower, join with
`-`): no two of them share a name. Any other id (`a_b`, `A-B`, `3d-order`) may share its name
with another, so its name carries a hash of the id."""


def pascal(text: str) -> str:
    """A name a generator can turn into a class name: `studio-portrait` → `StudioPortrait`.

    Documents of different workflows never share a name (a client may hold several):
    `a-b` → `AB`, while `a_b`, `a.b` and `A-B` get `AB_` and a hash of their id. `_` appears in
    no name of a reversible id, so a hashed name is never another workflow's plain one."""
    name = _camel(text)
    if REVERSIBLE_ID.fullmatch(text):
        return name
    if not name or name[0].isdigit():
        name = "Workflow" + name
    return f"{name}_{hashlib.sha256(text.encode()).hexdigest()[:6]}"


def _unescape(segment: str) -> str:
    # A pointer in a URI fragment is percent-encoded first (RFC 6901 §6), as registration
    # reads it: `#/$defs/a%20b` is the def `a b`.
    return unquote(segment).replace("~1", "/").replace("~0", "~")


def _component_ref(name: str) -> str:
    """The reference to component `name`, written as a URI fragment (RFC 6901 §6)."""
    return REF.format(model=quote(name.replace("~", "~0").replace("/", "~1"), safe=""))


def _boolean_schema(value: bool) -> dict[str, Any]:
    # A component has to be an object to carry a title, and some generators read only objects.
    return {} if value else {"not": {}}


Location = tuple[str, tuple[str, ...]]
"""A schema inside the input schema: the component it is in and the path to it there."""

REFERENCES = ("$ref", "$dynamicRef")
IDENTIFIERS = ("$id", "$schema", "$anchor")
"""Dropped: every reference `$id` and `$anchor` served now names a component, so they would
only say again (or, hoisted, twice) what the component names say; and the server reads every
schema as 2020-12 whatever its `$schema`."""


def _is_resource(node: Any) -> bool:
    return isinstance(node, dict) and isinstance(node.get("$id"), str)


class _InputSchemas:
    """The input schema as components. Generators follow only references to a whole component
    (`#/components/schemas/<name>`), and `#` of the document is no longer the schema's root:
    its `$defs` become components of their own, a schema a reference points into
    (`#/properties/x`, or `#name` of an `$anchor`) becomes a component of its own, written
    once (where it was, a reference to it), and every local reference names a component.

    References are resolved as registration resolves them: a subschema with its own `$id` is
    the root its references point into, and a pointer segment is percent-decoded."""

    def __init__(self, root_name: str, prefix: str, taken: set[str]) -> None:
        self.root_name = root_name
        self.root: Location = (root_name, ())
        self.prefix = prefix
        self.taken = taken
        self.defs: dict[str, str] = {}
        self.defs_keys: set[tuple[str, ...]] = set()
        self.sources: dict[str, Any] = {}
        self.anchors: dict[Location, dict[str, Location]] = {}
        self.found: list[tuple[Location, str]] = []
        self.hoisted: dict[Location, str] = {}
        self.refs: dict[tuple[Location, str], str] = {}
        self.any_name: str | None = None

    def _unique(self, base: str) -> str:
        name, n = base, 2
        while name in self.taken:
            name, n = f"{base}{n}", n + 1
        self.taken.add(name)
        return name

    def components(self, schema: dict[str, Any]) -> dict[str, Any]:
        root = copy.deepcopy(schema)
        # The server evaluates every input schema as 2020-12, the dialect of OpenAPI 3.1; a
        # root `$id` would make the rewritten references relative to another document.
        root.pop("$schema", None)
        root.pop("$id", None)
        defs = root.pop("$defs", None)
        defs = defs if isinstance(defs, dict) else {}
        self.defs = {key: self._unique(self.prefix + (_camel(key) or "Def")) for key in defs}
        self.defs_keys = {(key,) for key in defs}
        self.sources = {self.root_name: root, **{self.defs[k]: v for k, v in defs.items()}}
        for name, source in self.sources.items():
            self._collect((name, ()), source, (self.root,))
        # Every reference is resolved before anything is written, so that a schema that is
        # referenced is written as a reference to its component wherever it occurs.
        for resource, ref in self.found:
            if (resource, ref) not in self.refs:
                self.refs[(resource, ref)] = self._target(ref, resource)
        out = {name: self._write((name, ()), source) for name, source in self.sources.items()}
        for location, name in self.hoisted.items():
            out[name] = self._write(location, self._at(location)[0])
        if self.any_name is not None:
            out[self.any_name] = {
                "description": "Any JSON value: the input schema refers here to something that"
                " is not a schema (such as `#/$defs` itself), which the server reads as a"
                " schema without keywords, so it accepts anything."
            }
        for name, sub in out.items():
            sub.setdefault("title", name)
        return out

    def _collect(self, location: Location, node: Any, resources: tuple[Location, ...]) -> None:
        """The references in schema `node`, each with the resource it is relative to, and the
        anchors, each known to every resource it is in (as registration finds them)."""
        component, path = location
        if isinstance(node, list):
            for i, item in enumerate(node):
                self._collect((component, (*path, str(i))), item, resources)
            return
        if not isinstance(node, dict):
            return
        if _is_resource(node) and location != self.root:
            resources = (*resources, location)
        for keyword in ("$anchor", "$dynamicAnchor"):
            if isinstance(node.get(keyword), str):
                for resource in resources:
                    self.anchors.setdefault(resource, {}).setdefault(node[keyword], location)
        for key, value in node.items():
            if key in REFERENCES and isinstance(value, str):
                self.found.append((resources[-1], value))
            elif key in NAMED_SCHEMAS and isinstance(value, dict):
                for name, sub in value.items():
                    self._collect((component, (*path, key, name)), sub, resources)
            elif key not in DATA_KEYWORDS:
                self._collect((component, (*path, key)), value, resources)

    def _location(self, ref: str, resource: Location) -> Location | None:
        if ref == "#":
            return resource
        component, base = resource
        if ref.startswith("#/"):
            path = tuple(_unescape(s) for s in ref[2:].split("/"))
            if resource == self.root and path[:1] == ("$defs",) and path[1:2] in self.defs_keys:
                return self.defs[path[1]], path[2:]
            return component, (*base, *path)
        if ref.startswith("#"):
            return self.anchors.get(resource, {}).get(unquote(ref[1:]))
        return None  # not local: registration refuses it

    def _at(self, location: Location) -> tuple[Any, bool, Location]:
        """The value at `location`, whether it is a schema (not a map of names, not data),
        and the resource it is in (its references are relative to)."""
        component, path = location
        node: Any = self.sources[component]
        resource = (component, ()) if _is_resource(node) else self.root
        # What the segment leading here is: a keyword of a schema, a name in a map of names
        # (`properties`, …), or inside data (`enum`, …).
        kind = "schema"
        for i, segment in enumerate(path):
            if isinstance(node, dict) and segment in node:
                node = node[segment]
            elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
                node = node[int(segment)]
            else:
                return None, False, resource
            if kind == "names":
                kind = "schema"
            elif kind == "schema" and segment in DATA_KEYWORDS:
                kind = "data"
            elif kind == "schema" and segment in NAMED_SCHEMAS:
                kind = "names"
            if kind == "schema" and _is_resource(node):
                resource = (component, path[: i + 1])
        return node, kind == "schema" and isinstance(node, dict | bool), resource

    def _target(self, ref: str, resource: Location) -> str:
        """The component `ref` names (hoisting what it points at if need be)."""
        location = self._location(ref, resource)
        if location is not None and not location[1]:
            return location[0]
        if location is None or not self._at(location)[1]:
            # `#/$defs` (a map of names) and the like: the server reads such a value as a schema
            # whose keywords it does not know, which accepts anything; so does the document.
            # Refusing the document would leave a workflow that runs without a client.
            if self.any_name is None:
                self.any_name = self._unique(self.prefix + "Any")
            return self.any_name
        if location not in self.hoisted:
            component, rest = location
            words = [s for s in rest if s not in NAMED_SCHEMAS and not s.isdigit()]
            self.hoisted[location] = self._unique(component + (_camel("-".join(words)) or "Part"))
        return self.hoisted[location]

    def _write(self, location: Location, node: Any) -> dict[str, Any]:
        """Component `node`, found at `location`."""
        if isinstance(node, bool):
            return _boolean_schema(node)
        out: dict[str, Any] = self._rewrite(location, node, self._at(location)[2], top=True)
        return out

    def _rewrite(self, location: Location, node: Any, resource: Location, top: bool = False) -> Any:
        """A copy of schema `node` with its local references rewritten; values that are data
        (`const`, `enum`, …) are copied as they are, whatever they look like."""
        component, path = location
        if not top and location in self.hoisted:
            return {"$ref": _component_ref(self.hoisted[location])}
        if isinstance(node, list):
            return [
                self._rewrite((component, (*path, str(i))), item, resource)
                for i, item in enumerate(node)
            ]
        if not isinstance(node, dict):
            return node
        if _is_resource(node) and location != self.root:
            resource = location
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in IDENTIFIERS:
                continue
            if key in REFERENCES and isinstance(value, str) and (resource, value) in self.refs:
                out[key] = _component_ref(self.refs[(resource, value)])
            elif key in DATA_KEYWORDS:
                out[key] = copy.deepcopy(value)
            elif key in NAMED_SCHEMAS and isinstance(value, dict):
                out[key] = {
                    name: self._rewrite((component, (*path, key, name)), sub, resource)
                    for name, sub in value.items()
                }
            else:
                out[key] = self._rewrite((component, (*path, key)), value, resource)
        return out


def _model_schemas(schemas: dict[str, Any], model: type[RunRequest] | type[RunResource]) -> None:
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema


def _run_request(
    schemas: dict[str, Any],
    names: dict[str, str],
    definition: WorkflowDefinition,
    version: int,
    pinned: bool,
    limits: Limits,
) -> dict[str, Any]:
    request: dict[str, Any] = schemas.pop(RunRequest.__name__)
    request["title"] = names["request"]
    props = request["properties"]
    props["inputs"] = {
        "$ref": REF.format(model=names["inputs"]),
        "description": f"The inputs of {definition.name!r}: its `inputSchema`.",
    }
    # The inputs schema is this version's: a request from this document runs this version.
    props["version"] = {
        "type": "integer",
        "const": version,
        "title": "Version",
        "description": f"This document's version ({version})."
        + ("" if pinned else " Leave it out to run whichever version is the latest then."),
    }
    timeout = props.get("timeoutSeconds", {})
    for branch in [timeout, *timeout.get("anyOf", [])]:
        if branch.get("type") == "number":
            branch["maximum"] = limits.max_run_timeout_seconds
    required = set(request.get("required", []))
    if pinned:
        required.add("version")
    if validate_inputs(definition.input_schema, {}, limits):
        required.add("inputs")  # left out, inputs are `{}`, which this schema refuses
    if required:
        request["required"] = sorted(required)
    return request


def _run_resource(
    schemas: dict[str, Any], names: dict[str, str], definition: WorkflowDefinition
) -> None:
    run: dict[str, Any] = schemas.pop(RunResource.__name__)
    run["title"] = names["run"]
    output: dict[str, Any] = schemas.pop("OutputAsset")
    output["title"] = names["output"]
    outputs = sorted(definition.outputs)
    listed = ", ".join(f"`{o}`" for o in outputs) or "none"
    run["properties"]["outputs"] = {
        "type": "array",
        "title": "Outputs",
        "items": {"$ref": REF.format(model=names["output"])},
        "description": f"The workflow's outputs once the run completed: {listed}. One entry per "
        "output, or one per item (with `index`) for an output that is a list of assets.",
        **({} if outputs else {"maxItems": 0}),
    }
    if outputs:
        output["properties"]["name"] = {"$ref": REF.format(model=names["output_name"])}
        schemas[names["output_name"]] = {
            "title": names["output_name"],
            "type": "string",
            "enum": outputs,
            "description": "An output named by the workflow's definition.",
        }
    schemas[names["run"]] = run
    schemas[names["output"]] = output


def _headers() -> list[dict[str, Any]]:
    return [
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "`respond-async`: answer 202 at once. `wait=N`: wait at most N "
            "seconds for the end (never more than the server's maximum).",
        },
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
            "description": "The same key with the same body returns the same run.",
        },
        {
            "name": "Cancel-After",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "pattern": CANCEL_AFTER_PATTERN},
            "description": "Fail the run when it runs longer: seconds, e.g. `300` or `300s`.",
        },
    ]


def workflow_document(
    *,
    workflow_id: str,
    version: int,
    definition: WorkflowDefinition,
    base_url: str,
    pinned: bool,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of running `workflow_id` at `version`.

    `pinned`: the document of `/versions/{version}`, whose requests must name the version;
    otherwise the latest version's, where leaving the version out runs the latest."""
    limits = limits or Limits()
    prefix = pascal(workflow_id)
    names = {
        "inputs": f"{prefix}Inputs",
        "request": f"{prefix}RunRequest",
        "run": f"{prefix}Run",
        "output": f"{prefix}Output",
        "output_name": f"{prefix}OutputName",
    }
    schemas: dict[str, Any] = {}
    _model_schemas(schemas, RunResource)
    _model_schemas(schemas, RunRequest)
    schemas[names["request"]] = _run_request(schemas, names, definition, version, pinned, limits)
    _run_resource(schemas, names, definition)
    taken = {*schemas, *names.values(), "Problem", "ProblemItem"}
    schemas.update(
        _InputSchemas(names["inputs"], prefix, taken).components(definition.input_schema)
    )

    run = {"application/json": {"schema": {"$ref": REF.format(model=names["run"])}}}
    operation: dict[str, Any] = {
        "operationId": f"run{prefix}",
        "summary": f"Run {definition.name}",
        "description": (definition.description or "")
        + "\n\nWaits for the end of the run (up to the server's maximum, or `Prefer: wait=N`) "
        "and answers 200 with the finished run, else 202 with the run so far and `Location`.",
        "tags": [prefix],
        "security": [{SECURITY_SCHEME: []}],
        "parameters": _headers(),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=names["request"])}}
            },
        },
        "responses": {
            "200": {
                "description": "The finished run (completed, failed or canceled).",
                "content": run,
            },
            "202": {
                "description": "Still running: poll `Location` (`GET /v1/runs/{runId}`).",
                "content": run,
                "headers": {
                    "Location": {
                        "description": "The run: `/v1/runs/{runId}`.",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                },
            },
            "404": {"description": NOT_FOUND},
            "422": {"description": WHY[422] + " Inputs are checked against the input schema."},
        },
    }
    doc: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": definition.name,
            "version": str(version),
            "description": f"Running the workflow `{workflow_id}`, version {version}, of the "
            "Workflow API.",
        },
        "servers": [{"url": base_url.rstrip("/")}],
        "paths": {f"/v1/workflows/{workflow_id}/run": {"post": operation}},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key: `Authorization: Bearer wfk_…`",
                }
            },
        },
        "security": [{SECURITY_SCHEME: []}],
        "tags": [{"name": prefix, "description": definition.name}],
    }
    # The same problem answers, with the same schema and headers, as the main document's.
    document_problems(doc)
    return doc
