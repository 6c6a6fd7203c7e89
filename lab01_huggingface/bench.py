"""Lab 01 measurements: what the KV cache and speculative decoding buy, on this machine.

    python lab01_huggingface/bench.py [--impl student|solution] [--model PATH] [--draft PATH]
                                      [--new-tokens 128] [--device auto|cpu|cuda|mps]

Prints, from one run each (ratios, so they compare across machines):
- greedy decoding of 128 new tokens with the KV cache vs recomputing the prefix (task 3);
- speculative decoding vs plain greedy, for k = 2, 4, 6, and sampled at temperature 1 with k = 4:
  acceptance rate, target passes, time (task 7); skipped, with the reason, for a draft whose
  vocabulary is not the model's;
- TTFT / TPOT / tokens per second of one generation (task 9).
It runs your code (src/) by default; --impl solution runs the reference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

PROMPT = "A language model predicts the next token from the tokens before it."


def draft_mismatch(target: Any, draft: Any, target_tokenizer: Any, draft_tokenizer: Any | None) -> str | None:
    """Why ``draft`` cannot propose tokens for ``target``, or None when it can.

    A draft proposes token *ids*, which the target reads with its own vocabulary: both models need
    the same number of token ids and, where the draft folder has a tokenizer, the same tokens.

    Args:
        target, draft: the two causal LMs (their ``config.vocab_size`` is compared).
        target_tokenizer: the target's tokenizer.
        draft_tokenizer: the draft folder's tokenizer, or None where it has none.
    """
    sizes = (target.config.get_text_config().vocab_size, draft.config.get_text_config().vocab_size)
    if sizes[0] != sizes[1]:
        return (f"the draft has a vocabulary of {sizes[1]} token ids and the model one of {sizes[0]}: "
                "a draft proposes token ids, so it needs the model's tokenizer (pass one with --draft)")
    if draft_tokenizer is not None and draft_tokenizer.get_vocab() != target_tokenizer.get_vocab():
        return ("the draft's tokenizer maps tokens to other ids than the model's: a draft proposes token ids, "
                "so it needs the model's tokenizer (pass one with --draft)")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["student", "solution"], default="student")
    parser.add_argument("--model", default=None, help="a local HF model folder (default: the fixture)")
    parser.add_argument("--draft", default=None, help="a draft model folder (default: the fixture draft)")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.new_tokens < 2:
        parser.error("--new-tokens must be at least 2")
    os.environ["COURSE_IMPL"] = args.impl
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from shared.hardware import resolve_device
    from shared.impl import lab_module
    from shared.models import resolve_model

    hf_logging.disable_progress_bar()
    generation = lab_module("lab01_huggingface", "generation")
    speculative = lab_module("lab01_huggingface", "speculative")
    measure = lab_module("lab01_huggingface", "measure")
    device = resolve_device(args.device)
    try:
        target_dir, draft_dir = resolve_model(args.model, "main"), resolve_model(args.draft, "draft")
    except ValueError as error:
        parser.error(str(error))
    tokenizer = AutoTokenizer.from_pretrained(target_dir)
    target = AutoModelForCausalLM.from_pretrained(target_dir, dtype=torch.float32).to(device).eval()
    draft = AutoModelForCausalLM.from_pretrained(draft_dir, dtype=torch.float32).to(device).eval()
    try:
        draft_tokenizer = AutoTokenizer.from_pretrained(draft_dir)
    except (OSError, ValueError):  # a folder with weights only: the vocabulary sizes must do
        draft_tokenizer = None
    mismatch = draft_mismatch(target, draft, tokenizer, draft_tokenizer)
    ids = tokenizer(PROMPT).input_ids
    n = args.new_tokens
    console = Console()

    def timed(function, *fargs, **kwargs):
        function(*fargs, **{**kwargs, "max_new_tokens": 4})  # warm-up
        started = time.perf_counter()
        result = function(*fargs, **kwargs)
        return result, time.perf_counter() - started

    cached, t_cached = timed(generation.greedy_generate, target, ids, max_new_tokens=n, eos_token_id=-1)
    _, t_full = timed(generation.greedy_generate, target, ids, max_new_tokens=n, eos_token_id=-1, use_cache=False)
    table = Table(title=f"Task 3: greedy, {n} new tokens, {device}")
    for column in ("decoding", "seconds", "tokens/s", "speed-up"):
        table.add_column(column, justify="right")
    table.add_row("recompute the prefix", f"{t_full:.2f}", f"{n / t_full:.0f}", "1.0×")
    table.add_row("KV cache", f"{t_cached:.2f}", f"{n / t_cached:.0f}", f"{t_full / t_cached:.1f}×")
    console.print(table)

    if mismatch:
        console.print(f"Task 7 skipped: {mismatch}.", markup=False, soft_wrap=True)
    else:
        table = Table(title=f"Task 7: speculative vs plain greedy (with cache), {n} new tokens")
        for column in ("k", "acceptance", "target passes", "draft passes", "seconds", "vs greedy"):
            table.add_column(column, justify="right")
        table.add_row("greedy", "", str(len(cached)), "", f"{t_cached:.2f}", "1.00×")
        for k in (2, 4, 6):
            result, seconds = timed(speculative.speculative_generate, target, draft, ids, max_new_tokens=n, k=k,
                                    eos_token_id=-1)
            assert result.tokens == cached, "speculative output differs from greedy output"
            table.add_row(str(k), f"{result.acceptance_rate:.0%}", str(result.target_forward_passes),
                          str(result.draft_forward_passes), f"{seconds:.2f}", f"{t_cached / seconds:.2f}×")
        # Sampled (temperature 1): the output is a sample, not greedy's, so only the costs compare.
        result, seconds = timed(speculative.speculative_generate, target, draft, ids, max_new_tokens=n, k=4,
                                eos_token_id=-1, temperature=1.0, generator=torch.Generator(device).manual_seed(0))
        table.add_row("4, T=1", f"{result.acceptance_rate:.0%}", str(result.target_forward_passes),
                      str(result.draft_forward_passes), f"{seconds:.2f}", f"{t_cached / seconds:.2f}×")
        console.print(table)

    m = measure.measure_generation(target, ids, n)
    console.print(f"Task 9: TTFT {m.ttft_s * 1000:.1f} ms, TPOT {m.tpot_s * 1000:.2f} ms, "
                  f"{m.tokens_per_s:.0f} tokens/s, peak memory {m.peak_memory_bytes / 2**20:.0f} MiB ({m.device})")


if __name__ == "__main__":
    main()
