"""What the serving tests (tasks 8-12) share: one course server per test session, one real vLLM
server per test session, and a way to see the server's own exceptions.

The course server runs *in this process*, in a uvicorn thread on a free loopback port, so that a
test can read the engine's block pool after a request and so that an exception raised inside
the server (a ``NotImplementedError`` of an unwritten task, say) fails the test with that
exception instead of a bare "500 Internal Server Error" from the client: decorate such a test
with :func:`raises_server_errors`.

Test modules import the fixtures (``from .serving_fixtures import course_server_fixture``); the
servers themselves are module-level singletons, so however many modules import a fixture, one
server starts per session, and each stops when the session ends.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared.impl import lab_module

from .helpers import detokenized

LAB = "lab02_vllm"
server_module = lab_module(LAB, "server")
dialects = lab_module(LAB, "dialects")

#: The context the course server allows in the tests (small: keeps the block pool small).
MAX_MODEL_LEN = 512
API_KEY = "course-test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ErrorRecorder:
    """ASGI middleware that remembers every exception escaping the app (Starlette re-raises
    them after sending the 500), so a test can re-raise the server's own error."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.errors: list[BaseException] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as error:
            self.errors.append(error)
            raise


@dataclass
class RunningServer:
    """A course server running in a uvicorn thread."""

    url: str
    app: Any
    llm: Any
    recorder: ErrorRecorder
    uvicorn_server: Any
    thread: threading.Thread
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def stop(self) -> None:
        self.uvicorn_server.should_exit = True
        self.thread.join(timeout=15)


def start_in_thread(app: Any, llm: Any, timeout: float = 60.0) -> RunningServer:
    import uvicorn

    recorder = ErrorRecorder(app)
    port = free_port()
    # "critical": the server's errors reach the tests through ErrorRecorder, not through uvicorn's
    # log. Formatting a traceback in this thread while pytest formats one in the main thread can
    # crash CPython 3.11's parser ("AST constructor recursion depth mismatch"), and pytest with it.
    config = uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="critical", lifespan="on")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
    thread = threading.Thread(target=server.run, name=f"course-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the course server did not start on port {port}")
        time.sleep(0.05)
    return RunningServer(f"http://127.0.0.1:{port}", app, llm, recorder, server, thread)


_course: dict[str, RunningServer] = {}


def get_course_server(api_key: str | None = None) -> RunningServer:
    """The session's course server on the test model (one per ``api_key``), started on first use."""
    key = api_key or ""
    if key not in _course:
        from shared.models import resolve_model

        model_dir = resolve_model(None, "main")
        try:
            # In this process (the tests read its block pool and inject faults into its runner);
            # test_task8_engine_core.py serves through the engine core process, `course serve`'s default.
            # COURSE_TEST_ENGINE_CORE=1 runs every serving test through the core process instead.
            llm = server_module.load_engine(str(model_dir), max_model_len=MAX_MODEL_LEN,
                                            engine_core_process=os.environ.get("COURSE_TEST_ENGINE_CORE") == "1")
        except ValueError as error:  # --model names a folder the course engine cannot serve
            pytest.skip(f"the course engine cannot serve {model_dir}: {error}")
        app = server_module.build_app(llm, api_key=api_key)
        running = start_in_thread(app, llm)
        _course[key] = running
        atexit.register(running.stop)
    return _course[key]


@pytest.fixture(scope="session", name="course_server")
def course_server_fixture() -> Iterator[RunningServer]:
    server = get_course_server()
    yield server


@pytest.fixture(scope="session", name="course_server_with_key")
def course_server_with_key_fixture() -> Iterator[RunningServer]:
    yield get_course_server(API_KEY)


def raises_server_errors(test: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a test that talks to the course server: an exception raised inside the server
    during the test (a NotImplementedError of an unwritten task, a bug) fails the test as itself,
    not as the HTTP error the client saw."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        recorders = [s.recorder for s in _course.values()]
        seen = [len(r.errors) for r in recorders]

        def server_error() -> BaseException | None:
            for recorder, before in zip(recorders, seen):
                new = recorder.errors[before:]
                for error in new:
                    if isinstance(error, NotImplementedError):
                        return error
                if new:
                    return new[0]
            return None

        try:
            result = test(*args, **kwargs)
        except Exception as error:
            time.sleep(0.05)  # let the server's side of the failure land
            inner = server_error()
            if inner is not None and inner is not error:
                raise inner from error
            raise
        inner = server_error()
        if inner is not None:
            raise inner
        return result

    return wrapper


def hf_greedy_text(model, tokenizer, ids: list[int], max_new_tokens: int) -> tuple[str, list[int]]:
    """transformers' greedy continuation of ``ids``: its text (as vLLM detokenizes it after the
    prompt: ``helpers.detokenized``) and ids."""
    import torch

    inputs = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    new = out[0, len(ids):].tolist()
    return detokenized(tokenizer, ids, new), new


@functools.cache
def _chat_template_missing() -> str | None:
    from transformers import AutoTokenizer

    from shared.models import resolve_model

    folder = resolve_model(None)
    if AutoTokenizer.from_pretrained(folder).chat_template:
        return None
    return (f"{folder.name}: its tokenizer has no chat template (a base model's convention: GPT-2, Llama 2 and "
            "Llama 3 base), so chat requests get a 400 as from vLLM, and this test needs them answered")


def require_chat_template() -> None:
    """Skip, naming the reason, where the test model's tokenizer has no chat template."""
    if reason := _chat_template_missing():
        pytest.skip(reason)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --------------------------------------------------------------------------------------------
# Real vLLM's OpenAI server (task 10, and the KV capacity of task 11)


@dataclass
class VLLMServer:
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


#: The KV cache real vLLM gets in the tests (GiB, ``VLLM_CPU_KVCACHE_SPACE``).
VLLM_KV_GIB = 1
_vllm: dict[str, VLLMServer] = {}


def get_vllm_server(tmp_root: Path) -> VLLMServer:
    """vLLM's own OpenAI server on the test model, started once per session (1-4 minutes on two
    busy cores). ``$COURSE_VLLM_SERVER_URL`` names one already running instead (started with the
    command below on the same model), which the session then leaves running."""
    if "main" in _vllm:
        return _vllm["main"]
    import requests

    if os.environ.get("COURSE_VLLM_SERVER_URL"):
        url = os.environ["COURSE_VLLM_SERVER_URL"].rstrip("/")
        idle = subprocess.Popen([sys.executable, "-c", "pass"])  # a stand-in process: stop() leaves it alone
        idle.wait()
        _vllm["main"] = VLLMServer(url, idle, tmp_root / "external.log")
        return _vllm["main"]

    from shared.models import resolve_model

    model = resolve_model(None, "main")
    port = free_port()
    log = tmp_root / "vllm-server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(VLLM_KV_GIB), "VLLM_LOGGING_LEVEL": "WARNING",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(port),
               "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "float32", "--enforce-eager",
               "--max-num-seqs", "16", "--gpu-memory-utilization", "0.3"]
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    server = VLLMServer(f"http://127.0.0.1:{port}", process, log)
    atexit.register(server.stop)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM's server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(server.url + "/health", timeout=2).status_code == 200:
                _vllm["main"] = server
                return server
        time.sleep(1)
    server.stop()
    raise RuntimeError(f"vLLM's server did not become healthy in 240 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session", name="vllm_server")
def vllm_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    from shared.models import resolve_model

    from .helpers import vllm_cpu_head_size_refusal

    if not os.environ.get("COURSE_VLLM_SERVER_URL") and (reason := vllm_cpu_head_size_refusal(resolve_model(None))):
        pytest.skip(reason)
    server = get_vllm_server(tmp_path_factory.mktemp("vllm"))
    yield server
