"""Task 4: the runner: concurrency, arrivals, dependencies, timeouts, failures, warm-up, Ctrl-C."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.paths import ROOT

from .helpers import ScriptedBackend, error_server, request, runner, workloads

pytestmark = pytest.mark.task(4)


@pytest.mark.points(1.5)
@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_is_respected_and_every_request_measured(concurrency):
    backend = ScriptedBackend()
    requests = [request(f"r{i}", max_tokens=3 + i % 4) for i in range(10)]
    results, duration, interrupted = runner.run_once(backend, requests, concurrency=concurrency)
    assert not interrupted
    assert backend.max_in_flight == concurrency
    assert sorted(r.id for r in results) == sorted(r.id for r in requests)
    for r in results:
        assert r.success, f"request {r.id} must succeed"
        assert r.output_len == 3 + int(r.id[1:]) % 4 == len(r.chunk_times_s), (
            f"request {r.id} must stream one chunk per token, max_tokens of them"
        )
        assert r.start_s <= r.chunk_times_s[0]
    assert duration >= max(r.chunk_times_s[-1] for r in results) - min(r.start_s for r in results) - 1e-6
    assert [r.id for r, _ in zip(requests, range(concurrency))] == [rid for rid, _ in backend.added[:concurrency]]


@pytest.mark.points(1)
def test_arrival_times_are_kept():
    """A request is not sent before its arrival time; with no concurrency limit, early ones overlap."""
    backend = ScriptedBackend()
    arrivals = [0.0, 0.05, 0.06, 0.2]
    requests = [request(f"a{i}", max_tokens=2, arrival_s=t) for i, t in enumerate(arrivals)]
    results, _, _ = runner.run_once(backend, requests)
    sent = dict(backend.added)
    t0 = sent["a0"]
    for r in requests:
        assert sent[r.id] - t0 >= r.arrival_s - 0.005
        assert sent[r.id] - t0 < r.arrival_s + 0.1
    assert len(results) == 4


@pytest.mark.points(1.5)
def test_a_turn_waits_for_the_turn_before():
    """``after``: turn 2 is sent only once turn 1 finished; other conversations go meanwhile."""
    backend = ScriptedBackend()
    requests = [request("c0t0", 5), request("c0t1", 2, after="c0t0"), request("c1t0", 2)]
    results, _, _ = runner.run_once(backend, requests, concurrency=4)
    by_id = {r.id: r for r in results}
    assert by_id["c0t1"].start_s >= by_id["c0t0"].chunk_times_s[-1]
    assert dict(backend.added)["c1t0"] < by_id["c0t0"].chunk_times_s[-1]
    with pytest.raises(ValueError, match="nope"):
        runner.run_once(ScriptedBackend(), [request("x", after="nope")])


@pytest.mark.points(0.5)
def test_arrivals_out_of_order_and_the_runs_wall_clock_duration():
    """A request listed after one that is not due yet is still sent at its own arrival time (a
    hand-written workload need not be sorted); the run's duration is its wall-clock time (vLLM's
    ``benchmark_duration``), not the sum of the requests' latencies when they overlap."""
    backend = ScriptedBackend()
    results, _, _ = runner.run_once(backend, [request("late", 2, arrival_s=0.3), request("now", 2, arrival_s=0.0)])
    sent = dict(backend.added)
    assert sent["late"] - sent["now"] >= 0.25, "the request due at 0 waited for the one listed before it"
    assert len(results) == 2
    slow = ScriptedBackend(step_s=0.1)  # two requests of 5 tokens side by side: about 0.5 s of wall clock
    results, duration, _ = runner.run_once(slow, [request("p", 5), request("q", 5)])
    span = max(r.chunk_times_s[-1] for r in results) - min(r.start_s for r in results)
    assert span - 1e-6 <= duration < span + 0.2 < sum(r.chunk_times_s[-1] - r.start_s for r in results)
    before = time.perf_counter()
    results, _, _ = runner.run_once(ScriptedBackend(), [request("c", 2)], clock=lambda: time.perf_counter() + 1000.0)
    assert results[0].start_s >= before + 1000.0, (
        f"sends are stamped with the clock given to run_once (here 1000 s ahead), got start_s {results[0].start_s}"
    )


@pytest.mark.points(1.5)
def test_timeouts_abort_and_count():
    """A request that never finishes is aborted after timeout_s and counted; the others complete."""
    backend = ScriptedBackend(hang={"stuck"})
    requests = [request("stuck", 3), request("ok1", 3), request("ok2", 10)]
    started = time.perf_counter()
    results, _, _ = runner.run_once(backend, requests, concurrency=3, timeout_s=1.5)
    assert time.perf_counter() - started < 10
    by_id = {r.id: r for r in results}
    assert not by_id["stuck"].success and "timed out" in by_id["stuck"].error
    assert backend.aborted == ["stuck"]
    assert by_id["ok1"].success and by_id["ok2"].success and by_id["ok2"].output_len == 10


@pytest.mark.points(0.5)
def test_a_timeout_counts_from_the_requests_own_send():
    """timeout_s is per request, from its send: a request that arrives (Poisson) after timeout_s
    has passed since the start of the run still gets its full timeout_s."""
    backend = ScriptedBackend()
    requests = [request("early", 2, arrival_s=0.0), request("late", 2, arrival_s=0.6)]
    results, _, _ = runner.run_once(backend, requests, timeout_s=0.4)
    by_id = {r.id: r for r in results}
    assert by_id["early"].success and by_id["late"].success, [(r.id, r.error) for r in results]
    assert by_id["late"].output_len == 2 and backend.aborted == []


@pytest.mark.points(0.5)
def test_without_a_concurrency_limit_arrivals_alone_decide():
    """concurrency=None: no limit but the arrival times, so a request that arrives while an earlier
    one is still running is sent at its arrival, not after the earlier one ends."""
    backend = ScriptedBackend(hang={"slow"})
    requests = [request("slow", 3, arrival_s=0.0), request("next", 2, arrival_s=0.01)]
    results, _, _ = runner.run_once(backend, requests, timeout_s=1.0)
    sent = dict(backend.added)
    by_id = {r.id: r for r in results}
    assert sent["next"] - sent["slow"] < 0.5, "sent only once the first request had timed out"
    assert by_id["next"].success and by_id["next"].chunk_times_s[-1] < by_id["slow"].start_s + 1.0
    assert not by_id["slow"].success and backend.max_in_flight == 2


@dataclass
class InterruptedBackend(ScriptedBackend):
    """Ctrl-C arrives inside the ``interrupt_at``-th ``step()`` (KeyboardInterrupt raised there)."""

    interrupt_at: int = 3
    steps: int = 0

    def step(self):
        self.steps += 1
        if self.steps == self.interrupt_at:
            raise KeyboardInterrupt
        return super().step()


@pytest.mark.points(0.5)
def test_ctrl_c_keeps_the_finished_requests_and_leaves_the_rest_out():
    """KeyboardInterrupt in a step: the requests already finished are returned, the ones in
    flight are aborted and left out (they were neither measured nor failed), interrupted is True."""
    backend = InterruptedBackend(hang={"long1", "long2"}, interrupt_at=2)
    requests = [request("quick", 1), request("long1", 5), request("long2", 5),
                request("later", 1, arrival_s=60.0)]  # not sent yet when Ctrl-C comes
    try:
        results, _, interrupted = runner.run_once(backend, requests)
    except KeyboardInterrupt:  # escaping would stop pytest itself rather than fail this test
        pytest.fail("run_once let Ctrl-C (KeyboardInterrupt) escape: it must stop sending, abort the "
                    "requests in flight and return what had finished, with interrupted=True")
    assert interrupted
    assert [(r.id, r.success) for r in results] == [("quick", True)]
    assert sorted(backend.aborted) == ["long1", "long2"]
    assert "later" not in dict(backend.added)


@pytest.mark.points(1.5)
def test_failures_are_counted_not_fatal():
    """An exception from ``add`` and an error event each fail one request; the run goes on."""
    backend = ScriptedBackend(fail_add={"bad_add"}, fail_stream={"bad_stream"})
    requests = [request("bad_add"), request("good", 4), request("bad_stream"), request("good2", 2)]
    results, _, interrupted = runner.run_once(backend, requests, concurrency=2)
    by_id = {r.id: r for r in results}
    assert len(results) == 4, f"a failed request still gives a result: {len(results)} of 4"
    assert not interrupted, "failures must not interrupt the run"
    assert not by_id["bad_add"].success and "cannot take bad_add" in by_id["bad_add"].error
    assert not by_id["bad_stream"].success and by_id["bad_stream"].error == "injected stream error"
    assert by_id["good"].success and by_id["good2"].success


@pytest.mark.points(1)
def test_http_failures_are_counted_in_a_run():
    """Against a server that answers 500: every request is a counted failure with the server's message."""
    from .helpers import backends, metrics

    with error_server(500) as url:
        backend = backends.HTTPBackend(url, model="m", timeout_s=10)
        requests = [request(f"e{i}") for i in range(4)]
        results, duration, _ = runner.run_once(backend, requests, concurrency=2)
        backend.close()
    summary = metrics.summarize(results, duration) if results else None
    assert summary.failed == 4, f"every HTTP failure must be counted as failed, got {summary.failed} of 4"
    assert summary.completed == 0, f"no request completed, got {summary.completed}"
    assert list(summary.errors) == ["HTTP 500: injected failure"]


@pytest.mark.points(1)
def test_run_benchmark_warms_up_and_repeats(model, tokenizer, model_dir):
    """On transformers: warm-up requests are not in the results; each repetition measures the whole
    workload; memory is recorded."""
    from .helpers import backends

    backend = backends.TransformersBackend(model_dir, batch_size=2, model=model, tokenizer=tokenizer)
    workload = workloads.fixed_workload(tokenizer, 4, 8, 5, seed=1)
    run = runner.run_benchmark(backend, workload, warmup=2, repetitions=2, concurrency=2)
    assert run.status == "ok" and run.concurrency == 2 and len(run.repetitions) == 2
    for repetition in run.repetitions:
        assert sorted(r.id for r in repetition.results) == ["r0", "r1", "r2", "r3"]
        assert repetition.summary.completed == 4, (
            f"all 4 requests of each repetition complete, got {repetition.summary.completed}"
        )
        assert repetition.summary.total_output == 20, (
            f"each repetition generates 4 x 5 = 20 tokens, got {repetition.summary.total_output}"
        )
    assert run.peak_rss_bytes > 50 * 2**20


@pytest.mark.points(2)
def test_ctrl_c_writes_partial_results(tmp_path):
    """``bench.py`` in a subprocess, interrupted with SIGINT mid-run: exit code 130 and a result file
    holding the requests measured so far, marked interrupted."""
    out = tmp_path / "out"
    # A shell that starts a job in the background (`pytest ... &`) ignores SIGINT in it and in its children:
    # give the bench Python's own Ctrl-C handler back, as a terminal's foreground job has it.
    restore_ctrl_c = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                      "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    command = [sys.executable, "-c", restore_ctrl_c, str(ROOT / "lab05_benchmark" / "bench.py"),
               "--backends", "transformers", "--workload", "fixed", "--requests", "600", "--output-len", "16",
               "--input-len", "16", "--concurrency", "1", "--repetitions", "1", "--warmup", "0", "--no-progress",
               "--no-plots", "--threads", "1", "--out", str(out), "--impl", os.environ.get("COURSE_IMPL", "student")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        seen = ""
        while "measuring" not in seen:  # "transformers: ready in 1.2 s, measuring"
            line = process.stderr.readline()
            if not line:
                break  # it ended early: the checks below say why
            seen += line
        time.sleep(2)  # the measured run takes about 10 s on 2 idle cores: a fifth of it is measured by then
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        err = seen + err
    finally:
        if process.poll() is None:
            process.kill()
    unwritten = re.search(r"lab05 task \d+: .*not written yet.*", err)
    if unwritten:  # the run needs earlier tasks: say which, as the other tests do
        raise NotImplementedError(unwritten.group(0))
    assert process.returncode == 130, err[-2000:]
    data = json.loads(Path(out / "result.json").read_text())
    assert data["interrupted"] is True
    run = data["runs"][0]
    assert run["status"] == "interrupted"
    measured = run["repetitions"][0]["results"]
    assert 0 < len(measured) < 600
    assert all(r["output_len"] == 16 for r in measured if r["success"])
