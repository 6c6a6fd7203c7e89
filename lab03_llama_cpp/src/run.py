# Student skeleton for lab03_llama_cpp: fill in each TODO, then run `course test lab03_llama_cpp`.
# (Generated from the reference solution by `course stubs`.)
"""Task 5: run a GGUF in llama.cpp on a CPU, through llama-cpp-python, and measure it.

The chapter drives llama.cpp from its command line (``llama-cli -m model.gguf -p "..." -n 64 -t 8``);
llama-cpp-python wraps the same C library: ``Llama(model_path=..., n_ctx=..., n_threads=...)``
loads the file (memory-mapped), ``create_completion`` / ``create_chat_completion`` generate
(the chat one renders the GGUF's own ``tokenizer.chat_template``), ``stream=True`` yields pieces,
a ``LlamaGrammar`` constrains sampling, and ``logits_all=True`` keeps every position's logits in
``llm.scores`` so that perplexity can be computed as ``llama-perplexity`` does.

Readings: llama-cpp-python's API reference (``Llama``, ``LlamaGrammar``); llama.cpp's
``tools/perplexity``; the chapter's section on memory: weights + KV cache + compute buffers.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from shared.validation import check_at_least, check_not_empty


def load(gguf_path: str | Path, n_ctx: int = 512, n_threads: int = 2, logits_all: bool = False,
         n_gpu_layers: int = 0, flash_attn: bool = False) -> Any:
    """llama.cpp's ``Llama`` on ``gguf_path`` (``llama-cli -m FILE -c N_CTX -t N_THREADS -ngl N -fa``).

    Raises:
        FileNotFoundError: no such file. ValueError: not a GGUF file, or ``n_ctx`` / ``n_threads``
            < 1 (naming the argument), before llama.cpp is called.
    """
    # TODO(lab03 task 5): a llama-cpp-python Llama on the file, or a clear FileNotFoundError / ValueError before llama.cpp is called (README task 5; llama-cpp-python's Llama).
    raise NotImplementedError("lab03 task 5: load is not written yet (see lab03_llama_cpp/README.md, task 5)")


def complete(llm: Any, prompt: str | list[int], max_tokens: int = 32) -> str:
    """Greedy completion of ``prompt`` (text, or token ids), at most ``max_tokens`` new tokens.

    Greedy means ``temperature=0``; pass ``repeat_penalty=1.0`` too, so nothing but the logits
    decides: it is the default of llama-cpp-python's methods and of llama.cpp's own tools, but not
    of ``llama_cpp.server`` (1.1), so say it rather than rely on a default.
    """
    # TODO(lab03 task 5): the greedy completion of a prompt as llama-completion --temp 0 --repeat-penalty 1 gives it, equal to transformers' greedy generate (README task 5).
    raise NotImplementedError("lab03 task 5: complete is not written yet (see lab03_llama_cpp/README.md, task 5)")


def chat(llm: Any, messages: list[dict[str, str]], max_tokens: int = 32) -> str:
    """Greedy chat completion, formatted by the GGUF's own chat template; returns the answer text."""
    # TODO(lab03 task 5): the greedy answer to a chat, formatted by the GGUF's own chat template (README task 5).
    raise NotImplementedError("lab03 task 5: chat is not written yet (see lab03_llama_cpp/README.md, task 5)")


def stream(llm: Any, prompt: str, max_tokens: int = 32) -> Iterator[str]:
    """Yield the greedy completion of ``prompt`` piece by piece (``stream=True``); the pieces join
    to :func:`complete`'s text."""
    # TODO(lab03 task 5): the greedy completion piece by piece, the pieces joining to complete's text (README task 5).
    raise NotImplementedError("lab03 task 5: stream is not written yet (see lab03_llama_cpp/README.md, task 5)")


def json_complete(llm: Any, prompt: str, schema: dict[str, Any], max_tokens: int = 96) -> Any:
    """A completion constrained to JSON matching ``schema`` (``LlamaGrammar.from_json_schema``),
    parsed with ``json.loads``."""
    # TODO(lab03 task 5): a greedy completion constrained to JSON valid against the schema, parsed (README task 5; LlamaGrammar).
    raise NotImplementedError("lab03 task 5: json_complete is not written yet (see lab03_llama_cpp/README.md, task 5)")


def perplexity(llm: Any, token_ids: list[int], window: int | None = None) -> float:
    """Perplexity of ``token_ids`` under the model: ``exp(mean(-log p(token_i | tokens before it)))``
    over every token but the first of each window.

    Args:
        llm: a ``Llama`` loaded with ``logits_all=True`` (``llm.scores[i]`` are the logits after
            token i).
        token_ids: the text, tokenized (at least 2 ids).
        window: evaluate in independent windows of this many tokens (default: ``llm.n_ctx()``),
            each starting with an empty KV cache, as ``llama-perplexity`` does with ``-c``.
    Returns:
        the perplexity, a float >= 1.
    """
    # TODO(lab03 task 5): the perplexity of token_ids from llama.cpp's logits, in independent windows as llama-perplexity -c does, equal to transformers' within 0.1 % (README task 5; the docstring).
    raise NotImplementedError("lab03 task 5: perplexity is not written yet (see lab03_llama_cpp/README.md, task 5)")


@dataclass
class Speed:
    prompt_tokens: int
    new_tokens: int
    prefill_s: float  # time to the first new token: the whole prompt in one batch, plus one sample
    decode_tokens_per_s: float  # new tokens after the first, per second


def measure_speed(llm: Any, prompt_ids: list[int], new_tokens: int = 32) -> Speed:
    """Time ``new_tokens`` greedy tokens after ``prompt_ids`` with ``llm.generate`` (which never stops
    at eos by itself, so the count is exact). Call ``llm.reset()`` first: ``generate`` reuses a
    cached prefix, and a second measurement would then skip the prefill."""
    # TODO(lab03 task 5): prefill time and decode speed of exactly new_tokens greedy tokens, as llama-bench measures them (README task 5; the docstring).
    raise NotImplementedError("lab03 task 5: measure_speed is not written yet (see lab03_llama_cpp/README.md, task 5)")


@dataclass
class MemoryEstimate:
    weights: int  # bytes of every tensor in the file
    kv_cache: int  # bytes of the K and V caches for n_ctx tokens
    total: int


def estimate_memory(gguf_path: str | Path, n_ctx: int, kv_bytes: int = 2) -> MemoryEstimate:
    """What loading ``gguf_path`` with a context of ``n_ctx`` tokens costs, before compute buffers.

    weights = the sum of every tensor's bytes; kv_cache = block_count x n_ctx x head_count_kv x
    (key_length + value_length) x ``kv_bytes`` (llama.cpp stores the cache in float16 by default),
    where key_length and value_length are ``attention.key_length`` / ``attention.value_length`` if
    present (a model's head_dim need not be embedding_length / head_count), else that ratio.
    """
    # TODO(lab03 task 5): the memory a file and context cost, weights plus f16 KV cache, as llama.cpp accounts it (README task 5; the docstring's formula).
    raise NotImplementedError("lab03 task 5: estimate_memory is not written yet (see lab03_llama_cpp/README.md, task 5)")
