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
    # BEGIN SOLUTION task 5: a llama-cpp-python Llama on the file, or a clear FileNotFoundError / ValueError before llama.cpp is called (README task 5; llama-cpp-python's Llama).
    # HINT task 5 level 1: task 5 drives llama.cpp through llama-cpp-python and must equal transformers: greedy
    #   means temperature 0 and no repeat penalty, perplexity must use the same log-probabilities, the memory
    #   estimate llama.cpp's own accounting. Reading: README task 5 (its table maps each llama.cpp tool to a
    #   function here), llama-cpp-python's API reference (Llama, create_completion, create_chat_completion,
    #   LlamaGrammar) and llama.cpp's tools/perplexity.
    # HINT task 5 level 2: llama.cpp's own error for a missing or non-GGUF file says nothing useful, so
    #   check the file and its magic yourself; check n_ctx and n_threads too. Pass every argument through
    #   (threads for both prompt and generation, logits_all, GPU layers, flash attention), quiet, with a fixed
    #   seed.
    from llama_cpp import Llama

    path = Path(gguf_path)
    if not path.is_file():
        raise FileNotFoundError(f"gguf_path={str(gguf_path)!r}: no such file")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ValueError(f"gguf_path={str(gguf_path)!r} is not a GGUF file (no GGUF magic at offset 0)")
    check_at_least("n_ctx", n_ctx, 1)
    check_at_least("n_threads", n_threads, 1)
    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                 logits_all=logits_all, n_gpu_layers=n_gpu_layers, flash_attn=flash_attn, verbose=False, seed=0)
    # END SOLUTION


def complete(llm: Any, prompt: str | list[int], max_tokens: int = 32) -> str:
    """Greedy completion of ``prompt`` (text, or token ids), at most ``max_tokens`` new tokens.

    Greedy means ``temperature=0``; pass ``repeat_penalty=1.0`` too, so nothing but the logits
    decides: it is the default of llama-cpp-python's methods and of llama.cpp's own tools, but not
    of ``llama_cpp.server`` (1.1), so say it rather than rely on a default.
    """
    # BEGIN SOLUTION task 5: the greedy completion of a prompt as llama-completion --temp 0 --repeat-penalty 1 gives it, equal to transformers' greedy generate (README task 5).
    # HINT task 5 level 2: complete / chat / stream / json_complete: llama-cpp-python answers in OpenAI's shapes
    #   (choices[0] ...); greedy needs temperature 0 and repeat_penalty 1.0 explicitly (the server's default is
    #   1.1). chat goes through the GGUF's own chat template, which create_chat_completion applies. stream's
    #   pieces must join to complete's text. json_complete's grammar comes from the schema (LlamaGrammar has a
    #   constructor for that).
    check_not_empty("prompt", prompt)
    check_at_least("max_tokens", max_tokens, 1)
    result = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0)
    return result["choices"][0]["text"]
    # END SOLUTION


def chat(llm: Any, messages: list[dict[str, str]], max_tokens: int = 32) -> str:
    """Greedy chat completion, formatted by the GGUF's own chat template; returns the answer text."""
    # BEGIN SOLUTION task 5: the greedy answer to a chat, formatted by the GGUF's own chat template (README task 5).
    check_not_empty("messages", messages)
    check_at_least("max_tokens", max_tokens, 1)
    result = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0,
                                        repeat_penalty=1.0)
    return result["choices"][0]["message"]["content"]
    # END SOLUTION


def stream(llm: Any, prompt: str, max_tokens: int = 32) -> Iterator[str]:
    """Yield the greedy completion of ``prompt`` piece by piece (``stream=True``); the pieces join
    to :func:`complete`'s text."""
    # BEGIN SOLUTION task 5: the greedy completion piece by piece, the pieces joining to complete's text (README task 5).
    check_not_empty("prompt", prompt)
    check_at_least("max_tokens", max_tokens, 1)
    for chunk in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0,
                                       stream=True):
        yield chunk["choices"][0]["text"]
    # END SOLUTION


def json_complete(llm: Any, prompt: str, schema: dict[str, Any], max_tokens: int = 96) -> Any:
    """A completion constrained to JSON matching ``schema`` (``LlamaGrammar.from_json_schema``),
    parsed with ``json.loads``."""
    # BEGIN SOLUTION task 5: a greedy completion constrained to JSON valid against the schema, parsed (README task 5; LlamaGrammar).
    from llama_cpp import LlamaGrammar

    check_not_empty("prompt", prompt)
    grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    result = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0,
                                   grammar=grammar)
    return json.loads(result["choices"][0]["text"])
    # END SOLUTION


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
    # BEGIN SOLUTION task 5: the perplexity of token_ids from llama.cpp's logits, in independent windows as llama-perplexity -c does, equal to transformers' within 0.1 % (README task 5; the docstring).
    # HINT task 5 level 2: with logits_all, llm.scores[i] are the logits after token i, so they
    #   predict token i + 1: the first token of each window is never predicted. Each window starts from an empty
    #   KV cache. Compute the log-softmax stably in float64 (subtract the row's maximum). A window of one
    #   leftover token adds nothing.
    # HINT task 5 level 3: for each window of token_ids: reset, eval the chunk, take the first
    #   len(chunk) rows of the scores as float64, log-softmax them, add -log p of chunk[1:] at rows 0..len - 2,
    #   count them; return exp of the mean.
    if len(token_ids) < 2:
        raise ValueError(f"token_ids must hold at least 2 tokens, got {len(token_ids)}")
    window = window or llm.n_ctx()
    check_at_least("window", window, 2)
    total, count = 0.0, 0
    for start in range(0, len(token_ids), window):
        chunk = list(token_ids[start:start + window])
        if len(chunk) < 2:
            break
        llm.reset()
        llm.eval(chunk)
        logits = np.asarray(llm.scores[: len(chunk)], dtype=np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        total -= float(log_probs[np.arange(len(chunk) - 1), chunk[1:]].sum())
        count += len(chunk) - 1
    return math.exp(total / count)
    # END SOLUTION


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
    # BEGIN SOLUTION task 5: prefill time and decode speed of exactly new_tokens greedy tokens, as llama-bench measures them (README task 5; the docstring).
    # HINT task 5 level 2: generate is a generator that never stops on its own: count the tokens
    #   yourself. The first token's time includes the whole prompt's prefill; the decode rate is measured from
    #   the first token to the last (new_tokens - 1 intervals).
    check_not_empty("prompt_ids", prompt_ids)
    check_at_least("new_tokens", new_tokens, 2)
    llm.reset()
    start = time.perf_counter()
    stamps = []
    for _ in llm.generate(prompt_ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
        stamps.append(time.perf_counter())
        if len(stamps) == new_tokens:
            break
    decode_s = stamps[-1] - stamps[0]
    return Speed(len(prompt_ids), len(stamps), stamps[0] - start,
                 (len(stamps) - 1) / decode_s if decode_s > 0 else float("inf"))
    # END SOLUTION


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
    # BEGIN SOLUTION task 5: the memory a file and context cost, weights plus f16 KV cache, as llama.cpp accounts it (README task 5; the docstring's formula).
    # HINT task 5 level 2: the keys are prefixed by the architecture named in
    #   general.architecture; key_length and value_length may be absent (then embedding_length / head_count),
    #   and head_count_kv too (then head_count). Weights are every tensor's bytes as stored (quantized sizes
    #   included).
    check_at_least("n_ctx", n_ctx, 1)
    reader = gguf.GGUFReader(gguf_path)
    fields = reader.fields
    arch = fields["general.architecture"].contents()
    n_layer = fields[f"{arch}.block_count"].contents()
    n_head = fields[f"{arch}.attention.head_count"].contents()
    n_kv = fields[f"{arch}.attention.head_count_kv"].contents() if f"{arch}.attention.head_count_kv" in fields else n_head
    default_head_dim = fields[f"{arch}.embedding_length"].contents() // n_head
    key_length, value_length = (fields[key].contents() if key in fields else default_head_dim
                                for key in (f"{arch}.attention.key_length", f"{arch}.attention.value_length"))
    weights = sum(int(t.n_bytes) for t in reader.tensors)
    kv_cache = n_layer * n_ctx * n_kv * (key_length + value_length) * kv_bytes
    return MemoryEstimate(weights, kv_cache, weights + kv_cache)
    # END SOLUTION
