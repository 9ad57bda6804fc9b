"""Embeddings: provider choice, the wrapper's checks, the real offline MiniLM model, and lazy loading."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from config.settings import Settings
from memory.embeddings import (
    EMBEDDING_DIMENSIONS,
    ArchiveEmbedder,
    LocalMiniLMEmbeddings,
    get_embedder,
    resolve_provider,
    vector_literal,
)
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
