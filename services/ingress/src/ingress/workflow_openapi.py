"""One workflow's run endpoint as its own OpenAPI 3.1 document, for client generators.

The API's main document describes `POST /v1/workflows/{workflow_id}/run` for every workflow,
so its `inputs` and `outputs` are any JSON. This document describes one workflow (one version
of it): `inputs` is the workflow's own `inputSchema` and a run's outputs are named by the
definition's `outputs`, so a generated client has typed inputs and named outputs.

Pure: the definition, its id and version, the server's base URL and limits in, a document out.
"""

from __future__ import annotations

import copy
import re
from typing import Any

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


def pascal(text: str) -> str:
    """A name a generator can turn into a class name: `studio-portrait` → `StudioPortrait`."""
    name = _camel(text)
    if not name or name[0].isdigit():
        name = "Workflow" + name
    return name


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


class _InputSchemas:
    """The input schema as components. Generators follow only references to a whole component
    (`#/components/schemas/<name>`), and `#` of the document is no longer the schema's root:
    its `$defs` become components of their own, a reference into a schema (`#/properties/x`)
    gets the schema it points at as a component of its own, and every local reference is
    rewritten to name a component."""

    def __init__(self, root_name: str, prefix: str, taken: set[str]) -> None:
        self.root_name = root_name
        self.prefix = prefix
        self.taken = taken
        self.defs: dict[str, str] = {}
        self.sources: dict[str, Any] = {}
        self.hoisted: dict[tuple[str, tuple[str, ...]], str] = {}
        self.pending: list[tuple[str, Any]] = []

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
        self.sources = {self.root_name: root, **{self.defs[k]: v for k, v in defs.items()}}
        out = {name: self._rewrite(source) for name, source in self.sources.items()}
        while self.pending:
            name, source = self.pending.pop()
            out[name] = self._rewrite(source)
        for name, sub in out.items():
            if isinstance(sub, dict):
                sub.setdefault("title", name)
        return out

    def _ref(self, ref: str) -> str:
        if ref != "#" and not ref.startswith("#/"):
            return ref  # an anchor (`#name`): resolved by name, wherever the schema now is
        segments = [_unescape(s) for s in ref[2:].split("/")] if ref.startswith("#/") else []
        if len(segments) >= 2 and segments[0] == "$defs" and segments[1] in self.defs:
            target, rest = self.defs[segments[1]], tuple(segments[2:])
        else:
            target, rest = self.root_name, tuple(segments)
        if rest:
            hoisted = self._hoist(target, rest)
            if hoisted is None:
                return "/".join([REF.format(model=target), *(_escape(s) for s in rest)])
            target = hoisted
        return REF.format(model=target)

    def _hoist(self, target: str, rest: tuple[str, ...]) -> str | None:
        """The component holding the schema at `rest` inside component `target`."""
        if (target, rest) in self.hoisted:
            return self.hoisted[(target, rest)]
        node: Any = self.sources[target]
        for segment in rest:
            if isinstance(node, dict) and segment in node:
                node = node[segment]
            elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
                node = node[int(segment)]
            else:
                return None  # registration refuses such references; never reached
        if not isinstance(node, dict):
            return None
        words = [s for s in rest if s not in NAMED_SCHEMAS and not s.isdigit()]
        name = self._unique(target + (_camel("-".join(words)) or "Part"))
        self.hoisted[(target, rest)] = name
        self.pending.append((name, node))
        return name

    def _rewrite(self, node: Any) -> Any:
        """A copy of schema `node` with its local references rewritten; values that are data
        (`const`, `enum`, …) are copied as they are, whatever they look like."""
        if isinstance(node, list):
            return [self._rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$id" in node:
            return node  # a resource of its own: its references point into itself
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = self._ref(value)
            elif key in DATA_KEYWORDS:
                out[key] = value
            elif key in NAMED_SCHEMAS and isinstance(value, dict):
                out[key] = {name: self._rewrite(sub) for name, sub in value.items()}
            else:
                out[key] = self._rewrite(value)
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
