"""Task 6: a written comparison that never claims what the numbers do not support."""

import re
import statistics

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import backend_run, bench_report, choose, report

pytestmark = pytest.mark.task(6)


@pytest.mark.points(3)
def test_beats_needs_the_margin_and_separated_runs():
    assert choose.beats([120.0], [100.0], True, 0.10)
    assert not choose.beats([110.0], [100.0], True, 0.10)
    assert not choose.beats([150.0], [100.0], True, 0.5)  # exactly the margin is not more than it
    assert not choose.beats([100.0], [150.0], False, 0.5)
    assert not choose.beats([105.0], [100.0], True, 0.10)
    assert choose.beats([105.0], [100.0], True, 0.02)
    assert not choose.beats([100.0], [120.0], True, 0.10)
    # higher is better: the margin scales the loser's median: 111 > 100 * 1.1 = 110
    assert choose.beats([111.0], [100.0], True, 0.10) and choose.beats([131.0], [100.0], True, 0.30)
    # lower is better (latency, memory)
    assert choose.beats([10.0], [12.0], False, 0.10)
    assert not choose.beats([12.0], [10.0], False, 0.10)
    assert not choose.beats([10.0], [10.5], False, 0.10)
    # the margin scales the winner's median when lower is better: 90.5 * 1.1 = 99.55 < 100
    assert choose.beats([90.5], [100.0], False, 0.10)
    assert choose.beats([95.0], [120.0], False, 0.25) and not choose.beats([97.0], [120.0], False, 0.25)
    # medians far apart, but the runs overlap: no clear winner
    assert not choose.beats([200.0, 90.0, 210.0], [100.0, 95.0, 105.0], True, 0.10)
    assert choose.beats([200.0, 190.0, 210.0], [100.0, 95.0, 105.0], True, 0.10)
    assert not choose.beats([10.0, 30.0, 11.0], [20.0, 21.0, 22.0], False, 0.10)
    # one value against several (or several against one): medians only, even where the ranges overlap
    assert choose.beats([200.0], [100.0, 150.0, 120.0], True, 0.10)
    assert choose.beats([150.0], [100.0, 160.0], True, 0.10)
    assert choose.beats([100.0, 160.0, 150.0], [120.0], True, 0.10)
    assert choose.beats([8.0], [5.0, 12.0, 11.0], False, 0.10)
    assert not choose.beats([], [1.0], True) and not choose.beats([1.0], [], True)


@pytest.mark.points(3)
def test_reasons_only_where_the_backends_differ_and_it_can_matter():
    vllm = backend_run("vllm", [900.0], concurrency=8, features={"continuous_batching", "prefix_caching"})
    hf = backend_run("transformers", [300.0], concurrency=8)
    static = backend_run("transformers:8", [600.0], concurrency=8, features={"static_batching"})
    assert "continuous batching" in choose.reason(vllm, hf, "output_throughput", "chat")
    assert "static batching" in choose.reason(static, hf, "output_throughput", "chat")
    assert "continuous batching" in choose.reason(vllm, static, "output_throughput", "chat")
    assert choose.reason(vllm, hf, "ttft.median_ms", "chat") is None
    assert "prefix caching" in choose.reason(vllm, hf, "ttft.median_ms", "shared_prefix")
    assert "prefix caching" in choose.reason(vllm, hf, "ttft.median_ms", "multi_turn")
    assert choose.reason(vllm, hf, "peak_rss_mib", "shared_prefix") is None
    one = backend_run("vllm", [300.0], concurrency=1, features={"continuous_batching"})
    assert choose.reason(one, hf, "output_throughput", "chat") is None  # nothing to batch at concurrency 1
    poisson = backend_run("vllm", [300.0], concurrency=None, rate=4.0, features={"continuous_batching"})
    assert "continuous batching" in choose.reason(poisson, hf, "output_throughput", "chat")
    q4 = backend_run("llama.cpp:Q4_0", [300.0], features={"quantized", "prefix_caching"})
    f32 = backend_run("llama.cpp:F32", [300.0], features={"prefix_caching"})
    assert "quantized" in choose.reason(q4, f32, "peak_rss_mib", "chat")
    assert choose.reason(q4, f32, "output_throughput", "chat") is None
    assert choose.reason(hf, vllm, "output_throughput", "chat") is None


NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
FEATURES = st.sets(st.sampled_from(["continuous_batching", "static_batching", "prefix_caching", "quantized"]))
RUN = st.tuples(st.lists(st.floats(min_value=50, max_value=5000), min_size=1, max_size=3),
                st.floats(min_value=1, max_value=500), FEATURES, st.sampled_from([1, 8]))


@pytest.mark.points(4)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=st.lists(RUN, min_size=2, max_size=4), kind=st.sampled_from(["chat", "shared_prefix"]))
def test_claims_never_go_beyond_the_numbers(runs, kind):
    """Random results: every claimed winner beats the other by more than the margin (with separated
    runs), every 'no clear difference' really is one, each sentence quotes both medians, and a
    mechanism is named only when the winner has it and the other does not."""
    made = bench_report([backend_run(f"b{i}", throughputs, concurrency=c, ttft_ms=ttft, features=features)
                         for i, (throughputs, ttft, features, c) in enumerate(runs)], kind=kind)
    by_label = {report.run_label(run): run for run in made.runs}
    found = choose.claims(made, margin=0.10)
    for claim in found:
        key = claim.figure
        higher = {"output_throughput": True}.get(key, False)
        assert claim.sentence.count(".") >= 1 and NUMBER.search(claim.sentence)
        other_values = choose.figure_values(by_label[claim.other], key)
        assert claim.other_value == pytest.approx(statistics.median(other_values))
        assert report.format_value(claim.other_value) in claim.sentence
        assert report.format_value(claim.winner_value) in claim.sentence
        if claim.winner is None:
            assert not re.search(r"\b(higher|lower|faster|wins|better)\b", claim.sentence)
            continue
        winner_values = choose.figure_values(by_label[claim.winner], key)
        a, b = statistics.median(winner_values), statistics.median(other_values)
        assert (a > 1.1 * b) if higher else (a * 1.1 < b), claim.sentence
        if len(winner_values) >= 2 and len(other_values) >= 2:
            assert (min(winner_values) > max(other_values)) if higher else (max(winner_values) < min(other_values))
        if "because" in claim.sentence:
            winner_features = set(by_label[claim.winner].features)
            other_features = set(by_label[claim.other].features)
            assert any(choose.FEATURE_REASONS[f] in claim.sentence for f in winner_features - other_features)
    loads = {(run.concurrency, run.rate) for run in made.runs}
    if len(made.runs) > len(loads):
        assert found, "runs at the same load must be compared"


@pytest.mark.points(3)
def test_written_choice_on_a_clear_and_an_unclear_case():
    made = bench_report([
        backend_run("vllm", [3000.0, 3100.0], concurrency=8, features={"continuous_batching"}, ttft_ms=20.0),
        backend_run("transformers", [900.0, 950.0], concurrency=8, ttft_ms=21.0),
        backend_run("engine", [2950.0, 3050.0], concurrency=8, features={"continuous_batching"}, ttft_ms=19.5),
    ])
    text = choose.write_choice(made)
    sentences = [line[2:] for line in text.splitlines() if line.startswith("- ")]
    assert any("vllm" in s and "transformers" in s and "higher output throughput" in s
               and "continuous batching" in s and "3.30×" in s for s in sentences), text
    assert any("vllm" in s and "engine" in s and "no clear difference" in s for s in sentences), text
    assert not any("time to first token" in s and ("higher" in s or "lower" in s) for s in sentences), text
    assert all(NUMBER.search(s) for s in sentences)
    assert "2 cores" in text
    alone = choose.write_choice(bench_report([backend_run("vllm", [3000.0])]))
    assert "nothing to compare" in alone


@pytest.mark.scaffold
def test_the_given_claims_credit_a_mechanism_only_where_the_comparison_isolates_it():
    """Given code: with ``vllm`` run with prefix caching too, the engine's lead over ``vllm:no-prefix-cache`` is
    not credited to prefix caching; within one backend it is. Far-apart medians with overlapping runs say so."""
    both = {"continuous_batching", "prefix_caching"}
    made = bench_report([
        backend_run("engine", [3700.0, 3650.0, 3600.0], features=both),
        backend_run("engine:no-prefix-cache", [2550.0, 2500.0, 2600.0], features={"continuous_batching"}),
        backend_run("vllm", [1420.0, 1400.0, 1450.0], features=both),
        backend_run("vllm:no-prefix-cache", [1410.0, 1390.0, 1430.0], features={"continuous_batching"}),
    ], kind="multi_turn")
    sentences = {c.other: c.sentence for c in choose.claims(made) if c.figure == "output_throughput"}
    assert "prefix caching" in sentences["engine:no-prefix-cache @c8"]
    assert "because" not in sentences["vllm:no-prefix-cache @c8"]
    overlapping = bench_report([backend_run("a", [100.0, 300.0, 310.0]), backend_run("b", [120.0, 130.0, 140.0])])
    [claim] = [c for c in choose.claims(overlapping) if c.figure == "output_throughput"]
    assert claim.winner is None and "the runs overlap (100-310 against 120-140 tok/s)" in claim.sentence
