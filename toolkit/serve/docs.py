"""/docs: Swagger UI from files shipped in the package, so it works on an offline server.

FastAPI's own /docs page loads Swagger UI's script and stylesheet from a CDN (and ReDoc's
from another), so it is blank where the server cannot reach the internet. The files in
static/swagger-ui are swagger-ui-dist 5.35.0 from npm, unmodified (Apache-2.0: LICENSE and
NOTICE beside them); the page references nothing outside this server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

SWAGGER_UI = Path(__file__).parent / "static" / "swagger-ui"
ASSETS = "/docs/assets"
SWAGGER_UI_VERSION = "5.35.0"
# Swagger UI's validator badge would send the document to validator.swagger.io: off.
PARAMETERS = {"validatorUrl": None}


def add_docs(app: FastAPI) -> None:
    """GET /docs and its assets under /docs/assets (app built with docs_url=None)."""
    app.mount(ASSETS, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> Any:
        root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy's prefix
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters=PARAMETERS,
        )
