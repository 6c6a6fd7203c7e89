"""Tensor parallelism on this machine: decode step time and tokens/s for TP=1 and TP=2, and the
bytes the all-reduces move per step (computed, and measured by counting the workers' calls).

    python lab02_vllm/bench_tp.py [--impl solution] [--batch 16] [--steps 32] [--shape fixture|large]

TP=1 runs the model runner in this process with ``--threads`` torch threads (default 1); TP=2
runs two workers with as many threads each (so twice the cores: on this 2-core machine, both). ``--shape large``
is a random-weight Llama written once to a temporary folder (hidden 1024, 4 layers, 16 heads /
4 KV heads, MLP 2,816, vocabulary 512): the fixture is too small for a product to outweigh a
message. One run prints one table; the README quotes it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.impl import import_lab_module
from shared.models import resolve_model

LARGE = dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=4, num_attention_heads=16,
             num_key_value_heads=4, head_dim=64, vocab_size=512, max_position_embeddings=512,
             rms_norm_eps=1e-5, tie_word_embeddings=False)


def write_large(folder: Path) -> Path:
    """A random-weight Llama of the ``LARGE`` shape, written by transformers."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**LARGE)).save_pretrained(folder, safe_serialization=True)
    return folder


def timed_decode(runner, prompts: list[list[int]], steps: int, block_size: int,
                 after_prefill=lambda: None) -> tuple[float, int]:
    """Prefill ``prompts`` once, call ``after_prefill``, then time ``steps`` decode steps.
    Returns (seconds per step, tokens fed per step)."""
    sequence = import_lab_module("lab02_vllm", "sequence")
    sampling = import_lab_module("lab02_vllm", "sampling_params")
    params = sampling.SamplingParams(temperature=0, max_tokens=steps + 1)
    seqs, next_block = [], 0
    for i, prompt in enumerate(prompts):
        seq = sequence.Sequence(f"b{i}", list(prompt), params)
        blocks = -(-(len(prompt) + steps + 1) // block_size)
        seq.block_table = list(range(next_block, next_block + blocks))
        next_block += blocks
        seqs.append(seq)

    def advance(logits: torch.Tensor) -> None:
        for seq, token in zip(seqs, logits.argmax(-1).tolist(), strict=True):
            seq.num_computed_tokens = len(seq)
            seq.append_token(token)

    advance(runner.run(seqs, [len(s) for s in seqs]))
    after_prefill()
    start = time.perf_counter()
    for _step in range(steps):
        advance(runner.run(seqs, [1] * len(seqs)))
    return (time.perf_counter() - start) / steps, len(seqs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", default="solution", choices=("solution", "student"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the TP=1 run and of each TP=2 worker")
    parser.add_argument("--shape", default="large", choices=("fixture", "large"))
    args = parser.parse_args()

    import os

    os.environ["COURSE_IMPL"] = args.impl
    model_runner = import_lab_module("lab02_vllm", "model_runner")
    parallel = import_lab_module("lab02_vllm", "parallel")
    with tempfile.TemporaryDirectory() as tmp:
        folder = resolve_model(None, "main") if args.shape == "fixture" else write_large(Path(tmp))
        config = model_runner.ModelConfig.from_folder(folder)
        block_size = 16
        blocks = args.batch * -(-(args.prompt_len + args.steps + 1) // block_size)
        generator = torch.Generator().manual_seed(0)
        prompts = [torch.randint(3, config.vocab_size, (args.prompt_len,), generator=generator).tolist()
                   for _ in range(args.batch)]
        torch.set_num_threads(args.threads)
        one = model_runner.ModelRunner(folder, block_size=block_size, num_kv_blocks=blocks)
        step1, tokens = timed_decode(one, prompts, args.steps, block_size)
        two = parallel.TensorParallelRunner(folder, block_size=block_size, num_kv_blocks=blocks,
                                            tensor_parallel_size=2, threads=args.threads)
        try:
            before: dict[str, int] = {}
            step2, _ = timed_decode(two, prompts, args.steps, block_size,
                                    after_prefill=lambda: before.update(two.stats()[0]))
            after = two.stats()[0]
        finally:
            two.close()
    computed = 2 * config.num_hidden_layers * tokens * config.hidden_size * 4
    measured = (after["bytes"] - before["bytes"]) / args.steps
    calls = (after["all_reduce"] - before["all_reduce"]) / args.steps
    print(f"shape {args.shape}: hidden {config.hidden_size}, {config.num_hidden_layers} layers, "
          f"{config.num_attention_heads} heads / {config.num_key_value_heads} KV heads; batch {tokens}, "
          f"{args.steps} decode steps, float32")
    print("| run | decode step | tokens/s |")
    print("|---|---|---|")
    print(f"| TP=1, {args.threads} threads | {step1 * 1e3:.2f} ms | {tokens / step1:,.0f} |")
    print(f"| TP=2, 2 workers x {args.threads} thread | {step2 * 1e3:.2f} ms | {tokens / step2:,.0f} |")
    print(f"all-reduce per decode step (each rank): {calls:g} calls, {measured:,.0f} bytes measured, "
          f"{computed:,} computed (2 x layers x batch tokens x hidden x 4 bytes)")


if __name__ == "__main__":
    main()
