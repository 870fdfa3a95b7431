"""The `Allow` field of a 405: every method the API documents at the request's path.

Starlette names only the methods of the first route whose path matched, so a path served by
two routes (`GET` and `PUT /v1/workflows/{workflow_id}`) would answer `Allow: PUT` alone. The
OpenAPI document lists every route of the app, so it is the answer."""

from __future__ import annotations

import re
from functools import lru_cache

from fastapi import FastAPI, Request

_PARAM = re.compile(r"\\\{[^/]+?\\\}")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@lru_cache(maxsize=64)
def _template(path: str) -> re.Pattern[str]:
    # `{name}` matches one path segment, like the routes' own converters.
    return re.compile("^" + _PARAM.sub("[^/]+", re.escape(path)) + "$")


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    methods: set[str] = set()
    for template, item in app.openapi().get("paths", {}).items():
        if _template(template).match(path):
            methods |= {m.upper() for m in item if m in _METHODS}
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
    return sorted(methods)


def allow_header(request: Request, default: str | None) -> str | None:
    """`Allow` for a 405 at the request's path; `default` (Starlette's) for an undocumented
    path such as /openapi.json."""
    app = request.app
    assert isinstance(app, FastAPI)
    return ", ".join(allowed_methods(app, request.url.path)) or default
