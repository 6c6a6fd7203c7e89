# Student skeleton for lab05_benchmark: fill in each TODO, then run `course test lab05_benchmark`.
# (Generated from the reference solution by `course stubs`.)
"""Task 4: the runner: send a workload to a backend, stamp every token, survive failures and Ctrl-C.

One run, as ``vllm bench serve`` does it: a request is sent when its arrival time has come
(Poisson) or when fewer than ``concurrency`` requests are in flight (closed loop), and never
before the request it follows (multi-turn) has finished. Each token's arrival is stamped on one
clock (``time.perf_counter``). A request that fails or runs past ``timeout_s`` is aborted and
counted as failed: the run goes on. Ctrl-C (KeyboardInterrupt) stops the run and keeps what was
measured, marked ``interrupted``.

Around runs: warm-up requests first (their figures thrown away: the first calls pay for lazy
initialisation, caches and allocator growth), then ``repetitions`` runs, each summarised, so a
reader sees how much the figures move from run to run.

Readings: ``vllm/benchmarks/serve.py`` (``benchmark``: the semaphore for ``--max-concurrency``,
``get_request`` for arrivals, ``--num-warmups``); rich's ``Progress``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from shared.validation import check_at_least

from .backends import Backend, Event
from .metrics import MemorySampler, RequestResult, Summary, summarize
from .workloads import Request, Workload


class Repetition(BaseModel):
    """One measured pass over the workload."""

    duration_s: float
    results: list[RequestResult]
    summary: Summary | None = None
    interrupted: bool = False


class BackendRun(BaseModel):
    """Everything measured for one backend on one workload at one concurrency."""

    backend: str
    status: str = Field(description="'ok', 'skipped' (with reason), 'failed' (with reason) or 'interrupted'")
    reason: str = ""
    concurrency: int | None = None
    rate: float | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    features: list[str] = Field(default_factory=list)
    repetitions: list[Repetition] = Field(default_factory=list)
    peak_rss_bytes: int | None = None
    peak_gpu_bytes: int | None = None
    start_s: float | None = Field(None, description="seconds the backend took to start (load, compile)")

    def summaries(self) -> list[Summary]:
        return [r.summary for r in self.repetitions if r.summary is not None]


class _InFlight:
    def __init__(self, request: Request, start: float) -> None:
        self.result = RequestResult(id=request.id, prompt_len=request.prompt_len, start_s=start)
        self.deadline = start


def _record(flight: _InFlight, event: Event) -> bool:
    """Add one event to a request's result; True when the request is over."""
    result = flight.result
    if event.error is not None:
        result.success, result.error = False, event.error
        return True
    if event.new_tokens > 0:
        result.chunk_times_s.append(event.time_s)
        result.output_len += event.new_tokens
    if event.finished:
        if event.total_tokens is not None:
            result.output_len = event.total_tokens
        if not result.chunk_times_s:
            result.success, result.error = False, "finished without output tokens"
        return True
    return False


def run_once(backend: Backend, requests: list[Request], *, concurrency: int | None = None, timeout_s: float = 60.0,
             on_done: Callable[[RequestResult], None] | None = None,
             clock: Callable[[], float] = time.perf_counter) -> tuple[list[RequestResult], float, bool]:
    """Send ``requests`` to ``backend`` and measure them.

    Args:
        requests: in order; a request with ``arrival_s`` is sent once ``clock() - t0 >= arrival_s``;
            one with ``after`` only once that request has finished (successfully or not).
        concurrency: at most this many requests in flight (None: no limit beyond arrivals).
        timeout_s: a request still in flight ``timeout_s`` after it was sent is aborted
            (``backend.abort``) and fails with an error saying it timed out.
        on_done: called with each finished (or failed) request's result, for a progress bar.
        clock: the clock to stamp sends with (the backends stamp tokens with ``time.perf_counter``).

    Returns:
        ``(results, duration_s, interrupted)``: the result of every request that was sent (in the
        order they finished), the time from the first send to the last event, and whether a
        KeyboardInterrupt stopped the run (then in-flight requests are aborted and left out).

    An exception from ``backend.add`` fails that request only (its message is the error).
    """
    # TODO(lab05 task 4): send each request when its time, a free slot and the turn it follows allow; record its events; time out, count failures, and survive Ctrl-C (README task 4).
    raise NotImplementedError("lab05 task 4: run_once is not written yet (see lab05_benchmark/README.md, task 4)")


def run_benchmark(backend: Backend, workload: Workload, *, warmup: int = 1, repetitions: int = 1,
                  timeout_s: float = 60.0, concurrency: int | None = None,
                  goodput_ms: dict[str, float] | None = None, progress: bool = False) -> BackendRun:
    """Warm up, then measure ``repetitions`` passes over ``workload`` (given code: it uses
    :func:`run_once` and :func:`summarize`). ``concurrency`` overrides the workload's.
    A KeyboardInterrupt ends it early with ``status='interrupted'`` and what was measured."""
    check_at_least("warmup", warmup, 0)
    check_at_least("repetitions", repetitions, 1)
    limit = concurrency if concurrency is not None else workload.concurrency
    run = BackendRun(backend=backend.name, status="ok", concurrency=limit if workload.arrival != "poisson" else None,
                     rate=workload.rate, config=backend.info(), features=sorted(backend.features))
    warm = [r.model_copy(update={"id": f"warmup-{r.id}", "arrival_s": None, "after": None})
            for r in workload.requests[:warmup]]
    bar = _Bar(progress, backend.name, len(warm) + repetitions * len(workload.requests))
    with bar, MemorySampler() as memory:
        if warm:
            _, _, interrupted = run_once(backend, warm, concurrency=limit, timeout_s=timeout_s, on_done=bar.advance)
            if interrupted:
                run.status = "interrupted"
        for _ in range(repetitions if run.status == "ok" else 0):
            results, duration, interrupted = run_once(backend, workload.requests, concurrency=limit,
                                                      timeout_s=timeout_s, on_done=bar.advance)
            summary = summarize(results, duration, goodput_ms) if results else None
            run.repetitions.append(Repetition(duration_s=duration, results=results, summary=summary,
                                              interrupted=interrupted))
            if interrupted:
                run.status = "interrupted"
                break
    run.peak_rss_bytes, run.peak_gpu_bytes = memory.peak_rss_bytes, memory.peak_gpu_bytes
    return run


class _Bar:
    """A rich progress bar (or nothing), advanced once per finished request."""

    def __init__(self, enabled: bool, name: str, total: int) -> None:
        self.progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn(f"{name:<22}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                                     transient=False)
            self.task = self.progress.add_task(name, total=total, failed=0)
        self.failed = 0

    def advance(self, result: RequestResult) -> None:
        if self.progress is not None:
            self.failed += not result.success
            self.progress.update(self.task, advance=1, failed=self.failed)

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
