"""Hardware detection, device / dtype choice and the memory estimate, against independent oracles."""

from __future__ import annotations

import os

import psutil
import pytest
import torch

from shared import hardware
from shared.models import LLAMA2_7B_CONFIG


def _auto_oracle() -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def test_auto_device_follows_what_torch_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert hardware.resolve_device("auto") == _auto_oracle()
    assert hardware.resolve_device(None) == _auto_oracle()
    assert hardware.resolve_device("cpu") == "cpu"


def test_course_device_forces_the_auto_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert hardware.resolve_device("auto") == "cpu"
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="'auto'"):
        hardware.resolve_device("auto")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_a_missing_gpu_is_a_clear_error() -> None:
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=rf"device='{device}' was asked for, but no CUDA GPU"):
            hardware.resolve_device(device)


def test_an_unknown_device_is_named() -> None:
    with pytest.raises(ValueError, match=r"got 'tpu'"):
        hardware.resolve_device("tpu")


def test_resolve_dtype() -> None:
    assert hardware.resolve_dtype("auto", "cpu") is torch.float32
    assert hardware.resolve_dtype(None, "cpu") is torch.float32
    assert hardware.resolve_dtype("auto", "mps") is torch.float16
    assert hardware.resolve_dtype("float16") is torch.float16
    assert hardware.resolve_dtype("bfloat16") is torch.bfloat16
    assert hardware.resolve_dtype(torch.float64) is torch.float64
    for bad in ("int8", "floaty", "cuda"):
        with pytest.raises(ValueError, match=repr(bad)):
            hardware.resolve_dtype(bad)


def test_detect_matches_the_operating_system() -> None:
    report = hardware.detect()
    assert report.logical_cores == os.cpu_count()
    assert report.ram_bytes == psutil.virtual_memory().total
    if psutil.cpu_count(logical=False):
        assert report.physical_cores in (None, psutil.cpu_count(logical=False))
    assert set(report.simd) <= set(hardware.SIMD_FLAGS)
    assert report.has_cuda == torch.cuda.is_available()
    cudas = [a for a in report.accelerators if a.kind == "cuda"]
    assert len(cudas) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


def test_framework_status() -> None:
    import transformers

    status = hardware.framework_status()
    assert status["torch"] == torch.__version__
    assert status["transformers"] == transformers.__version__
    assert hardware.is_installed("torch")
    missing = "surely_not_a_module_of_this_course"
    assert not hardware.is_installed(missing)
    assert hardware.framework_version(missing) is None
    assert hardware.import_error(missing) == f"{missing} is not installed"
    assert hardware.import_error("json") is None


def _meta_parameters(config: dict) -> int:
    """The parameter count of the real transformers model for ``config``, built without memory."""
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**config))
    return sum(p.numel() for p in model.parameters())


def test_llama2_7b_memory_estimate_matches_the_real_model() -> None:
    estimate = hardware.estimate_memory(LLAMA2_7B_CONFIG, context_tokens=4096, batch_size=2)
    parameters = _meta_parameters(LLAMA2_7B_CONFIG)
    assert parameters == 6_738_415_616  # Llama-2-7B's published count
    assert estimate.weights_bytes == 2 * parameters  # fp16
    assert estimate.weights_bytes == pytest.approx(13.5e9, rel=0.01)
    assert estimate.kv_bytes_per_token == 2 * 32 * 32 * 128 * 2
    assert estimate.kv_cache_bytes == estimate.kv_bytes_per_token * 4096 * 2
    assert estimate.total_bytes == estimate.weights_bytes + estimate.kv_cache_bytes
    assert estimate.fits(20 * 10**9) is True  # 13.5 GB weights + 4.3 GB KV < 18 GB
    assert estimate.fits(16 * 10**9) is False
    assert estimate.fits(None) is None


def test_grouped_query_attention_and_tied_embeddings() -> None:
    """A TinyLlama-like shape: 4 KV heads for 32 query heads, and (here) tied embeddings."""
    config = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
              "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000,
              "tie_word_embeddings": True}
    estimate = hardware.estimate_memory(config, context_tokens=100, bytes_per_param=4, kv_bytes_per_value=1)
    assert estimate.weights_bytes == 4 * _meta_parameters(config)
    assert estimate.kv_bytes_per_token == 2 * 22 * 4 * 64 * 1
    untied = {**config, "tie_word_embeddings": False}
    assert hardware.estimate_memory(untied, context_tokens=1).weights_bytes == 2 * _meta_parameters(untied)


def test_available_memory() -> None:
    assert hardware.available_memory("cpu") == psutil.virtual_memory().total
    if not torch.cuda.is_available():
        assert hardware.available_memory("cuda") is None
