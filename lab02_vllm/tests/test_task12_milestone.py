"""Task 12: the milestone command — choose what to serve, load it with streaming clients, report.

Oracles: numpy's percentile (the one ``vllm bench serve`` uses), vLLM's TTFT / TPOT definitions
worked by hand on synthetic timings, and the real ``openai`` client against the course server.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from shared.impl import lab_module

from .serving_fixtures import course_server_fixture, raises_server_errors  # noqa: F401  (the fixture course_server)

milestone = lab_module("lab02_vllm", "milestone")

pytestmark = pytest.mark.task(12)


@pytest.mark.points(0.5)
def test_choose_backend_for_each_machine():
    """GPU + vLLM: real vLLM (7B dummy weights without a model); GPU only: the course engine on a
    7B shape; CPU: vLLM-on-CPU when installed, else the course engine, on the fixture."""
    plan = milestone.choose_backend(True, True)
    assert (plan.backend, plan.model, plan.device, plan.load_format) == ("vllm", "llama-2-7b", "cuda", "dummy")
    plan = milestone.choose_backend(True, True, "/models/llama")
    assert (plan.backend, plan.model, plan.load_format) == ("vllm", "/models/llama", "auto")
    plan = milestone.choose_backend(True, False)
    assert (plan.backend, plan.model, plan.device) == ("course", "llama-2-7b", "cuda")
    plan = milestone.choose_backend(False, True)
    assert (plan.backend, plan.model, plan.device) == ("vllm", "fixture", "cpu")
    plan = milestone.choose_backend(False, False, "/models/gpt2")
    assert (plan.backend, plan.model, plan.device) == ("course", "/models/gpt2", "cpu")
    assert all(milestone.choose_backend(a, b).note for a in (True, False) for b in (True, False))


def timing(sent: float, chunks: list[float], tokens: int, error: str | None = None):
    return milestone.RequestTiming(sent=sent, chunk_times=chunks, output_tokens=tokens, error=error)


@pytest.mark.points(0.5)
def test_summarize_follows_vllms_definitions():
    """Throughput = completed output tokens / wall time; TTFT = first chunk - sent; TPOT = (last -
    first) / (tokens - 1); p99 as numpy computes it; failed requests only counted."""
    rng = np.random.default_rng(3)
    timings, ttfts, tpots = [], [], []
    for _i in range(40):
        sent = float(rng.uniform(0, 5))
        ttft = float(rng.uniform(0.01, 0.5))
        tokens = int(rng.integers(1, 20))
        gaps = rng.uniform(0.001, 0.05, size=tokens - 1)
        chunks = [sent + ttft, *(sent + ttft + np.cumsum(gaps)).tolist()]
        timings.append(timing(sent, chunks, tokens))
        ttfts.append(ttft)
        if tokens > 1:
            tpots.append(float(gaps.sum()) / (tokens - 1))
    timings.append(timing(1.0, [], 0, error="APIConnectionError: refused"))
    plan = milestone.Plan("course", "fixture", "cpu")
    total = sum(t.output_tokens for t in timings)
    report = milestone.summarize(timings, 4.0, plan, concurrency=8)
    assert (report.completed, report.failed, report.output_tokens) == (40, 1, total)
    assert report.output_tokens_per_s == pytest.approx(total / 4.0)
    assert report.ttft_mean_s == pytest.approx(np.mean(ttfts))
    assert report.ttft_p99_s == pytest.approx(np.percentile(ttfts, 99))
    assert report.tpot_mean_s == pytest.approx(np.mean(tpots))
    assert report.tpot_p99_s == pytest.approx(np.percentile(tpots, 99))
    assert report.passed == (total / 4.0 > 100)
    # The goal is "more than" 100 tokens/s: exactly 100 does not pass.
    exact = milestone.summarize([timing(0.0, [0.1, 0.2], 100)], 1.0, plan, concurrency=1)
    assert exact.output_tokens_per_s == 100, (
        f"100 tokens in 1 s is 100 output tokens/s, got {exact.output_tokens_per_s}"
    )
    assert not exact.passed, "the goal is more than 100 tokens/s: exactly 100 does not pass"
    single = milestone.summarize([timing(0.0, [0.1], 1)], 1.0, plan, concurrency=1)
    assert single.tpot_mean_s is None, "TPOT is undefined (None) for a request with a single output token"
    assert single.tpot_p99_s is None, "TPOT p99 is undefined (None) for a request with a single output token"
    with pytest.raises(ValueError, match="duration_s"):
        milestone.summarize(timings, 0.0, plan, concurrency=8)
    with pytest.raises(ValueError, match="no request completed"):
        milestone.summarize([timings[-1]], 1.0, plan, concurrency=8)


@pytest.mark.points(0.5)
@raises_server_errors
def test_stream_load_against_the_course_server(course_server):
    """Streaming requests through the openai client: every token counted, at most
    ``concurrency`` in flight, a failing request reported instead of raised."""
    name = course_server.app.state.course.model_name
    prompts = milestone.make_prompts(6, words=8)
    timings = asyncio.run(milestone.stream_load(course_server.base_url, name, prompts, 5, 3))
    assert len(timings) == 6
    for t in timings:
        assert t.error is None, t.error
        assert t.output_tokens == 5
        assert 1 <= len(t.chunk_times) <= 5, f"the stream must arrive in 1 to 5 chunks, got {len(t.chunk_times)}"
        assert t.sent <= t.chunk_times[0] <= t.chunk_times[-1], "chunk times must come after the send time and in order"
    events = sorted([(t.sent, 1) for t in timings] + [(t.chunk_times[-1], -1) for t in timings])
    in_flight = np.cumsum([step for _, step in events])
    assert in_flight.max() <= 3
    failed = asyncio.run(milestone.stream_load(course_server.base_url, "no-such-model", prompts[:2], 5, 2))
    assert all((t.error and "404" in t.error) or "NotFound" in (t.error or "") for t in failed)
