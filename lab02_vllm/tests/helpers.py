"""What several lab02 test files share: the modules under test, the oracles, small model folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from shared.impl import lab_module

LAB = "lab02_vllm"
sampling_params = lab_module(LAB, "sampling_params")
sequence = lab_module(LAB, "sequence")
block_manager = lab_module(LAB, "block_manager")
prefix_cache = lab_module(LAB, "prefix_cache")
paged_attention = lab_module(LAB, "paged_attention")
model_runner = lab_module(LAB, "model_runner")
scheduler = lab_module(LAB, "scheduler")
engine = lab_module(LAB, "engine")

#: Prompts of different lengths and kinds (the fixture writes sentences and JSON records).
PROMPTS = [
    "The cat",
    '{"name": "',
    "Ana lives in Lima and works as a",
    "A language model predicts the next token from the tokens before it. The cache keeps",
    "Once",
    '{"name": "user109", "age": 25, "city": "Lima"}\n{"name": "',
]


def mixed_prompts(tokenizer: Any, count: int, seed: int = 0, low: int = 2, high: int = 60) -> list[list[int]]:
    """``count`` token-id prompts of lengths spread over ``low..high``: pieces of the fixture's
    kind of text, cut at random lengths (deterministic for a seed)."""
    generator = torch.Generator().manual_seed(seed)
    text = " ".join(PROMPTS * 8)
    ids = tokenizer(text).input_ids
    prompts = []
    for _ in range(count):
        length = int(torch.randint(low, high + 1, (1,), generator=generator))
        start = int(torch.randint(1, len(ids) - length, (1,), generator=generator))
        prompts.append(ids[:1] + ids[start:start + length - 1])  # keep the bos token first
    return prompts


def hf_greedy(model: Any, prompt_ids: list[int], max_new_tokens: int, **kwargs: Any) -> list[int]:
    """The oracle: transformers' own greedy ``generate``, new tokens only (eos included)."""
    inputs = torch.tensor([prompt_ids], device=model.device)
    with torch.no_grad():
        out = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=model.generation_config.pad_token_id,
                             **kwargs)
    return out[0, len(prompt_ids):].tolist()


def make_seq(tokens: list[int] | int, params: Any = None) -> Any:
    """A ``Sequence`` (given code) with these tokens (or ``tokens`` copies of token 1)."""
    if isinstance(tokens, int):
        tokens = [1] * tokens
    return sequence.Sequence("r", tokens, params or sampling_params.SamplingParams())


def write_random_llama(folder: Path, tokenizer_dir: Path, seed: int = 0, **config: Any) -> Path:
    """A Llama-architecture model folder with random weights (transformers writes it) and the
    fixture's tokenizer. ``config`` overrides ``LlamaConfig`` fields."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    values = dict(hidden_size=96, intermediate_size=160, num_hidden_layers=3, num_attention_heads=6,
                  num_key_value_heads=2, head_dim=16, vocab_size=512, max_position_embeddings=256,
                  rms_norm_eps=1e-5, tie_word_embeddings=False)
    values.update(config)
    model = LlamaForCausalLM(LlamaConfig(**values)).eval()
    with torch.no_grad():  # random weights that make peaked, varied logits
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3 / p.shape[1] ** 0.25)
    model.save_pretrained(folder, safe_serialization=True)
    for item in tokenizer_dir.iterdir():
        if item.name.startswith(("tokenizer", "special_tokens")) or item.name in ("vocab.json", "merges.txt"):
            shutil.copy2(item, folder / item.name)
    gen = folder / "generation_config.json"
    if not gen.exists():
        gen.write_text(json.dumps({"eos_token_id": 2}))
    return folder


def load_hf(folder: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def drive(sched: Any, outputs: dict[int, int], max_steps: int = 10_000) -> dict[str, Any]:
    """Run a scheduler to the end without a model, as the engine would: every scheduled sequence
    gets one more token (token = its position, so a lost or repeated token shows), and finishes
    once it has ``outputs[seq.seq_id]`` output tokens. Checks the pool is never over-committed.

    Returns:
        ``{"steps": ..., "preemptions": ..., "max_running": ..., "finished_order": [...]}``.
    """
    bm = sched.block_manager
    finished_order = []
    max_running = 0
    for step in range(max_steps):
        if not sched.has_unfinished():
            return {"steps": step, "preemptions": sched.num_preemptions, "max_running": max_running,
                    "finished_order": finished_order}
        seqs, _ = sched.schedule()
        held = {b for s in seqs for b in s.block_table}
        assert bm.num_used_blocks <= bm.num_blocks and len(held) <= bm.num_blocks
        for seq in seqs:
            assert len(seq.block_table) * bm.block_size >= len(seq), "a scheduled sequence has no slot for its token"
        max_running = max(max_running, len(sched.running))
        for seq in seqs:
            # leak-check: allowed, bookkeeping the test sets up itself, not the engine's step logic
            seq.num_computed_tokens = len(seq)
            seq.append_token(len(seq))
            if seq.num_output_tokens >= outputs[seq.seq_id]:
                sched.finish(seq, "length")
                finished_order.append(seq.seq_id)
    raise AssertionError(f"the scheduler did not finish in {max_steps} steps (a request starves?)")
