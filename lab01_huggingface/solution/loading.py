"""Task 1: load a causal language model and its tokenizer from a local folder.

Readings: transformers' ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer`` docs;
``shared.hardware.resolve_device`` / ``resolve_dtype`` for what ``"auto"`` means in this course.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from shared.hardware import resolve_device, resolve_dtype


class ModelLoadError(ValueError):
    """The folder cannot be loaded as a causal language model."""


@dataclass
class LoadedModel:
    model: PreTrainedModel  # in eval mode, on ``device``
    tokenizer: PreTrainedTokenizerBase
    device: str  # "cpu", "cuda", "cuda:1", "mps"
    dtype: torch.dtype
    num_parameters: int
    weight_bytes: int


def count_parameters(model: torch.nn.Module) -> int:
    """The number of parameters (elements, not tensors) in ``model``.

    A weight shared between two modules (tied input and output embeddings) counts once.
    """
    # BEGIN SOLUTION task 1: model.parameters() yields each shared tensor once; sum their numel().
    return sum(p.numel() for p in model.parameters())
    # END SOLUTION


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes the parameters and buffers occupy: elements times bytes per element, per tensor.

    This is what loading costs in memory before any KV cache: about 2 bytes per parameter in
    fp16 / bf16, 4 in fp32.
    """
    # BEGIN SOLUTION task 1: tensor.element_size() is the bytes of one element of its dtype.
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)
    # END SOLUTION


def load_model(path: str | Path, device: str = "auto", dtype: str | torch.dtype = "auto") -> LoadedModel:
    """Load the model and tokenizer in ``path`` for inference.

    Args:
        path: a local Hugging Face model folder (``config.json``, weights, tokenizer files).
        device: ``"auto"`` (cuda, then mps, then cpu), or ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.
        dtype: ``"auto"`` (bf16/fp16 on a GPU, fp32 on a CPU), a dtype name or a ``torch.dtype``.

    Returns:
        A :class:`LoadedModel`: the model in eval mode on the chosen device and dtype, its
        tokenizer, and its parameter count and weight bytes.

    Raises:
        ModelLoadError: the folder is missing, has no ``config.json``, or is not a causal LM
            (for example a BERT encoder); the message names the folder and the reason.
        ValueError: an unknown or unavailable device or dtype (from ``shared.hardware``).
    """
    # BEGIN SOLUTION task 1: check the folder and its config.json, resolve device and dtype, then from_pretrained(..., dtype=...).to(device).eval(); turn a ValueError from transformers into ModelLoadError.
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(f"path={str(path)!r}: no such folder")
    config_file = folder / "config.json"
    if not config_file.exists():
        raise ModelLoadError(f"path={str(path)!r} is not a Hugging Face model folder: no config.json")
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=resolved_dtype)
    except (ValueError, KeyError) as error:
        model_type = json.loads(config_file.read_text()).get("model_type", "unknown")
        raise ModelLoadError(
            f"path={str(path)!r} is not a causal language model (model_type {model_type!r}): {error}"
        ) from error
    model = model.to(resolved_device).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return LoadedModel(model=model, tokenizer=tokenizer, device=resolved_device, dtype=resolved_dtype,
                       num_parameters=count_parameters(model), weight_bytes=weight_bytes(model))
    # END SOLUTION


def describe(loaded: LoadedModel) -> dict[str, Any]:
    """A one-line summary for printing (given)."""
    return {"device": loaded.device, "dtype": str(loaded.dtype).removeprefix("torch."),
            "parameters": loaded.num_parameters, "weight_MiB": round(loaded.weight_bytes / 2**20, 2)}
