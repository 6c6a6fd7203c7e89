"""Lab 02 part 2, measured by vLLM's own benchmark client: ``course serve`` beside vLLM's server.

    python lab02_vllm/bench_vllm_client.py [--impl student|solution] [--reps 3]
                                           [--concurrency 1 8 32 64] [--backends openai openai-chat]
                                           [--json results.json] [--no-vllm]

``vllm bench serve`` (here through ``vllm.benchmarks.serve``, what ``course vllm bench serve``
runs, imported once for every run) sends its random dataset, 64 prompts of 64 tokens, 64 output
tokens each with ``--ignore-eos``, to both servers on the fixture: through ``--backend openai``
(``/v1/completions``) and ``--backend openai-chat`` (``/v1/chat/completions``), at each
``--max-concurrency``. The two servers run side by side and take turns (which one goes first
alternates), so that a busy machine slows both alike; each cell is run ``--reps`` times. Before
each run the script waits until both servers are idle: after a load, vLLM's CPU worker keeps
polling for its next step at full speed for about a second (measured: 0.97 CPU-seconds in the
second after a run, then 0.01-0.02), which would otherwise slow whichever server runs next. The table
holds the median of each figure with its spread (min-max), and the course/vLLM ratio of the
medians. One run of the whole sweep; compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import contextlib
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
from shared.vllm_cli import BENCH_ENDPOINTS, bench_serve, bench_serve_args

console = Console(width=170)

#: The figures kept from each run of vLLM's client (its result JSON's names).
FIGURES = ("output_throughput", "mean_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms")


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}-{max(values):,.1f})"


def wait_until_idle(pids: list[int], timeout_s: float = 15.0) -> float:
    """Wait until the processes ``pids`` (and their children) use under 5 % of a core over 0.5 s;
    returns the seconds waited (at most ``timeout_s``)."""
    import time

    import psutil

    def cpu_seconds() -> float:
        total = 0.0
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                top = psutil.Process(pid)
                for process in [top, *top.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        times = process.cpu_times()
                        total += times.user + times.system
        return total

    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        before = cpu_seconds()
        time.sleep(0.5)
        if cpu_seconds() - before < 0.025:
            break
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["student", "solution"], default="student")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--backends", nargs="+", choices=sorted(BENCH_ENDPOINTS), default=["openai", "openai-chat"])
    parser.add_argument("--json", default=None, help="also write every run's figures here")
    parser.add_argument("--no-vllm", action="store_true", help="measure course serve only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the course server (default 1)")
    args = parser.parse_args()

    from shared import hardware
    from shared.models import resolve_model

    milestone = import_lab_module("lab02_vllm", "milestone", args.impl)
    model = str(resolve_model(None))
    folder = {"solution": "solution", "student": "src"}[args.impl]
    servers: dict[str, tuple[list[str], dict[str, str]]] = {}
    course_port = milestone.free_port()
    serve = f"import sys; from lab02_vllm.{folder}.server import main; sys.exit(main(sys.argv[1:]))"
    servers["course serve"] = ([sys.executable, "-c", serve, "--model", model, "--port", str(course_port),
                                "--device", "cpu", "--max-model-len", "1024"],
                               {**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    if not args.no_vllm and hardware.is_installed("vllm"):
        vllm_port = milestone.free_port()
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"}
        env.pop("OMP_NUM_THREADS", None)  # vLLM binds its own CPU threads
        servers["vLLM"] = ([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
                            "--host", "127.0.0.1", "--port", str(vllm_port), "--dtype", "float32",
                            "--enforce-eager", "--max-model-len", "1024"], env)
    urls = {"course serve": f"http://127.0.0.1:{course_port}"}
    if "vLLM" in servers:
        urls["vLLM"] = f"http://127.0.0.1:{vllm_port}"

    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        pids = []
        for name, (command, env) in servers.items():
            pids.append(stack.enter_context(milestone.running_server(command, env, urls[name])).pid)
            console.print(f"{name} is up")
        names = list(servers)
        for rep in range(args.reps):
            for concurrency in args.concurrency:
                for backend in args.backends:
                    order = names if rep % 2 == 0 else names[::-1]
                    for name in order:
                        waited = wait_until_idle(pids)
                        result = bench_serve(bench_serve_args(urls[name], model, backend=backend,
                                                             concurrency=concurrency, seed=rep, warmups=2))
                        row = {"server": name, "backend": backend, "concurrency": concurrency, "rep": rep,
                               "completed": result["completed"], "failed": result.get("failed", 0),
                               "load_average": os.getloadavg()[0], "waited_s": waited,
                               **{f: result.get(f) for f in FIGURES}}
                        runs.append(row)
                        console.print(f"rep {rep}, {backend}, {concurrency} clients, {name}: "
                                      f"{row['output_throughput']:,.0f} tokens/s, {row['failed']} failed")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))

    table = Table(title=f"vllm bench serve: random 64 in / 64 out, 64 prompts, --ignore-eos; median (min-max) "
                        f"of {args.reps} runs")
    for column in ("backend", "clients", "server", "output tokens/s", "TTFT mean ms", "TTFT p99 ms",
                   "TPOT mean ms", "TPOT p99 ms", "failed", "tokens/s vs vLLM"):
        table.add_column(column, justify="right")
    for backend in args.backends:
        for concurrency in args.concurrency:
            cells = {name: [r for r in runs if (r["server"], r["backend"], r["concurrency"]) == (name, backend,
                                                                                                 concurrency)]
                     for name in servers}
            medians = {name: statistics.median(r["output_throughput"] for r in cell) for name, cell in cells.items()}
            for name, cell in cells.items():
                ratio = f"{medians[name] / medians['vLLM']:.2f}x" if "vLLM" in medians and name != "vLLM" else "-"
                table.add_row(backend, str(concurrency), name,
                              *(spread([r[f] for r in cell]) for f in FIGURES),
                              str(sum(r["failed"] for r in cell)), ratio)
    console.print(table)


if __name__ == "__main__":
    main()
