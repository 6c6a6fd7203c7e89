"""Task 5: the JSON result with its context, the Markdown table, plots, and compare as ratios."""

import dataclasses
import datetime
import math
import subprocess

import pytest

from shared import hardware
from shared.impl import import_lab_module
from shared.paths import ROOT

from .helpers import backend_run, bench_report, report, request, runner, summary_with, workloads

pytestmark = pytest.mark.task(5)


@pytest.mark.points(3)
def test_new_report_records_its_context(monkeypatch):
    """Hardware from shared.hardware, library versions, the git commit and a UTC time."""
    import torch

    workload = workloads.Workload(name="w", kind="fixed", seed=1, requests=[request("r0")])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if head:  # a git checkout (a grading copy is none): the real commit
        made = report.new_report(workload, [backend_run("a", [10.0])], {"repetitions": 1})
        assert made.git_commit and made.git_commit.split("+")[0] == head
    # Anywhere: the commit is what the given git_commit() says, not something else.
    monkeypatch.setattr(import_lab_module("lab05_benchmark", "report"), "git_commit", lambda root=ROOT: "0123abc+dirty")
    made = report.new_report(workload, [backend_run("a", [10.0])], {"repetitions": 1})
    assert made.git_commit == "0123abc+dirty"
    assert made.hardware == dataclasses.asdict(hardware.detect())
    assert made.versions["torch"] == torch.__version__
    assert made.versions["python"] == hardware.detect().python
    created = datetime.datetime.fromisoformat(made.created)
    assert created.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()) < 120
    assert made.config == {"repetitions": 1} and made.workload == workload and not made.interrupted


@pytest.mark.scaffold
def test_result_files_round_trip_and_bad_files_are_named(tmp_path):
    made = bench_report([backend_run("a", [10.0, 12.0]), runner.BackendRun(backend="b", status="skipped",
                                                                            reason="vllm: not installed")])
    path = report.save_report(made, tmp_path / "deep" / "r.json")
    assert report.load_report(path) == made
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(report.ReportError, match=r"bad.json"):
        report.load_report(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(report.ReportError, match=r"other.json"):
        report.load_report(tmp_path / "other.json")
    with pytest.raises(report.ReportError, match=r"missing.json"):
        report.load_report(tmp_path / "missing.json")


@pytest.mark.points(3)
def test_figure_is_the_median_over_repetitions():
    run = backend_run("a", [60.0, 10.0, 20.0], ttft_ms=5.0)  # median 20, mean 30
    assert report.figure(run, "output_throughput") == 20.0
    assert report.figure(backend_run("b", [10.0, 40.0]), "output_throughput") == 25.0
    assert report.figure(run, "ttft.median_ms") == 5.0
    assert report.figure(run, "ttft.p99") == 5.0
    assert report.figure(run, "e2el.mean_ms") == pytest.approx(5.0 + 30 * 2.0)
    assert report.figure(run, "failed") == 0
    assert report.figure(backend_run("c", [1.0], peak_mib=300.0), "peak_rss_mib") == pytest.approx(300.0)
    assert report.figure(runner.BackendRun(backend="s", status="skipped"), "output_throughput") is None
    with pytest.raises(ValueError, match="bogus"):
        report.figure(run, "bogus")
    with pytest.raises(ValueError, match=r"ttft.p42"):
        report.figure(run, "ttft.p42")


def parse_table(text: str) -> list[list[str]]:
    rows = [line for line in text.strip().splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows]


@pytest.mark.points(3)
def test_markdown_table_has_a_row_per_run():
    runs = [backend_run("vllm", [1234.5, 1300.0], concurrency=8), backend_run("vllm", [300.0], concurrency=1),
            runner.BackendRun(backend="llama.cpp", status="skipped", reason="needs llama-cpp-python | gguf")]
    rows = parse_table(report.markdown_table(bench_report(runs)))
    header, separator, body = rows[0], rows[1], rows[2:]
    assert header[0] == "backend" and header[1:] == [label for label, _, _ in report.FIGURES]
    # a Markdown table's delimiter row has one cell per header cell (GFM), or it is no table
    assert len(separator) == len(header) and all(set(cell) <= set("-: ") and "-" in cell for cell in separator)
    assert [row[0] for row in body] == ["vllm @c8", "vllm @c1", "llama.cpp"]
    assert all(len(row) == len(header) for row in body)
    for row, run in zip(body[:2], runs):
        assert row[1:] == [report.format_value(report.figure(run, key)) for _, key, _ in report.FIGURES]
    assert body[0][1] == "1,267"
    # a '|' in a reason must not open a new cell: the row keeps the header's cells
    assert "skipped" in body[2][1] and "needs llama-cpp-python" in body[2][1] and "gguf" in body[2][1]


@pytest.mark.points(3)
def test_compare_gives_ratios_and_directions():
    before = bench_report([backend_run("a", [100.0], ttft_ms=20.0, peak_mib=400.0),
                           backend_run("only-before", [5.0])])
    after = bench_report([backend_run("a", [150.0], ttft_ms=30.0, peak_mib=400.0),
                          backend_run("only-after", [5.0])])
    changes = {c.figure: c for c in report.compare(before, after)}
    assert {c.run for c in changes.values()} == {"a @c8"}
    assert [c.figure for c in report.compare(before, after)] == [
        label for label, key, _ in report.FIGURES if report.figure(before.runs[0], key) is not None]
    out = changes["output tok/s"]
    assert (out.before, out.after, out.ratio, out.better) == (100.0, 150.0, 1.5, True)
    ttft = changes["TTFT p50 ms"]
    assert ttft.ratio == pytest.approx(1.5), f"TTFT 1.5 times as long is a ratio of 1.5, got {ttft.ratio}"
    assert ttft.better is False, "a longer TTFT is worse: better must be False"
    assert changes["peak RSS MiB"].ratio == 1.0 and changes["peak RSS MiB"].better is None
    assert changes["failed"].ratio == 1.0  # 0 / 0
    worse = bench_report([backend_run("a", [100.0])])
    worse.runs[0].repetitions[0].summary = summary_with(100.0, failed=3)
    failed = {c.figure: c for c in report.compare(before, worse)}["failed"]
    assert math.isinf(failed.ratio), f"failures from 0 to 3 is an infinite ratio, got {failed.ratio}"
    assert failed.better is False, "more failures is worse: better must be False"


@pytest.mark.points(3)
def test_plots_are_written_as_png(tmp_path, model, tokenizer, model_dir):
    """A real measured report (transformers at two concurrencies) gives four readable PNG plots."""
    import matplotlib.image

    from .helpers import backends

    workload = workloads.fixed_workload(tokenizer, 4, 8, 4, seed=2)
    backend = backends.TransformersBackend(model_dir, batch_size=2, model=model, tokenizer=tokenizer)
    runs = [runner.run_benchmark(backend, workload, warmup=0, concurrency=c) for c in (1, 2)]
    made = report.new_report(workload, runs)
    paths = report.write_plots(made, tmp_path)
    assert sorted(p.name for p in paths) == ["memory.png", "throughput.png", "tpot.png", "ttft.png"]
    for path in paths:
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 100, "the plot must be more than 100 pixels high"
        assert image.shape[1] > 100, "the plot must be more than 100 pixels wide"
        assert path.stat().st_size < 200_000
    text = report.report_markdown(made, paths, "")
    assert "![throughput](throughput.png)" in text and "| transformers:2 @c1 |" in text
