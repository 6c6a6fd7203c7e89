# Student skeleton for lab05_benchmark: fill in each TODO, then run `course test lab05_benchmark`.
# (Generated from the reference solution by `course stubs`.)
"""Task 2: metrics, defined exactly as ``vllm bench serve`` defines them.

Per request (what ``shared.metrics.GenerationMetrics`` holds, lab01 task 9):

- TTFT: first output chunk's arrival - send time;
- E2EL (latency): last chunk's arrival - send time;
- ITL: *every* gap between two consecutive chunks (one list per request, all pooled);
- TPOT: (E2EL - TTFT) / (output tokens - 1), only for requests with more than one token.

Per run (vLLM's ``calculate_metrics``): completed and failed requests; request, output-token and
total-token throughput over the run's duration (failed requests add no tokens); mean, median,
standard deviation and percentiles of each latency, over the *successful* requests only; and
goodput: requests per second that met every latency target (TTFT, TPOT, E2EL in ms; a request
with one token counts as TPOT 0 there). Memory: the peak resident set of this process and its
children while the run lasted, and the peak GPU memory torch allocated.

An HTTP stream may carry several tokens in one chunk: ITLs are per chunk (as vLLM records them),
token counts come from the server's usage figures.

Readings: vLLM's ``vllm/benchmarks/serve.py`` (``calculate_metrics``, ``BenchmarkMetrics``) and
``vllm/benchmarks/lib/endpoint_request_func.py`` (``RequestFuncOutput``: how ``ttft``, ``itl``
and ``latency`` are stamped); numpy's ``percentile`` (linear interpolation).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import numpy as np
import psutil
from pydantic import BaseModel, Field

from shared.metrics import GenerationMetrics

#: The latency figures a summary holds, with vLLM's names.
LATENCIES = ("ttft", "tpot", "itl", "e2el")
PERCENTILES = (50.0, 90.0, 99.0)


class RequestResult(BaseModel):
    """What the runner recorded for one request (times in seconds on one clock)."""

    id: str
    prompt_len: int = Field(ge=0, description="prompt tokens (from the workload)")
    output_len: int = Field(0, ge=0, description="output tokens generated")
    start_s: float = Field(description="when the request was sent")
    chunk_times_s: list[float] = Field(default_factory=list,
                                       description="arrival of each output chunk (one or more tokens)")
    success: bool = True
    error: str = ""


class LatencyStats(BaseModel):
    """One latency figure over a run, in milliseconds, as vLLM prints it."""

    mean_ms: float
    median_ms: float
    std_ms: float
    percentiles_ms: dict[str, float] = Field(description="'90' -> p90, '99' -> p99 (numpy's linear method)")


class Summary(BaseModel):
    """A run's figures (vLLM's ``BenchmarkMetrics``)."""

    completed: int
    failed: int
    duration_s: float
    total_input: int
    total_output: int
    request_throughput: float = Field(description="completed requests / duration")
    request_goodput: float | None = Field(None, description="requests meeting every target / duration")
    output_throughput: float = Field(description="output tokens / duration")
    total_token_throughput: float = Field(description="(input + output tokens) / duration")
    latency: dict[str, LatencyStats] = Field(description="'ttft', 'tpot', 'itl', 'e2el'")
    errors: dict[str, int] = Field(default_factory=dict, description="failure message -> count")


def request_metrics(result: RequestResult) -> GenerationMetrics:
    """One successful request's figures as ``shared.metrics.GenerationMetrics``.

    ``output_tokens`` is ``result.output_len``; ``ttft_s``, ``e2e_s``, ``itl_s`` come from the
    chunk times as in the module docstring; ``tpot_s`` is None for fewer than 2 tokens;
    ``tokens_per_s`` is output tokens / E2EL.

    Raises:
        ValueError: a failed request, or one with no chunks (the message names the request id).
    """
    # TODO(lab05 task 2): one successful request's TTFT, E2EL, ITL and TPOT as vLLM defines them (README task 2; docs/05 §1; vllm/benchmarks/serve.py).
    raise NotImplementedError("lab05 task 2: request_metrics is not written yet (see lab05_benchmark/README.md, task 2)")


def latency_stats(values_s: list[float], percentiles: tuple[float, ...] = PERCENTILES) -> LatencyStats:
    """Mean, median, standard deviation (numpy's, ``ddof=0``) and percentiles, in ms, of a list of
    seconds. An empty list gives zeros everywhere, as vLLM's ``np.mean(x or 0)`` does."""
    # TODO(lab05 task 2): mean, median, std and percentiles in ms of a list of seconds, matching vLLM's numbers, an empty list included (README task 2).
    raise NotImplementedError("lab05 task 2: latency_stats is not written yet (see lab05_benchmark/README.md, task 2)")


def summarize(results: list[RequestResult], duration_s: float, goodput_ms: dict[str, float] | None = None,
              percentiles: tuple[float, ...] = PERCENTILES) -> Summary:
    """A run's :class:`Summary`, computed as vLLM's ``calculate_metrics`` does.

    Args:
        results: every request of the run, failed ones included.
        duration_s: the run's wall-clock duration (``run_once``'s: first send to the run's last
            event, a token, a failure or a timeout), > 0.
        goodput_ms: latency targets in milliseconds, keys among ``ttft``, ``tpot``, ``e2el``
            (a request is good when each of its figures is <= its target); None: no goodput.
        percentiles: which percentiles to report.

    Raises:
        ValueError: ``duration_s`` <= 0, or a ``goodput_ms`` key that is not a target (naming it).
    """
    # TODO(lab05 task 2): a run's Summary over its successful requests, with throughputs and goodput as vLLM's calculate_metrics (README task 2).
    raise NotImplementedError("lab05 task 2: summarize is not written yet (see lab05_benchmark/README.md, task 2)")


class MemorySampler:
    """Peak memory while a block runs: resident memory of this process *and its children* (vLLM's
    engine and llama.cpp's server run in child processes), sampled every ``interval_s`` on a
    thread, and torch's peak allocated CUDA memory when a GPU is in use.

        with MemorySampler() as memory:
            ...
        memory.peak_rss_bytes, memory.peak_gpu_bytes
    """

    def __init__(self, interval_s: float = 0.05, pid: int | None = None) -> None:
        self.interval_s = interval_s
        self.process = psutil.Process(pid)
        self.peak_rss_bytes = 0
        self.peak_gpu_bytes: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        """Resident bytes of the process plus all its living descendants, now; a child that exits
        while being read is skipped."""
        # TODO(lab05 task 2): resident bytes of the process and all its living descendants now, a child vanishing mid-read skipped (README task 2; psutil docs).
        raise NotImplementedError("lab05 task 2: sample is not written yet (see lab05_benchmark/README.md, task 2)")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss_bytes = max(self.peak_rss_bytes, self.sample())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemorySampler:
        self.peak_rss_bytes = self.sample()
        if _cuda_in_use():
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss_bytes = max(self.peak_rss_bytes, self.sample())
        if _cuda_in_use():
            import torch

            self.peak_gpu_bytes = int(torch.cuda.max_memory_allocated())


def _cuda_in_use() -> bool:
    import sys

    torch = sys.modules.get("torch")  # never import torch just to ask
    return bool(torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized())
