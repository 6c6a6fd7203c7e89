"""Tasks 8 and 9: an OpenAI-compatible HTTP server on the engine, the way vLLM serves.

``course serve`` runs this file. One :class:`AsyncLLMEngine` steps the engine, by default in an
engine core process of its own (``core.py``, as vLLM v1 serves); every HTTP request becomes one
engine request whose outputs stream back as they are made.
The routes:

- ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions`` (task 8): OpenAI's
  API as vLLM serves it, with server-sent-event streaming (``stream: true``; with
  ``stream_options.include_usage`` a last chunk carries the token counts), ``n``, ``stop``,
  ``seed``, ``logprobs`` (streamed too), ``logit_bias`` and ``allowed_token_ids``;
- ``GET /health`` and ``GET /metrics`` (Prometheus text, vLLM's metric names);
- ``POST /generate``, ``POST /generate_stream`` and ``POST /`` (task 9): TGI's dialect and vLLM's
  demo server's, told apart by their fields;
- ``GET /``: a chat page (``static/chat.html``) that streams from ``/v1/chat/completions``.

Bad input gets an OpenAI-style error object (``dialects.APIError``) with the status vLLM gives,
never a 500 and never a dead server; a client that disconnects aborts its engine request, so its
KV blocks return to the pool at the next step.

Readings: vLLM's ``vllm/entrypoints/openai/api_server.py`` and ``serving_completion.py``; the
server-sent events format (WHATWG HTML, "Server-sent events"); Prometheus' text exposition format.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .core import EngineDeadError
from .dialects import (
    APIError,
    ChatCompletionRequest,
    ChatMessage,
    CompletionLogprobs,
    CompletionRequest,
    DemoRequest,
    TGIParameters,
    TGIRequest,
    TGIStreamDetails,
    TGIStreamEvent,
    TGIToken,
    UsageInfo,
    check_openai_request,
    demo_sampling_params,
    detect_dialect,
    logits_processors,
    openai_sampling_params,
    random_id,
    tgi_finish_reason,
    tgi_response,
    tgi_sampling_params,
    unencodable,
)
from .engine import AsyncLLMEngine, RequestOutput, generation_defaults
from .sampling_params import SamplingParams

STATIC = Path(__file__).parent / "static"

#: vLLM's histogram buckets (seconds) for time to first token and time per output token.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)


# --------------------------------------------------------------------------------------------
# Given helpers


def sse(payload: dict[str, Any] | str) -> str:
    """One server-sent event: ``data: <json>`` and a blank line (``data: [DONE]`` ends a stream)."""
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


async def until_disconnected(request: Request, work: Awaitable[Any]) -> Any:
    """Run ``work``; if the client disconnects first, cancel it (vLLM's ``with_cancellation``):
    cancelling the engine stream's loop aborts its request. Returns ``work``'s result, or None
    after a disconnect."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(0.05)

    watcher = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


class APIKeyMiddleware:
    """Pure ASGI middleware: every request but ``GET`` of ``/health``, ``/ping``, ``/version``,
    ``/metrics`` and the chat page needs ``Authorization: Bearer <api_key>``; others get a 401.

    Pure ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` hands
    the route a ``receive`` of its own, behind which ``request.is_disconnected()`` never sees the
    client leave, so a non-streamed request would run to its ``max_tokens`` for nobody. vLLM's
    ``AuthenticationMiddleware`` is pure ASGI for the same reason.
    """

    OPEN_PATHS = frozenset({"/health", "/ping", "/version", "/metrics", "/", "/favicon.ico"})

    def __init__(self, app: Any, api_key: str) -> None:
        self.app, self.expected = app, f"Bearer {api_key}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not (scope["method"] == "GET" and scope["path"] in self.OPEN_PATHS):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = JSONResponse(APIError(401, "Unauthorized: a valid API key is needed").body(),
                                        status_code=401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def guarded(events: AsyncIterator[str], error_event: Callable[[Exception], list[str]]) -> AsyncIterator[str]:
    """Pass a stream's events on; if it raises (its request failed in the engine), end it with
    ``error_event(error)`` instead of a cut connection, so the client sees why (OpenAI's streams:
    an error object, then ``data: [DONE]``, as vLLM sends). A ``NotImplementedError`` (an
    unwritten task) goes on up, for the tests to name. Closing this closes ``events`` at once, so
    a client that leaves aborts its request now, not when the garbage collector gets to it."""
    try:
        async for event in events:
            yield event
    except NotImplementedError:
        raise
    except Exception as error:
        for event in error_event(error):
            yield event
    finally:
        await events.aclose()  # type: ignore[attr-defined]


async def require_json(raw: Request) -> None:
    """vLLM's OpenAI routes read JSON only: another content type is a 400 saying so (FastAPI alone
    would try to validate the raw bytes and report a confusing type error instead)."""
    media_type = raw.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise APIError(400, "Unsupported Media Type: Only 'application/json' is allowed "
                            f"(got content-type {media_type or 'none'!r})")


def openai_stream_error(error: Exception) -> list[str]:
    """An OpenAI stream's end when its request failed: vLLM's error object, then ``[DONE]``."""
    return [sse(APIError(500, f"{type(error).__name__}: {error}").body()), sse("[DONE]")]


def tgi_stream_error(error: Exception) -> list[str]:
    """TGI's stream error event (``huggingface_hub`` raises it as a ``TextGenerationError``)."""
    return [sse({"error": f"{type(error).__name__}: {error}", "error_type": "generation"})]


def demo_stream_error(error: Exception) -> list[str]:
    """vLLM's demo server streams JSON lines: the last one carries the error."""
    return [json.dumps({"error": f"{type(error).__name__}: {error}"}) + "\n"]


class Histogram:
    """A Prometheus histogram: cumulative counts per upper bound, their sum and count."""

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * len(buckets)
        self.sum, self.count = 0.0, 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.sum += value
        self.count += 1


def with_defaults(request: CompletionRequest | ChatCompletionRequest, defaults: dict[str, Any],
                  chat: bool) -> CompletionRequest | ChatCompletionRequest:
    """``request`` with the model's generation defaults where it left a field unset (None)."""
    update = {name: value for name, value in defaults.items() if getattr(request, name, None) is None}
    if chat and getattr(request, "max_completion_tokens", None) is not None:
        update.pop("max_tokens", None)
    return request.model_copy(update=update) if update else request


class ServerState:
    """What every route needs: the engine, the model's name and context, the metrics."""

    def __init__(self, engine: AsyncLLMEngine, model_name: str, max_model_len: int) -> None:
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.model_name = model_name
        self.max_model_len = max_model_len
        self.vocab_size = engine.vocab_size
        self.defaults = generation_defaults(Path(engine.model_dir))
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Time to first token in seconds.", TTFT_BUCKETS)
        self.tpot = Histogram("vllm:request_time_per_output_token_seconds",
                              "Histogram of time_per_output_token_seconds per request.", TPOT_BUCKETS)
        self.finished: dict[str, int] = {}

    def observe(self, output: RequestOutput) -> None:
        """Record a finished request's latencies (given: the engine stamps the times)."""
        metrics = output.metrics
        if metrics is None or metrics.first_token_time is None:
            return
        self.ttft.observe(metrics.first_token_time - metrics.arrival_time)
        per_seq = max(1, len(output.outputs))
        tokens = metrics.num_generation_tokens // per_seq
        if tokens > 1 and metrics.finished_time is not None:
            self.tpot.observe((metrics.finished_time - metrics.first_token_time) / (tokens - 1))
        for completion in output.outputs:
            reason = completion.finish_reason or "abort"
            self.finished[reason] = self.finished.get(reason, 0) + 1

    def check_engine(self) -> None:
        """A server whose engine core process is gone answers 503 saying so (as vLLM does)."""
        if self.engine.dead_error is not None:
            raise APIError(503, f"{type(self.engine.dead_error).__name__}: {self.engine.dead_error}")

    def check_model(self, model: str | None) -> None:
        """An unknown model is a 404, as in vLLM (None means the served one)."""
        if model is not None and model != self.model_name:
            raise APIError(404, f"The model `{model}` does not exist.", "model")

    def prompt_ids(self, prompt: str | list[int], param: str = "prompt") -> list[int]:
        """A prompt's token ids. Raises APIError(400, param=``param``): an empty prompt, text with a
        lone surrogate, token ids outside the vocabulary."""
        if isinstance(prompt, str):
            if not prompt:  # the tokenizer would still give [bos]: vLLM refuses it
                raise APIError(400, f"{param} must not be empty", param)
            if unencodable(prompt, param) is not None:
                raise APIError(400, f"{param}: the text holds a lone surrogate, which UTF-8 cannot encode", param)
            ids = self.tokenizer(prompt).input_ids
        else:
            ids = list(prompt)
            vocab = len(self.tokenizer)
            if any(not 0 <= t < vocab for t in ids):
                raise APIError(400, f"{param} holds token ids outside [0, {vocab})", param)
        if not ids:
            raise APIError(400, f"{param} must not be empty", param)
        return ids


# --------------------------------------------------------------------------------------------
# Task 8: OpenAI


def chat_prompt_ids(tokenizer: Any, messages: list[ChatMessage]) -> list[int]:
    """The token ids of a chat, rendered with the tokenizer's chat template and the assistant's
    turn opened (``add_generation_prompt``), so the model writes the answer.

    Raises:
        APIError(400, param="messages"): no messages, or a tokenizer without a chat template.
    """
    # BEGIN SOLUTION task 8: the exact token ids vLLM feeds the model for a chat, or a 400 on messages (README task 8; transformers' chat templating guide).
    # HINT task 8 level 1: a chat request becomes a prompt through the model's own chat template, with the
    #   assistant's turn opened so the model answers; the ids must be exactly vLLM's for the same messages, so
    #   no token may be doubled or lost. Reading: README task 8, transformers' "Chat templates" guide
    #   (apply_chat_template, add_generation_prompt), and vLLM's OpenAI-compatible server docs.
    # HINT task 8 level 2: refuse an empty list and a tokenizer without a template (APIError 400, param
    #   "messages"). Templates usually write the bos token themselves: rendering to text and then tokenizing
    #   with the tokenizer's defaults would add a second one. The template wants plain dicts with role and
    #   content, not pydantic models.
    # HINT task 8 level 3: check; render the dicts to a string with the generation prompt opened; tokenize
    #   that string with add_special_tokens off and return its input_ids.
    if not messages:
        raise APIError(400, "messages must not be empty", "messages")
    if not getattr(tokenizer, "chat_template", None):
        raise APIError(400, "this model's tokenizer has no chat template; use /v1/completions", "messages")
    rendered = tokenizer.apply_chat_template([m.model_dump(include={"role", "content"}) for m in messages],
                                             add_generation_prompt=True, tokenize=False)
    # The template writes bos itself: tokenize without adding special tokens again.
    return tokenizer(rendered, add_special_tokens=False).input_ids
    # END SOLUTION


def token_text(tokenizer: Any, token: int) -> str:
    """Given: one token's text as vLLM reports it in logprobs: ``decode([token])``, with the leading
    spaces that decoding a SentencePiece piece alone drops put back (``▁The`` is ``" The"``, not
    ``"The"``), as vLLM's ``convert_ids_list_to_tokens`` does for a ``Metaspace`` tokenizer."""
    text = tokenizer.decode([token]) or ""
    marker = _space_marker(tokenizer)
    if marker is None:
        return text
    raw = tokenizer.convert_ids_to_tokens(token) or ""
    wanted = len(raw) - len(raw.lstrip(marker))
    missing = wanted - (len(text) - len(text.lstrip(" ")))
    return " " * missing + text if missing > 0 else text


def _space_marker(tokenizer: Any) -> str | None:
    """The ``Metaspace`` pre-tokenizer's space marker (SentencePiece's ``▁``), or None; read once
    per tokenizer (kept on it, as vLLM does)."""
    cached = getattr(tokenizer, "_course_space_marker", False)
    if cached is not False:
        return cached
    marker = None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        pre = json.loads(backend.to_str()).get("pre_tokenizer") or {}
        for part in [pre, *pre.get("pretokenizers", [])]:
            if part.get("type") == "Metaspace":
                marker = part.get("replacement", "\u2581")
    with contextlib.suppress(AttributeError):
        tokenizer._course_space_marker = marker
    return marker


def completion_logprobs(tokenizer: Any, token_ids: list[int], logprobs: list[dict[int, float]],
                        text_offset: int = 0) -> CompletionLogprobs:
    """OpenAI's ``logprobs`` object for a completion's tokens.

    Args:
        tokenizer: to turn token ids into their text.
        token_ids: the completion's tokens.
        logprobs: one ``{token_id: logprob}`` per token (the chosen token and the top ones).
        text_offset: where the first token's text starts in the completion's text.

    Returns:
        ``tokens`` (each token's :func:`token_text`), ``token_logprobs`` (the chosen token's),
        ``top_logprobs`` (each step's dict, keyed by decoded token) and ``text_offset`` (the
        running character offset of each token).
    """
    # BEGIN SOLUTION task 8: OpenAI's legacy completions logprobs object, one entry per generated token (README task 8; OpenAI's completions API reference, logprobs).
    # HINT task 8 level 1: four parallel lists, one entry per generated token, as OpenAI's completions API
    #   returns them; text_offset lets a client find each token in the text. Reading: README task 8, OpenAI's
    #   API reference for /v1/completions (logprobs), and CompletionLogprobs' fields in this file.
    # HINT task 8 level 2: each token's text is token_text's (decoded alone, SentencePiece's leading space
    #   kept); the engine's dicts are keyed by token id and hold
    #   the chosen token and the top ones, but OpenAI keys top_logprobs by text. Offsets are characters and
    #   start at text_offset (the echoed prompt's length when echo is on), growing by each token's text.
    # HINT task 8 level 3: for each (token, step dict): text = token_text(tokenizer, token); append text, the
    #   dict's value
    #   for the token, the dict re-keyed by decoded text, and the running offset; then advance the offset.
    result = CompletionLogprobs()
    offset = text_offset
    for token, step in zip(token_ids, logprobs):
        text = token_text(tokenizer, token)
        result.tokens.append(text)
        result.token_logprobs.append(step.get(token))
        result.top_logprobs.append({token_text(tokenizer, t): value for t, value in step.items()})
        result.text_offset.append(offset)
        offset += len(text)
    return result
    # END SOLUTION


def usage_of(output: RequestOutput) -> UsageInfo:
    """Token counts of a request: its prompt once, plus every completion's tokens."""
    # BEGIN SOLUTION task 8: OpenAI's usage counts for a request with n completions (README task 8; OpenAI's usage object).
    # HINT task 8 level 1: usage is what the client is billed for: the prompt is processed once however many
    #   completions (n) share it, and every completion's tokens count. Reading: OpenAI's API reference (usage).
    # HINT task 8 level 2: total_tokens is the sum of the other two.
    prompt = len(output.prompt_token_ids)
    completion = sum(len(c.token_ids) for c in output.outputs)
    return UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    # END SOLUTION


async def final_output(state: ServerState, prompt_ids: list[int], params: SamplingParams,
                       request_id: str) -> RequestOutput:
    """Run a request to the end and return its last output (given)."""
    last = None
    async for output in state.engine.generate(prompt_ids, params, request_id):
        last = output
    assert last is not None
    state.observe(last)
    return last


def completion_body(state: ServerState, output: RequestOutput, request: CompletionRequest,
                    chat: bool) -> dict[str, Any]:
    """The JSON of a finished (non-streaming) completion or chat completion.

    Completions: ``{"id": "cmpl-...", "object": "text_completion", "created", "model", "choices":
    [{"index", "text", "logprobs", "finish_reason"}], "usage"}``, with the prompt's text in front
    of each text when ``echo``. Chat: ``object`` "chat.completion", id "chatcmpl-...", each choice
    ``{"index", "message": {"role": "assistant", "content"}, "finish_reason"}``.
    """
    # BEGIN SOLUTION task 8: the JSON body vLLM answers for a finished completion or chat completion (README task 8; OpenAI's API reference for both endpoints).
    # HINT task 8 level 1: the body's shape is fixed by the docstring and OpenAI's reference; an openai client
    #   parses it. Reading: README task 8 and OpenAI's API reference for /v1/completions and /v1/chat/completions.
    # HINT task 8 level 2: choices come in index order whatever order the engine finished them in. echo puts
    #   the prompt's text (special tokens skipped) before each text and shifts the logprobs offsets by its
    #   length; logprobs stay None unless the request asked and the engine recorded them. Chat logprobs are
    #   filled in by the given caller.
    # HINT task 8 level 3: for each completion sorted by index: chat -> index, finish_reason and the assistant
    #   message; else the text (with the prefix), its logprobs object or None, and finish_reason; wrap with a
    #   fresh id of the right prefix, the object name, created, the model name, and usage_of.
    created = int(time.time())
    choices = []
    for completion in sorted(output.outputs, key=lambda c: c.index):
        if chat:
            choices.append({"index": completion.index, "finish_reason": completion.finish_reason,
                            "message": {"role": "assistant", "content": completion.text}})
            continue
        prefix = state.tokenizer.decode(output.prompt_token_ids, skip_special_tokens=True) if request.echo else ""
        logprobs = None
        if request.logprobs is not None and completion.logprobs is not None:
            logprobs = completion_logprobs(state.tokenizer, completion.token_ids, completion.logprobs,
                                           len(prefix)).model_dump()
        choices.append({"index": completion.index, "text": prefix + completion.text, "logprobs": logprobs,
                        "finish_reason": completion.finish_reason})
    return {"id": random_id("chatcmpl" if chat else "cmpl"),
            "object": "chat.completion" if chat else "text_completion", "created": created,
            "model": state.model_name, "choices": choices, "usage": usage_of(output).model_dump()}
    # END SOLUTION


async def stream_events(state: ServerState, prompt_ids: list[int], params: SamplingParams, request_id: str,
                        request: CompletionRequest | ChatCompletionRequest, chat: bool) -> AsyncIterator[str]:
    """Server-sent events for a streaming request, as vLLM sends them.

    For each engine output, one chunk per completion that has new text (its ``delta``: the text
    since the last chunk sent for that index), with ``finish_reason`` set on the chunk where it
    finishes. Completions chunks: ``{"id", "object": "text_completion", "created", "model",
    "choices": [{"index", "text", "logprobs", "finish_reason"}]}``. Chat chunks (``object``
    "chat.completion.chunk"): first, per choice, a delta ``{"role": "assistant", "content": ""}``
    (``"logprobs": None``); then ``{"content": <new text>}``. Every chunk of a stream has the same id.
    A chunk's ``logprobs`` is None unless the request asked for them (``request.logprobs``:
    completions, not None; chat, true); then it covers the tokens generated since the previous
    chunk of that index: a completion's ``completion_logprobs`` of them (``text_offset``
    continuing where the previous chunk's ended), a chat's ``chat_logprobs`` (given) with
    ``request.top_logprobs``; the chunks of one index join to the non-streamed logprobs.
    With ``stream_options.include_usage``, a last chunk with ``choices: []`` and ``usage``. Then
    ``data: [DONE]``.

    A client that goes away stops this generator early: abort the engine request then, so that
    its KV blocks return to the pool (and record the finished request's metrics otherwise).
    """
    # BEGIN SOLUTION task 8: vLLM's server-sent events for a streamed request, with the engine request aborted if the client leaves (README task 8; OpenAI's streaming reference; MDN "Using server-sent events").
    # HINT task 8 level 1: a client that concatenates the deltas of one index gets exactly the non-streamed
    #   text, sees each finish_reason once, and the stream ends with [DONE]; a stream that stops early must not
    #   leave the request holding KV blocks. Reading: README task 8, OpenAI's streaming reference (chunk
    #   objects, stream_options.include_usage), MDN on server-sent events, and Python's async generator close.
    # HINT task 8 level 2: the engine reports each completion's whole text so far, not a delta: remember per
    #   index what was sent (its text, its number of tokens and, for logprobs, the next text offset). A step
    #   may bring no new text for an index (skip it unless it just finished). A text that ends in U+FFFD may be
    #   a character cut between tokens (the next token may bring its other bytes): send it only once the next
    #   token or the finish settles it. Chat
    #   streams first send the role delta for every choice. The usage chunk has an empty choices list. An async
    #   generator that is closed early runs its finally block: that is where the abort belongs, and only when
    #   the request had not finished. Record the finished request (state.observe) when it ends normally.
    # HINT task 8 level 3: one id and created for the stream; sent = [""] * n; try: chat role chunks; for each
    #   output: for each completion: text (unfinished: without trailing U+FFFD, the bytes of a character still
    #   to come); delta = text minus sent; skip if empty and unfinished; update sent; yield its chunk
    #   (logprobs of the tokens since the last chunk, when asked); note whether the output finished; after the
    #   loop observe, optional usage chunk, [DONE];
    #   finally: abort when not finished.
    stream_id = random_id("chatcmpl" if chat else "cmpl")
    created = int(time.time())
    base = {"id": stream_id, "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created, "model": state.model_name}
    sent = [""] * params.n
    sent_tokens = [0] * params.n
    offsets = [0] * params.n
    finished = False
    last: RequestOutput | None = None
    try:
        if chat:
            for index in range(params.n):
                yield sse({**base, "choices": [{"index": index, "delta": {"role": "assistant", "content": ""},
                                                "logprobs": None, "finish_reason": None}]})
        async for output in state.engine.generate(prompt_ids, params, request_id):
            last = output
            for completion in output.outputs:
                # an unfinished text that ends in U+FFFD may end in a character whose bytes are still
                # coming: hold those back, as vLLM's incremental detokenizer does
                text = completion.text if completion.finish_reason else completion.text.rstrip("\ufffd")
                delta = text[len(sent[completion.index]):]
                if not delta and completion.finish_reason is None:
                    continue
                index = completion.index
                sent[index] = text
                new_ids = completion.token_ids[sent_tokens[index]:]
                new_logprobs = (completion.logprobs or [])[sent_tokens[index]:]
                sent_tokens[index] = len(completion.token_ids)
                logprobs = None
                if chat:
                    if request.logprobs and completion.logprobs is not None:
                        logprobs = chat_logprobs(state.tokenizer, new_ids, new_logprobs,
                                                 request.top_logprobs or 0)  # type: ignore[union-attr]
                    choice = {"index": index, "delta": {"content": delta}, "logprobs": logprobs,
                              "finish_reason": completion.finish_reason}
                else:
                    if request.logprobs is not None and completion.logprobs is not None:
                        scored = completion_logprobs(state.tokenizer, new_ids, new_logprobs, offsets[index])
                        if scored.tokens:
                            offsets[index] = scored.text_offset[-1] + len(scored.tokens[-1])
                        logprobs = scored.model_dump()
                    choice = {"index": index, "text": delta, "logprobs": logprobs,
                              "finish_reason": completion.finish_reason}
                yield sse({**base, "choices": [choice]})
            finished = output.finished
        assert last is not None
        state.observe(last)
        if request.stream_options is not None and request.stream_options.include_usage:
            yield sse({**base, "choices": [], "usage": usage_of(last).model_dump()})
        yield sse("[DONE]")
    finally:
        if not finished:
            state.engine.abort(request_id)
    # END SOLUTION


async def openai_route(state: ServerState, raw: Request, request: CompletionRequest | ChatCompletionRequest,
                       chat: bool) -> Response:
    """Given: check the model and the request, build the prompt and the params, then answer or stream."""
    state.check_engine()
    state.check_model(request.model)
    check_openai_request(request, vocab_size=state.vocab_size, max_model_len=state.max_model_len,
                         structured_output=getattr(raw.app.state, "sglang", None) is not None)
    if chat:
        try:
            prompt_ids = chat_prompt_ids(state.tokenizer, request.messages)  # type: ignore[union-attr]
        except (APIError, NotImplementedError):
            raise
        except Exception as error:  # the template refused these messages (a role it has no place for, say)
            raise APIError(400, f"messages: the chat template cannot render them ({type(error).__name__}: "
                                f"{error})", "messages") from error
    else:
        prompt = request.prompt  # type: ignore[union-attr]
        if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
            if len(prompt) != 1:
                raise APIError(400, "this server takes one prompt per request", "prompt")
            prompt = prompt[0]
        prompt_ids = state.prompt_ids(prompt)  # type: ignore[arg-type]
    params = openai_sampling_params(with_defaults(request, state.defaults, chat), len(prompt_ids),
                                    state.max_model_len)
    if chat and request.logprobs:  # type: ignore[union-attr]
        params = params.clone(logprobs=request.top_logprobs or 0)  # type: ignore[union-attr]
    processors = logits_processors(request)  # logit_bias, allowed_token_ids (checked above)
    if processors.logit_bias or processors.allowed_token_ids:
        params = params.clone(logit_bias=processors.logit_bias, allowed_token_ids=processors.allowed_token_ids)
    try:  # refused here, before a stream starts, as the engine would refuse it when added
        params.check_sampleable(state.engine.eos_token_ids)
    except ValueError as error:
        raise APIError(400, str(error), "allowed_token_ids") from error
    request_id = random_id("chatcmpl" if chat else "cmpl")
    if request.stream:
        return StreamingResponse(guarded(stream_events(state, prompt_ids, params, request_id, request, chat),
                                         openai_stream_error), media_type="text/event-stream")
    output = await until_disconnected(raw, final_output(state, prompt_ids, params, request_id))
    if output is None:  # the client left; nobody reads this
        return Response(status_code=499)
    body = completion_body(state, output, request, chat)  # type: ignore[arg-type]
    if chat:  # OpenAI's chat choice always has the key (null when no logprobs were asked for)
        by_index = {completion.index: completion for completion in output.outputs}
        for choice in body["choices"]:
            completion = by_index[choice["index"]]
            choice["logprobs"] = None
            if request.logprobs and completion.logprobs is not None:  # type: ignore[union-attr]
                choice["logprobs"] = chat_logprobs(state.tokenizer, completion.token_ids, completion.logprobs,
                                                   request.top_logprobs or 0)  # type: ignore[union-attr]
    return JSONResponse(body)


def chat_logprobs(tokenizer: Any, token_ids: list[int], logprobs: list[dict[int, float]],
                  top: int) -> dict[str, Any]:
    """Given: OpenAI's chat ``logprobs`` object, ``{"content": [{"token", "logprob", "bytes",
    "top_logprobs": [the ``top`` most likely, each {"token", "logprob", "bytes"}]}, ...]}``, from
    the engine's per-token ``{token_id: logprob}`` dicts (the chosen token and the most likely ones)."""

    def entry(token: int, value: float) -> dict[str, Any]:
        text = token_text(tokenizer, token)
        return {"token": text, "logprob": value, "bytes": list(text.encode("utf-8"))}

    content = []
    for token, step in zip(token_ids, logprobs):
        ranked = sorted(step.items(), key=lambda item: -item[1])[:top]
        content.append({**entry(token, step[token]), "top_logprobs": [entry(t, v) for t, v in ranked]})
    return {"content": content}


def render_metrics(state: ServerState) -> str:
    """The ``/metrics`` page in Prometheus' text format, with vLLM's names (``model_name`` label):
    gauges ``vllm:num_requests_running``, ``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc``
    (0..1); counters ``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``,
    ``vllm:request_success_total`` (label ``finished_reason``); histograms
    ``vllm:time_to_first_token_seconds`` and ``vllm:request_time_per_output_token_seconds``. Each family
    starts with ``# HELP`` and ``# TYPE`` lines (a counter's name there ends in ``_total``, as
    vLLM's client library writes it); a histogram has cumulative ``_bucket{le=...}``
    lines ending with ``le="+Inf"``, then ``_sum`` and ``_count``.
    """
    # BEGIN SOLUTION task 8: the /metrics page as Prometheus scrapes it, with vLLM's metric names (README task 8; Prometheus' text exposition format; vLLM's metrics docs).
    # HINT task 8 level 1: a Prometheus client must parse the page and find vLLM's families with the same
    #   names, types and labels, so dashboards built for vLLM work unchanged. Reading: README task 8, the
    #   Prometheus "Exposition formats" page (HELP, TYPE, histograms), and vLLM's production metrics docs.
    # HINT task 8 level 2: every family starts with its HELP and TYPE lines, then its samples; labels go in
    #   braces, several separated by commas; a histogram's buckets count every observation up to their bound
    #   (cumulative), the last bucket is le="+Inf" and equals _count, then _sum and _count. The success counter
    #   has one sample per finished_reason. The page ends with a newline.
    # HINT task 8 level 3: a small helper writes HELP, TYPE and the samples of one family; call it for the
    #   three gauges, the three counters (one sample per reason for successes), and each histogram with its
    #   bucket lines, the +Inf bucket, _sum and _count; join the lines.
    stats = state.engine.stats
    label = f'model_name="{state.model_name}"'
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            lines.append(f"{name}{suffix}{{{labels}}} {value}")

    family("vllm:num_requests_running", "gauge", "Number of requests running.", [("", label, stats.num_running)])
    family("vllm:num_requests_waiting", "gauge", "Number of requests waiting.", [("", label, stats.num_waiting)])
    family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
           [("", label, stats.kv_cache_usage)])
    family("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
           [("", label, stats.prompt_tokens)])
    family("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
           [("", label, stats.generation_tokens)])
    family("vllm:request_success_total", "counter", "Count of successfully processed requests.",
           [("", f'{label},finished_reason="{reason}"', count) for reason, count in sorted(state.finished.items())])
    for histogram in (state.ttft, state.tpot):
        samples = [("_bucket", f'{label},le="{bound}"', count)
                   for bound, count in zip(histogram.buckets, histogram.counts)]
        samples += [("_bucket", f'{label},le="+Inf"', histogram.count), ("_sum", label, histogram.sum),
                    ("_count", label, histogram.count)]
        family(histogram.name, "histogram", histogram.help, samples)
    return "\n".join(lines) + "\n"
    # END SOLUTION


def engine_metrics(state: ServerState) -> str:
    """Given: the engine's other counters under vLLM's names, after task 8's families:
    ``vllm:num_preemptions_total`` (sequences preempted) and ``vllm:prefix_cache_queries_total`` /
    ``vllm:prefix_cache_hits_total`` (prompt tokens looked up in the prefix cache, and found)."""
    stats = state.engine.stats
    label = f'model_name="{state.model_name}"'
    lines: list[str] = []
    for name, help_text, value in (
            ("vllm:num_preemptions", "Cumulative number of preemption from the engine.", stats.num_preemptions),
            ("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
             stats.prefix_cache_queries),
            ("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
             stats.prefix_cache_hits)):
        lines += [f"# HELP {name}_total {help_text}", f"# TYPE {name}_total counter",
                  f"{name}_total{{{label}}} {float(value)}"]
    return "\n".join(lines) + "\n"


def course_version() -> str:
    """The course's version (its package's), for ``GET /version`` (vLLM answers its own there)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-inference-course")
    except PackageNotFoundError:
        return "0+unknown"


# --------------------------------------------------------------------------------------------
# Task 9: TGI and vLLM's demo server


async def tgi_stream(state: ServerState, prompt_ids: list[int], params: SamplingParams, request_id: str,
                     parameters: TGIParameters) -> AsyncIterator[str]:
    """TGI's ``/generate_stream``: one server-sent event per generated token,
    ``{"index", "token": {"id", "text", "logprob", "special"}, "generated_text": None, "details": None}``;
    the last event also carries ``generated_text`` (the whole text, the prompt in front when
    ``return_full_text``) and ``details`` (``finish_reason`` in TGI's words via
    ``dialects.tgi_finish_reason``, ``generated_tokens``, ``seed``). A token's ``text`` is the text
    it added (the text so far minus what earlier events sent). Abort the request if the client
    leaves early.
    """
    # BEGIN SOLUTION task 9: TGI's /generate_stream events, one per token, the last one carrying the whole text and details, with the request aborted if the client leaves (README task 9; TGI's API docs).
    # HINT task 9 level 1: a TGI client reads one event per generated token and expects the concatenated token
    #   texts to be the generated text, with generated_text and details only on the last event. Reading: README
    #   task 9 and the text-generation-inference API reference for /generate_stream.
    # HINT task 9 level 2: one engine step can bring several tokens (and its text only as a whole): give
    #   the step's new text to the last of its tokens and an empty text to the others. Indices count tokens
    #   from 1. special says whether the id is one of the tokenizer's special ids. The finish reason goes
    #   through tgi_finish_reason; return_full_text puts the prompt's text in front. Abort in a finally when the
    #   request did not finish; observe it when it did.
    # HINT task 9 level 3: keep sent_tokens and sent_text; for each output: for each new token: its text is the
    #   text delta if it is the step's last token, else ""; build the event; on the very last token add
    #   generated_text and details; yield; then update the counts; finally abort if unfinished.
    sent_tokens, sent_text, finished = 0, "", False
    prompt_text = state.tokenizer.decode(prompt_ids, skip_special_tokens=True)
    special = set(getattr(state.tokenizer, "all_special_ids", []))
    try:
        async for output in state.engine.generate(prompt_ids, params, request_id):
            completion = output.outputs[0]
            new_tokens = completion.token_ids[sent_tokens:]
            for offset, token in enumerate(new_tokens):
                last = output.finished and offset == len(new_tokens) - 1
                text = completion.text[len(sent_text):] if offset == len(new_tokens) - 1 else ""
                sent_text += text
                event = TGIStreamEvent(index=sent_tokens + offset + 1,
                                       token=TGIToken(id=token, text=text, special=token in special))
                if last:
                    event.generated_text = (prompt_text if parameters.return_full_text else "") + completion.text
                    event.details = TGIStreamDetails(
                        finish_reason=tgi_finish_reason(completion.finish_reason, completion.stop_reason),
                        generated_tokens=len(completion.token_ids), seed=params.seed)
                yield sse(event.model_dump())
            sent_tokens = len(completion.token_ids)
            finished = output.finished
            if finished:
                state.observe(output)
    finally:
        if not finished:
            state.engine.abort(request_id)
    # END SOLUTION


async def generate_route(state: ServerState, raw: Request, body: Any, force_stream: bool | None) -> Response:
    """Given: ``POST /generate`` (both dialects), ``/generate_stream`` and ``POST /`` (TGI)."""
    state.check_engine()
    dialect = detect_dialect(body)
    request_id = random_id("generate")
    if dialect == "tgi":
        try:
            request = parse(TGIRequest, body)
            prompt_ids = state.prompt_ids(request.inputs, "inputs")
            params = tgi_sampling_params(request.parameters, len(prompt_ids), state.max_model_len)
        except APIError as error:
            if error.status != 400:
                raise
            # TGI refuses a bad request with 422 and {"error", "error_type": "validation"}, which
            # InferenceClient raises as its ValidationError; "param" is ours (TGI has no such field).
            return JSONResponse({"error": error.message, "error_type": "validation", "param": error.param},
                                status_code=422)
        if force_stream or (force_stream is None and request.stream):
            return StreamingResponse(guarded(tgi_stream(state, prompt_ids, params, request_id, request.parameters),
                                             tgi_stream_error), media_type="text/event-stream")
        output = await until_disconnected(raw, final_output(state, prompt_ids, params, request_id))
        if output is None:
            return Response(status_code=499)
        completion = output.outputs[0]
        special = set(getattr(state.tokenizer, "all_special_ids", []))
        tokens = [TGIToken(id=t, text=state.tokenizer.decode([t]), special=t in special) for t in completion.token_ids]
        answer = tgi_response(request.inputs, completion.text, tokens,
                              tgi_finish_reason(completion.finish_reason, completion.stop_reason),
                              params.seed, request.parameters)
        # TGI's POST / answers a list (its "compat" route); /generate one object.
        payload = answer.model_dump(exclude_none=True)
        return JSONResponse([payload] if raw.url.path == "/" else payload)
    request = parse(DemoRequest, body)
    prompt_ids = state.prompt_ids(request.prompt)
    params = demo_sampling_params(body, len(prompt_ids), state.max_model_len)
    if request.stream:
        return StreamingResponse(guarded(demo_stream(state, request.prompt, prompt_ids, params, request_id),
                                         demo_stream_error), media_type="application/json")
    output = await until_disconnected(raw, final_output(state, prompt_ids, params, request_id))
    if output is None:
        return Response(status_code=499)
    return JSONResponse({"text": [request.prompt + c.text for c in sorted(output.outputs, key=lambda c: c.index)]})


async def demo_stream(state: ServerState, prompt: str, prompt_ids: list[int], params: SamplingParams,
                      request_id: str) -> AsyncIterator[str]:
    """vLLM's demo server streams one JSON object a line, each with the full texts so far (given)."""
    finished = False
    try:
        async for output in state.engine.generate(prompt_ids, params, request_id):
            finished = output.finished
            yield json.dumps({"text": [prompt + c.text for c in sorted(output.outputs, key=lambda c: c.index)]}) + "\n"
    finally:
        if not finished:
            state.engine.abort(request_id)


# --------------------------------------------------------------------------------------------
# The app (given)


def parse(model: type[Any], body: Any) -> Any:
    """Validate a JSON body against a pydantic model; a bad one is a 400 naming the field."""
    from pydantic import ValidationError

    try:
        return model.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise APIError(400, f"{param}: {first['msg']}", param) from error


def load_engine(model: str, max_model_len: int | None = None, engine_core_process: bool = True,
                **engine_args: Any) -> AsyncLLMEngine:
    """The engine behind the server (float32 on a CPU, the model's context unless capped): by
    default in an engine core process of its own (``core.py``), as vLLM serves; in this process
    with ``engine_core_process=False`` (tests that reach into the engine use that)."""
    return AsyncLLMEngine(model, max_model_len=max_model_len, engine_core_process=engine_core_process,
                          **engine_args)


def build_app(engine: AsyncLLMEngine, *, model_name: str | None = None, api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving ``engine``. ``model_name`` defaults to the model folder's path,
    as vLLM names a model by its ``--model`` argument. With ``api_key``, every route but
    ``/health``, ``/metrics`` and the chat page needs ``Authorization: Bearer <api_key>``."""
    state = ServerState(engine, model_name or str(engine.model_dir), engine.max_model_len)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.shutdown()

    app = FastAPI(title="course serve", lifespan=lifespan)
    app.state.course = state

    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(part) for part in first.get("loc", ()) if part != "body"]
        param = ".".join(loc) or None
        message = f"{first.get('type', 'invalid')}: {'.'.join(['body', *loc])}: {first.get('msg')}"
        return JSONResponse(APIError(400, message, param).body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(APIError(error.status_code, str(error.detail)).body(), status_code=error.status_code)

    @app.exception_handler(EngineDeadError)
    async def engine_dead(request: Request, error: EngineDeadError) -> JSONResponse:
        return JSONResponse(APIError(503, f"EngineDeadError: {error}").body(), status_code=503)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse(APIError(500, f"{type(error).__name__}: {error}").body(), status_code=500)

    if api_key:  # pure ASGI: a BaseHTTPMiddleware here would hide a client's disconnect from the routes
        app.add_middleware(APIKeyMiddleware, api_key=api_key)

    @app.get("/health")
    async def health() -> Response:  # vLLM's /health is a 503 once its engine core is dead
        if engine.dead_error is not None:
            return JSONResponse(APIError(503, f"EngineDeadError: {engine.dead_error}").body(), status_code=503)
        return Response(status_code=200)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": state.model_name, "object": "model", "created": int(time.time()), "owned_by": "course",
                "root": str(engine.model_dir), "max_model_len": state.max_model_len}
        return {"object": "list", "data": [card]}

    @app.post("/v1/completions", dependencies=[Depends(require_json)])
    async def completions(request: CompletionRequest, raw: Request) -> Response:
        return await openai_route(state, raw, request, chat=False)

    @app.post("/v1/chat/completions", dependencies=[Depends(require_json)])
    async def chat_completions(request: ChatCompletionRequest, raw: Request) -> Response:
        sglang = getattr(app.state, "sglang", None)
        if sglang is not None:  # response_format: json_schema goes to lab04's constrained decoding
            body = request.model_dump(exclude_unset=True)
            if (body.get("response_format") or {}).get("type") == "json_object":  # any JSON object
                body["response_format"] = {"type": "json_schema",
                                           "json_schema": {"name": "json_object", "schema": {"type": "object"}}}
            if sglang.handles_chat(body):  # checked as this server checks every chat, then handed over
                state.check_model(request.model)
                check_openai_request(request, vocab_size=state.vocab_size, max_model_len=state.max_model_len,
                                     structured_output=True)
                return await sglang.chat(body, max_model_len=state.max_model_len, raw=raw)
        return await openai_route(state, raw, request, chat=True)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(render_metrics(state) + engine_metrics(state), media_type="text/plain; version=0.0.4")

    @app.get("/version")
    async def version() -> dict[str, str]:
        return {"version": course_version()}

    @app.api_route("/ping", methods=["GET", "POST"])
    async def ping() -> Response:  # vLLM's (and SageMaker's) liveness route: /health's twin
        return Response(status_code=200)

    async def json_body(raw: Request) -> Any:
        try:
            return await raw.json()
        except ValueError as error:
            raise APIError(400, f"json_invalid: the body is not JSON ({error})") from error

    @app.post("/generate")
    async def generate(raw: Request) -> Response:
        body = await json_body(raw)
        sglang = getattr(app.state, "sglang", None)  # lab04's SGLang API, with `course serve --sglang`
        if sglang is not None and sglang.handles_generate(body):  # {"text" | "input_ids": ...}
            return await sglang.generate(body, raw)
        return await generate_route(state, raw, body, None)

    @app.post("/generate_stream")
    async def generate_stream(raw: Request) -> Response:
        return await generate_route(state, raw, await json_body(raw), True)

    @app.post("/")
    async def tgi_compat(raw: Request) -> Response:
        return await generate_route(state, raw, await json_body(raw), None)

    @app.get("/")
    async def chat_page() -> HTMLResponse:
        return HTMLResponse((STATIC / "chat.html").read_text(encoding="utf-8"))

    return app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course serve", description="An OpenAI-compatible server on the lab02 engine.")
    parser.add_argument("--impl", choices=["student", "solution"], default=None,
                        help="serve your code in src/ (default) or the reference solution/")
    parser.add_argument("--model", default=None, help="a model folder (default: the course's fixture)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None, help="require this key (Authorization: Bearer KEY)")
    parser.add_argument("--max-model-len", type=int, default=None, help="cap the context (prompt + output)")
    parser.add_argument("--served-model-name", default=None, help="the name clients use (default: the folder)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--num-kv-blocks", type=int, default=None, help="KV blocks in the pool")
    parser.add_argument("--enable-prefix-caching", action="store_true")
    parser.add_argument("--sglang", action="store_true",
                        help="also speak SGLang's native API (/generate with text, /get_model_info, /flush_cache) "
                             "and response_format json_schema, through lab04's constrained decoding")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``course serve``: parse the arguments, load the engine, serve until Ctrl-C (exit 0)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.impl is not None and Path(__file__).parent.name != {"student": "src", "solution": "solution"}[args.impl]:
        # Serve the other edition's code: its own server module, with its own engine.
        from shared.impl import import_lab_module

        module = import_lab_module("lab02_vllm", "server", args.impl)
        return module.main([*argv, "--impl", args.impl])  # the last --impl wins; it names that module
    import uvicorn

    from shared.models import resolve_model

    engine_args: dict[str, Any] = {"device": args.device, "enable_prefix_caching": args.enable_prefix_caching}
    if args.num_kv_blocks is not None:
        engine_args["num_kv_blocks"] = args.num_kv_blocks
    try:
        model = resolve_model(args.model, "main")
        engine = load_engine(str(model), max_model_len=args.max_model_len, **engine_args)
    except ValueError as error:
        print(f"course serve: {error}")
        return 2
    app = build_app(engine, model_name=args.served_model_name, api_key=args.api_key)
    if args.sglang:  # lab04 task 6: this edition's SGLang routes (they load the model once more, with transformers)
        from shared.impl import import_lab_module

        edition = "solution" if Path(__file__).parent.name == "solution" else "student"
        sglang_server = import_lab_module("lab04_sglang", "sglang_server", edition)
        sglang_server.add_sglang_routes(app, model_dir=Path(model), model_path=str(model), generate=False, chat=False)
    core = f", engine core in process {engine.core.core_pid}" if engine.core is not None else ""
    print(f"course serve: {model} on http://{args.host}:{args.port} (chat page at /, API at /v1{core})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
