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
    # BEGIN SOLUTION task 2: one successful request's TTFT, E2EL, ITL and TPOT as vLLM defines them (README task 2; docs/05 §1; vllm/benchmarks/serve.py).
    # HINT task 2 level 1: task 2 computes exactly what vLLM's calculate_metrics computes, from the timestamps a
    #   run recorded: read the README's definitions and docs/05 §1 ('What to measure'), and the module docstring
    #   of metrics.py. Everything is in seconds until latency_stats turns it into milliseconds.
    # HINT task 2 level 2: the times are absolute perf_counter stamps; latencies are measured
    #   from the request's send time. ITL is every gap between consecutive chunks (k chunks give k - 1 gaps);
    #   TPOT divides by output tokens minus one, not by chunks (a chunk may carry several tokens), and is None
    #   below 2 tokens. A failed request or one with no chunks has no figures: a ValueError naming its id.
    # HINT task 2 level 3: ttft = first chunk - start; e2e = last chunk - start; itl = the
    #   pairwise differences of the chunk times; tpot = (e2e - ttft) / (output_len - 1) when output_len > 1;
    #   tokens/s = output_len / e2e (guard e2e = 0).
    if not result.success:
        raise ValueError(f"request {result.id} failed ({result.error}): it has no latency figures")
    if not result.chunk_times_s:
        raise ValueError(f"request {result.id} has no output chunks")
    times = result.chunk_times_s
    ttft = times[0] - result.start_s
    e2e = times[-1] - result.start_s
    count = result.output_len
    return GenerationMetrics(
        output_tokens=count, ttft_s=ttft, e2e_s=e2e,
        tpot_s=(e2e - ttft) / (count - 1) if count > 1 else None,
        itl_s=[later - earlier for earlier, later in itertools.pairwise(times)],
        tokens_per_s=count / e2e if e2e > 0 else 0.0,
    )
    # END SOLUTION


def latency_stats(values_s: list[float], percentiles: tuple[float, ...] = PERCENTILES) -> LatencyStats:
    """Mean, median, standard deviation (numpy's, ``ddof=0``) and percentiles, in ms, of a list of
    seconds. An empty list gives zeros everywhere, as vLLM's ``np.mean(x or 0)`` does."""
    # BEGIN SOLUTION task 2: mean, median, std and percentiles in ms of a list of seconds, matching vLLM's numbers, an empty list included (README task 2).
    # HINT task 2 level 2: numpy's defaults are vLLM's (population std, linear percentiles). An
    #   empty list must not raise: vLLM reports 0 there. The percentile keys are the numbers written shortest:
    #   99 -> '99', 99.9 -> '99.9' (a general float format does that).
    # HINT task 2 level 3: an empty list becomes [0.0]; convert to ms once; mean, median, std and
    #   one percentile per requested p, each a plain float.
    data = np.asarray(values_s or [0.0], dtype=np.float64) * 1000.0
    return LatencyStats(
        mean_ms=float(np.mean(data)), median_ms=float(np.median(data)), std_ms=float(np.std(data)),
        percentiles_ms={f"{p:g}": float(np.percentile(data, p)) for p in percentiles},
    )
    # END SOLUTION


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
    # BEGIN SOLUTION task 2: a run's Summary over its successful requests, with throughputs and goodput as vLLM's calculate_metrics (README task 2).
    # HINT task 2 level 2: failed requests count only as failures (their error -> count); every other
    #   figure is over successful ones. ITL pools the gaps of all requests; TPOT's statistics leave out 1-token
    #   requests, but for goodput such a request's TPOT counts as 0 (so it can be good). Targets are in ms,
    #   figures in seconds. Check duration and goodput keys before computing anything.
    # HINT task 2 level 3: one pass over the results building lists of ttft, tpot (2+ tokens),
    #   tpot-or-0, pooled itl and e2el plus the token totals; goodput = the number of requests meeting every
    #   given target / duration; the latency dict maps each name in LATENCIES to latency_stats of its list.
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s!r}")
    for key in goodput_ms or {}:
        if key not in ("ttft", "tpot", "e2el"):
            raise ValueError(f"goodput_ms: unknown target {key!r}; use ttft, tpot or e2el")
    ttfts, tpots, all_tpots, itls, e2els = [], [], [], [], []
    total_input = total_output = completed = 0
    errors: dict[str, int] = {}
    for result in results:
        if not result.success:
            errors[result.error or "unknown error"] = errors.get(result.error or "unknown error", 0) + 1
            continue
        metrics = request_metrics(result)
        completed += 1
        total_input += result.prompt_len
        total_output += result.output_len
        ttfts.append(metrics.ttft_s)
        e2els.append(metrics.e2e_s)
        itls.extend(metrics.itl_s)
        if metrics.tpot_s is not None:
            tpots.append(metrics.tpot_s)
        all_tpots.append(metrics.tpot_s or 0.0)
    goodput = None
    if goodput_ms:
        per_target = {"ttft": ttfts, "tpot": all_tpots, "e2el": e2els}
        good = sum(all(per_target[key][i] <= goodput_ms[key] / 1000.0 for key in goodput_ms)
                   for i in range(completed))
        goodput = good / duration_s
    return Summary(
        completed=completed, failed=len(results) - completed, duration_s=duration_s,
        total_input=total_input, total_output=total_output,
        request_throughput=completed / duration_s, request_goodput=goodput,
        output_throughput=total_output / duration_s,
        total_token_throughput=(total_input + total_output) / duration_s,
        latency={name: latency_stats(values, percentiles)
                 for name, values in zip(LATENCIES, (ttfts, tpots, itls, e2els))},
        errors=errors,
    )
    # END SOLUTION


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
        # BEGIN SOLUTION task 2: resident bytes of the process and all its living descendants now, a child vanishing mid-read skipped (README task 2; psutil docs).
        # HINT task 2 level 2: vLLM's engine core and llama.cpp's server are child (or
        #   grandchild) processes, so the process's own RSS is not the engine's memory. A child can exit between
        #   being listed and being read: psutil then raises one of its own exceptions, and that child is simply
        #   not counted.
        # HINT task 2 level 3: the process's RSS plus, for each descendant (psutil lists
        #   them recursively), its RSS inside a try that skips the psutil errors for a vanished, zombie or
        #   forbidden process.
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return total
        # END SOLUTION

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
