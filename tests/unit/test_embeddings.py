"""Embeddings: provider choice, the wrapper's checks, the real offline MiniLM model, and lazy loading."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from config.settings import Settings
from memory.embeddings import (
    EMBEDDING_DIMENSIONS,
    ArchiveEmbedder,
    LocalMiniLMEmbeddings,
    get_embedder,
    resolve_provider,
    vector_literal,
)
from memory.local_model import ONNX_FILE, new_local_model, onnx_model_dir, quantized_file
from tests.conftest import PROJECT_ROOT


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


def test_provider_choice() -> None:
    assert resolve_provider(settings()) == "local"
    assert resolve_provider(settings(openai_api_key="sk-test")) == "openai"
    # A custom base URL usually serves a chat model only: stay local unless asked.
    assert resolve_provider(settings(openai_api_key="k", openai_base_url="http://127.0.0.1:11434/v1")) == "local"
    assert resolve_provider(settings(embedding_provider="openai", openai_base_url="http://h/v1")) == "openai"
    assert get_embedder(settings(embedding_provider="none")) is None


def test_openai_embedder_keeps_the_column_size() -> None:
    embedder = get_embedder(settings(openai_api_key="sk-test"))
    assert embedder is not None
    assert embedder.model_id == f"openai:text-embedding-3-small@{EMBEDDING_DIMENSIONS}"
    assert embedder.embeddings.dimensions == EMBEDDING_DIMENSIONS  # type: ignore[attr-defined]


def test_local_embedder_is_one_per_process_and_loads_nothing_when_created() -> None:
    a, b = get_embedder(settings()), get_embedder(settings(embedding_provider="local"))
    assert a is b and a is not None and a.model_id == "local:all-MiniLM-L6-v2"


async def test_wrapper_rejects_vectors_of_the_wrong_size() -> None:
    wrong = ArchiveEmbedder(DeterministicFakeEmbedding(size=8), "fake:8")
    with pytest.raises(ValueError, match="wrong size"):
        await wrong.embed_documents(["a"])
    with pytest.raises(ValueError, match="wrong size"):
        await wrong.embed_query("a")
    right = ArchiveEmbedder(DeterministicFakeEmbedding(size=EMBEDDING_DIMENSIONS), "fake:384")
    assert await right.embed_documents([]) == []
    assert len((await right.embed_documents(["a", "b" * 10_000]))[1]) == EMBEDDING_DIMENSIONS


def test_vector_literal() -> None:
    assert vector_literal([0.5, -1.0, 1e-9]) == "[0.5,-1,1e-09]"


async def test_local_minilm_gives_unit_vectors_that_see_paraphrases() -> None:
    embedder = get_embedder(settings(embedding_provider="local"))
    assert embedder is not None and isinstance(embedder.embeddings, LocalMiniLMEmbeddings)
    cramp, tyres = await embedder.embed_documents(
        ["My calves keep cramping during the last hour of long rides.", "What tyre pressure for the gravel race?"]
    )
    query = await embedder.embed_query("muscle spasms in the lower legs late in a workout")
    assert len(query) == EMBEDDING_DIMENSIONS
    assert math.isclose(sum(x * x for x in cramp), 1.0, abs_tol=1e-4)

    def cos(u: list[float], v: list[float]) -> float:
        return sum(a * b for a, b in zip(u, v, strict=True))

    assert cos(query, cramp) > cos(query, tyres) + 0.2
    assert embedder.embeddings.embed_documents([]) == []


def test_importing_the_app_loads_no_model() -> None:
    code = (
        "import sys, graphs.chat, tools.coach_tools, memory.conversation, cli.main\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ----- ONNX backends, batches, the worker thread, offline export ----------------------------------------------

SENTENCES = [
    "My calves keep cramping during the last hour of long rides.",
    "What tyre pressure for the gravel race?",
    "Melanie: I went camping with the kids at the lake last weekend.",
    "Threshold intervals felt easier than last month, 4x8 min at 280 W.",
    "ok",
]


class CountingEmbeddings(Embeddings):
    """A blocking model that records each call's size and thread, and can be held inside a call."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.threads: list[str] = []
        self.started = threading.Event()
        self.hold = hold

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        self.threads.append(threading.current_thread().name)
        self.started.set()
        if self.hold is not None:
            assert self.hold.wait(10), "the event loop never released the model"
        return [[float(len(t))] + [0.0] * (EMBEDDING_DIMENSIONS - 1) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def cos(u: list[float], v: list[float]) -> float:
    return sum(a * b for a, b in zip(u, v, strict=True))


@pytest.mark.parametrize(
    ("backend", "min_cos", "mean_cos"),
    # int8: 0.991 mean, 0.94 lowest over 400 LoCoMo turns and one-word replies ("ok": the lowest); recall within 0.01.
    [("onnx", 0.9999, 0.9999), ("onnx-int8", 0.95, 0.985)],
)
async def test_onnx_backends_agree_with_torch(backend: str, min_cos: float, mean_cos: float) -> None:
    torch_vectors = await get_embedder(settings(embedding_provider="local", embedding_backend="torch")).embed_documents(  # type: ignore[union-attr]
        SENTENCES
    )
    embedder = get_embedder(settings(embedding_provider="local", embedding_backend=backend))
    assert embedder is not None and embedder.embeddings.backend == backend  # type: ignore[attr-defined]
    vectors = await embedder.embed_documents(SENTENCES)
    cosines = [cos(u, v) for u, v in zip(torch_vectors, vectors, strict=True)]
    assert min(cosines) >= min_cos and sum(cosines) / len(cosines) >= mean_cos, cosines
    # The same vector space: an archive embedded by torch is searched by the ONNX model without a reindex.
    assert embedder.model_id == "local:all-MiniLM-L6-v2"


async def test_default_backend_is_onnx_int8_exported_into_the_cache() -> None:
    s = settings(embedding_provider="local")
    assert s.embedding_backend == "onnx-int8"
    embedder = get_embedder(s)
    assert embedder is not None
    await embedder.embed_query("warm")
    folder = onnx_model_dir(s.model_cache_dir)
    assert (folder / ONNX_FILE).is_file() and (folder / quantized_file()).is_file()
    assert new_local_model("onnx-int8", s.model_cache_dir).backend == "onnx"


async def test_batches_make_one_model_call_each_in_order() -> None:
    model = CountingEmbeddings()
    embedder = ArchiveEmbedder(model, "fake:count", batch_size=4)
    texts = [f"message-{'x' * i}" for i in range(10)]
    vectors = await embedder.embed_documents(texts)
    assert model.calls == [4, 4, 2]
    assert [v[0] for v in vectors] == [float(len(t)) for t in texts]
    assert set(model.threads) != {threading.current_thread().name}
    assert all(name.startswith("embedder") for name in model.threads)  # the embedder's own pool
    with pytest.raises(ValueError, match="batch_size"):
        ArchiveEmbedder(model, "fake:count", batch_size=0)


async def test_the_event_loop_runs_while_a_batch_encodes() -> None:
    release = threading.Event()
    model = CountingEmbeddings(hold=release)
    embedder = ArchiveEmbedder(model, "fake:held", batch_size=1000)
    order: list[str] = []

    async def encode() -> None:
        await embedder.embed_documents(["a"] * 600)
        order.append("encoded")

    async def other_coroutine() -> None:
        while not model.started.is_set():  # runs only if the loop is free while the model works
            await asyncio.sleep(0.001)
        order.append("loop ran")
        release.set()

    await asyncio.wait_for(asyncio.gather(encode(), other_coroutine()), 20)
    assert order == ["loop ran", "encoded"]


async def test_the_real_model_encodes_off_the_loop() -> None:
    embedder = get_embedder(settings(embedding_provider="local"))
    assert embedder is not None
    await embedder.embed_query("warm")
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    ticks_before = ticks
    await embedder.embed_documents([f"{s} ({i})" for i in range(100) for s in SENTENCES])
    ticks_after = ticks
    done = True
    await task
    assert ticks_after > ticks_before + 1


def test_warm_up_loads_the_model_and_reports_failures(tmp_path: Path) -> None:
    embedder = ArchiveEmbedder(CountingEmbeddings(), "fake:warm")
    assert embedder.warm_up() is True
    assert embedder.embeddings.calls == [1]  # type: ignore[attr-defined]

    class Broken(CountingEmbeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise OSError("no model here")

    assert ArchiveEmbedder(Broken(), "fake:broken").warm_up() is False


def test_export_and_load_never_touch_the_network(tmp_path: Path) -> None:
    """A fresh cache, HF_HUB_OFFLINE unset, and every socket connection refused: export, load, encode still work."""
    code = f"""
import socket
def refuse(*args, **kwargs):
    raise AssertionError(f"network access: {{args}}")
socket.socket.connect = refuse
socket.create_connection = refuse
import os
from pathlib import Path
from memory.local_model import new_local_model, onnx_model_dir, quantized_file
model = new_local_model("onnx-int8", Path({str(tmp_path)!r}))
assert model.encode(["hello"]).shape == (1, {EMBEDDING_DIMENSIONS})
assert (onnx_model_dir(Path({str(tmp_path)!r})) / quantized_file()).is_file()
print(os.environ["HF_HUB_OFFLINE"])
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "1"
