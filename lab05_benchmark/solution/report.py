"""Task 5: the report: a JSON result anyone can re-read, a Markdown table, plots, and comparisons.

A number without its context cannot be trusted or reproduced. The JSON result holds the workload
(every request), the configuration of each backend, the hardware (``shared.hardware``), the
library versions and the git commit, next to every request's timestamps, so that any figure
can be recomputed later. ``compare A.json B.json`` answers "what changed?" as ratios B / A,
which compare across machines better than absolute figures.

Readings: ``vllm bench serve --save-result`` (its JSON); matplotlib's object-oriented API with the
``Agg`` backend (no display needed).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import subprocess
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from shared import hardware
from shared.paths import ROOT

from .runner import BackendRun
from .workloads import Workload

#: The figures the table and ``compare`` show: (label, summary field or latency key, higher is better).
FIGURES: list[tuple[str, str, bool]] = [
    ("output tok/s", "output_throughput", True),
    ("total tok/s", "total_token_throughput", True),
    ("req/s", "request_throughput", True),
    ("TTFT p50 ms", "ttft.median_ms", False),
    ("TTFT p99 ms", "ttft.p99", False),
    ("TPOT p50 ms", "tpot.median_ms", False),
    ("ITL p50 ms", "itl.median_ms", False),
    ("E2EL p50 ms", "e2el.median_ms", False),
    ("failed", "failed", False),
    ("peak RSS MiB", "peak_rss_mib", False),
]


class ReportError(ValueError):
    """A result file that cannot be read (the message names the file)."""


class BenchReport(BaseModel):
    """One benchmark invocation: a workload, several backends."""

    created: str
    workload: Workload
    config: dict[str, Any] = Field(default_factory=dict)
    hardware: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str | None] = Field(default_factory=dict)
    git_commit: str | None = None
    runs: list[BackendRun] = Field(default_factory=list)
    interrupted: bool = False


def git_commit(root: Path = ROOT) -> str | None:
    """The checkout's commit (with ``+dirty`` when files changed), or None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def new_report(workload: Workload, runs: list[BackendRun], config: dict[str, Any] | None = None,
               interrupted: bool = False) -> BenchReport:
    """A :class:`BenchReport` with its context filled in: UTC time (ISO 8601), the hardware
    (``dataclasses.asdict(shared.hardware.detect())``), ``shared.hardware.framework_status()``
    plus the Python version as ``versions``, and :func:`git_commit`."""
    # BEGIN SOLUTION task 5: a BenchReport with its context (UTC time, hardware, versions, git commit) filled in, so any figure can be recomputed later (README task 5).
    # HINT task 5 level 1: task 5 turns runs into a result file, one figure per run, a table and a comparison:
    #   read README task 5 and the BenchReport / BackendRun models at the top of report.py (what a run holds:
    #   repetitions, each with a summary). new_report only gathers what its docstring names, from
    #   shared.hardware.
    # HINT task 5 level 2: created is an ISO 8601 UTC timestamp in seconds; hardware is the detected
    #   report as a dict; versions are the framework status plus 'python'; git_commit may be None outside git.
    #   No config means an empty dict.
    report = hardware.detect()
    versions = dict(hardware.framework_status()) | {"python": report.python}
    return BenchReport(created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       workload=workload, config=config or {}, hardware=dataclasses.asdict(report),
                       versions=versions, git_commit=git_commit(), runs=runs, interrupted=interrupted)
    # END SOLUTION


def save_report(report: BenchReport, path: str | Path) -> Path:
    """Write ``report`` as indented JSON (parents created). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.model_dump_json(indent=1), encoding="utf-8")
    return path


def load_report(path: str | Path) -> BenchReport:
    """Read a result file. Raises :class:`ReportError` naming the file for a missing file, bad
    JSON or a file that is not a benchmark result."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"result file not found: {path}")
    try:
        return BenchReport.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        kind = "not JSON" if first["type"] == "json_invalid" else f"{where}: {first['msg']}"
        raise ReportError(f"{path}: not a benchmark result ({kind})") from None


# --------------------------------------------------------------------------------------------
# Figures, table, comparison


def figure(run: BackendRun, key: str) -> float | None:
    """One figure of a run, as the median over its repetitions' summaries (None when the run has
    no summary). ``key`` is a :class:`Summary` field (``output_throughput``, ``failed`` ...), a
    latency ``'<name>.<stat>'`` with stat ``mean_ms``, ``median_ms``, ``std_ms`` or a percentile
    such as ``p99`` (``'ttft.p99'``), or ``peak_rss_mib`` (the run's peak RSS in MiB).

    Raises:
        ValueError: an unknown key (naming it).
    """
    # BEGIN SOLUTION task 5: one figure of a run, the median over its repetitions, or a ValueError naming an unknown key (README task 5; the docstring's key forms).
    # HINT task 5 level 2: peak memory is one value per run (bytes -> MiB), not per repetition; every
    #   other key is read from each repetition's Summary and the median is taken. A key is unknown when the
    #   Summary has no such number field, no such latency, no such stat, or a percentile that was not computed:
    #   say which part is wrong. A run with no summaries gives None.
    # HINT task 5 level 3: split a latency key at the first dot into name and stat; 'pNN' reads
    #   percentiles_ms['NN'], the three stat names read the LatencyStats field; a plain key is a numeric Summary
    #   attribute (a bool is not a number here). Collect one value per summary; None if there are none, else
    #   their median.
    if key == "peak_rss_mib":
        return None if run.peak_rss_bytes is None else run.peak_rss_bytes / 2**20
    values = []
    for summary in run.summaries():
        if "." in key:
            name, stat = key.split(".", 1)
            if name not in summary.latency:
                raise ValueError(f"unknown figure {key!r}: no latency named {name!r}")
            stats = summary.latency[name]
            if stat.startswith("p"):
                if stat[1:] not in stats.percentiles_ms:
                    raise ValueError(f"unknown figure {key!r}: percentile {stat[1:]} was not computed")
                values.append(stats.percentiles_ms[stat[1:]])
            elif stat in ("mean_ms", "median_ms", "std_ms"):
                values.append(getattr(stats, stat))
            else:
                raise ValueError(f"unknown figure {key!r}: use mean_ms, median_ms, std_ms or pNN")
        else:
            value = getattr(summary, key, None)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"unknown figure {key!r}")
            values.append(float(value))
    if not values:
        return None
    values.sort()
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    # END SOLUTION


def format_value(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def run_label(run: BackendRun) -> str:
    """``backend`` plus its load: ``vllm @c8``, ``engine @2.0/s``, or just the name."""
    if run.rate is not None:
        return f"{run.backend} @{run.rate:g}/s"
    return f"{run.backend} @c{run.concurrency}" if run.concurrency is not None else run.backend


def markdown_table(report: BenchReport) -> str:
    """A Markdown table: one row per run (:func:`run_label`), one column per entry of
    :data:`FIGURES` (values through ``_format``); a skipped or failed run gets one row that says
    its status and reason instead of figures."""
    # BEGIN SOLUTION task 5: a Markdown table with one row per run and one column per FIGURES entry; a run without figures says why (README task 5).
    # HINT task 5 level 3: a header row ('backend' then each label) and a separator with as many
    #   cells; a run with summaries: its label and each figure through format_value; one without: its label,
    #   then 'status: reason' (a '|' inside the reason would break the table) and empty cells for the rest.
    header = "| backend | " + " | ".join(label for label, _, _ in FIGURES) + " |"
    lines = [header, "|" + "---|" * (len(FIGURES) + 1)]
    for run in report.runs:
        if not run.summaries():
            reason = f"{run.status}: {run.reason}".replace("|", "/") if run.reason else run.status
            lines.append(f"| {run_label(run)} | {reason} |" + " |" * (len(FIGURES) - 1))
            continue
        cells = [format_value(figure(run, key)) for _, key, _ in FIGURES]
        lines.append(f"| {run_label(run)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
    # END SOLUTION


class Change(BaseModel):
    """One figure of one run in two results."""

    run: str
    figure: str
    before: float
    after: float
    ratio: float = Field(description="after / before (inf when before is 0 and after is not)")
    better: bool | None = Field(description="True when the change is an improvement, None when equal")


def compare(before: BenchReport, after: BenchReport) -> list[Change]:
    """Every figure of :data:`FIGURES` for every run (matched by :func:`run_label`) present with a
    value in both results, as ratio ``after / before`` (0 / 0 is 1.0; x / 0 is inf) and whether it
    got better (higher is better for throughputs, lower for latencies, failures and memory).
    Runs present in only one result are left out. Order: ``before``'s runs, then FIGURES order."""
    # BEGIN SOLUTION task 5: each FIGURES entry of each run found in both results as a ratio after / before, and whether it improved (README task 5, the docstring's zero cases).
    # HINT task 5 level 2: runs match by run_label, not by position; a figure missing (None) on either
    #   side is left out. 0 / 0 is 1.0 and x / 0 is inf. Equal values are neither better nor worse (None);
    #   otherwise the direction comes from FIGURES' higher-is-better flag.
    later = {run_label(run): run for run in after.runs}
    changes = []
    for run in before.runs:
        other = later.get(run_label(run))
        if other is None:
            continue
        for label, key, higher_is_better in FIGURES:
            a, b = figure(run, key), figure(other, key)
            if a is None or b is None:
                continue
            ratio = 1.0 if a == b else (math.inf if a == 0 else b / a)
            better = None if a == b else (b > a) == higher_is_better
            changes.append(Change(run=run_label(run), figure=label, before=a, after=b, ratio=ratio, better=better))
    return changes
    # END SOLUTION


def compare_markdown(changes: list[Change]) -> str:
    """The changes as a Markdown table with ratios such as ``1.25×`` (better ones marked ✓)."""
    lines = ["| run | figure | before | after | after / before |", "|---|---|---|---|---|"]
    for c in changes:
        mark = {True: " ✓", False: " ✗", None: ""}[c.better]
        ratio = "∞" if math.isinf(c.ratio) else f"{c.ratio:.2f}×"
        lines.append(f"| {c.run} | {c.figure} | {format_value(c.before)} | {format_value(c.after)} | {ratio}{mark} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Plots (given): matplotlib with the Agg backend, one PNG each


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _samples(run: BackendRun, name: str) -> list[float]:
    """Per-request values in ms of ``ttft`` or ``tpot`` over every repetition (successes only)."""
    from .metrics import request_metrics

    values = []
    for repetition in run.repetitions:
        for result in repetition.results:
            if result.success and result.chunk_times_s:
                m = request_metrics(result)
                value = m.ttft_s if name == "ttft" else m.tpot_s
                if value is not None:
                    values.append(value * 1000)
    return values


def write_plots(report: BenchReport, out_dir: str | Path) -> list[Path]:
    """Write ``throughput.png`` (output tok/s against concurrency, one line per backend),
    ``ttft.png`` and ``tpot.png`` (distributions per run, box plots) and ``memory.png`` (peak RSS
    per backend). Returns the paths written (a plot with no data is not written)."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    measured = [run for run in report.runs if run.summaries()]
    paths = []

    by_backend: dict[str, list[tuple[int, float]]] = {}
    for run in measured:
        value = figure(run, "output_throughput")
        if run.concurrency is not None and value is not None:
            by_backend.setdefault(run.backend, []).append((run.concurrency, value))
    if by_backend:
        fig, ax = plt.subplots(figsize=(6, 4))
        for backend, points in sorted(by_backend.items()):
            points.sort()
            ax.plot([c for c, _ in points], [v for _, v in points], marker="o", label=backend)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency (requests in flight)")
        ax.set_ylabel("output tokens / s")
        ax.set_title(f"Throughput against concurrency ({report.workload.name})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / "throughput.png", plt))

    for name, title in (("ttft", "Time to first token"), ("tpot", "Time per output token")):
        data = [(run_label(run), _samples(run, name)) for run in measured]
        data = [(label, values) for label, values in data if values]
        if data:
            fig, ax = plt.subplots(figsize=(7, 0.5 + 0.35 * len(data) + 1.5))
            ax.boxplot([values for _, values in data], orientation="horizontal", showfliers=True)
            ax.set_yticks(range(1, len(data) + 1), [label for label, _ in data], fontsize=7)
            ax.set_xscale("log")
            ax.set_xlabel("ms (log scale)")
            ax.set_title(f"{title} per request ({report.workload.name})")
            ax.grid(True, axis="x", alpha=0.3)
            paths.append(_save(fig, out / f"{name}.png", plt))

    peaks: dict[str, float] = {}
    for run in measured:
        if run.peak_rss_bytes:
            peaks[run.backend] = max(peaks.get(run.backend, 0.0), run.peak_rss_bytes / 2**20)
    if peaks:
        fig, ax = plt.subplots(figsize=(6, 0.5 + 0.35 * len(peaks) + 1.2))
        names = list(peaks)
        ax.barh(names, [peaks[n] for n in names])
        ax.set_xlabel("peak resident memory of the process and its children, MiB")
        ax.set_title("Peak memory per backend (its own process and children)")
        ax.tick_params(axis="y", labelsize=7)
        paths.append(_save(fig, out / "memory.png", plt))
    return paths


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def report_markdown(report: BenchReport, plots: list[Path] | None = None, choice: str = "") -> str:
    """The whole Markdown report: context, the table, the written comparison, the plots."""
    hw = report.hardware
    lines = [f"# Benchmark: {report.workload.name}", "",
             f"{report.created} · commit {report.git_commit or 'unknown'} · "
             f"{hw.get('cpu_model', '?')} ({hw.get('logical_cores', '?')} cores) · "
             f"{len(report.workload.requests)} requests ({report.workload.kind}, {report.workload.arrival})", ""]
    if report.interrupted:
        lines += ["**Interrupted (Ctrl-C): partial results.**", ""]
    lines += [markdown_table(report), ""]
    quality = [run for run in report.runs if "perplexity" in run.config]
    if quality:
        lines += ["| backend | perplexity (llama.cpp, corpus) | file MiB |", "|---|---|---|"]
        seen = set()
        for run in quality:
            if run.backend not in seen:
                seen.add(run.backend)
                size = run.config.get("bytes")
                lines.append(f"| {run.backend} | {run.config['perplexity']:.3f} | "
                             f"{'—' if size is None else f'{size / 2**20:.2f}'} |")
        lines.append("")
    if choice:
        lines += [choice, ""]
    for path in plots or []:
        lines += [f"![{path.stem}]({path.name})", ""]
    return "\n".join(lines)


def to_json(value: Any) -> str:
    """``json.dumps`` for reports printed on the console."""
    return json.dumps(value, indent=1, default=str)
