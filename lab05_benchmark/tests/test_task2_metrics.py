"""Task 2: vLLM's metric definitions, on recorded timestamps and against vLLM's own code."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from shared.metrics import GenerationMetrics

from .helpers import metrics, result

pytestmark = pytest.mark.task(2)


@pytest.mark.points(2)
def test_request_metrics_on_recorded_times():
    """Sent at 10.0; tokens at 10.5, 10.6, 10.8, 11.1: TTFT 0.5, E2EL 1.1, ITL 0.1 / 0.2 / 0.3,
    TPOT (1.1 - 0.5) / 3 = 0.2, 4 / 1.1 tokens per second."""
    m = metrics.request_metrics(result("a", 10.0, [10.5, 10.6, 10.8, 11.1]))
    assert isinstance(m, GenerationMetrics)
    assert m.output_tokens == 4
    assert m.ttft_s == pytest.approx(0.5)
    assert m.e2e_s == pytest.approx(1.1)
    assert m.itl_s == pytest.approx([0.1, 0.2, 0.3])
    assert m.tpot_s == pytest.approx(0.2)
    assert m.tokens_per_s == pytest.approx(4 / 1.1)


@pytest.mark.points(1)
def test_request_metrics_with_chunks_of_several_tokens():
    """An HTTP stream of 3 chunks carrying 9 tokens: 2 ITLs (per chunk), TPOT over 8 tokens;
    one token: no TPOT."""
    m = metrics.request_metrics(result("b", 0.0, [0.2, 0.5, 1.0], output_len=9))
    assert m.output_tokens == 9
    assert m.itl_s == pytest.approx([0.3, 0.5])
    assert m.tpot_s == pytest.approx((1.0 - 0.2) / 8)
    single = metrics.request_metrics(result("c", 1.0, [1.25]))
    assert single.tpot_s is None, "one output token: TPOT is undefined (None)"
    assert single.itl_s == [], "one output token: no inter-token latencies"
    assert single.ttft_s == single.e2e_s == pytest.approx(0.25), "one output token: TTFT equals E2E latency (0.25 s)"
    with pytest.raises(ValueError, match="r9"):
        metrics.request_metrics(result("r9", 0.0, [], success=False, error="HTTP 500"))
    with pytest.raises(ValueError, match="r8"):
        metrics.request_metrics(result("r8", 0.0, [], output_len=0))


def recorded_run():
    """Three requests over a 2-second run: one of 4 tokens, one of a single token, and one that
    failed after streaming 3 tokens in 2 chunks (a stream cut off, a timeout)."""
    return [
        result("a", 0.0, [0.5, 0.6, 0.8, 1.1], prompt_len=10),  # TTFT .5, E2EL 1.1, TPOT .2, ITL .1 .2 .3
        result("b", 0.2, [0.6], prompt_len=7),  # TTFT .4, E2EL .4, no TPOT (0 for goodput)
        result("c", 0.3, [0.35, 0.5], output_len=3, prompt_len=5, success=False, error="HTTP 500: boom"),
    ]


@pytest.mark.points(3)
def test_summary_on_recorded_times():
    """Counts, throughputs and latency statistics worked out by hand (numpy's linear percentiles)."""
    s = metrics.summarize(recorded_run(), 2.0, goodput_ms={"ttft": 450})
    assert (s.completed, s.failed) == (2, 1)
    assert (s.total_input, s.total_output) == (17, 5)  # a failed request adds nothing, even tokens it streamed
    assert s.request_throughput == pytest.approx(1.0)
    assert s.output_throughput == pytest.approx(2.5)
    assert s.total_token_throughput == pytest.approx(11.0)
    assert s.errors == {"HTTP 500: boom": 1}
    ttft = s.latency["ttft"]
    assert ttft.mean_ms == pytest.approx(450), f"mean TTFT must be 450 ms, got {ttft.mean_ms}"
    assert ttft.median_ms == pytest.approx(450), f"median TTFT must be 450 ms, got {ttft.median_ms}"
    assert ttft.std_ms == pytest.approx(50)
    assert ttft.percentiles_ms["99"] == pytest.approx(400 + 0.99 * 100)
    assert ttft.percentiles_ms["90"] == pytest.approx(490)
    assert s.latency["tpot"].mean_ms == pytest.approx(200)  # only requests with 2+ tokens
    itl = s.latency["itl"]
    assert itl.mean_ms == pytest.approx(200), f"mean ITL must be 200 ms, got {itl.mean_ms}"
    assert itl.median_ms == pytest.approx(200), f"median ITL must be 200 ms, got {itl.median_ms}"
    assert itl.percentiles_ms["90"] == pytest.approx(280)
    assert s.latency["e2el"].mean_ms == pytest.approx(750)
    assert s.request_goodput == pytest.approx(0.5)  # only b has TTFT <= 450 ms
    # a target is met when the figure is at most the target (vLLM: slo >= value): a's TTFT is exactly 500 ms
    assert metrics.summarize(recorded_run(), 2.0, goodput_ms={"ttft": 500}).request_goodput == pytest.approx(1.0)
    both = metrics.summarize(recorded_run(), 2.0, goodput_ms={"ttft": 600, "tpot": 100})
    assert both.request_goodput == pytest.approx(0.5)  # a misses TPOT; b's TPOT counts as 0
    assert metrics.summarize(recorded_run(), 2.0).request_goodput is None


@pytest.mark.points(1)
def test_empty_figures_and_bad_arguments():
    stats = metrics.latency_stats([], (50.0, 99.9))
    assert stats.mean_ms == stats.median_ms == stats.std_ms == 0.0
    assert stats.percentiles_ms == {"50": 0.0, "99.9": 0.0}
    all_failed = metrics.summarize([result("x", 0.0, [], output_len=0, success=False, error="e")], 1.0)
    assert all_failed.completed == 0, "a failed request is not completed"
    assert all_failed.failed == 1, "a failed request must be counted as failed"
    assert all_failed.output_throughput == 0, "no output throughput without completed requests"
    with pytest.raises(ValueError, match="duration_s"):
        metrics.summarize(recorded_run(), 0.0)
    with pytest.raises(ValueError, match="itl"):
        metrics.summarize(recorded_run(), 1.0, goodput_ms={"itl": 5})


def random_results(seed: int, n: int = 40):
    """Random but valid results: varied TTFTs, chunk gaps, chunks of several tokens, failures."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        start = float(rng.uniform(0, 5))
        if rng.random() < 0.15:  # failed, some after streaming a few chunks (their tokens count nowhere)
            partial = list(start + 0.1 * np.arange(1, int(rng.integers(0, 4)) + 1))
            out.append(result(f"q{i}", start, [float(t) for t in partial], output_len=2 * len(partial),
                              prompt_len=int(rng.integers(1, 300)), success=False, error="timed out"))
            continue
        chunks = int(rng.integers(1, 30))
        gaps = np.concatenate([[0], rng.exponential(0.02, chunks - 1)])
        times = list(start + float(rng.exponential(0.3)) + np.cumsum(gaps))
        tokens = chunks + int(rng.integers(0, 3)) * (chunks > 1)
        out.append(result(f"q{i}", start, [float(t) for t in times], output_len=tokens,
                          prompt_len=int(rng.integers(1, 300))))
    return out


def vllm_calculate_metrics(results, duration_s, tokenizer, percentiles, goodput):
    """vLLM's own ``calculate_metrics`` on the same recorded requests."""
    import inspect

    from vllm.benchmarks import serve
    from vllm.benchmarks.datasets import SampleRequest
    from vllm.benchmarks.lib.endpoint_request_func import RequestFuncOutput

    inputs, outputs = [], []
    for r in results:
        inputs.append(SampleRequest(prompt="x", prompt_len=r.prompt_len, expected_output_len=r.output_len))
        out = RequestFuncOutput()
        out.success, out.error, out.prompt_len = r.success, r.error, r.prompt_len
        out.output_tokens = r.output_len
        out.generated_text = "x" * r.output_len
        if r.success:
            out.ttft = r.chunk_times_s[0] - r.start_s
            out.latency = r.chunk_times_s[-1] - r.start_s
            out.itl = [b - a for a, b in zip(r.chunk_times_s, r.chunk_times_s[1:])]
            out.start_time = r.start_s
        outputs.append(out)
    kwargs = dict(input_requests=inputs, outputs=outputs, dur_s=duration_s, tokenizer=tokenizer,
                  selected_percentiles=list(percentiles), goodput_config_dict=goodput)
    parameters = inspect.signature(serve.calculate_metrics).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in parameters}
    found = serve.calculate_metrics(**kwargs)
    return found[0] if isinstance(found, tuple) else found


@pytest.mark.points(6)
@pytest.mark.vllm
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summary_equals_vllms_calculate_metrics(seed, tokenizer):
    """The oracle: vLLM's ``vllm.benchmarks.serve.calculate_metrics`` on the same recorded requests
    (its ``RequestFuncOutput`` built from our timestamps) gives the same figures."""
    results = random_results(seed)
    goodput = {"ttft": 350.0, "tpot": 25.0, "e2el": 900.0}
    ours = metrics.summarize(results, 7.5, goodput_ms=goodput, percentiles=(50.0, 90.0, 99.0))
    theirs = vllm_calculate_metrics(results, 7.5, tokenizer, (50.0, 90.0, 99.0), goodput)
    assert ours.completed == theirs.completed
    assert ours.total_input == theirs.total_input, "total input tokens must equal vLLM's calculate_metrics"
    assert ours.total_output == theirs.total_output, "total output tokens must equal vLLM's calculate_metrics"
    assert ours.request_throughput == pytest.approx(theirs.request_throughput)
    assert ours.output_throughput == pytest.approx(theirs.output_throughput)
    assert ours.total_token_throughput == pytest.approx(theirs.total_token_throughput)
    assert ours.request_goodput == pytest.approx(theirs.request_goodput)
    for name in ("ttft", "tpot", "itl", "e2el"):
        stats = ours.latency[name]
        assert stats.mean_ms == pytest.approx(getattr(theirs, f"mean_{name}_ms")), name
        assert stats.median_ms == pytest.approx(getattr(theirs, f"median_{name}_ms")), name
        assert stats.std_ms == pytest.approx(getattr(theirs, f"std_{name}_ms")), name
        for p, value in getattr(theirs, f"percentiles_{name}_ms"):
            assert stats.percentiles_ms[f"{p:g}"] == pytest.approx(value), (name, p)


HOLD = "import time; block = bytearray(150 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(30)"
#: A child that holds 150 MiB and starts a grandchild holding 150 MiB more (vLLM's engine core runs
#: its model in a process below the one the benchmark started; llama.cpp's server can do likewise).
TREE = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {HOLD!r}]); exec({HOLD!r})"


@pytest.mark.points(2)
def test_memory_sampler_sees_this_process_and_its_descendants():
    """Allocating 120 MiB in the block raises the peak by about that much; a child holding 150 MiB
    and its own child holding 150 MiB are both counted in ``sample()``."""
    with metrics.MemorySampler(interval_s=0.01) as memory:
        baseline = memory.sample()
        block = np.ones(120 * 2**20 // 8)
        time.sleep(0.1)
        del block
    assert memory.peak_rss_bytes >= baseline + 100 * 2**20
    tree = subprocess.Popen([sys.executable, "-c", TREE], start_new_session=True)  # its own process group
    try:
        sampler = metrics.MemorySampler()
        deadline = time.monotonic() + 20
        seen = 0
        while time.monotonic() < deadline:
            seen = sampler.sample() - sampler.process.memory_info().rss
            if seen >= 290 * 2**20:
                break
            time.sleep(0.1)
        assert seen >= 290 * 2**20, f"descendants counted {seen / 2**20:.0f} MiB, expected at least 290 (150 + 150)"
    finally:
        os.killpg(tree.pid, signal.SIGKILL)  # the grandchild too
        tree.wait()


class ChildrenListedBeforeOneExits:
    """The sampler's process, whose ``children()`` lists a child that has exited since (the race
    the docstring names) ahead of a living one; everything else is the real ``psutil.Process``."""

    def __init__(self, process, children):
        self._process, self._children = process, children

    def children(self, recursive: bool = False):
        return list(self._children)

    def __getattr__(self, name: str):
        return getattr(self._process, name)


@pytest.mark.points(1)
def test_memory_sampler_skips_a_child_that_exited_and_counts_the_rest():
    """A child that vanished between listing and reading is skipped; the children after it still count."""
    import psutil

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    vanished = psutil.Process(gone.pid)
    gone.wait()  # reaped: reading its memory now raises NoSuchProcess
    held = subprocess.Popen([sys.executable, "-c", HOLD])
    try:
        living = psutil.Process(held.pid)
        deadline = time.monotonic() + 20
        while living.memory_info().rss < 140 * 2**20 and time.monotonic() < deadline:
            time.sleep(0.05)
        sampler = metrics.MemorySampler()
        sampler.process = ChildrenListedBeforeOneExits(sampler.process, [vanished, living])
        seen = sampler.sample() - sampler.process.memory_info().rss
        assert seen >= 140 * 2**20, f"the living child counted {seen / 2**20:.0f} MiB, expected about 150"
    finally:
        held.kill()
        held.wait()
