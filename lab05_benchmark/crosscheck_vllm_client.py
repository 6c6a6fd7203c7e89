"""Lab 05's client beside vLLM's own: one server, the same requests, both clients' figures.

    python lab05_benchmark/crosscheck_vllm_client.py [--impl student|solution] [--reps 3]
                                                     [--concurrency 8 32] [--json out.json]

``course serve`` (lab 02's reference engine) runs on the fixture. vLLM's random dataset (64
prompts of 64 tokens, 64 output tokens each, ``--ignore-eos``, seed 0: ``vllm bench serve``'s own
``get_samples``) is sent by ``vllm bench serve`` (``vllm.benchmarks.serve``, what ``course vllm
bench serve`` runs) and, the same prompts as a lab 05 workload, by lab 05's own client (``run_once``
over ``HTTPBackend``, then ``metrics.summarize``), both through ``/v1/completions`` at the same
concurrency. The two clients take turns (which goes first alternates), ``--reps`` times. The table
holds each figure's median over the runs for both clients and their ratio: an outside check of lab
05's runner and metrics (tasks 2 and 4) on a real run, where what differs is what the two clients'
definitions explain (README, "Cross-checked with vLLM's client").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from shared.impl import import_lab_module
from shared.vllm_cli import bench_serve, bench_serve_args

console = Console(width=150)

#: (label, lab 05's figure, vLLM's result-JSON key)
FIGURES = (
    ("completed", lambda s: s.completed, "completed"),
    ("output tokens", lambda s: s.total_output, "total_output_tokens"),
    ("output tokens/s", lambda s: s.output_throughput, "output_throughput"),
    ("TTFT mean ms", lambda s: s.latency["ttft"].mean_ms, "mean_ttft_ms"),
    ("TTFT p99 ms", lambda s: s.latency["ttft"].percentiles_ms["99"], "p99_ttft_ms"),
    ("TPOT mean ms", lambda s: s.latency["tpot"].mean_ms, "mean_tpot_ms"),
    ("ITL mean ms", lambda s: s.latency["itl"].mean_ms, "mean_itl_ms"),
    ("E2EL median ms", lambda s: s.latency["e2el"].median_ms, "median_e2el_ms"),
)


def vllm_requests(model: str, workloads: Any) -> list[Any]:
    """The prompts ``vllm bench serve`` sends (its ``get_samples``, same seed), as lab 05 requests."""
    from vllm.benchmarks.datasets import get_samples
    from vllm.tokenizers import get_tokenizer

    samples = get_samples(bench_serve_args("http://unused", model, concurrency=1), get_tokenizer(model))
    return [workloads.Request(id=f"r{i}", prompt=s.prompt, prompt_len=s.prompt_len, max_tokens=s.expected_output_len)
            for i, s in enumerate(samples)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["student", "solution"], default="student",
                        help="whose lab 05 code measures (the server is always lab 02's reference)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--json", default=None, help="also write every run's figures here")
    args = parser.parse_args()

    from shared.models import resolve_model

    backends = import_lab_module("lab05_benchmark", "backends", args.impl)
    runner = import_lab_module("lab05_benchmark", "runner", args.impl)
    metrics = import_lab_module("lab05_benchmark", "metrics", args.impl)
    workloads = import_lab_module("lab05_benchmark", "workloads", args.impl)
    milestone = import_lab_module("lab02_vllm", "milestone", "solution")
    model = str(resolve_model(None))
    requests = vllm_requests(model, workloads)

    port = milestone.free_port()
    url = f"http://127.0.0.1:{port}"
    serve = "import sys; from lab02_vllm.solution.server import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", serve, "--model", model, "--port", str(port), "--device", "cpu",
               "--max-model-len", "1024"]
    rows: list[dict[str, Any]] = []
    with milestone.running_server(command, {**os.environ, "OMP_NUM_THREADS": "1"}, url):
        runner.run_once(backends.HTTPBackend(url, model=model), requests[:4], concurrency=4)  # warm-up
        for rep in range(args.reps):
            for concurrency in args.concurrency:
                order = ("lab05", "vLLM") if rep % 2 == 0 else ("vLLM", "lab05")
                for client in order:
                    if client == "lab05":
                        backend = backends.HTTPBackend(url, model=model)
                        results, duration, _ = runner.run_once(backend, requests, concurrency=concurrency)
                        summary = metrics.summarize(results, duration, percentiles=(50.0, 99.0))
                        figures = {label: float(get(summary)) for label, get, _ in FIGURES}
                    else:
                        result = bench_serve(bench_serve_args(url, model, concurrency=concurrency))
                        figures = {label: float(result[key]) for label, _, key in FIGURES}
                    rows.append({"client": client, "concurrency": concurrency, "rep": rep,
                                 "load_average": os.getloadavg()[0], **figures})
                    console.print(f"rep {rep}, {concurrency} clients, {client}: "
                                  f"{figures['output tokens/s']:,.0f} tokens/s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))

    table = Table(title=f"course serve, {len(requests)} requests of 64 + 64 tokens: lab 05's client and "
                        f"vllm bench serve, median of {args.reps} runs each")
    for column in ("clients", "figure", "lab 05", "vllm bench serve", "lab 05 / vLLM"):
        table.add_column(column, justify="right")
    for concurrency in args.concurrency:
        for label, _, _ in FIGURES:
            ours, theirs = (statistics.median(r[label] for r in rows if (r["client"], r["concurrency"]) == (who,
                                                                                                            concurrency))
                            for who in ("lab05", "vLLM"))
            table.add_row(str(concurrency), label, f"{ours:,.1f}", f"{theirs:,.1f}",
                          f"{ours / theirs:.2f}" if theirs else "-")
    console.print(table)


if __name__ == "__main__":
    main()
