"""The engine core in a process of its own (given code, not graded): ``course serve`` runs the
engine in an engine core process beside its API server, as vLLM v1 does (``core.py``).

Checked here: the core is another process and serves the same answers as the in-process engine
(greedy, seeded sampling with ``n`` and logprobs, stop strings cut on the API server's side); a
client that leaves stops its request in the core; shutting the server down ends the core; and a
core that dies makes the server answer 503 naming the engine core, on ``/health`` too, as vLLM's
does. Ctrl-C on ``course serve`` (no process left behind) is in ``test_task8_serve_command.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import psutil
import pytest

from shared.impl import lab_module

from .serving_fixtures import (
    MAX_MODEL_LEN,
    course_server_fixture,  # noqa: F401  (the fixture course_server)
    start_in_thread,
    wait_until,
)
from .test_task8_serving_holds import send_then_leave

pytestmark = [pytest.mark.task(8), pytest.mark.scaffold]

engine_module = lab_module("lab02_vllm", "engine")
sampling_params = lab_module("lab02_vllm", "sampling_params")


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.fixture(scope="module")
def split_server(model_dir):
    """A course server in a thread of this process, its engine core in a process of its own."""
    server_module = lab_module("lab02_vllm", "server")
    aengine = server_module.load_engine(str(model_dir), max_model_len=MAX_MODEL_LEN, device="cpu")
    core = psutil.Process(aengine.core.core_pid)
    running = start_in_thread(server_module.build_app(aengine), aengine)
    probe = httpx.post(running.base_url + "/completions", timeout=60,
                       json={"model": running.app.state.course.model_name, "prompt": "Hi", "max_tokens": 2})
    if probe.status_code == 500 and "NotImplementedError" in probe.text:  # an unwritten task, named at once
        running.stop()
        asyncio.run(aengine.shutdown())
        raise NotImplementedError(probe.json()["error"]["message"])
    yield running
    running.stop()  # the app's shutdown stops the core (if it is still alive)
    asyncio.run(aengine.shutdown())
    _, alive = psutil.wait_procs([core], timeout=5)
    assert not alive, "the engine core outlived its server's shutdown"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_abandoned_request_stops_in_the_core(split_server, stream):
    """A client that leaves stops its request in the core within a step or two: the counters
    that come back from the core say nothing runs and every block is free."""
    stats = lambda: split_server.llm.stats  # noqa: E731
    idle = lambda: stats().num_running == stats().num_waiting == 0 and \
        stats().num_free_kv_blocks == stats().num_kv_blocks  # noqa: E731
    assert wait_until(idle)
    body = {"model": split_server.app.state.course.model_name, "prompt": "The cat", "temperature": 0,
            "max_tokens": MAX_MODEL_LEN - 32, "ignore_eos": True, "stream": stream}
    before = stats().generation_tokens
    send_then_leave(split_server, split_server.url + "/v1/completions", body)
    assert wait_until(idle, timeout=2), f"still running 2 s after the client left: {stats()}"
    stopped = stats().generation_tokens
    time.sleep(0.3)
    assert stats().generation_tokens == stopped and stopped - before < MAX_MODEL_LEN - 96


def completion(server, body: dict) -> dict:
    reply = httpx.post(server.base_url + "/completions", json={"model": server.app.state.course.model_name,
                                                               "temperature": 0, **body}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_core_process_serves_what_the_engine_serves(split_server, course_server):
    """The core is a child process of ours; through it, greedy, stop strings (checked on the API
    server's side), seeded n=2 with logprobs, each as the in-process engine answers them."""
    core = psutil.Process(split_server.llm.core.core_pid)
    assert core.pid != os.getpid() and core in descendants(os.getpid())
    assert split_server.llm.engine is None
    cases = [{"prompt": "The cat", "max_tokens": 12},
             {"prompt": "Once upon a time", "max_tokens": 16, "stop": [" a", "kitchen"]},
             {"prompt": "1, 2, 3,", "max_tokens": 10, "stop": [" 5"], "min_tokens": 2},
             {"prompt": "The cat", "max_tokens": 6, "temperature": 0.8, "seed": 3, "n": 2, "logprobs": 2}]
    stopped = 0
    for body in cases:
        mine, theirs = completion(split_server, body), completion(course_server, body)
        for a, b in zip(mine["choices"], theirs["choices"], strict=True):
            assert (a["text"], a["finish_reason"]) == (b["text"], b["finish_reason"]), body
            stopped += bool(body.get("stop")) and a["finish_reason"] == "stop"
            if b["logprobs"] is not None:  # other batches, other float noise
                assert a["logprobs"]["tokens"] == b["logprobs"]["tokens"]
                assert a["logprobs"]["token_logprobs"] == pytest.approx(b["logprobs"]["token_logprobs"], abs=1e-4)
        assert mine["usage"] == theirs["usage"], body
    assert stopped, "no stop string was exercised"
    assert wait_until(lambda: split_server.llm.stats.num_running == 0)


def test_a_dead_core_makes_the_server_answer_503(split_server):
    """Last in this module (it kills the module's core): a stream running when the core dies ends
    with an error event; then /health and the API answer 503 naming the engine core."""
    url = split_server.base_url + "/completions"
    body = {"model": split_server.app.state.course.model_name, "prompt": "The cat", "max_tokens": 400,
            "temperature": 0, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        lines = response.iter_lines()
        assert any(next(lines).startswith("data: ") for _ in range(4))
        os.kill(split_server.llm.core.core_pid, signal.SIGKILL)
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]" and "engine core" in rest[-2], rest[-3:]
    health = httpx.get(split_server.url + "/health", timeout=5)
    assert health.status_code == 503 and "engine core" in health.text, health.text
    for streamed in (False, True):
        reply = httpx.post(url, json={**body, "stream": streamed}, timeout=30)
        assert reply.status_code == 503 and "engine core" in reply.json()["error"]["message"], reply.text
