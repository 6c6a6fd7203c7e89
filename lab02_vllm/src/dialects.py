# Student skeleton for lab02_vllm: fill in each TODO, then run `course test lab02_vllm`.
# (Generated from the reference solution by `course stubs`.)
"""Tasks 8 and 9: what clients send and what they expect back, in three dialects.

A server is a translator: it turns a request body into a prompt and :class:`SamplingParams`,
runs the engine, and turns :class:`RequestOutput` objects back into the JSON (or server-sent
events) the client was written for. Three clients nobody in this course wrote must work unchanged:

- the ``openai`` Python client: OpenAI's ``/v1/completions`` and ``/v1/chat/completions`` (task 8),
  the dialect vLLM's production server speaks;
- ``huggingface_hub.InferenceClient``: Text Generation Inference's ``POST /generate`` with
  ``inputs`` and ``parameters``, and ``/generate_stream`` (task 9);
- plain ``requests`` against vLLM's demo server (``python -m vllm.entrypoints.api_server``):
  ``{"prompt": ..., <SamplingParams fields>}`` gives ``{"text": [prompt + output, ...]}`` (task 9).

The pydantic models below are given: they are the dialects' published shapes (field names and
defaults copied from vLLM's ``protocol.py`` and TGI's OpenAPI document). Yours are the functions
that translate, and that refuse bad input with an :class:`APIError` carrying the HTTP status and
the offending field, as vLLM answers (400 for a bad value, 404 for an unknown model).

Readings: OpenAI's API reference (Completions, Chat, streaming); vLLM's
``vllm/entrypoints/openai/protocol.py``; TGI's "Consuming TGI" page.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .sampling_params import SamplingParams


class APIError(Exception):
    """A request the server refuses: becomes ``{"error": {"message", "type", "param", "code"}}``.

    Args:
        status: the HTTP status (400 bad value, 401 no key, 404 unknown model or route).
        message: what was wrong, for the person who sent it.
        param: the request field at fault, when there is one.
    """

    TYPES: ClassVar[dict[int, str]] = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError",
             500: "InternalServerError"}

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param

    def body(self) -> dict[str, Any]:
        """The error object as vLLM sends it."""
        return {"error": {"message": self.message, "type": self.TYPES.get(self.status, "APIError"),
                          "param": self.param, "code": self.status}}


def random_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# --------------------------------------------------------------------------------------------
# OpenAI (vLLM's production server). Unknown fields are allowed and ignored, as vLLM does.


class OpenAIModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class StreamOptions(OpenAIModel):
    include_usage: bool = False


def seed_field() -> Any:
    """A seed must fit a signed 64-bit integer (vLLM's protocol: ``ge=-2**63, le=2**63 - 1``)."""
    return Field(None, ge=-(2**63), le=2**63 - 1)


class OpenAIRequest(OpenAIModel):
    """What completions and chat share, with vLLM's request-level checks (given): every field the
    server knows is honoured, or refused with a 400 naming it (never silently ignored)."""

    logit_bias: dict[str, float] | None = None
    allowed_token_ids: list[int] | None = None

    @model_validator(mode="before")
    @classmethod
    def stream_options_need_stream(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("stream_options") and not data.get("stream"):
            # An APIError passes through pydantic (which wraps only ValueError) and names the field.
            raise APIError(400, "Stream options can only be defined when `stream=True`.", "stream_options")
        return data


class CompletionRequest(OpenAIRequest):
    model: str | None = None
    prompt: str | list[int] | list[str] | list[list[int]]
    max_tokens: int | None = 16
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    n: int = 1
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    seed: int | None = seed_field()
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = None
    echo: bool = False
    ignore_eos: bool = False
    min_tokens: int = 0
    user: str | None = None


class TextPart(OpenAIModel):
    """A part of a message's content (OpenAI's content parts; this server reads text only)."""

    type: Literal["text"]
    text: str


class ChatMessage(OpenAIModel):
    """One message. ``role`` is any string, as in vLLM (``system``, ``developer``, ``user``,
    ``assistant``, ``tool`` or a custom one: the chat template decides what it can render).
    ``content`` is a string or a list of text parts (what ``vllm bench serve --backend
    openai-chat`` sends), joined with newlines as vLLM joins them for a string-only template."""

    role: str
    content: str | list[TextPart]

    @field_validator("content", mode="after")
    @classmethod
    def text_of_parts(cls, content: str | list[TextPart]) -> str:
        return content if isinstance(content, str) else "\n".join(part.text for part in content)


class ResponseFormat(OpenAIModel):
    type: Literal["text", "json_object", "json_schema", "structural_tag"]


class ChatCompletionRequest(OpenAIRequest):
    model: str | None = None
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    n: int = 1
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    seed: int | None = seed_field()
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    user: str | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = 0
    response_format: ResponseFormat | None = None


class UsageInfo(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionLogprobs(BaseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None


class CompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: random_id("cmpl"))
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatChoiceMessage
    finish_reason: str | None = None


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: random_id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: UsageInfo


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: UsageInfo | None = None


#: The most ``logprobs`` a request may ask for (vLLM's default ``max_logprobs``).
MAX_LOGPROBS = 20

#: Fields vLLM honours that this server's engine cannot: a request that sets one to anything but
#: its neutral value is refused with a 400 naming it, rather than answered as if it were not there.
UNSERVED_FIELDS: dict[str, tuple[Any, str]] = {
    "presence_penalty": (0.0, "the engine's sampler has no penalties"),
    "frequency_penalty": (0.0, "the engine's sampler has no penalties"),
    "repetition_penalty": (1.0, "the engine's sampler has no penalties"),
    "min_p": (0.0, "the engine's sampler has no min_p"),
    "best_of": (None, "the engine returns n completions, not the best of more"),
    "bad_words": (None, "the engine cannot ban words"),
    "prompt_logprobs": (None, "the engine does not score the prompt"),
    "truncate_prompt_tokens": (None, "prompts are never truncated here"),
    "include_stop_str_in_output": (False, "stop strings are always cut"),
    "skip_special_tokens": (True, "special tokens are always skipped"),
    "guided_json": (None, "run `course serve --sglang` and send response_format json_schema"),
    "guided_regex": (None, "run `course serve --sglang` and use SGLang's /generate with a regex"),
    "guided_choice": (None, "structured output is lab04's: run `course serve --sglang`"),
    "guided_grammar": (None, "structured output is lab04's: run `course serve --sglang`"),
    "structured_outputs": (None, "structured output is lab04's: run `course serve --sglang`"),
    "tools": (None, "the server does not call tools"),
    "tool_choice": (None, "the server does not call tools"),
    "suffix": (None, "the engine does not fill in the middle"),
}


def unencodable(value: Any, path: str) -> str | None:
    """The dotted path of the first string in ``value`` (a parsed JSON body, or a part of one)
    that UTF-8 cannot encode (a lone surrogate such as ``"\\ud800"``, which Python's JSON
    parser lets through and the tokenizer then chokes on), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = unencodable(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def check_openai_request(request: CompletionRequest | ChatCompletionRequest, *, vocab_size: int,
                         max_model_len: int, structured_output: bool = False) -> None:
    """vLLM's checks of a request that are not a sampling setting's own range (given; those are
    :class:`SamplingParams`' and task 8's ``openai_sampling_params``'): text UTF-8 can encode, a
    non-empty prompt, ``max_tokens`` at most ``max_model_len`` (vLLM caps it to the room the
    prompt leaves only below that), ``n`` 1 when greedy, token ids in the vocabulary
    (``stop_token_ids``, ``logit_bias``' keys, ``allowed_token_ids``, which must not be empty),
    and no field this server cannot honour (``UNSERVED_FIELDS``, ``response_format`` without
    lab04's constrained decoding).

    Args:
        request: the parsed request.
        vocab_size: the model's vocabulary size (token ids must lie in ``[0, vocab_size)``).
        max_model_len: the server's context.
        structured_output: whether ``response_format: json_schema`` is served (``--sglang``).

    Raises:
        APIError(400, param=<field>): the first check that fails, in vLLM's words where vLLM has them.
    """
    is_chat = isinstance(request, ChatCompletionRequest)
    body = request.model_dump(exclude_unset=True)
    where = unencodable(body, "")
    if where is not None:
        raise APIError(400, f"{where}: the text holds a lone surrogate, which UTF-8 cannot encode", where)
    if not is_chat and request.prompt in ("", []):
        raise APIError(400, "Either prompt or prompt_embeds must be provided and non-empty.", "prompt")
    for name, (neutral, why) in UNSERVED_FIELDS.items():
        if body.get(name, neutral) != neutral:
            raise APIError(400, f"{name} is not supported by course serve: {why}", name)
    if not is_chat and request.echo and request.logprobs is not None:
        raise APIError(400, "echo with logprobs is not supported by course serve: vLLM then returns the prompt's "
                            "logprobs too, and this engine does not score the prompt", "echo")
    if not is_chat and request.echo and request.stream:
        raise APIError(400, "echo is not supported on a streamed completion by course serve: ask without stream",
                       "echo")
    if is_chat:
        if request.top_logprobs and not request.logprobs:
            raise APIError(400, "when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs")
        if request.top_logprobs is not None and not 0 <= request.top_logprobs <= MAX_LOGPROBS:
            raise APIError(400, f"top_logprobs must be in [0, {MAX_LOGPROBS}], got {request.top_logprobs}.",
                           "top_logprobs")
        kind = request.response_format.type if request.response_format is not None else "text"
        if kind != "text" and not (kind in ("json_schema", "json_object") and structured_output):
            hint = ("send response_format json_schema or json_object instead" if structured_output else
                    "run `course serve --sglang`, which answers response_format json_schema through lab04's "
                    "constrained decoding")
            raise APIError(400, f"response_format {kind} is not supported by this server: {hint}",
                           "response_format")
    max_out, param = request.max_tokens, "max_tokens"
    if is_chat and request.max_completion_tokens is not None:
        max_out, param = request.max_completion_tokens, "max_completion_tokens"
    if max_out is not None and max_out > max_model_len:
        raise APIError(400, f"{param}={max_out} cannot be greater than max_model_len={max_model_len}. Please "
                            "request fewer output tokens.", param)
    if request.n > 1 and request.temperature is not None and request.temperature < 1e-5:
        raise APIError(400, f"n must be 1 when using greedy sampling, got {request.n}.", "n")
    bad = [t for t in request.stop_token_ids or [] if not 0 <= t < vocab_size]
    if bad:
        raise APIError(400, f"token_id(s) {bad} in stop_token_ids contain out-of-vocab token ids. Vocabulary size: "
                            f"{vocab_size}", "stop_token_ids")
    try:  # logit_bias and allowed_token_ids: SamplingParams' own checks, then the vocabulary (vLLM's words)
        logits_processors(request).check_vocabulary(vocab_size)
    except ValueError as error:
        raise APIError(400, str(error), "allowed_token_ids" if "allowed_token_ids" in str(error) else
                       "logit_bias") from error


def logits_processors(request: CompletionRequest | ChatCompletionRequest) -> SamplingParams:
    """Given: the request's ``logit_bias`` and ``allowed_token_ids`` (vLLM's extra parameter) as
    :class:`SamplingParams` fields (keys as int ids, biases clamped to [-100, 100]), on default
    settings; the server copies them onto the params task 8 builds (``params.clone``)."""
    return SamplingParams(logit_bias=request.logit_bias or None, allowed_token_ids=request.allowed_token_ids)


def openai_sampling_params(request: CompletionRequest | ChatCompletionRequest, prompt_tokens: int,
                           max_model_len: int) -> SamplingParams:
    """The engine's :class:`SamplingParams` for an OpenAI request, checked as vLLM checks it.

    Args:
        request: a completion or chat request (already type-checked by pydantic).
        prompt_tokens: the prompt's length in tokens (for chat: of the rendered template).
        max_model_len: the context the server allows (prompt + output).

    Returns:
        SamplingParams with ``max_tokens`` = the request's ``max_tokens`` (chat: ``max_completion_tokens``
        first), capped at what is left of the context (``max_model_len - prompt_tokens``; vLLM
        caps it too rather than refusing), and that rest when it is None; ``temperature`` 1.0,
        ``top_p`` 1.0 and ``top_k`` -1 when not given; ``n``, ``stop``, ``stop_token_ids``,
        ``seed``, ``ignore_eos``, ``min_tokens`` copied; ``logprobs`` for completions.

    Raises:
        APIError(400, param=<field>): ``n`` < 1, ``temperature`` < 0, ``top_p`` outside (0, 1],
            ``logprobs`` outside [0, 20] (vLLM's most), a prompt longer than ``max_model_len``
            (param ``input_tokens``, as vLLM names it; the message gives both numbers), or
            ``max_tokens`` < 1 after capping ("max_tokens must be at least 1, got -5."; a prompt
            of exactly ``max_model_len`` tokens leaves 0, and vLLM answers just that).
    """
    # TODO(lab02 task 8): the engine's SamplingParams for an OpenAI request, refusing what vLLM refuses with its status, param and wording (README task 8; vLLM's OpenAI-compatible server docs).
    raise NotImplementedError("lab02 task 8: openai_sampling_params is not written yet (see lab02_vllm/README.md, task 8)")


# --------------------------------------------------------------------------------------------
# Text Generation Inference (huggingface_hub.InferenceClient.text_generation)


class TGIParameters(BaseModel):
    model_config = ConfigDict(extra="allow")

    max_new_tokens: int | None = 100
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    do_sample: bool = False
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    details: bool = False
    decoder_input_details: bool = False
    return_full_text: bool | None = False


class TGIRequest(BaseModel):
    inputs: str
    parameters: TGIParameters = Field(default_factory=TGIParameters)
    stream: bool = False


class TGIToken(BaseModel):
    id: int
    text: str
    logprob: float | None = None
    special: bool = False


class TGIDetails(BaseModel):
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    generated_tokens: int
    seed: int | None = None
    prefill: list[TGIToken] = Field(default_factory=list)
    tokens: list[TGIToken] = Field(default_factory=list)


class TGIResponse(BaseModel):
    generated_text: str
    details: TGIDetails | None = None


class TGIStreamDetails(BaseModel):
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    generated_tokens: int
    seed: int | None = None


class TGIStreamEvent(BaseModel):
    index: int
    token: TGIToken
    generated_text: str | None = None
    details: TGIStreamDetails | None = None


# --------------------------------------------------------------------------------------------
# vLLM's demo server (python -m vllm.entrypoints.api_server): {"prompt", "stream", **SamplingParams}


class DemoRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # every other field is a SamplingParams field

    prompt: str
    stream: bool = False


def detect_dialect(body: Any) -> Literal["tgi", "vllm"]:
    """Which ``/generate`` dialect a JSON body speaks: ``"tgi"`` when it has ``inputs``, ``"vllm"``
    (the demo server's) when it has ``prompt``.

    Raises:
        APIError(400): a body that is not a JSON object, or has neither field; the message names
            both expected shapes (``{"inputs": ..., "parameters": {...}}`` or ``{"prompt": ..., ...}``).
    """
    # TODO(lab02 task 9): tell TGI's body from vLLM's demo-server body, refusing anything else with a message that shows both shapes (README task 9; TGI's and vLLM's api_server docs).
    raise NotImplementedError("lab02 task 9: detect_dialect is not written yet (see lab02_vllm/README.md, task 9)")


def tgi_sampling_params(parameters: TGIParameters, prompt_tokens: int, max_model_len: int) -> SamplingParams:
    """The engine's SamplingParams for TGI ``parameters``.

    TGI is greedy unless ``do_sample`` is true *or* a sampling knob (``temperature``, ``top_p``,
    ``top_k``) is given; ``max_new_tokens`` None means what is left of the context; ``stop`` maps
    to stop strings; ``seed`` is copied.

    Raises:
        APIError(400, param="max_new_tokens"): ``max_new_tokens`` < 1 or prompt + it past the
            context; APIError(400, param=<field>) for a value SamplingParams refuses
            (``temperature`` < 0, ``top_p`` outside (0, 1]).
    """
    # TODO(lab02 task 9): TGI's parameters as SamplingParams, with TGI's rule for when it samples and the context checked (README task 9; TGI's /generate parameters reference).
    raise NotImplementedError("lab02 task 9: tgi_sampling_params is not written yet (see lab02_vllm/README.md, task 9)")


#: The engine's finish reasons in TGI's words (a stop *token* is eos in TGI's view).
TGI_FINISH = {"length": "length", "stop": "eos_token", "abort": "length"}


def tgi_finish_reason(finish_reason: str | None, stop_reason: int | str | None) -> str:
    """TGI's finish reason: ``stop_sequence`` when a stop string ended the text, else via TGI_FINISH."""
    if isinstance(stop_reason, str):
        return "stop_sequence"
    return TGI_FINISH.get(finish_reason or "length", "length")


def tgi_response(prompt: str, text: str, tokens: list[TGIToken], finish_reason: str, seed: int | None,
                 parameters: TGIParameters) -> TGIResponse:
    """TGI's answer: ``generated_text`` (the prompt in front when ``return_full_text``), and
    ``details`` (finish reason, token count, seed and the tokens) only when ``parameters.details``."""
    # TODO(lab02 task 9): TGI's non-streamed answer (README task 9; TGI's /generate response reference).
    raise NotImplementedError("lab02 task 9: tgi_response is not written yet (see lab02_vllm/README.md, task 9)")


def demo_sampling_params(body: dict[str, Any], prompt_tokens: int, max_model_len: int) -> SamplingParams:
    """The engine's SamplingParams from a demo-server body (``prompt`` and ``stream`` removed):
    every other field is passed to SamplingParams as is, as vLLM's demo server does; its default
    ``max_tokens`` is SamplingParams' own (16).

    Raises:
        APIError(400, param=<field>): an unknown field or a value SamplingParams refuses (the
            field named in SamplingParams' message), or prompt + ``max_tokens`` past the context.
    """
    # TODO(lab02 task 9): vLLM's demo-server body as SamplingParams, its refusals turned into 400s naming the field (README task 9; vLLM's vllm/entrypoints/api_server.py).
    raise NotImplementedError("lab02 task 9: demo_sampling_params is not written yet (see lab02_vllm/README.md, task 9)")
