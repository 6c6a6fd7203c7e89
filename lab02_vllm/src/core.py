"""The engine core in a process of its own, fed over ZeroMQ, as vLLM v1 runs it (given code, no task).

``course serve`` runs two processes, as ``vllm serve`` does:

    API server process (this one)                        engine core process
    ┌───────────────────────────────────────┐  add / abort   ┌─────────────────────────────┐
    │ HTTP, JSON, SSE (uvicorn, FastAPI)    │ ─────────────▶ │ EngineCore: the LLMEngine's │
    │ EngineCoreClient: one queue a request │   (ZMQ PUSH)   │ step loop, fault isolation  │
    │ incremental detokenizer, stop strings │ ◀───────────── │ (AsyncLLMEngine's, in-proc) │
    └───────────────────────────────────────┘ new token ids, └─────────────────────────────┘
                                              finish reasons, logprobs, stats (ZMQ PUSH)

The core steps the model without pause while the API server parses JSON and writes events on the
other core of the machine: neither waits for the other's interpreter lock. What crosses is small:
a request's prompt ids and ``SamplingParams`` once, then per step each request's *new* token ids
(never the whole output again), its finish reason, the new logprobs, and the engine's counters for
``/metrics``. Text is made once, on the API server's side (``detokenizer.py``): the core never
decodes. Stop strings are text, so they are checked there too, as vLLM's front-end detokenizer
checks them: the core is sent the request without them, and when one appears the client cuts the
text and aborts the request in the core (a token or two the core made meanwhile is dropped).

Lifetime: the core dies with its API server (``prctl(PR_SET_PDEATHSIG)`` where Linux offers it,
and a watch on the parent's pid everywhere), ignores Ctrl-C (the API server, which gets it too,
shuts it down in order), and a core that dies is noticed within 0.1 s: every running stream ends
with ``EngineDeadError`` and the server answers 503 naming the engine core from then on.

Readings: vLLM's ``vllm/v1/engine/core_client.py`` (``AsyncMPClient``: the sockets, the output
thread, ``EngineDeadError``) and ``vllm/v1/engine/core.py`` (``EngineCoreProc``: the busy loop, the
input thread, ``run_engine_core``'s signal handling).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .detokenizer import IncrementalDetokenizer
from .engine import AsyncLLMEngine, CompletionOutput, RequestOutput
from .sampling_params import SamplingParams

#: How often each side checks that the other is still there (seconds).
POLL_S = 0.1
#: How long start-up may take (loading the model included) before the client gives up.
STARTUP_TIMEOUT_S = 300.0


class EngineDeadError(RuntimeError):
    """The engine core process is gone: nothing can be served until the server restarts."""


# -------------------------------------------------------------------------------------------
# Messages (pickled over ZeroMQ)


@dataclass
class SeqDelta:
    """What one step added to one completion of a request."""

    index: int
    new_token_ids: list[int]
    new_logprobs: list[dict[int, float]] | None
    finish_reason: str | None
    stop_reason: int | str | None


@dataclass
class CoreOutput:
    """One request's news from one step: its sequences' deltas, or the error that ended it."""

    request_id: str
    seqs: list[SeqDelta] = field(default_factory=list)
    finished: bool = False
    metrics: Any = None  # RequestMetrics
    error: BaseException | None = None


def _picklable(error: BaseException) -> BaseException:
    """``error`` itself when it crosses a process boundary intact, else a ``RuntimeError`` saying it."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


# -------------------------------------------------------------------------------------------
# The core process


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (``PR_SET_PDEATHSIG``; the parent of a
    process started through multiprocessing's fork server is that server, which exits with the API
    server); ``_watch_parent`` covers every other case."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def _parent_alive(parent_pid: int) -> bool:
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)  # unwinds through run_engine_core's ``finally``: the engine's workers stop too


def run_engine_core(model: str, engine_args: dict[str, Any], edition: str, input_address: str,
                    output_address: str, parent_pid: int) -> None:
    """The core process' body: load the engine, say ready, then serve until told to stop.

    Args:
        model: the model folder.
        engine_args: ``LLMEngine``'s keyword arguments.
        edition: the package of the engine to run (``lab02_vllm.solution`` or ``lab02_vllm.src``).
        input_address, output_address: the client's ZeroMQ sockets (requests in, outputs out).
        parent_pid: the API server's pid (the core exits when it is gone).
    """
    import importlib

    import zmq

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the API server handles it
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # terminate(): still stop tensor-parallel workers
    context = zmq.Context()
    inbox = context.socket(zmq.PULL)
    inbox.connect(input_address)
    outbox = context.socket(zmq.PUSH)
    outbox.setsockopt(zmq.SNDHWM, 0)
    outbox.connect(output_address)
    engine_module = importlib.import_module(f"{edition}.engine")
    try:
        engine = engine_module.LLMEngine(model, **engine_args)
    except BaseException as error:  # a bad argument: the client raises it, as the in-process engine would
        outbox.send_pyobj(("failed", _picklable(error)))
        outbox.close(linger=2000)
        return
    engine.incremental_text = False  # no text here: the client detokenizes
    engine.detokenize_outputs = False
    core = EngineCore(engine, outbox)
    outbox.send_pyobj(("ready", {"pid": os.getpid(), "max_model_len": engine.max_model_len,
                                 "vocab_size": engine.config.vocab_size, "stats": engine.stats}))
    try:
        asyncio.run(core.serve(inbox, parent_pid))
    finally:
        engine.shutdown()
        inbox.close(linger=0)
        outbox.close(linger=1000)
        context.term()


class _Sink:
    """Stands where a stream's ``asyncio.Queue`` stands in-process: what the step loop puts here
    becomes a delta (the tokens not sent yet), sent at the loop's next quiet point."""

    def __init__(self, core: EngineCore, request_id: str) -> None:
        self.core, self.request_id = core, request_id
        self.sent: dict[int, int] = {}  # tokens already sent, per completion index

    def put_nowait(self, item: Any) -> None:
        if isinstance(item, BaseException):
            self.core.pending.append(CoreOutput(self.request_id, finished=True, error=_picklable(item)))
            self.core._queues.pop(self.request_id, None)
            return
        deltas = []
        for completion in item.outputs:
            start = self.sent.get(completion.index, 0)
            self.sent[completion.index] = len(completion.token_ids)
            logprobs = completion.logprobs[start:] if completion.logprobs is not None else None
            deltas.append(SeqDelta(completion.index, completion.token_ids[start:], logprobs,
                                   completion.finish_reason, completion.stop_reason))
        self.core.pending.append(CoreOutput(self.request_id, deltas, item.finished, item.metrics))
        if item.finished:
            self.core._queues.pop(self.request_id, None)


class EngineCore(AsyncLLMEngine):
    """vLLM's ``EngineCoreProc``: the in-process ``AsyncLLMEngine`` (its step loop and its fault
    isolation, unchanged) with requests from a socket and outputs to a socket, where the streams'
    queues were; it steps on the loop's own thread, which serves nobody else here.

    Args:
        engine: the engine to step.
        outbox: the ZeroMQ socket to the client.
    """

    step_in_thread = False  # vLLM's busy loop: the step runs on the loop's own thread

    def __init__(self, engine: Any, outbox: Any) -> None:
        super().__init__(engine=engine)
        self.outbox = outbox
        self.pending: list[CoreOutput] = []
        self.stopped: asyncio.Event | None = None

    def _publish(self) -> None:
        """Send what the loop produced since the last call, with the engine's counters (called
        between steps, so they are consistent)."""
        batch, self.pending = self.pending, []
        self.outbox.send_pyobj(("outputs", batch, self.engine.stats))

    def on_message(self, message: tuple[Any, ...]) -> None:
        """A message from the client: queued for the loop's next step boundary, as in-process."""
        kind = message[0]
        if kind == "add":
            _, request_id, prompt_ids, params = message
            self._queues[request_id] = _Sink(self, request_id)  # type: ignore[assignment]
            self._pending_adds.append((request_id, prompt_ids, params))
        elif kind == "abort":
            self._pending_aborts.append(message[1])
        elif kind == "shutdown":
            assert self.stopped is not None
            self.stopped.set()
            return
        self._ensure_loop()
        assert self._wake is not None
        self._wake.set()

    async def serve(self, inbox: Any, parent_pid: int) -> None:
        """Serve until the client says shutdown (or goes away)."""
        loop = asyncio.get_running_loop()
        stopped = self.stopped = asyncio.Event()
        self._ensure_loop()

        def receive() -> None:  # vLLM's input thread: the socket is read while the model runs
            while not stopped.is_set():
                try:
                    message = inbox.recv_pyobj() if inbox.poll(int(POLL_S * 1000)) else None
                except Exception:  # the socket closed under us (SIGTERM): the process is ending
                    return
                if message is not None:
                    loop.call_soon_threadsafe(self.on_message, message)
                elif not _parent_alive(parent_pid):
                    os._exit(0)  # the API server is gone: nobody to serve

        thread = threading.Thread(target=receive, name="engine-core-input", daemon=True)
        thread.start()
        await stopped.wait()
        await self.shutdown()
        await asyncio.to_thread(thread.join)  # it reads the socket: done with it before it closes


# -------------------------------------------------------------------------------------------
# The client, in the API server's process


@dataclass
class _SeqView:
    """One completion as the API server knows it: its tokens, its text, why it ended."""

    detokenizer: IncrementalDetokenizer
    token_ids: list[int]  # prompt + outputs (what the detokenizer reads)
    num_prompt_tokens: int
    text: str = ""
    logprobs: list[dict[int, float]] = field(default_factory=list)
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class _RequestView:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    params: SamplingParams
    queue: asyncio.Queue[Any]
    seqs: list[_SeqView]
    finished: bool = False
    core_finished: bool = False
    metrics: Any = None


class EngineCoreClient:
    """vLLM's ``AsyncMPClient``: starts the engine core process and talks to it.

    Args:
        model: the model folder.
        engine_args: ``LLMEngine``'s keyword arguments.
        edition: the package whose engine the core runs.

    Raises:
        ValueError (or what the engine raised): the core could not load the engine.
        EngineDeadError: the core died while starting.
    """

    def __init__(self, model: str | Path, engine_args: dict[str, Any], edition: str) -> None:
        import multiprocessing

        import zmq

        self.tokenizer: Any = None  # set by the owner once the core is up
        self._dir = tempfile.mkdtemp(prefix="course-core-")
        input_address, output_address = f"ipc://{self._dir}/input", f"ipc://{self._dir}/output"
        self._context = zmq.Context()
        self._input = self._context.socket(zmq.PUSH)
        self._input.setsockopt(zmq.SNDHWM, 0)  # no limit on queued messages: none is ever dropped
        self._input.bind(input_address)
        self._output = self._context.socket(zmq.PULL)
        self._output.bind(output_address)
        self._send_lock = threading.Lock()
        self._requests: dict[str, _RequestView] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dead_error: EngineDeadError | None = None
        self._closing = False
        # A fork server (torch imported once, then each child forked from that clean process), as
        # tensor parallelism's workers start; never a fork of this process and its threads.
        if "forkserver" in multiprocessing.get_all_start_methods():
            mp = multiprocessing.get_context("forkserver")
            mp.set_forkserver_preload(["torch", f"{edition}.engine"])
        else:
            mp = multiprocessing.get_context("spawn")
        self.process = mp.Process(target=run_engine_core, name="EngineCore", daemon=False,
                                  args=(str(model), engine_args, edition, input_address, output_address,
                                        os.getpid()))
        self.process.start()
        atexit.register(self.close)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self._output.poll(int(POLL_S * 1000)):
                kind, payload = self._output.recv_pyobj()
                if kind == "failed":
                    self.close()
                    raise payload
                info = payload
                break
            if not self.process.is_alive() or time.monotonic() > deadline:
                code = self.process.exitcode
                self.close()
                raise EngineDeadError(f"the engine core process did not start (exit code {code})")
        self.core_pid: int = info["pid"]
        self.max_model_len: int = info["max_model_len"]
        self.vocab_size: int = info["vocab_size"]
        self.stats = info["stats"]
        self._thread = threading.Thread(target=self._read_outputs, name="engine-core-output", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------------
    # Requests

    def _send(self, message: tuple[Any, ...]) -> None:
        import zmq

        # Never blocks: with no core on the other end (dead) a PUSH socket would wait forever.
        with self._send_lock, contextlib.suppress(zmq.ZMQError):
            self._input.send_pyobj(message, flags=zmq.NOBLOCK)

    async def generate(self, prompt: str | list[int], params: SamplingParams,
                       request_id: str) -> Any:
        """``AsyncLLMEngine.generate``'s stream, through the core process."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (asyncio.run again): streams of the old one are gone
            self._loop, self._requests = loop, {}
        if self.dead_error is not None:
            raise self.dead_error
        if request_id in self._requests:
            raise ValueError(f"request_id {request_id!r} is already running")
        text = prompt if isinstance(prompt, str) else None
        prompt_ids = self.tokenizer(prompt).input_ids if isinstance(prompt, str) else list(prompt)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        seqs = [_SeqView(IncrementalDetokenizer.after_prompt(self.tokenizer, len(prompt_ids)), list(prompt_ids),
                         len(prompt_ids)) for _ in range(params.n)]
        view = _RequestView(request_id, text, list(prompt_ids), params, queue, seqs)
        self._requests[request_id] = view
        # The core never sees the stop strings: they are checked here, on the text (vLLM's way).
        core_params = params.clone(stop=None) if params.stop_strings else params
        self._send(("add", request_id, prompt_ids, core_params))
        try:
            while not view.finished:
                item = await queue.get()
                # vLLM's RequestOutputCollector: a stream that fell behind gets one output for all
                # that arrived meanwhile (the view holds it all), not one stale output per step
                while not isinstance(item, BaseException) and not queue.empty():
                    item = queue.get_nowait()
                if isinstance(item, BaseException):
                    raise item
                outputs = [CompletionOutput(index=i, text=s.text, token_ids=s.token_ids[s.num_prompt_tokens:],
                                            finish_reason=s.finish_reason, stop_reason=s.stop_reason,
                                            logprobs=list(s.logprobs) if params.logprobs is not None else None)
                           for i, s in enumerate(view.seqs)]
                yield RequestOutput(request_id, text, list(prompt_ids), outputs, view.finished, item)
        finally:
            self._requests.pop(request_id, None)
            if not view.core_finished:
                self.abort(request_id)

    def abort(self, request_id: str) -> None:
        """Abort a request in the core (its stream, if still read, ends with finish reason "abort")."""
        if self.dead_error is None:
            self._send(("abort", request_id))

    # ---------------------------------------------------------------------------------------
    # Outputs (the output thread reads the socket; the event loop applies them)

    def _read_outputs(self) -> None:
        while not self._closing:
            try:
                ready = self._output.poll(int(POLL_S * 1000))
                message = self._output.recv_pyobj() if ready else None
            except Exception:  # the socket was closed under us: shutting down
                return
            if message is not None:
                if self._loop is not None and not self._loop.is_closed():
                    self._loop.call_soon_threadsafe(self._apply, message)
                elif message[0] == "outputs":
                    self.stats = message[2]
            elif not self.process.is_alive() and not self._closing:
                error = EngineDeadError(
                    f"the engine core process (pid {self.core_pid}) died (exit code {self.process.exitcode}); "
                    "the server cannot serve until it is restarted")
                self.dead_error = error
                if self._loop is not None and not self._loop.is_closed():
                    with contextlib.suppress(RuntimeError):
                        self._loop.call_soon_threadsafe(self._fail_all, error)
                return

    def _fail_all(self, error: BaseException) -> None:
        for view in self._requests.values():
            view.core_finished = True
            view.queue.put_nowait(error)

    def _apply(self, message: tuple[Any, ...]) -> None:
        _, batch, stats = message
        self.stats = stats
        for output in batch:
            view = self._requests.get(output.request_id)
            if view is None or view.finished:
                continue
            if output.error is not None:
                view.core_finished = view.finished = True
                view.queue.put_nowait(output.error)
                continue
            view.core_finished = output.finished
            for delta in output.seqs:
                self._advance(view, view.seqs[delta.index], delta)
            view.finished = all(s.finish_reason is not None for s in view.seqs)
            metrics = output.metrics
            if metrics is not None:
                metrics.num_generation_tokens = sum(len(s.token_ids) - s.num_prompt_tokens for s in view.seqs)
                if view.finished and metrics.finished_time is None:
                    metrics.finished_time = time.monotonic()
            if view.finished and not view.core_finished:
                self.abort(view.request_id)  # a stop string ended it here: the core stops too
                view.core_finished = True
            view.queue.put_nowait(metrics)

    def _advance(self, view: _RequestView, seq: _SeqView, delta: SeqDelta) -> None:
        """Take one step's tokens of one completion: decode each once, check the stop strings (as
        ``LLMEngine._check_stop`` orders them: after the core's stop tokens and eos, before the
        lengths), and take the core's finish reason when it is the last token's."""
        if seq.finish_reason is not None:
            return  # stopped here already: what the core made since is dropped
        params = view.params
        for i, token in enumerate(delta.new_token_ids):
            seq.token_ids.append(token)
            if delta.new_logprobs is not None:
                seq.logprobs.append(delta.new_logprobs[i])
            old_length = len(seq.text)
            seq.text += seq.detokenizer.decode_new(seq.token_ids)
            last = i == len(delta.new_token_ids) - 1
            if last and delta.finish_reason == "stop":  # a stop token or eos: they come first
                break
            num_outputs = len(seq.token_ids) - seq.num_prompt_tokens
            if num_outputs > params.min_tokens:
                for stop in params.stop_strings:
                    at = seq.text.find(stop, max(0, old_length - len(stop) + 1))
                    if at >= 0:
                        seq.text, seq.stop_reason, seq.finish_reason = seq.text[:at], stop, "stop"
                        return
        if delta.finish_reason is not None:
            seq.finish_reason, seq.stop_reason = delta.finish_reason, delta.stop_reason

    # ---------------------------------------------------------------------------------------
    # Shutdown

    def close(self, timeout: float = 5.0) -> None:
        """Stop the core (asked first, then terminated, then killed) and close the sockets."""
        if self._closing:
            return
        self._send(("shutdown",))
        self._closing = True
        process = self.process
        process.join(timeout)
        if process.is_alive():
            process.terminate()
            process.join(2)
        if process.is_alive():
            process.kill()
            process.join()
        with contextlib.suppress(Exception):
            self._input.close(linger=0)
            self._output.close(linger=0)
            self._context.term()
        with contextlib.suppress(OSError):
            for name in ("input", "output"):
                Path(self._dir, name).unlink(missing_ok=True)
            os.rmdir(self._dir)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
