"""Task 9: latency metrics (vLLM's definitions) and peak memory."""

import re
import sys
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.metrics import GenerationMetrics

from .helpers import measure

pytestmark = pytest.mark.task(9)

gaps = st.lists(st.floats(min_value=0.0, max_value=2.0, allow_nan=False), min_size=1, max_size=50)


@pytest.mark.points(3)
@settings(deadline=None, max_examples=80)  # the first call imports the module under test
@given(first=st.floats(min_value=0.0, max_value=5.0), gaps=gaps)
def test_metrics_follow_vllm_definitions(first, gaps):
    """TTFT, ITL, TPOT = (E2E - TTFT) / (n - 1), E2E and tokens/s as vLLM's benchmark defines them."""
    start = 100.0
    times = [start + first]
    for gap in gaps[1:]:
        times.append(times[-1] + gap)
    m = measure.metrics_from_token_times(start, times)
    assert isinstance(m, GenerationMetrics)
    n = len(times)
    assert m.output_tokens == n
    assert m.ttft_s == pytest.approx(first)
    assert m.e2e_s == pytest.approx(times[-1] - start)
    assert len(m.itl_s) == n - 1, f"ITL has one gap per token after the first: {n - 1} expected, got {len(m.itl_s)}"
    assert sum(m.itl_s) == pytest.approx(m.e2e_s - m.ttft_s), (
        "the inter-token latencies must add up to E2E latency minus TTFT"
    )
    if n == 1:
        assert m.tpot_s is None
    else:
        assert m.tpot_s == pytest.approx((m.e2e_s - m.ttft_s) / (n - 1))
    if m.e2e_s > 0:
        assert m.tokens_per_s == pytest.approx(n / m.e2e_s)


@pytest.mark.points(1)
def test_bad_timestamps_are_refused():
    with pytest.raises(ValueError, match="token_times"):
        measure.metrics_from_token_times(0.0, [])
    with pytest.raises(ValueError, match="start"):
        measure.metrics_from_token_times(5.0, [4.0, 6.0])
    with pytest.raises(ValueError, match=r"token_times\[2\]"):
        measure.metrics_from_token_times(0.0, [1.0, 2.0, 1.5])
    same = measure.metrics_from_token_times(1.0, [1.0, 1.0, 3.0])  # ties are allowed
    assert same.ttft_s == 0.0 and same.itl_s == [0.0, 2.0] and same.tpot_s == pytest.approx(1.0)


@pytest.mark.points(0.5)
def test_peak_memory_on_the_cpu_is_the_processes_peak():
    """On a CPU, the peak is at least what psutil sees the process holding now, and below total RAM."""
    peak = measure.peak_memory_bytes("cpu")
    assert psutil.Process().memory_info().rss * 0.9 <= peak <= psutil.virtual_memory().total


@pytest.mark.points(2)
def test_measure_generation_reports_a_consistent_run(model, tokenizer):
    """A measured run: every token counted, TTFT <= E2E, figures consistent, JSON round-trips."""
    ids = tokenizer("The cat").input_ids
    started = time.perf_counter()
    m = measure.measure_generation(model, ids, 24)
    wall = time.perf_counter() - started  # an independent clock around the whole call
    assert m.output_tokens == 24, f"24 output tokens asked for, got {m.output_tokens}"
    assert len(m.itl_s) == 23, f"24 tokens have 23 inter-token latencies, got {len(m.itl_s)}"
    assert 0 < m.ttft_s < m.e2e_s <= wall
    assert m.tokens_per_s >= 24 / wall
    assert m.tpot_s == pytest.approx((m.e2e_s - m.ttft_s) / 23)
    assert m.tokens_per_s == pytest.approx(24 / m.e2e_s)
    assert m.peak_memory_bytes, "peak_memory_bytes must be measured (not None or 0)"
    assert m.peak_memory_bytes > 0, "peak_memory_bytes must be positive"
    assert GenerationMetrics.model_validate_json(m.model_dump_json()) == m


@pytest.mark.points(0.5)
@pytest.mark.gpu
def test_peak_memory_on_a_gpu_covers_the_weights(model_dir, tokenizer):
    """On a CUDA GPU the peak allocated memory is at least the weights' size."""
    import torch
    from transformers import AutoModelForCausalLM

    gpu_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float16).to("cuda").eval()
    m = measure.measure_generation(gpu_model, tokenizer("The cat").input_ids, 16)
    assert m.device.startswith("cuda")
    assert m.peak_memory_bytes >= gpu_model.get_memory_footprint()


@pytest.mark.points(0.5)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the kernel's /proc/self/status (Linux)")
def test_peak_memory_on_the_cpu_is_the_kernels_high_water_mark():
    """Grown past any earlier peak, the process's peak is the kernel's own high-water mark of its
    resident set (VmHWM in /proc/self/status, in KiB): a peak read in the wrong unit (kilobytes
    taken as 1000 bytes, 2.3 % short) is not."""
    import resource

    import torch

    def high_water_mark() -> int:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) * 1024

    measure.peak_memory_bytes("cpu")  # imports your module first: its imports must not raise the peak later
    earlier_peak = max(high_water_mark(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    grow = max(earlier_peak - psutil.Process().memory_info().rss, 0) + 64 * 2**20  # past any earlier peak
    block = torch.ones(min(grow, 2 * 2**30) // 4)  # float32, every page written
    expected = high_water_mark()
    peak = measure.peak_memory_bytes("cpu")
    del block
    assert peak == pytest.approx(expected, rel=0.005), "the kernel's VmHWM (KiB, 1024 bytes each)"


@pytest.mark.points(0.5)
@pytest.mark.gpu
def test_peak_memory_on_a_numbered_gpu_is_the_allocators_peak():
    """A device named with its index ("cuda:0", what str(model.device) gives) is a CUDA device too:
    its peak is torch's own allocator peak for it, not the process's resident set."""
    import torch

    block = torch.ones(2**20, device="cuda:0")  # 4 MiB, so the peak is not zero
    del block
    assert measure.peak_memory_bytes("cuda:0") == torch.cuda.max_memory_allocated("cuda:0")
