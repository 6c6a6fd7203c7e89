"""``course serve`` as a command (given, not graded): it starts on loopback, answers /health,
refuses a bad argument with a message, and Ctrl-C stops it cleanly (exit status 0), even
mid-stream, leaving no process behind (its engine core process included)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from shared.impl import IMPLS, current_impl
from shared.paths import ROOT

from .serving_fixtures import free_port

pytestmark = [pytest.mark.task(8), pytest.mark.scaffold]


def serve(*args: str) -> subprocess.Popen:
    module = f"lab02_vllm.{IMPLS[current_impl()]}.server"
    code = f"import sys; from {module} import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.timeout(300)
def test_ctrl_c_stops_the_server_cleanly(model_dir):
    port = free_port()
    process = serve("--model", str(model_dir), "--port", str(port), "--max-model-len", "256")
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, process.communicate()[0][-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "course serve did not answer /health in 240 s"
            time.sleep(0.5)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
        assert models["data"][0]["id"] == str(model_dir)
        family = psutil.Process(process.pid).children(recursive=True)  # the engine core (and its fork server)
        body = {"model": str(model_dir), "prompt": "The cat", "max_tokens": 200, "temperature": 0,
                "ignore_eos": True, "stream": True}
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=60) as response:
            with contextlib.suppress(httpx.HTTPError, StopIteration):  # the skeleton has no stream to give
                lines = response.iter_lines()
                for _ in range(4):
                    next(lines)
            process.send_signal(signal.SIGINT)  # mid-stream (with the reference's engine)
            assert process.wait(timeout=30) == 0
        _, alive = psutil.wait_procs(family, timeout=10)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], f"left behind: {alive}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_bad_argument_is_refused_with_a_message(tmp_path):
    process = serve("--model", str(tmp_path / "missing"), "--port", str(free_port()))
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "missing" in output and "Traceback" not in output
