"""The GraphHarbor API as an ASGI app factory, so uvicorn can run several processes of it (`make serve-prod`).

`graphharbor serve --workers N` hands uvicorn an app object, which uvicorn refuses to run in several processes
("You must pass the application as an import string"); `server.serve_prod` runs
`uvicorn --factory server.prod_asgi:create --workers N` instead, and each process builds the same app with
GraphHarbor's own `create_app` from `COACH_PROD_CONFIG` (default `langgraph.prod.json`).
"""

from __future__ import annotations

import os
from pathlib import Path

from langhost.server import create_app, load_config
from starlette.applications import Starlette

PROD_CONFIG = "langgraph.prod.json"
"""The GraphHarbor configuration (graphs and routes through `server.prod_entry`)."""


def create() -> Starlette:
    """GraphHarbor's API for the configuration in `COACH_PROD_CONFIG` (paths relative to its folder).

    Raises:
        ValueError: the configuration is invalid (GraphHarbor's validation).
    """
    os.environ.setdefault("LANGGRAPH_RUNTIME_EDITION", "pg")
    path = Path(os.environ.get("COACH_PROD_CONFIG") or PROD_CONFIG).resolve()
    app: Starlette = create_app(load_config(path), base_dir=path.parent)
    return app
