"""What a person opens in a browser: the run console at `/console` and the API reference at
`/docs`, every asset served from the installed packages (nothing from a CDN: a laptop on a
plane, or CI, has no internet)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

CONSOLE_DIR = Path(__file__).parent / "console"
"""index.html, the JS modules, the stylesheet and the vendored libraries (with their
licenses); no build step: the browser loads the modules as they are."""

SWAGGER_ASSETS = "/docs/assets"
"""Swagger UI's script, stylesheet and icon, from the `fastapi-offline` package."""


def _swagger_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI) -> None:
    """Mount the console and serve `/docs` offline. The app must be made with
    `docs_url=None`, else FastAPI's own page (which loads Swagger UI from a CDN) wins.
    (FastAPI's `/redoc` is not served: ReDoc fetches its logo from its CDN whatever it is
    told, and the README never offered it.)"""

    @app.get("/console", include_in_schema=False)
    async def console_root() -> RedirectResponse:
        # The page's relative module paths resolve against `/console/`.
        return RedirectResponse("/console/", status_code=308)

    app.mount("/console/", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    app.mount(SWAGGER_ASSETS, StaticFiles(directory=_swagger_dir()), name="docs-assets")
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - reference",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_ASSETS}/favicon.png",
            # Swagger UI would otherwise send the document to validator.swagger.io.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )

    @app.get(redirect_url, include_in_schema=False)
    async def docs_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
