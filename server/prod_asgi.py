"""The GraphHarbor API as an ASGI app factory, so uvicorn can run several processes of it (`make serve-prod`).

`graphharbor serve --workers N` hands uvicorn an app object, which uvicorn refuses to run in several processes
("You must pass the application as an import string"); `server.serve_prod` runs
`uvicorn --factory server.prod_asgi:create --workers N` instead, and each process builds the same app with
GraphHarbor's own `create_app` from `COACH_PROD_CONFIG` (default `langgraph.prod.json`).

GraphHarbor mounts the coach's app (`server.prod_app`) beside its own routes, so middleware of the coach's app does
not see them; `create` wraps GraphHarbor's whole app in `server.closed_routes.ClosedRoutesMiddleware` (outermost,
before GraphHarbor's own authentication): `/info`, `/openapi.json`, `/docs` need a valid token, `/metrics` is
401/403, `/internal` and `/deploy` are 404, as on `make serve`; only `/ok`, `/ready` and `/live` answer without a
token. `create` also installs the coach's bounded checkpoint saver (`server.prod_checkpointer.install`).
"""

from __future__ import annotations

import os
from pathlib import Path

from langhost.server import create_app, load_config
from starlette.applications import Starlette

from server.closed_routes import ClosedRoutesMiddleware
from server.prod_checkpointer import install

PROD_CONFIG = "langgraph.prod.json"
"""The GraphHarbor configuration (graphs and routes through `server.prod_entry`)."""


def create() -> Starlette:
    """GraphHarbor's API for the configuration in `COACH_PROD_CONFIG` (paths relative to its folder).

    Raises:
        ValueError: the configuration is invalid (GraphHarbor's validation).
    """
    os.environ.setdefault("LANGGRAPH_RUNTIME_EDITION", "pg")
    install()  # a thread copy writes checkpoints in the API process: bounded there too (server.prod_checkpointer)
    path = Path(os.environ.get("COACH_PROD_CONFIG") or PROD_CONFIG).resolve()
    app: Starlette = create_app(load_config(path), base_dir=path.parent)
    app.add_middleware(ClosedRoutesMiddleware)  # the outermost layer: it sees every request first
    return app
