"""Random-weight models of other architectures (from ``shared.models.build_random_model``) and
other tokenizer conventions (from ``shared.convention_models``), loaded once per test session:
inputs the visible tests never use."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from shared.convention_models import CONVENTIONS, ConventionUnavailable, convention_model
from shared.models import build_random_model

#: Absolute positions + eos 0 (gpt2), eos list + GQA (qwen2), fused qkv + partial rotary (gpt_neox),
#: learned positions with an offset (opt).
ARCHITECTURES = ["gpt2", "qwen2", "gpt_neox", "opt"]
#: Tiny Llamas with real tokenizer conventions: no pad token and no chat template (no-pad, gpt-2),
#: SentencePiece with byte fallback (spm-byte-fallback, llama-spm), Llama 3's 128k vocabulary and
#: its list of eos ids (llama-bpe); llama-spm, gpt-2 and llama-bpe come from llama.cpp's vocab files.
CONVENTIONS_TRIED = [name for name in CONVENTIONS if name != "mixtral"]


@functools.cache
def _load(name: str) -> tuple[Path, Any, Any] | str:
    try:
        folder = build_random_model(name) if name in ARCHITECTURES else convention_model(name)
    except ConventionUnavailable as error:
        return f"this model folder cannot be built here: {error}"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return folder, model, AutoTokenizer.from_pretrained(folder)


def random_model(name: str) -> tuple[Path, Any, Any]:
    """``(folder, model in fp32 eval mode on the CPU, tokenizer)`` of an architecture or a
    tokenizer convention; a skip naming what is missing when a convention cannot be built here."""
    loaded = _load(name)
    if isinstance(loaded, str):
        pytest.skip(loaded)
    return loaded
