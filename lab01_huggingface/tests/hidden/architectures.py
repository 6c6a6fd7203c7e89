"""Random-weight models of other architectures (from ``shared.models.build_random_model``),
loaded once per test session: inputs the visible tests never use."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from shared.models import build_random_model

#: Absolute positions + eos 0 (gpt2), eos list + GQA (qwen2), fused qkv + partial rotary (gpt_neox),
#: learned positions with an offset (opt).
ARCHITECTURES = ["gpt2", "qwen2", "gpt_neox", "opt"]


@functools.cache
def random_model(architecture: str) -> tuple[Path, Any, Any]:
    """``(folder, model in fp32 eval mode on the CPU, tokenizer)`` of one architecture."""
    folder = build_random_model(architecture)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return folder, model, AutoTokenizer.from_pretrained(folder)
