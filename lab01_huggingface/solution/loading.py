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
    # BEGIN SOLUTION task 1: the model's parameter count in elements, a tied weight counted once, as transformers' num_parameters() (README task 1).
    # HINT task 1 level 1: loading is transformers' job; yours is to check what you were given, choose device
    #   and dtype with the given shared.hardware helpers, and count what you loaded. Reading: README task 1,
    #   transformers' from_pretrained (its dtype argument) and shared/hardware.py (resolve_device,
    #   resolve_dtype). The tests compare with num_parameters() and get_memory_footprint().
    # HINT task 1 level 2: count_parameters / weight_bytes: torch's module iterators visit a tensor shared by
    #   two modules once, so a tied embedding is not counted twice. Parameters are counted in elements; bytes
    #   are elements times the size of one element of the tensor's own dtype (buffers may keep another dtype,
    #   such as fp32 rotary tables in an fp16 model).
    return sum(p.numel() for p in model.parameters())
    # END SOLUTION


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes the parameters and buffers occupy: elements times bytes per element, per tensor.

    This is what loading costs in memory before any KV cache: about 2 bytes per parameter in
    fp16 / bf16, 4 in fp32.
    """
    # BEGIN SOLUTION task 1: the bytes the parameters and buffers occupy in memory, as get_memory_footprint() counts them (README task 1).
    # HINT task 1 level 3: over the parameters and then the buffers, add each tensor's element
    #   count times its element size.
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
        ModelLoadError: the folder is missing, has no ``config.json``, or holds a model that
            transformers cannot load as a causal LM (a T5 encoder-decoder, for example); the
            message names the folder and the reason. transformers decides what it can load: it
            loads a BERT encoder's folder as ``BertLMHeadModel`` with a new, random output layer
            (transformers 5.19 lists the missing weights and goes on), so such a folder is not refused here.
        ValueError: an unknown or unavailable device or dtype (from ``shared.hardware``).
    """
    # BEGIN SOLUTION task 1: the model in eval mode on the chosen device and dtype with its tokenizer and sizes, or a ModelLoadError naming the folder and the reason (README task 1; the docstring).
    # HINT task 1 level 2: check the folder and its config.json yourself, before transformers, so
    #   the message names the folder. A model type transformers cannot load as a causal LM makes it raise (a
    #   ValueError, a KeyError): turn that into ModelLoadError, keeping the cause. A bad device or dtype is the
    #   ValueError shared.hardware raises: let it through. A model for inference is in eval mode.
    # HINT task 1 level 3: folder missing -> ModelLoadError; no config.json -> ModelLoadError;
    #   resolve the device, then the dtype for that device; AutoModelForCausalLM.from_pretrained with that dtype
    #   inside a try; move it to the device and switch to eval; load the tokenizer from the same folder; fill
    #   LoadedModel with your two counts.
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
