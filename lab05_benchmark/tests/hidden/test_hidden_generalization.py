"""Instructor-only tests: the same properties on inputs the visible tests never show (another
architecture, other rates, percentiles and targets, vLLM's own HTTP client), so that code fitted
to the visible cases does not pass."""

import asyncio
import itertools
import json
import math
import random
import statistics
import time

import pytest
import torch

from ..helpers import (
    ScriptedBackend,
    backend_run,
    backends,
    bench_report,
    choose,
    metrics,
    report,
    request,
    runner,
    workloads,
)
from ..test_task1_workloads import ks_statistic_exponential
from ..test_task2_metrics import random_results, vllm_calculate_metrics
from ..test_task3_backends import drive


@pytest.mark.task(1)
@pytest.mark.points(0.5)
def test_poisson_at_a_high_rate_and_lengths_with_a_thin_tail():
    times = workloads.poisson_arrivals(3000, 80.0, random.Random(77))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == 0.0 and statistics.mean(gaps) == pytest.approx(1 / 80, rel=0.07)
    assert ks_statistic_exponential(gaps, 80.0) < 1.63 / math.sqrt(len(gaps))
    lengths = workloads.lognormal_lengths(5000, 200, 0.3, 1, 10**6, random.Random(3))
    assert statistics.mean(lengths) / statistics.median(lengths) == pytest.approx(math.exp(0.045), rel=0.03)


@pytest.mark.task(1)
@pytest.mark.points(1)
def test_jsonl_with_blank_lines_and_a_bad_header(tokenizer, tmp_path):
    w = workloads.fixed_workload(tokenizer, 3, 5, 2, seed=8)
    lines = workloads.save_jsonl(w, tmp_path / "w.jsonl").read_text().splitlines()
    spaced = tmp_path / "spaced.jsonl"
    spaced.write_text("\n".join([lines[0], "", lines[1], "   ", *lines[2:]]) + "\n\n")
    assert workloads.load_jsonl(spaced) == w
    header = json.loads(lines[0])
    del header["requests"]
    spaced.write_text("\n".join([json.dumps(header), *lines[1:]]))
    with pytest.raises(workloads.WorkloadError, match="line 1"):
        workloads.load_jsonl(spaced)


@pytest.mark.task(2)
@pytest.mark.points(2)
@pytest.mark.vllm
def test_vllm_oracle_with_other_percentiles_and_targets(tokenizer):
    results = random_results(11, n=60)
    ours = metrics.summarize(results, 12.0, goodput_ms={"e2el": 400.0}, percentiles=(25.0, 75.0, 99.9))
    theirs = vllm_calculate_metrics(results, 12.0, tokenizer, (25.0, 75.0, 99.9), {"e2el": 400.0})
    assert ours.request_goodput == pytest.approx(theirs.request_goodput)
    for name in ("ttft", "tpot", "itl", "e2el"):
        for p, value in getattr(theirs, f"percentiles_{name}_ms"):
            assert ours.latency[name].percentiles_ms[f"{p:g}"] == pytest.approx(value), (name, p)
    single = [r.model_copy(update={"chunk_times_s": r.chunk_times_s[:1], "output_len": 1})
              for r in results if r.success]
    ours = metrics.summarize(single, 3.0, goodput_ms={"tpot": 1.0})
    theirs = vllm_calculate_metrics(single, 3.0, tokenizer, (50.0, 90.0, 99.0), {"tpot": 1.0})
    assert ours.latency["tpot"].mean_ms == pytest.approx(theirs.mean_tpot_ms) == 0.0
    assert ours.request_goodput == pytest.approx(theirs.request_goodput)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory, model_dir):
    """A random-weights GPT-2 (learned absolute positions) with the fixture's tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=len(tokenizer), n_positions=128,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    out = tmp_path_factory.mktemp("gpt2")
    GPT2LMHeadModel(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.task(3)
@pytest.mark.points(1.5)
def test_static_batches_on_a_model_with_absolute_positions(gpt2_dir):
    """GPT-2 adds a learned embedding per position: left padding must give real tokens positions
    0, 1, 2 ... or every padded row changes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gpt2_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(gpt2_dir)
    prompts = ["a", "The cat sat on the mat and", "Lima", '{"name": "Ana", "age"']
    backend = backends.TransformersBackend(gpt2_dir, batch_size=4, model=model, tokenizer=tokenizer)
    events = drive(backend, [request(f"g{i}", 5, p) for i, p in enumerate(prompts)])
    for i, prompt in enumerate(prompts):
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            for _ in range(5):
                ids = torch.cat([ids, model(ids).logits[0, -1].argmax().view(1, 1)], dim=1)
        assert [t for e in events[f"g{i}"] for t in e.token_ids] == ids[0, -5:].tolist(), prompt


@pytest.mark.task(3)
@pytest.mark.points(2)
@pytest.mark.vllm
@pytest.mark.llama_cpp
def test_http_backend_stamps_chunks_as_vllms_own_client_does(llama_server):
    """vLLM's benchmark client (``async_request_openai_completions``) and our HTTP backend on the
    same server and request: the same text and the same number of stamped chunks."""
    import aiohttp
    from vllm.benchmarks.lib.endpoint_request_func import RequestFuncInput, async_request_openai_completions

    prompt = "Ana lives in Lima and works as a"

    async def theirs():
        async with aiohttp.ClientSession() as session:
            return await async_request_openai_completions(
                RequestFuncInput(prompt=prompt, api_url=f"{llama_server}/v1/completions", prompt_len=9,
                                 output_len=7, model="fixture", extra_body={"temperature": 0.0}), session)

    vllm_out = asyncio.run(theirs())
    assert vllm_out.success, vllm_out.error
    backend = backends.HTTPBackend(llama_server, model="fixture", timeout_s=60)
    try:
        events = drive(backend, [request("x", 7, prompt)])["x"]
    finally:
        backend.close()
    chunks = [e for e in events if e.new_tokens]
    assert "".join(e.text for e in chunks) == vllm_out.generated_text
    assert len(chunks) == len(vllm_out.itl) + 1


@pytest.mark.task(3)
@pytest.mark.points(0.5)
@pytest.mark.vllm
def test_http_backend_times_a_delayed_stream_as_vllms_own_client_does():
    """vLLM's benchmark client and our HTTP backend on a server whose chunks come 150 ms apart:
    the same text, chunks and token count (from the usage chunk), and the same shape of timing
    (the first chunk well before the last: TTFT / E2EL about 1/4 for both)."""
    import aiohttp
    from vllm.benchmarks.lib.endpoint_request_func import RequestFuncInput, async_request_openai_completions

    from ..helpers import streaming_server
    from ..test_task3_backends import DELAYED_LINES

    with streaming_server(DELAYED_LINES, 0.15) as url:
        async def theirs():
            async with aiohttp.ClientSession() as session:
                return await async_request_openai_completions(
                    RequestFuncInput(prompt="Lima", api_url=f"{url}/v1/completions", prompt_len=3, output_len=7,
                                     model="m"), session)

        vllm_out = asyncio.run(theirs())
        backend = backends.HTTPBackend(url, model="m", timeout_s=30)
        sent = time.perf_counter()
        try:
            events = drive(backend, [request("x", 7, "Lima")])["x"]
        finally:
            backend.close()
    assert vllm_out.success, vllm_out.error
    chunks = [e for e in events if e.new_tokens]
    assert "".join(e.text for e in chunks) == vllm_out.generated_text
    assert len(chunks) == len(vllm_out.itl) + 1
    assert events[-1].total_tokens == vllm_out.output_tokens == 7
    assert vllm_out.ttft / vllm_out.latency < 0.6
    assert (chunks[0].time_s - sent) / (chunks[-1].time_s - sent) < 0.6


@pytest.mark.task(4)
@pytest.mark.points(2)
def test_arrivals_and_a_concurrency_limit_together_and_a_failed_turn_releases_the_next():
    backend = ScriptedBackend(fail_stream={"t0"})
    requests = [request("t0", 3), request("t1", 2, after="t0"),
                *[request(f"p{i}", 3, arrival_s=0.01 * i) for i in range(6)]]
    results, _, _ = runner.run_once(backend, requests, concurrency=2)
    by_id = {r.id: r for r in results}
    assert len(results) == 8, f"every request must give a result, failed ones too: {len(results)} of 8"
    assert backend.max_in_flight == 2, (
        f"arrivals must not break the concurrency limit of 2, got {backend.max_in_flight} in flight"
    )
    assert not by_id["t0"].success and by_id["t1"].success
    sent = dict(backend.added)
    t0 = min(sent.values())
    for i in range(6):
        assert sent[f"p{i}"] - t0 >= 0.01 * i - 0.005


@pytest.mark.task(5)
@pytest.mark.points(1)
def test_compare_matches_runs_at_a_rate_and_reads_percentiles():
    before = bench_report([backend_run("vllm", [100.0], concurrency=None, rate=2.0, ttft_ms=10.0)])
    after = bench_report([backend_run("vllm", [80.0], concurrency=None, rate=2.0, ttft_ms=8.0),
                          backend_run("vllm", [80.0], concurrency=None, rate=4.0)])
    changes = {c.figure: c for c in report.compare(before, after)}
    assert {c.run for c in changes.values()} == {"vllm @2/s"}
    assert changes["output tok/s"].ratio == pytest.approx(0.8) and changes["output tok/s"].better is False
    assert changes["TTFT p99 ms"].ratio == pytest.approx(0.8) and changes["TTFT p99 ms"].better is True
    assert report.figure(before.runs[0], "itl.p90") == 2.0


@pytest.mark.task(6)
@pytest.mark.points(2)
def test_choices_with_a_wider_margin_and_latency_only_differences():
    made = bench_report([
        backend_run("a", [1000.0, 1010.0], ttft_ms=10.0, features={"prefix_caching"}),
        backend_run("b", [1200.0, 1210.0], ttft_ms=30.0),
    ], kind="shared_prefix")
    found = choose.claims(made, margin=0.25)
    throughput = [c for c in found if c.figure == "output_throughput"]
    assert len(throughput) == 1, f"one throughput claim expected, got {len(throughput)}"
    assert throughput[0].winner is None, "a 20 % difference is within the 25 % margin: no winner"  # 20 % < 25 %
    ttft = [c for c in found if c.figure == "ttft.median_ms"]
    assert ttft[0].winner == "a @c8" and "prefix caching" in ttft[0].sentence
    assert not choose.beats([1.0, 1.0], [2.0, 2.0], True, 0.0)
    assert choose.beats([2.0, 2.0], [1.0, 1.0], True, 0.0)
