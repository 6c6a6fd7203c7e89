"""Lab 03 measurements: what each GGUF type costs in size, quality, speed and memory, on this machine.

    python lab03_llama_cpp/bench.py [--impl student|solution] [--model PATH] [--threads 2]
                                    [--new-tokens 64] [--skip-memory]

From one run (ratios, so they compare across machines), for the model converted by your task 2:
- per file (F32, F16, your Q8_0 and Q4_0, llama.cpp's Q8_0, Q4_0 and Q4_K_M): size, bits per
  weight, perplexity on held-out text from llama.cpp's logits, prefill and decode tokens/s, and
  the decode speed-up over F32 set against the bytes of weights read per token;
- your quantizer against llama.cpp's: seconds to write, size, perplexity;
- memory: estimate_memory (weights + KV cache) against the resident memory llama.cpp adds when it
  loads a larger random-weights Llama (hidden 512, 4 layers) and fills its whole context.
It runs your code (src/) by default; --impl solution runs the reference.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent

#: Run in a fresh process: RSS added by loading a GGUF, then by filling its whole context. A
#: vocabulary-only load first pays llama.cpp's fixed start-up cost (backend, vocabulary).
MEASURE_RSS = """
import os, sys
from llama_cpp import Llama
def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
path, n_ctx, flash_attn, threads = sys.argv[1], int(sys.argv[2]), bool(int(sys.argv[3])), int(sys.argv[4])
vocab = Llama(model_path=path, vocab_only=True, verbose=False)
before = rss()
llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, flash_attn=flash_attn, verbose=True)
loaded = rss() - before
llm.eval([10 + i % 400 for i in range(n_ctx - 1)])  # every weight paged in, every KV cell written
print(loaded, rss() - before)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["student", "solution"], default="student")
    parser.add_argument("--model", default=None, help="a local HF Llama folder (default: the fixture)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory check (builds a 60 MB model)")
    args = parser.parse_args()
    os.environ["COURSE_IMPL"] = args.impl
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from transformers import AutoTokenizer

    from lab03_llama_cpp.tests.helpers import llama_cpp_quantize
    from shared.impl import lab_module
    from shared.models import resolve_model

    convert = lab_module("lab03_llama_cpp", "convert")
    quantize_model = lab_module("lab03_llama_cpp", "quantize_model")
    run = lab_module("lab03_llama_cpp", "run")
    console = Console(width=170)
    model_dir = resolve_model(args.model, "main")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    heldout_ids = tokenizer((HERE / "data" / "heldout.txt").read_text()).input_ids
    prompt_ids = heldout_ids[:128]  # a longer prompt: prefill timings of a few tokens are all noise
    work = Path(tempfile.mkdtemp(prefix="lab03-bench-"))

    files: dict[str, tuple[Path, float]] = {}  # label -> (path, seconds to write)
    for outtype in ("f32", "f16"):
        start = time.perf_counter()
        path = convert.convert(model_dir, work / f"{outtype}.gguf", outtype)
        files[outtype.upper()] = (path, time.perf_counter() - start)
    for type_name in ("Q8_0", "Q4_0"):
        start = time.perf_counter()
        quantize_model.quantize_file(files["F32"][0], work / f"ours-{type_name}.gguf", type_name)
        files[f"{type_name} (yours)"] = (work / f"ours-{type_name}.gguf", time.perf_counter() - start)
    for type_name in ("Q8_0", "Q4_0", "Q4_K_M"):
        start = time.perf_counter()
        llama_cpp_quantize(files["F32"][0], work / f"llama-cpp-{type_name}.gguf", type_name)
        files[f"{type_name} (llama.cpp)"] = (work / f"llama-cpp-{type_name}.gguf", time.perf_counter() - start)

    n_params = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(
        model_dir).parameters())
    rows = []
    for label, (path, seconds) in files.items():
        llm = run.load(path, n_ctx=512, n_threads=args.threads, logits_all=True)
        ppl = run.perplexity(llm, heldout_ids[:512])
        llm.close()
        llm = run.load(path, n_ctx=512, n_threads=args.threads)
        run.measure_speed(llm, prompt_ids, new_tokens=8)  # warm-up: page the weights in
        speed = run.measure_speed(llm, prompt_ids, new_tokens=args.new_tokens)
        weights = run.estimate_memory(path, 512).weights
        llm.close()
        rows.append((label, path.stat().st_size, weights, ppl, len(prompt_ids) / speed.prefill_s,
                     speed.decode_tokens_per_s, seconds))

    f32 = rows[0]
    title = f"{model_dir.name}: GGUF types ({args.threads} threads, {len(heldout_ids[:512])} held-out tokens)"
    table = Table(title=title)
    for column in ("file", "size KiB", "x F32", "bits/weight", "perplexity", "vs F32", "prefill tok/s",
                   "decode tok/s", "speed-up", "F32 bytes / bytes", "write s"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for label, size, weights, ppl, prefill, decode, seconds in rows:
        table.add_row(label, f"{size / 1024:.0f}", f"{size / f32[1]:.3f}", f"{weights * 8 / n_params:.2f}",
                      f"{ppl:.2f}", f"{(ppl / f32[3] - 1) * 100:+.2f} %", f"{prefill:.0f}", f"{decode:.0f}",
                      f"{decode / f32[5]:.2f}x", f"{f32[2] / weights:.2f}x", f"{seconds:.2f}")
    console.print(table)

    if not args.skip_memory:
        memory_check(console, convert, run, model_dir, work, args.threads)


def memory_check(console: Console, convert, run, model_dir: Path, work: Path, threads: int) -> None:
    """estimate_memory against the RSS llama.cpp adds, on a random-weights Llama large enough that
    weights and KV cache dominate its compute buffers."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    folder = work / "memory-model"
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=512, intermediate_size=1536, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=4, head_dim=64, max_position_embeddings=8192,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    path = convert.convert(folder, work / "memory-f32.gguf", "f32")
    speed_by_type(console, convert, run, folder, path, work, threads)
    table = Table(title="memory: estimate (weights + f16 KV cache) vs resident memory llama.cpp adds")
    for column in ("n_ctx", "flash attn", "weights MiB", "KV MiB", "estimate MiB", "after load MiB",
                   "estimate / after load", "compute buffer MiB", "full context MiB", "estimate / full context"):
        table.add_column(column, justify="right")
    for flash_attn in (True, False):
        for n_ctx in (512, 2048, 4096):
            # a fresh process: freed memory stays in the allocator, so a second load in one process
            # would add little resident memory
            result = subprocess.run([sys.executable, "-c", MEASURE_RSS, str(path), str(n_ctx), str(int(flash_attn)),
                                     str(threads)], capture_output=True, text=True, check=True)
            loaded, full = (int(v) for v in result.stdout.split()[-2:])
            logged = re.search(r"CPU compute buffer size =\s*([\d.]+) MiB", result.stderr)
            estimate = run.estimate_memory(path, n_ctx)
            table.add_row(str(n_ctx), "on" if flash_attn else "off", f"{estimate.weights / 2**20:.1f}",
                          f"{estimate.kv_cache / 2**20:.1f}", f"{estimate.total / 2**20:.1f}",
                          f"{loaded / 2**20:.1f}", f"{estimate.total / loaded:.2f}",
                          logged.group(1) if logged else "?", f"{full / 2**20:.1f}",
                          f"{estimate.total / full:.2f}")
    console.print(table)
    console.print("What the estimate leaves out is llama.cpp's compute buffer (activations of a batch of up to 512 "
                  "tokens, size from llama.cpp's log): allocated at load, resident once used; without flash "
                  "attention it holds the batch's attention scores, 512 x n_ctx x heads floats.")


def speed_by_type(console: Console, convert, run, folder: Path, f32_path: Path, work: Path, threads: int) -> None:
    """Decode speed per type on the larger random-weights Llama (50 MB in F32: more than the CPU's
    caches, so each token really reads the weights from RAM)."""
    from shared.impl import lab_module

    quantize_model = lab_module("lab03_llama_cpp", "quantize_model")
    paths = {"F32": f32_path, "F16": convert.convert(folder, work / "memory-f16.gguf", "f16")}
    for type_name in ("Q8_0", "Q4_0"):
        paths[f"{type_name} (yours)"] = work / f"memory-{type_name}.gguf"
        quantize_model.quantize_file(f32_path, paths[f"{type_name} (yours)"], type_name)
    prompt = [10 + i for i in range(32)]
    table = Table(title=f"decode speed on a 13 M-parameter random Llama ({threads} threads, 128 new tokens)")
    for column in ("file", "weights MiB", "F32 bytes / bytes", "decode tok/s", "speed-up", "GB/s of weights read"):
        table.add_column(column, justify="left" if column == "file" else "right")
    base_weights = base_speed = None
    for label, path in paths.items():
        llm = run.load(path, n_ctx=512, n_threads=threads)
        run.measure_speed(llm, prompt, new_tokens=8)
        speed = run.measure_speed(llm, prompt, new_tokens=128).decode_tokens_per_s
        llm.close()
        weights = run.estimate_memory(path, 512).weights
        base_weights, base_speed = base_weights or weights, base_speed or speed
        table.add_row(label, f"{weights / 2**20:.1f}", f"{base_weights / weights:.2f}x", f"{speed:.0f}",
                      f"{speed / base_speed:.2f}x", f"{weights * speed / 1e9:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
