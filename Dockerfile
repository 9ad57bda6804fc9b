# The coach's API server (`langgraph dev`, in-memory threads) for docker-compose.yml's `app` service.
#   docker compose up --build     then http://127.0.0.1:2024 (API), Studio as in the README
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    LANGGRAPH_CLI_NO_ANALYTICS=1 \
    LANGGRAPH_NO_VERSION_CHECK=true

RUN pip install --no-cache-dir uv && uv venv /opt/venv

WORKDIR /app

# Dependencies first (cached while only the code changes). uv.lock takes the CPU build of torch from a wheel on
# the developer machines (/opt/wheels, see pyproject.toml); the image takes the same build from PyTorch's CPU
# index, then everything else exactly as locked (the dev group included: it brings `langgraph-cli[inmem]`).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY pyproject.toml uv.lock README.md ./
RUN uv pip install --no-cache --index-url "$TORCH_INDEX" "torch==2.13.0+cpu" \
 && uv export --frozen --all-groups --no-hashes --no-emit-project --no-emit-package torch -o /tmp/requirements.txt \
 && uv pip install --no-cache -r /tmp/requirements.txt

COPY . .
RUN uv pip install --no-cache --no-deps -e .

# Threads, crons and the generated development tokens live in .langgraph_api (a volume in docker-compose.yml);
# rides to debrief in /data/inbox/<athlete>/.
ENV INBOX_DIR=/data/inbox
EXPOSE 2024
CMD ["python", "-m", "server.serve", "--host", "0.0.0.0", "--port", "2024"]
