"""What several lab05 test files share: the modules under test, small servers, builders of results."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from shared.impl import lab_module

LAB = "lab05_benchmark"
workloads = lab_module(LAB, "workloads")
metrics = lab_module(LAB, "metrics")
backends = lab_module(LAB, "backends")
runner = lab_module(LAB, "runner")
report = lab_module(LAB, "report")
choose = lab_module(LAB, "choose")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float, process=None) -> None:
    """Wait until something listens on ``port`` (or the process dies)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {seconds} s")


@contextmanager
def error_server(status: int = 500, body: str = '{"error": {"message": "injected failure"}}',
                 delay_s: float = 0.0) -> Iterator[str]:
    """A fault injector on a free loopback port: answers every request with ``status`` (after
    ``delay_s``). Not an oracle: it only gives the HTTP backend failures to count."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            time.sleep(delay_s)
            data = body.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def streaming_server(events: list[str], gap_s: float) -> Iterator[str]:
    """A server on a free loopback port that answers every POST with ``events`` as server-sent
    events (``data: ...`` lines from :func:`sse`), sleeping ``gap_s`` before each event that
    carries ``choices`` and sending the others (usage, ``[DONE]``) at once. The delays are known,
    so a client that stamps chunks as they arrive sees TTFT ~ ``gap_s`` and the end-to-end latency
    ~ ``gap_s`` x the number of chunks; one that reads the whole body first sees them equal."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()  # HTTP/1.0 and no Content-Length: the body ends when the connection closes
                for event in events:
                    if '"choices": [{' in event:
                        time.sleep(gap_s)
                    self.wfile.write((event + "\n\n").encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def request(rid: str, max_tokens: int = 4, prompt: str = "The cat", arrival_s=None, after=None):
    return workloads.Request(id=rid, prompt=prompt, prompt_len=3, max_tokens=max_tokens, arrival_s=arrival_s,
                             after=after)


def result(rid: str, start: float, chunks: list[float], output_len: int | None = None, prompt_len: int = 5,
           success: bool = True, error: str = ""):
    return metrics.RequestResult(id=rid, prompt_len=prompt_len, start_s=start, chunk_times_s=chunks,
                                 output_len=len(chunks) if output_len is None else output_len,
                                 success=success, error=error)


@dataclass
class ScriptedBackend:
    """A test double for the *runner* tests: request ``i`` produces one token per step after
    ``delay_steps``; ids in ``hang`` never finish; ids in ``fail_add`` raise in ``add``; ids in
    ``fail_stream`` end with an error event. It records what the runner did to it."""

    hang: set[str] = field(default_factory=set)
    fail_add: set[str] = field(default_factory=set)
    fail_stream: set[str] = field(default_factory=set)
    step_s: float = 0.002
    name: str = "scripted"
    features: set[str] = field(default_factory=set)
    active: dict[str, list[int]] = field(default_factory=dict)
    added: list[tuple[str, float]] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    max_in_flight: int = 0

    def add(self, request) -> None:
        if request.id in self.fail_add:
            raise RuntimeError(f"cannot take {request.id}")
        self.added.append((request.id, time.perf_counter()))
        self.active[request.id] = [0, request.max_tokens]
        self.max_in_flight = max(self.max_in_flight, len(self.active))

    def step(self):
        Event = backends.Event
        time.sleep(self.step_s)
        now = time.perf_counter()
        events = []
        for rid, state in list(self.active.items()):
            if rid in self.hang:
                continue
            if rid in self.fail_stream:
                del self.active[rid]
                events.append(Event(rid, now, finished=True, error="injected stream error"))
                continue
            state[0] += 1
            done = state[0] >= state[1]
            events.append(Event(rid, now, 1, [7], finished=done))
            if done:
                del self.active[rid]
        return events

    def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)
        self.active.pop(request_id, None)

    def close(self) -> None:
        pass

    def info(self) -> dict:
        return {"name": self.name}


def summary_with(output_throughput: float, ttft_ms: float = 10.0, tpot_ms: float = 2.0, failed: int = 0):
    """A Summary with chosen figures (the others consistent and unremarkable)."""
    stats = metrics.LatencyStats
    lat = {name: stats(mean_ms=v, median_ms=v, std_ms=0.0, percentiles_ms={"90": v, "99": v})
           for name, v in (("ttft", ttft_ms), ("tpot", tpot_ms), ("itl", tpot_ms), ("e2el", ttft_ms + 30 * tpot_ms))}
    return metrics.Summary(completed=10, failed=failed, duration_s=1.0, total_input=100,
                           total_output=int(output_throughput), request_throughput=10.0,
                           output_throughput=output_throughput, total_token_throughput=output_throughput + 100,
                           latency=lat)


def backend_run(name: str, throughputs: list[float], concurrency: int | None = 8, features=(),
                ttft_ms: float = 10.0, tpot_ms: float = 2.0, peak_mib: float | None = 500.0, rate=None):
    """A BackendRun with one summary per given throughput (one repetition each)."""
    reps = [runner.Repetition(duration_s=1.0, results=[], summary=summary_with(t, ttft_ms, tpot_ms))
            for t in throughputs]
    return runner.BackendRun(backend=name, status="ok", concurrency=concurrency, rate=rate,
                             features=sorted(features), repetitions=reps,
                             peak_rss_bytes=None if peak_mib is None else int(peak_mib * 2**20))


def bench_report(runs, kind: str = "chat"):
    """A BenchReport around ``runs`` without touching the student's new_report."""
    workload = workloads.Workload(name="w", kind=kind, seed=0, requests=[request("r0")])
    return report.BenchReport(created="2026-01-01T00:00:00+00:00", workload=workload, runs=runs,
                              hardware={"logical_cores": 2})


def sse(lines: list[dict | str]) -> list[str]:
    """Server-sent-event lines as a server writes them."""
    return [f"data: {x if isinstance(x, str) else json.dumps(x)}" for x in lines]
