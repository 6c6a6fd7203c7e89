"""Task 9: measure a generation: time to first token, time per output token, throughput, memory.

Users feel two numbers: how long until text starts (TTFT, dominated by the prefill of the
prompt) and how fast it then flows (TPOT, one decode step per token). Operators care about
throughput (tokens per second) and memory. The definitions follow vLLM's benchmark so numbers
compare across every framework in this course; lab05 reuses :class:`GenerationMetrics`.

Readings: vLLM's ``benchmarks/`` docs (TTFT, TPOT, ITL, E2EL); ``torch.cuda.max_memory_allocated``;
``resource.getrusage`` (peak resident memory of a process).
"""

from __future__ import annotations

import itertools
import resource
import sys
import time

import torch
from transformers import PreTrainedModel

from shared.metrics import GenerationMetrics
from shared.validation import check_at_least, check_not_empty

from .streaming import _TokenQueue


def metrics_from_token_times(start: float, token_times: list[float], peak_memory_bytes: int | None = None,
                             device: str = "cpu") -> GenerationMetrics:
    """Latency figures of one request from the moment it started and each token's arrival time.

    Args:
        start: ``time.perf_counter()`` when the request was sent.
        token_times: ``time.perf_counter()`` when each output token arrived, in order.
        peak_memory_bytes, device: copied into the result.

    Returns:
        :class:`shared.metrics.GenerationMetrics` with vLLM's definitions: ``ttft_s`` = first
        arrival - start; ``itl_s`` = the gaps between consecutive arrivals; ``e2e_s`` = last
        arrival - start; ``tpot_s`` = (e2e - ttft) / (tokens - 1), None for a single token;
        ``tokens_per_s`` = tokens / e2e.

    Raises:
        ValueError: no tokens, an arrival before ``start``, or arrivals out of order.
    """
    # BEGIN SOLUTION task 9: one request's latency figures from its start and token arrival times, with vLLM's definitions; impossible times refused (README task 9; vLLM's benchmark docs).
    # HINT task 9 level 1: the definitions are vLLM's (TTFT, ITL, TPOT, E2EL), the same lab 05 uses: read README
    #   task 9 and the docstring, and shared.metrics.GenerationMetrics for the fields. All times are
    #   perf_counter seconds.
    # HINT task 9 level 2: n tokens give n - 1 gaps; TPOT divides by tokens - 1 and is
    #   None for a single token; tokens/s divides by E2E (guard E2E = 0). A token before start, or a time
    #   earlier than the one before it, is a ValueError naming the index.
    # HINT task 9 level 3: check non-empty, the first time >= start, and each time >=
    #   the previous one; ttft = first - start, e2e = last - start, itl = consecutive differences; build
    #   GenerationMetrics with the memory and device passed in.
    check_not_empty("token_times", token_times)
    if token_times[0] < start:
        raise ValueError(f"token_times[0] ({token_times[0]}) is before start ({start})")
    for index in range(1, len(token_times)):
        if token_times[index] < token_times[index - 1]:
            raise ValueError(f"token_times must not decrease: token_times[{index}] < token_times[{index - 1}]")
    count = len(token_times)
    ttft = token_times[0] - start
    e2e = token_times[-1] - start
    return GenerationMetrics(
        output_tokens=count, ttft_s=ttft, e2e_s=e2e,
        tpot_s=(e2e - ttft) / (count - 1) if count > 1 else None,
        itl_s=[b - a for a, b in itertools.pairwise(token_times)],
        tokens_per_s=count / e2e if e2e > 0 else float("inf"),
        peak_memory_bytes=peak_memory_bytes, device=device,
    )
    # END SOLUTION


def peak_memory_bytes(device: str) -> int:
    """Peak memory so far: ``torch.cuda.max_memory_allocated`` on a CUDA device (reset it before
    measuring), else the process's peak resident set size (``ru_maxrss``: KiB on Linux, bytes on
    macOS)."""
    # BEGIN SOLUTION task 9: the peak memory so far in bytes: the GPU's allocator peak on CUDA, the process's peak resident set elsewhere (README task 9; the docstring).
    # HINT task 9 level 2: a device string may be 'cuda:1'; ru_maxrss is in KiB on Linux but
    #   in bytes on macOS (the resource module's docs and the docstring); return an int number of bytes.
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
    # END SOLUTION


def measure_generation(model: PreTrainedModel, prompt_ids: list[int], max_new_tokens: int,
                       ignore_eos: bool = True) -> GenerationMetrics:
    """Run one greedy generation and measure it (given: it uses your two functions above).

    Each token's arrival is stamped as ``model.generate`` hands it to a streamer. With
    ``ignore_eos`` every request produces exactly ``max_new_tokens`` tokens, as benchmarks do.
    """
    check_not_empty("prompt_ids", prompt_ids)
    check_at_least("max_new_tokens", max_new_tokens, 1)
    device = str(model.device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    stamps: list[float] = []

    class Stamper(_TokenQueue):
        def put(self, value: torch.Tensor) -> None:
            if self.prompt_seen:
                stamps.extend([time.perf_counter()] * value.numel())
            super().put(value)

    inputs = torch.tensor([prompt_ids], device=model.device)
    extra = {"min_new_tokens": max_new_tokens} if ignore_eos else {}
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=max_new_tokens,
                       do_sample=False, streamer=Stamper(), pad_token_id=model.generation_config.pad_token_id,
                       **extra)
    return metrics_from_token_times(start, stamps, peak_memory_bytes(device), device)
