# Student skeleton for lab04_sglang: fill in each TODO, then run `course test lab04_sglang`.
# (Generated from the reference solution by `course stubs`.)
"""Task 6 (server): SGLang's native HTTP API on a FastAPI app, so real SGLang programs run here.

``sgl.RuntimeEndpoint(url)`` needs three routes: ``GET /get_model_info`` (it reads
``model_path``), ``POST /generate`` (``text`` or ``input_ids``, one or a batch, with
``sampling_params``; ``stream`` answers ``data: {...}`` lines ending ``data: [DONE]``) and
``POST /flush_cache``. Each is a thin layer over ``sglang_api``: parse the body (a bad one is a
400 naming its field, before any work), then ``generate_one`` per prompt, which is where tasks 2
(masks) and 4 (radix cache) do the work. OpenAI's ``response_format: {"type": "json_schema"}``
rides on the same layer: render the chat template, generate with the schema.

``add_sglang_routes`` works on any app. lab02's server already owns ``POST /generate`` (TGI's
``inputs`` and vLLM's demo ``prompt``) and ``POST /v1/chat/completions``: there, pass
``generate=False, chat=False`` and let those routes hand SGLang-shaped bodies to the returned
``SGLangService`` (also ``app.state.sglang``)::

    sglang = getattr(raw.app.state, "sglang", None)
    if sglang is not None and sglang.handles_generate(body):  # {"text": ...} or {"input_ids": ...}
        return await sglang.generate(body, raw)

Generation is batch-1 and not thread-safe (one radix tree, one model), while SGLang's
``run_batch`` and ``fork`` send requests from several threads: a lock serialises them, and the
work runs in a worker thread so the event loop keeps answering. A client that leaves, streamed or
not, stops its request before the next token (and a request still queued at the lock never
starts): nobody would read the answer, and everyone queued behind it would wait for it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from .grammar import compile_constraint
from .prefix_cache import RequestAborted
from .program import LocalBackend
from .sglang_api import GenerateRequest, GenerateResponse, SamplingParams, generate_one, model_info

#: Where pydantic's error locations name a member of a union (``SamplingParams``, ``list[str]``), not a field.
_UNION_TAGS = ("[", "SamplingParams", "str", "int", "float", "bool")


class BadRequest(ValueError):
    """A request the server refuses with 400; ``param`` names the field (dotted), as OpenAI's errors do."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": "BadRequestError", "param": self.param, "code": 400}}
        return JSONResponse(body, status_code=400)


def unencodable(value: Any, path: str) -> str | None:
    """The dotted path of the first string in a parsed JSON body that UTF-8 cannot encode (a lone
    surrogate such as ``"\\ud800"``: Python's JSON parser accepts it, the tokenizer then fails), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = unencodable(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def is_sglang_body(body: Any) -> bool:
    """SGLang's ``/generate`` body has ``text`` or ``input_ids`` (TGI's has ``inputs``, vLLM's demo ``prompt``)."""
    return isinstance(body, dict) and ("text" in body or "input_ids" in body)


def is_structured_chat(body: Any) -> bool:
    """An OpenAI chat request whose ``response_format`` asks for a JSON schema (this layer answers those)."""
    fmt = body.get("response_format") if isinstance(body, dict) else None
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema"


def field_of(error: ValidationError) -> str:
    """The dotted field of a pydantic error's first entry, union members and validator wrappers
    left out (``sampling_params.top_p``, not ``sampling_params.function-after[...].top_p``)."""
    loc = error.errors()[0]["loc"]
    return ".".join(str(part) for part in loc
                    if not (isinstance(part, str) and (part.startswith(_UNION_TAGS) or "[" in part)))


def parse_generate(body: Any) -> GenerateRequest:
    """Validate a ``/generate`` body, and compile every regex / json_schema in it, before any generation.

    Raises:
        BadRequest: naming the field: a typo, a bad value, a batch list of the wrong length, a
            regex or schema task 1 cannot compile, ``stream`` with a batch.
    """
    # TODO(lab04 task 6): a /generate body as a GenerateRequest with every regex and schema compiled before any generation, or a BadRequest naming the field (README task 6, 'The server').
    raise NotImplementedError("lab04 task 6: parse_generate is not written yet (see lab04_sglang/README.md, task 6)")


def stream_chunks(tokenizer: Any, answer: GenerateResponse) -> Iterator[dict[str, Any]]:
    """SGLang's stream of one answer: each chunk holds the *whole* text so far (the client keeps a
    position and takes the new tail), the last one the full answer with its ``finish_reason``.

    A chunk is sent only when the text grew and does not end inside a UTF-8 character (``\\ufffd``);
    a stop string cut the final text, so no chunk shows what lies past the cut.
    """
    # TODO(lab04 task 6): SGLang's stream of one finished answer: chunks of the whole text so far, never a broken character or text past a stop-string cut, then the full answer (README task 6; runtime_endpoint.py's generate_stream).
    raise NotImplementedError("lab04 task 6: stream_chunks is not written yet (see lab04_sglang/README.md, task 6)")


def chat_to_generate(tokenizer: Any, body: dict[str, Any]) -> tuple[list[int], SamplingParams]:
    """An OpenAI chat request with ``response_format: {"type": "json_schema", "json_schema": {"schema": ...}}``
    as ``generate_one``'s prompt ids (the chat template, generation prompt added) and sampling params.

    Raises:
        BadRequest: no messages, a ``response_format`` without ``json_schema.schema``, ``n`` > 1.
    """
    # TODO(lab04 task 6): an OpenAI structured-output chat request as generate_one's prompt ids and sampling params, bad requests refused by field (README task 6, chat_to_generate; OpenAI's response_format).
    raise NotImplementedError("lab04 task 6: chat_to_generate is not written yet (see lab04_sglang/README.md, task 6)")


class SGLangService:
    """The routes' work, callable from any app: one backend, one lock, one ``model_path``.

    Args:
        backend: task 5's ``LocalBackend`` (model, tokenizer, radix cache).
        model_path: what ``/get_model_info`` reports (``RuntimeEndpoint`` picks a chat template from it).
    """

    #: For an app that owns ``/generate`` and ``/v1/chat/completions`` (lab02's): which bodies to hand over.
    handles_generate = staticmethod(is_sglang_body)
    handles_chat = staticmethod(is_structured_chat)

    def __init__(self, backend: LocalBackend, model_path: str) -> None:
        self.backend, self.model_path = backend, model_path
        self.lock = threading.Lock()

    def model_info(self) -> dict[str, Any]:
        return model_info(self.backend, self.model_path)

    def flush_cache(self) -> None:
        """Empty the radix tree (SGLang's ``/flush_cache``); KV in use by a running request is not touched."""
        with self.lock:
            self.backend.engine.radix.reset()

    def answer(self, request: GenerateRequest, aborted: threading.Event | None = None) -> list[GenerateResponse]:
        """Every prompt's answer, one at a time under the lock; ``RequestAborted`` once ``aborted`` is set."""
        engine = self.backend.engine
        with self.lock:
            engine.abort_event = aborted
            try:
                answers = []
                for prompt, params, logprob, start in request.split():
                    engine.check_not_aborted()
                    answers.append(generate_one(self.backend, prompt, params, logprob, start,
                                                bool(request.return_text_in_logprobs)))
                return answers
            finally:
                engine.abort_event = None

    async def answer_for(self, raw: Request | None, request: GenerateRequest) -> list[GenerateResponse] | None:
        """``answer`` in a worker thread, stopped if ``raw``'s client disconnects first (then None)."""
        if raw is None:
            return await run_in_threadpool(self.answer, request)
        aborted = threading.Event()
        work = asyncio.ensure_future(run_in_threadpool(self.answer, request, aborted))
        while not work.done():
            if await raw.is_disconnected():
                aborted.set()
                break
            await asyncio.wait({work}, timeout=0.05)
        try:
            return await work
        except RequestAborted:
            return None

    async def generate(self, body: Any, raw: Request | None = None) -> Response:
        """``POST /generate`` for a parsed JSON body: the answer, a list for a batch, or a stream.
        ``raw``, the HTTP request, lets a client that leaves stop the work."""
        try:
            where = unencodable(body, "")
            if where is not None:
                raise BadRequest(f"{where}: the text holds a lone surrogate, which UTF-8 cannot encode", where)
            request = parse_generate(body)
        except BadRequest as error:
            return error.response()
        answers = await self.answer_for(raw, request)
        if answers is None:
            return Response(status_code=499)  # nginx's "client closed request": nobody reads it
        if request.stream:
            lines = [f"data: {json.dumps(chunk)}\n\n" for chunk in stream_chunks(self.backend.tokenizer, answers[0])]
            return StreamingResponse(iter([*lines, "data: [DONE]\n\n"]), media_type="text/event-stream")
        payload = [a.model_dump() for a in answers]
        return JSONResponse(payload if request.is_batch else payload[0])

    @property
    def max_model_len(self) -> int:
        """The model's context (prompt + output), from its config."""
        return int(getattr(self.backend.model.config, "max_position_embeddings", 2048))

    async def chat(self, body: Any, max_model_len: int | None = None, raw: Request | None = None) -> Response:
        """``POST /v1/chat/completions`` with ``response_format: json_schema``: an OpenAI chat.completion,
        or with ``stream`` its chunks (sent once the answer is made: generation here is batch-1 and
        not incremental), then ``data: [DONE]``.

        ``max_tokens`` (or ``max_completion_tokens``) is checked as vLLM checks it: at least 1, at
        most ``max_model_len`` (default: the model's context), capped to the room the prompt
        leaves; a prompt that fills the context is a 400 naming ``input_tokens``, and a schema task 1
        cannot compile one naming ``response_format.json_schema.schema`` (before any generation)."""
        context = max_model_len or self.max_model_len
        try:
            where = unencodable(body, "")
            if where is not None:
                raise BadRequest(f"{where}: the text holds a lone surrogate, which UTF-8 cannot encode", where)
            if not is_structured_chat(body):
                raise BadRequest('response_format: this route answers {"type": "json_schema", ...} only',
                                 "response_format")
            name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
            asked = body.get(name)
            if asked is not None and (isinstance(asked, bool) or not isinstance(asked, int)):
                raise BadRequest(f"{name} must be an integer, got {asked!r}", name)
            if asked is not None and asked < 1:
                raise BadRequest(f"{name} must be at least 1, got {asked}.", name)
            if asked is not None and asked > context:
                raise BadRequest(f"{name}={asked} cannot be greater than max_model_len={context}. Please request "
                                 "fewer output tokens.", name)
            ids, params = chat_to_generate(self.backend.tokenizer, body)
            try:  # task 1 compiles the schema before any work: one it cannot compile is a 400, not a 500
                compile_constraint(json_schema=params.json_schema)
            except ValueError as error:
                raise BadRequest(f"response_format.json_schema.schema: {error}",
                                 "response_format.json_schema.schema") from error
            if len(ids) >= context:
                raise BadRequest(f"This model's maximum context length is {context} tokens. However, your prompt "
                                 f"contains {len(ids)} input tokens, which leaves no room for output tokens. "
                                 "Please reduce the length of the input prompt.", "input_tokens")
            room = context - len(ids)
            params = params.model_copy(update={"max_new_tokens": min(params.max_new_tokens or room, room)})
        except BadRequest as error:
            return error.response()
        answers = await self.answer_for(raw, GenerateRequest(input_ids=ids, sampling_params=params))
        if answers is None:
            return Response(status_code=499)
        [answer] = answers
        meta = answer.meta_info
        finish = "length" if meta.finish_reason and meta.finish_reason["type"] == "length" else "stop"
        chat_id, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), body.get("model") or self.model_path
        usage = {"prompt_tokens": meta.prompt_tokens, "completion_tokens": meta.completion_tokens,
                 "total_tokens": meta.prompt_tokens + meta.completion_tokens}
        if body.get("stream"):
            return StreamingResponse(iter(self.chat_chunks(answer, chat_id, created, model, finish, usage, body)),
                                     media_type="text/event-stream")
        return JSONResponse({
            "id": chat_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": finish, "logprobs": None}],
            "usage": usage})

    def chat_chunks(self, answer: GenerateResponse, chat_id: str, created: int, model: str, finish: str,
                    usage: dict[str, int], body: dict[str, Any]) -> list[str]:
        """An answer as OpenAI's chat chunks: the role, one content delta per piece ``stream_chunks``
        shows, the finish reason, the usage chunk when ``stream_options.include_usage``, ``[DONE]``."""
        base = {"id": chat_id, "object": "chat.completion.chunk", "created": created, "model": model}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"

        events, shown = [chunk({"role": "assistant", "content": ""})], ""
        for piece in stream_chunks(self.backend.tokenizer, answer):
            if len(piece["text"]) > len(shown):
                events.append(chunk({"content": piece["text"][len(shown):]}))
                shown = piece["text"]
        events.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n")
        return [*events, "data: [DONE]\n\n"]


async def json_body(raw: Request) -> Any:
    try:
        return await raw.json()
    except ValueError as error:
        raise BadRequest(f"the body is not JSON ({error})") from error


def _has_route(app: FastAPI, path: str, method: str) -> bool:
    return any(getattr(r, "path", None) == path and method in (getattr(r, "methods", None) or ()) for r in app.routes)


def add_sglang_routes(app: FastAPI, *, model_dir: Path | str, backend: LocalBackend | None = None,
                      model_path: str | None = None, generate: bool = True, chat: bool = True) -> SGLangService:
    """Add SGLang's native routes to ``app``; returns the service behind them (also ``app.state.sglang``).

    Args:
        app: any FastAPI app (a bare one in lab04's tests, lab02's ``course serve``).
        model_dir: the model folder; loaded with transformers into task 5's ``LocalBackend`` unless ``backend`` is given.
        backend: an already loaded ``LocalBackend`` on that model.
        model_path: what ``/get_model_info`` reports (default ``str(model_dir)``).
        generate: add ``POST /generate``. An app that already has one passes False and hands
            bodies where ``is_sglang_body`` holds to ``service.generate(body, raw)``.
        chat: add ``POST /v1/chat/completions`` for ``response_format: json_schema``; likewise, an app
            with its own passes False and hands bodies where ``is_structured_chat`` holds to
            ``service.chat(body, raw=raw)``.

    Raises:
        ValueError: ``generate`` or ``chat`` asked for a route the app already has (naming it).
    """
    for wanted, path in ((generate, "/generate"), (chat, "/v1/chat/completions")):
        if wanted and _has_route(app, path, "POST"):
            flag = "generate" if path == "/generate" else "chat"
            raise ValueError(f"{flag}: the app already has POST {path}; pass {flag}=False and let that route "
                             f"hand SGLang-shaped bodies to the returned service")
    service = SGLangService(backend or LocalBackend(Path(model_dir)), model_path or str(model_dir))
    app.state.sglang = service

    @app.get("/get_model_info")
    async def get_model_info() -> dict[str, Any]:
        return service.model_info()

    @app.post("/flush_cache")
    async def flush_cache() -> Response:
        await run_in_threadpool(service.flush_cache)
        return Response("Cache flushed.\n", media_type="text/plain")

    if generate:
        @app.post("/generate")
        async def sglang_generate(raw: Request) -> Response:
            try:
                body = await json_body(raw)
            except BadRequest as error:
                return error.response()
            return await service.generate(body, raw)

    if chat:
        @app.post("/v1/chat/completions")
        async def structured_chat(raw: Request) -> Response:
            try:
                body = await json_body(raw)
            except BadRequest as error:
                return error.response()
            return await service.chat(body, raw=raw)

    return service
