"""Loading model replicas from several threads at once, in a fresh process (where the imports happen)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RACE = """
import threading
from config.settings import get_settings
from memory.local_model import new_local_model

barrier = threading.Barrier(3)
errors = []


def load():
    barrier.wait()
    try:
        new_local_model("onnx-int8", get_settings().model_cache_dir)
    except Exception as exc:
        errors.append(repr(exc))


threads = [threading.Thread(target=load) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("errors:", errors)
import torch
print("torch threads:", torch.get_num_threads())
"""


def test_replicas_loaded_from_three_threads_at_once_all_load() -> None:
    # Without `_load_lock`, two threads importing sentence-transformers' ONNX backend at once failed in 2 of 3
    # fresh processes with ImportError: cannot import name 'ONNX_WEIGHTS_NAME' from 'optimum.onnxruntime'.
    done = subprocess.run(
        [sys.executable, "-c", RACE], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["errors: []", "torch threads: 1"]
    # Torch pools the ONNX model's output with one thread per replica (EMBED_THREADS): with a thread per core, two
    # replicas pooling at once oversubscribed the cores (README, ingest).
