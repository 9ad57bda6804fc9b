# Developer entry points. `make test` / `make demo` install deps and start the local services first.
SHELL := /bin/bash

ATHLETE ?= demo-athlete
RIDES ?= data/rides

# Export .env (written by `make services`) into a recipe's shell; the app also reads it via pydantic-settings.
LOAD_ENV = set -a; [ ! -f .env ] || . ./.env; set +a;

.PHONY: services services-down install test demo lint serve serve-prod

services:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

install:
	command -v uv >/dev/null || PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install uv
	if [ -f uv.lock ]; then uv sync --frozen; else uv sync; fi

test: install services
	$(LOAD_ENV) uv run pytest -q

demo: install services
	$(LOAD_ENV) uv run coach demo --athlete $(ATHLETE) $(RIDES)

# The LangGraph dev server (API + Studio) on loopback, offline: `make serve` (a free port) or `make serve PORT=8123`.
serve: install services
	$(LOAD_ENV) uv run python -m server.serve $(if $(PORT),--port $(PORT))

# The production server (GraphHarbor: threads, runs, crons and checkpoints in Postgres, queues in Redis; WORKERS API
# processes + a run executor): `make serve-prod` (a free port, 2 workers) or `make serve-prod PORT=8123 WORKERS=4`.
serve-prod: install services
	$(LOAD_ENV) uv run python -m server.serve_prod $(if $(PORT),--port $(PORT)) --workers $(or $(WORKERS),2)

lint: install
	uv run --frozen ruff check . && uv run --frozen ruff format --check . && uv run --frozen mypy
