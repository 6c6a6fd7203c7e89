"""Task 6: choose: a short written comparison in which every sentence is backed by a measured number.

Benchmark write-ups go wrong in two ways: they crown a winner on a difference smaller than the
noise, and they explain with mechanisms the numbers never showed. Here the text is generated
from the result: a backend "wins" a figure only when it is better by more than ``margin`` (10 %
by default: these machines are noisy) *and*, when there are several repetitions, its worst
repetition beats the other's best. Otherwise the sentence says there is no clear winner. Each
sentence quotes the numbers it rests on, and names a mechanism only where the backends differ in
it (continuous vs static batching, prefix caching on a workload that shares prefixes,
quantized weights for memory).

Readings: docs/05 (when it lands); any benchmark write-up of vLLM against TGI or llama.cpp, with
an eye for which claims its numbers support.
"""

from __future__ import annotations

import statistics

from pydantic import BaseModel

from .report import BenchReport, format_value, run_label
from .runner import BackendRun

#: (figure key, what it is called in a sentence, unit, higher is better)
CHOICE_FIGURES = [
    ("output_throughput", "output throughput", "tok/s", True),
    ("ttft.median_ms", "median time to first token", "ms", False),
    ("tpot.median_ms", "median time per output token", "ms", False),
    ("peak_rss_mib", "peak memory", "MiB", False),
]


class Claim(BaseModel):
    """One sentence of the comparison and the numbers behind it."""

    figure: str
    load: str
    winner: str | None  # None: no clear winner
    other: str
    winner_value: float
    other_value: float
    sentence: str


def figure_values(run: BackendRun, key: str) -> list[float]:
    """The figure ``key`` of each repetition of ``run`` (peak memory: one value for the run)."""
    from .report import figure

    if key == "peak_rss_mib":
        value = figure(run, key)
        return [] if value is None else [value]
    values = []
    for repetition in run.repetitions:
        if repetition.summary is not None:
            single = run.model_copy(update={"repetitions": [repetition]})
            value = figure(single, key)
            if value is not None:
                values.append(value)
    return values


def beats(a: list[float], b: list[float], higher_is_better: bool, margin: float = 0.10) -> bool:
    """Whether measurements ``a`` clearly beat measurements ``b``.

    True when the median of ``a`` is better than the median of ``b`` by more than ``margin``
    (higher: ``med_a > med_b * (1 + margin)``; lower: ``med_a * (1 + margin) < med_b``) and, when
    both have at least 2 values, the worst of ``a`` is better than the best of ``b``.
    Empty lists never beat and are never beaten.
    """
    # BEGIN SOLUTION task 6: whether measurements a clearly beat b: a better median by more than the margin and, with repetitions on both sides, no overlap (README task 6).
    # HINT task 6 level 1: task 6 must never claim a winner the numbers do not support: read README task 6
    #   ('Choose') and docs/05 §6. A Hypothesis test generates random results, so every edge (empty lists,
    #   single values, equal medians, lower-is-better figures) is tried.
    # HINT task 6 level 2: 'better' flips with higher_is_better, and so does which end of each list is
    #   its worst; the margin multiplies the side that must be exceeded, as the docstring writes. The no-overlap
    #   test applies only when both sides have at least 2 values. Empty lists are never a win, either way round.
    # HINT task 6 level 3: medians of a and b (statistics.median); clear = the docstring's inequality for
    #   the direction; separated = a's worst beats b's best (min/max swap with the direction); return clear, and
    #   separated too when both have 2 or more values.
    if not a or not b:
        return False
    med_a, med_b = statistics.median(a), statistics.median(b)
    if higher_is_better:
        clear = med_a > med_b * (1 + margin)
        separated = min(a) > max(b)
    else:
        clear = med_a * (1 + margin) < med_b
        separated = max(a) < min(b)
    if len(a) >= 2 and len(b) >= 2:
        return clear and separated
    return clear
    # END SOLUTION


FEATURE_REASONS = {
    "continuous_batching": "it adds requests to the running batch as they arrive (continuous batching)",
    "static_batching": "it runs several requests per forward pass (static batching)",
    "prefix_caching": "it re-uses the KV cache of the prefix the prompts share (prefix caching)",
    "quantized": "its weights are quantized",
}


def reason(winner: BackendRun, other: BackendRun, key: str, workload_kind: str) -> str | None:
    """A mechanism that explains ``winner`` beating ``other`` on ``key``, or None: only a feature
    the winner has and the other lacks, and only where it can matter: batching for throughput
    and TPOT at a load above one request at a time; prefix caching for TTFT or throughput on a
    ``shared_prefix`` or ``multi_turn`` workload; quantization for memory."""
    # BEGIN SOLUTION task 6: the mechanism that can explain winner beating other on this figure and workload, or None (README task 6; the docstring's conditions).
    # HINT task 6 level 2: only a feature the winner has and the loser lacks can be the reason; each
    #   also needs its condition: batching only at a load above one request at a time (a Poisson rate, or
    #   concurrency > 1) and for output throughput or median TPOT; prefix caching only on shared_prefix or
    #   multi_turn, for median TTFT or output throughput; quantization only for peak memory. Check features in
    #   FEATURE_REASONS' order and return the first that fits.
    # HINT task 6 level 3: extra = winner's features minus other's; busy = the winner ran at a rate or
    #   with concurrency above 1; for each feature of FEATURE_REASONS in order that is in extra and whose
    #   condition holds, return its sentence; else None.
    extra = set(winner.features) - set(other.features)
    busy = winner.rate is not None or (winner.concurrency or 1) > 1
    for feature in FEATURE_REASONS:
        if feature not in extra:
            continue
        if feature in ("continuous_batching", "static_batching") and busy and key in ("output_throughput",
                                                                                     "tpot.median_ms"):
            return FEATURE_REASONS[feature]
        if feature == "prefix_caching" and workload_kind in ("shared_prefix", "multi_turn") and key in (
                "ttft.median_ms", "output_throughput"):
            return FEATURE_REASONS[feature]
        if feature == "quantized" and key == "peak_rss_mib":
            return FEATURE_REASONS[feature]
    return None
    # END SOLUTION


def _load(run: BackendRun) -> str:
    if run.rate is not None:
        return f"{run.rate:g} requests/s (Poisson)"
    return f"concurrency {run.concurrency}" if run.concurrency is not None else "the workload's own load"


def claims(report: BenchReport, margin: float = 0.10) -> list[Claim]:
    """For each load (runs grouped by concurrency / rate) and each of :data:`CHOICE_FIGURES`: the
    best run (by median) against every other run of that load for throughput, against the
    runner-up for the other figures, one :class:`Claim` each, with a
    sentence quoting both values, their ratio and, when :func:`beats` says so, the winner and
    :func:`reason`; else a sentence saying there is no clear winner."""
    groups: dict[str, list[BackendRun]] = {}
    for run in report.runs:
        if run.summaries():
            groups.setdefault(_load(run), []).append(run)
    out = []
    for load, runs in groups.items():
        if len(runs) < 2:
            continue
        for key, name, unit, higher in CHOICE_FIGURES:
            measured = [(run, figure_values(run, key)) for run in runs]
            measured = [(run, values) for run, values in measured if values]
            if len(measured) < 2:
                continue
            ordered = sorted(measured, key=lambda rv: statistics.median(rv[1]), reverse=higher)
            best, best_values = ordered[0]
            # throughput: the best against every other; the rest: against the runner-up only
            rivals = ordered[1:] if key == "output_throughput" else ordered[1:2]
            for other, other_values in rivals:
                out.append(_claim(report, load, key, name, unit, higher, margin,
                                  best, best_values, other, other_values, runs))
    return out


def _family(run: BackendRun) -> str:
    """The backend a run comes from, without its options: ``vllm:no-prefix-cache`` -> ``vllm``."""
    return run.backend.split(":", 1)[0]


def _isolated(feature_reason: str, best: BackendRun, other: BackendRun, runs: list[BackendRun]) -> bool:
    """Whether this comparison can credit the feature behind ``feature_reason``: not when another
    run of the loser's own backend, at this load, has that feature too. Then the winner's lead over
    the loser is not the feature's doing (``engine`` over ``vllm:no-prefix-cache`` while ``vllm``
    ran with prefix caching): the feature's effect is the comparison within that backend."""
    features = [name for name, text in FEATURE_REASONS.items() if text == feature_reason]
    return not any(run is not best and run is not other and _family(run) == _family(other)
                   and set(features) & set(run.features) for run in runs)


def _claim(report: BenchReport, load: str, key: str, name: str, unit: str, higher: bool, margin: float,
           best: BackendRun, best_values: list[float], other: BackendRun, other_values: list[float],
           runs: list[BackendRun] | None = None) -> Claim:
    a, b = statistics.median(best_values), statistics.median(other_values)
    a_text, b_text = f"{format_value(a)} {unit}", f"{format_value(b)} {unit}"
    reps = f" over {min(len(best_values), len(other_values))} runs" if min(len(best_values), len(other_values)) > 1 else ""
    if beats(best_values, other_values, higher, margin):
        ratio = a / b if higher else b / a
        comparative = "higher" if higher else "lower"
        why = reason(best, other, key, report.workload.kind)
        if why and not _isolated(why, best, other, runs or []):
            why = None
        sentence = (f"At {load}, {run_label(best)} has a {comparative} {name} than {run_label(other)}: "
                    f"{a_text} against {b_text} ({ratio:.2f}×{reps})"
                    + (f", because {why}." if why else "."))
        return Claim(figure=key, load=load, winner=run_label(best), other=run_label(other),
                     winner_value=a, other_value=b, sentence=sentence)
    apart = (a > b * (1 + margin)) if higher else (a * (1 + margin) < b)
    if apart:  # the medians are far apart, but some runs of one reach into the other's
        spread = (f"the runs overlap ({format_value(min(best_values))}-{format_value(max(best_values))} against "
                  f"{format_value(min(other_values))}-{format_value(max(other_values))} {unit})")
    else:
        spread = f"within the {margin:.0%} noise margin"
    sentence = (f"At {load}, {run_label(best)} and {run_label(other)} show no clear difference in {name}: "
                f"{a_text} against {b_text}{reps}; {spread}.")
    return Claim(figure=key, load=load, winner=None, other=run_label(other), winner_value=a, other_value=b,
                 sentence=sentence)


def write_choice(report: BenchReport, margin: float = 0.10) -> str:
    """The written comparison in Markdown: a heading, one bullet per claim, and a closing line
    saying the figures come from one machine (with its core count) and how noisy that is."""
    found = claims(report, margin)
    if not found:
        return "## Which backend?\n\nFewer than two backends were measured at the same load: nothing to compare.\n"
    cores = report.hardware.get("logical_cores", "?")
    lines = ["## Which backend?", ""] + [f"- {c.sentence}" for c in found] + [
        "", f"These figures come from one run on this machine ({cores} cores, "
            f"{len(report.workload.requests)} requests); a difference under {margin:.0%} is treated as noise.", ""]
    return "\n".join(lines)
