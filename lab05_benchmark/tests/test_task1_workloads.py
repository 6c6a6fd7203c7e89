"""Task 1: seeded workloads (fixed, long-tailed chat, shared prefix, multi-turn), Poisson arrivals, JSONL."""

import itertools
import json
import math
import random
import statistics

import pytest

from .helpers import workloads

pytestmark = pytest.mark.task(1)


def plain_len(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)


@pytest.mark.points(1)
def test_fixed_workload_has_the_asked_lengths(tokenizer):
    """Every prompt is input_len tokens (at most 2 short where a cut re-tokenizes), prompt_len is
    the tokenizer's count, max_tokens is output_len, ids are unique."""
    w = workloads.fixed_workload(tokenizer, 12, 40, 17, seed=3)
    assert w.kind == "fixed" and len(w.requests) == 12
    assert len({r.id for r in w.requests}) == 12
    for r in w.requests:
        assert 38 <= plain_len(tokenizer, r.prompt) <= 40
        assert r.prompt_len == len(tokenizer(r.prompt).input_ids)
        assert r.max_tokens == 17, "max_tokens must be the asked output length (17)"
        assert r.arrival_s is None, "a fixed workload sends everything at once: arrival_s is None"
        assert r.after is None, "a fixed workload has no turns: after is None"
    assert len({r.prompt for r in w.requests}) > 1, "prompts should differ"


@pytest.mark.points(2)
def test_workloads_are_reproducible_from_their_seed(tokenizer, tmp_path):
    """The same seed gives byte-identical files; another seed gives other prompts and lengths."""
    for build in (lambda s: workloads.chat_workload(tokenizer, 10, seed=s),
                  lambda s: workloads.shared_prefix_workload(tokenizer, 5, 30, 8, 6, seed=s),
                  lambda s: workloads.multi_turn_workload(tokenizer, 2, 3, 10, 5, seed=s)):
        a = workloads.save_jsonl(build(1), tmp_path / "a.jsonl").read_bytes()
        b = workloads.save_jsonl(build(1), tmp_path / "b.jsonl").read_bytes()
        c = workloads.save_jsonl(build(2), tmp_path / "c.jsonl").read_bytes()
        assert a == b
        assert a != c


@pytest.mark.points(1)
def test_lognormal_lengths_are_long_tailed():
    """Median as asked, mean about exp(sigma^2 / 2) times the median, a long tail, clipping kept."""
    rng = random.Random(5)
    lengths = workloads.lognormal_lengths(6000, 50, 1.0, 1, 100000, rng)
    assert len(lengths) == 6000 and all(isinstance(x, int) for x in lengths)
    assert statistics.median(lengths) == pytest.approx(50, rel=0.08)
    assert statistics.mean(lengths) / statistics.median(lengths) == pytest.approx(math.exp(0.5), rel=0.1)
    assert sorted(lengths)[int(0.99 * len(lengths))] > 5 * statistics.median(lengths)
    clipped = workloads.lognormal_lengths(2000, 50, 1.0, 20, 120, random.Random(5))
    assert min(clipped) == 20, "lengths must be clipped at the lower bound 20"
    assert max(clipped) == 120, "lengths must be clipped at the upper bound 120"
    assert workloads.lognormal_lengths(50, 33, 0.0, 1, 100, random.Random(1)) == [33] * 50


def lognormal_rounded_pmf(k: int, median: float, sigma: float) -> float:
    """P(round(median * exp(sigma * z)) == k) for z standard normal, k >= 1: the mass of
    [k - 0.5, k + 0.5) under the log-normal (rounding to the nearest integer, as the docstring says)."""
    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))
    return cdf(k + 0.5) - cdf(k - 0.5)


@pytest.mark.points(1)
def test_lognormal_lengths_round_to_the_nearest_integer():
    """With a small median the rounding shows: the share of each length equals the log-normal's
    mass around it (rounding to the nearest; truncating moves every draw down by half a token)."""
    lengths = workloads.lognormal_lengths(20000, 3, 0.4, 1, 1000, random.Random(7))
    for k in (2, 3, 4, 5):
        share = lengths.count(k) / len(lengths)
        assert share == pytest.approx(lognormal_rounded_pmf(k, 3, 0.4), abs=0.015), k
    assert statistics.median(lengths) == 3


@pytest.mark.points(1)
def test_chat_workload_draws_inputs_then_outputs_from_one_rng(tokenizer):
    """Output lengths are the second batch of log-normal draws from random.Random(seed)."""
    w = workloads.chat_workload(tokenizer, 20, seed=9, input_median=16, output_median=10, sigma=0.7,
                                max_input=60, max_output=40)
    rng = random.Random(9)
    inputs = workloads.lognormal_lengths(20, 16, 0.7, 1, 60, rng)
    outputs = workloads.lognormal_lengths(20, 10, 0.7, 1, 40, rng)
    assert [r.max_tokens for r in w.requests] == outputs
    for r, n in zip(w.requests, inputs):
        assert n - 2 <= plain_len(tokenizer, r.prompt) <= n
    assert len(set(outputs)) > 3
    # outputs clipped at max_output, not at max_input (here the smaller of the two)
    short = workloads.chat_workload(tokenizer, 20, seed=9, input_median=16, output_median=10, sigma=0.7,
                                    max_input=60, max_output=12)
    rng = random.Random(9)
    workloads.lognormal_lengths(20, 16, 0.7, 1, 60, rng)
    assert [r.max_tokens for r in short.requests] == workloads.lognormal_lengths(20, 10, 0.7, 1, 12, rng)


@pytest.mark.points(1)
def test_shared_prefix_workload_shares_its_system_prompt(tokenizer):
    """Every prompt starts with the same system text of system_len tokens, then a newline; the
    token ids share that prefix (what prefix caching re-uses)."""
    w = workloads.shared_prefix_workload(tokenizer, 6, 48, 8, 5, seed=2)
    system = w.requests[0].prompt.split("\n")[0]
    assert 46 <= plain_len(tokenizer, system) <= 48
    ids = [tokenizer(r.prompt).input_ids for r in w.requests]
    for r, row in zip(w.requests, ids):
        assert r.prompt.startswith(system + "\n")
        assert r.max_tokens == 5
        assert row[:46] == ids[0][:46]
    assert len({r.prompt for r in w.requests}) == 6


@pytest.mark.points(2)
def test_multi_turn_workload_extends_each_conversation(tokenizer):
    """Turn k's prompt extends turn k-1's, and waits for it (after); conversations are independent."""
    w = workloads.multi_turn_workload(tokenizer, 3, 4, 12, 6, seed=4)
    assert len(w.requests) == 12
    assert [r.id for r in w.requests] == [f"r{i}" for i in range(12)]
    for conversation in range(3):
        turns = w.requests[4 * conversation: 4 * conversation + 4]
        assert turns[0].after is None
        for previous, current in itertools.pairwise(turns):
            assert current.after == previous.id
            assert current.prompt.startswith(previous.prompt + "\n")
            assert current.prompt_len > previous.prompt_len + 12
    assert not w.requests[4].prompt.startswith(w.requests[0].prompt)


def ks_statistic_exponential(gaps: list[float], rate: float) -> float:
    """Kolmogorov-Smirnov distance between the gaps' empirical CDF and Exp(rate)'s CDF."""
    xs = sorted(gaps)
    n = len(xs)
    return max(max((i + 1) / n - (1 - math.exp(-rate * x)), (1 - math.exp(-rate * x)) - i / n)
               for i, x in enumerate(xs))


@pytest.mark.points(2)
@pytest.mark.parametrize("rate, seed", [(4.0, 1), (0.5, 2)])
def test_poisson_arrivals_are_a_poisson_process(rate, seed):
    """First at 0; exponential gaps (KS test at 1 %); mean gap 1/rate; counts in unit windows have
    variance equal to their mean (dispersion index 1, the Poisson signature)."""
    n = 4000
    times = workloads.poisson_arrivals(n, rate, random.Random(seed))
    assert len(times) == n, f"expected {n} arrival times, got {len(times)}"
    assert times[0] == 0.0, "the first arrival is at time 0.0"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0
    assert statistics.mean(gaps) == pytest.approx(1 / rate, rel=0.06)
    assert ks_statistic_exponential(gaps, rate) < 1.63 / math.sqrt(len(gaps))
    window = 4.0 / rate  # about 4 arrivals per window
    counts = [0] * int(times[-1] // window)
    for t in times:
        if int(t // window) < len(counts):
            counts[int(t // window)] += 1
    dispersion = statistics.pvariance(counts) / statistics.mean(counts)
    assert 0.85 < dispersion < 1.15
    assert workloads.poisson_arrivals(n, rate, random.Random(seed)) == times


@pytest.mark.points(1)
def test_with_arrivals_sets_the_load_without_changing_its_input(tokenizer):
    w = workloads.fixed_workload(tokenizer, 30, 8, 4, seed=6)
    before = w.model_dump_json()
    poisson = workloads.with_arrivals(w, rate=3.0, seed=11)
    assert w.model_dump_json() == before
    assert poisson.arrival == "poisson" and poisson.rate == 3.0 and poisson.concurrency is None
    assert [r.arrival_s for r in poisson.requests] == workloads.poisson_arrivals(30, 3.0, random.Random(11))
    closed = workloads.with_arrivals(poisson, concurrency=4)
    assert closed.arrival == "concurrency" and closed.concurrency == 4 and closed.rate is None
    assert all(r.arrival_s is None for r in closed.requests)
    assert [r.arrival_s for r in workloads.with_arrivals(w, rate=3.0).requests] == \
        workloads.poisson_arrivals(30, 3.0, random.Random(w.seed))
    assert [r.arrival_s for r in workloads.with_arrivals(w, rate=3.0, seed=0).requests] == \
        workloads.poisson_arrivals(30, 3.0, random.Random(0))  # seed 0 is a seed, not "none given"
    with pytest.raises(ValueError, match=r"concurrency|rate"):
        workloads.with_arrivals(w)
    with pytest.raises(ValueError, match=r"concurrency|rate"):
        workloads.with_arrivals(w, concurrency=2, rate=1.0)
    with pytest.raises(ValueError, match="concurrency"):
        workloads.with_arrivals(w, concurrency=0)


@pytest.mark.points(1)
def test_jsonl_round_trip_and_errors_name_the_line(tokenizer, tmp_path):
    w = workloads.with_arrivals(workloads.multi_turn_workload(tokenizer, 2, 2, 6, 4, seed=1), rate=2.0)
    path = workloads.save_jsonl(w, tmp_path / "w.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + len(w.requests)
    assert json.loads(lines[0])["requests"] == len(w.requests) and "prompt" not in json.loads(lines[0])
    assert workloads.load_jsonl(path) == w

    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], lines[1], "{not json", *lines[3:]]) + "\n")
    with pytest.raises(workloads.WorkloadError, match="line 3"):
        workloads.load_jsonl(broken)
    # a blank line is skipped but still counted: the error names the line as an editor numbers it
    broken.write_text("\n".join([lines[0], "", lines[1], "{not json", *lines[3:]]) + "\n")
    with pytest.raises(workloads.WorkloadError, match="line 4"):
        workloads.load_jsonl(broken)
    bad = json.loads(lines[2]) | {"max_tokens": 0}
    broken.write_text("\n".join([lines[0], lines[1], json.dumps(bad), *lines[3:]]) + "\n")
    with pytest.raises(workloads.WorkloadError, match=r"line 3.*max_tokens"):
        workloads.load_jsonl(broken)
    broken.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(workloads.WorkloadError, match="requests"):
        workloads.load_jsonl(broken)
    with pytest.raises(workloads.WorkloadError, match="not found"):
        workloads.load_jsonl(tmp_path / "missing.jsonl")


@pytest.mark.points(1)
def test_bad_arguments_name_themselves(tokenizer):
    rng = random.Random(0)
    with pytest.raises(ValueError, match="rate"):
        workloads.poisson_arrivals(5, 0.0, rng)
    with pytest.raises(ValueError, match="rate"):
        workloads.poisson_arrivals(5, -2.0, rng)
    with pytest.raises(ValueError, match="rate"):  # an infinite rate has no gaps to draw: no Poisson process
        workloads.poisson_arrivals(5, math.inf, rng)
    with pytest.raises(ValueError, match="median"):
        workloads.lognormal_lengths(5, 0, 1.0, 1, 10, rng)
    with pytest.raises(ValueError, match="high"):
        workloads.lognormal_lengths(5, 5, 1.0, 10, 3, rng)
    with pytest.raises(ValueError, match="sigma"):
        workloads.lognormal_lengths(5, 5, -1.0, 1, 10, rng)
    with pytest.raises(ValueError, match="output_len"):
        workloads.fixed_workload(tokenizer, 3, 5, 0)
    with pytest.raises(ValueError, match="turns"):
        workloads.multi_turn_workload(tokenizer, 1, 0, 5, 5)
