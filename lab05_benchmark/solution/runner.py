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
    # BEGIN SOLUTION task 4: send each request when its time, a free slot and the turn it follows allow; record its events; time out, count failures, and survive Ctrl-C (README task 4).
    # HINT task 4 level 1: run_once is the open/closed-loop client of vllm bench serve: read README task 4 and
    #   the benchmark function of vllm/benchmarks/serve.py (its semaphore for --max-concurrency, get_request).
    #   The given _InFlight and _record hold and update one request's result; your loop decides when each
    #   request goes and when it ends.
    # HINT task 4 level 2: a request may go only when all three hold: its arrival time has come (relative to the
    #   start), fewer than concurrency requests are in flight, and the request named in after has finished
    #   (successfully or not). An add that raises fails that request only. A request past its deadline is
    #   aborted and failed as timed out. Duration runs from the first send to the last event (never 0). On
    #   KeyboardInterrupt, abort what is in flight, leave it out of the results, and return interrupted=True.
    #   Check timeout_s, concurrency, and that every after names a request of this run, before sending anything.
    # HINT task 4 level 3: keep pending requests, an id -> _InFlight dict and the set of finished ids. Loop
    #   while either is non-empty: send every request that may go (in order; stop at the concurrency limit);
    #   step the backend if anything is in flight and feed each event to _record, finishing the request when it
    #   says so; abort and finish what passed its deadline; sleep a millisecond when only waiting for an
    #   arrival. Call on_done for each finished result.
    check_at_least("timeout_s", timeout_s, 0.0)
    if concurrency is not None:
        check_at_least("concurrency", concurrency, 1)
    known = {request.id for request in requests}
    for request in requests:
        if request.after is not None and request.after not in known:
            raise ValueError(f"request {request.id}: after={request.after!r} names no request of this run")
    pending = list(requests)
    in_flight: dict[str, _InFlight] = {}
    finished_ids: set[str] = set()
    results: list[RequestResult] = []
    t0 = clock()
    last = t0
    interrupted = False

    def finish(flight: _InFlight) -> None:
        finished_ids.add(flight.result.id)
        results.append(flight.result)
        if on_done is not None:
            on_done(flight.result)

    try:
        while pending or in_flight:
            now = clock()
            for request in list(pending):
                if concurrency is not None and len(in_flight) >= concurrency:
                    break
                if request.arrival_s is not None and now - t0 < request.arrival_s:
                    continue
                if request.after is not None and request.after not in finished_ids:
                    continue
                pending.remove(request)
                flight = _InFlight(request, clock())
                flight.deadline = flight.result.start_s + timeout_s
                try:
                    backend.add(request)
                except Exception as error:  # one bad request must not end the run
                    flight.result.success, flight.result.error = False, f"{type(error).__name__}: {error}"
                    finish(flight)
                    continue
                in_flight[request.id] = flight
            for event in backend.step() if in_flight else []:
                flight = in_flight.get(event.request_id)
                if flight is not None and _record(flight, event):
                    finish(in_flight.pop(event.request_id))
                last = max(last, event.time_s)
            now = clock()
            for request_id, flight in list(in_flight.items()):
                if now > flight.deadline:
                    backend.abort(request_id)
                    flight.result.success = False
                    flight.result.error = f"timed out after {timeout_s:g} s"
                    finish(in_flight.pop(request_id))
                    last = max(last, now)
            if not in_flight and pending:
                time.sleep(0.001)  # waiting for an arrival time: don't spin at full speed
    except KeyboardInterrupt:
        interrupted = True
        for request_id in list(in_flight):
            with contextlib.suppress(Exception):  # stopping must not fail
                backend.abort(request_id)
    return results, max(last - t0, 1e-9), interrupted
    # END SOLUTION


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
