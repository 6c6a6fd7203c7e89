# Student skeleton for lab01_huggingface: fill in each TODO, then run `course test lab01_huggingface`.
# (Generated from the reference solution by `course stubs`.)
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
    # TODO(lab01 task 1): the model's parameter count in elements, a tied weight counted once, as transformers' num_parameters() (README task 1).
    raise NotImplementedError("lab01 task 1: count_parameters is not written yet (see lab01_huggingface/README.md, task 1)")


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes the parameters and buffers occupy: elements times bytes per element, per tensor.

    This is what loading costs in memory before any KV cache: about 2 bytes per parameter in
    fp16 / bf16, 4 in fp32.
    """
    # TODO(lab01 task 1): the bytes the parameters and buffers occupy in memory, as get_memory_footprint() counts them (README task 1).
    raise NotImplementedError("lab01 task 1: weight_bytes is not written yet (see lab01_huggingface/README.md, task 1)")


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
        ModelLoadError: the folder is missing, has no ``config.json``, or holds a model that
            transformers cannot load as a causal LM (a T5 encoder-decoder, for example); the
            message names the folder and the reason. transformers decides what it can load: it
            loads a BERT encoder's folder as ``BertLMHeadModel`` with a new, random output layer
            (transformers 5.19 lists the missing weights and goes on), so such a folder is not refused here.
        ValueError: an unknown or unavailable device or dtype (from ``shared.hardware``).
    """
    # TODO(lab01 task 1): the model in eval mode on the chosen device and dtype with its tokenizer and sizes, or a ModelLoadError naming the folder and the reason (README task 1; the docstring).
    raise NotImplementedError("lab01 task 1: load_model is not written yet (see lab01_huggingface/README.md, task 1)")


def describe(loaded: LoadedModel) -> dict[str, Any]:
    """A one-line summary for printing (given)."""
    return {"device": loaded.device, "dtype": str(loaded.dtype).removeprefix("torch."),
            "parameters": loaded.num_parameters, "weight_MiB": round(loaded.weight_bytes / 2**20, 2)}
