# Student skeleton for lab04_sglang: fill in each TODO, then run `course test lab04_sglang`.
# (Generated from the reference solution by `course stubs`.)
"""Task 6 (part done now): SGLang's native ``/generate`` API, as data, and served by tasks 2 and 4.

A real SGLang program talks to its server through ``sgl.RuntimeEndpoint(url)``, which speaks
SGLang's *native* HTTP API (not the OpenAI one): ``GET /get_model_info``, ``POST /generate`` and
``POST /flush_cache``. This file holds what a server needs that is not HTTP: the request and
response as pydantic models (so a bad request is a 400 naming its field), ``generate`` which
answers one request with the constrained decoding of task 2 and the radix cache of task 4, and
the command line that starts the real SGLang server on a GPU machine. The HTTP routes arrive with
lab02's server (``course serve``).

What ``RuntimeEndpoint`` sends (sglang 0.5.23, ``sglang/lang/backend/runtime_endpoint.py``):
``{"text": str | [str], "sampling_params": {"max_new_tokens", "min_new_tokens", "n", "stop",
"stop_token_ids", "stop_regex", "temperature", "top_p", "top_k", "min_p", "frequency_penalty",
"presence_penalty", "ignore_eos", "regex", "json_schema"}, "return_logprob", "logprob_start_len",
"top_logprobs_num", "return_text_in_logprobs", "stream"}`` with ``None`` for what a program left
unset; it reads ``text`` and ``meta_info`` (``prompt_tokens``, ``completion_tokens``,
``input_token_logprobs`` / ``output_token_logprobs`` as ``[logprob, token_id, text]``). ``select``
sends ``max_new_tokens: 0`` requests: a prefill that only fills the cache and scores the prompt.
"""

from __future__ import annotations

import shlex
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .program import LocalBackend

GRAMMAR_BACKENDS = ("xgrammar", "outlines", "llguidance", "none")


class SamplingParams(BaseModel):
    """SGLang's ``sampling_params``; ``None`` (what RuntimeEndpoint sends for unset) means the default."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int | None = Field(None, ge=0)
    min_new_tokens: int | None = Field(None, ge=0)
    n: int | None = Field(None, ge=1, le=1)
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    stop_regex: str | list[str] | None = None
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = None
    min_p: float | None = Field(None, ge=0, le=1)
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    ignore_eos: bool | None = None
    regex: str | None = None
    json_schema: str | None = None
    ebnf: str | None = None
    skip_special_tokens: bool | None = None  # sent by RuntimeEndpoint; special tokens are always skipped here
    spaces_between_special_tokens: bool | None = None

    @model_validator(mode="after")
    def _one_grammar(self) -> SamplingParams:
        """At most one of ``regex``, ``json_schema``, ``ebnf``; and what the course engine does not
        do is refused by name (``sampling_params.<field> is not supported``): ``ebnf``,
        ``stop_regex``, ``top_p`` < 1, ``top_k`` other than -1 / 0 (off), ``min_p`` > 0, the
        frequency and presence penalties, ``min_new_tokens``."""
        # TODO(lab04 task 6): refuse, naming the field, two grammars at once or a setting the course engine cannot honour (README task 6; the docstring).
        raise NotImplementedError("lab04 task 6: _one_grammar is not written yet (see lab04_sglang/README.md, task 6)")


class GenerateRequest(BaseModel):
    """The body of ``POST /generate``: one prompt or a batch, as text or as token ids."""

    model_config = ConfigDict(extra="ignore")  # SGLang accepts fields (rid, lora_path...) we do not use

    text: str | list[str] | None = None
    input_ids: list[int] | list[list[int]] | None = None
    sampling_params: SamplingParams | list[SamplingParams] | None = None
    return_logprob: bool | list[bool] | None = None
    logprob_start_len: int | list[int] | None = None
    top_logprobs_num: int | list[int] | None = None
    return_text_in_logprobs: bool | None = None
    stream: bool = False

    @model_validator(mode="after")
    def _one_prompt(self) -> GenerateRequest:
        if (self.text is None) == (self.input_ids is None):
            raise ValueError("give exactly one of text and input_ids")
        return self

    @property
    def is_batch(self) -> bool:
        return isinstance(self.text, list) or (bool(self.input_ids) and isinstance(self.input_ids[0], list))

    def split(self) -> list[tuple[str | list[int], SamplingParams, bool, int]]:
        """One ``(prompt, sampling params, return_logprob, logprob_start_len)`` per prompt of the batch.

        Raises:
            ValueError: a list of sampling params (or of return_logprob...) whose length is not the batch's.
        """
        # TODO(lab04 task 6): one (prompt, sampling params, return_logprob, logprob_start_len) per prompt of the request, one or a batch (README task 6; the docstring).
        raise NotImplementedError("lab04 task 6: split is not written yet (see lab04_sglang/README.md, task 6)")


class MetaInfo(BaseModel):
    id: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    finish_reason: dict[str, Any] | None
    input_token_logprobs: list[tuple[float | None, int, str | None]] | None = None
    output_token_logprobs: list[tuple[float | None, int, str | None]] | None = None


class GenerateResponse(BaseModel):
    text: str
    output_ids: list[int]
    meta_info: MetaInfo


def _triples(backend: LocalBackend, logprobs: list[float | None], ids: list[int], with_text: bool) -> list[tuple]:
    return [(lp, i, backend.tokenizer.decode([i]) if with_text else None) for lp, i in zip(logprobs, ids, strict=True)]


def generate_one(backend: LocalBackend, prompt: str | list[int], params: SamplingParams, return_logprob: bool = False,
                 logprob_start_len: int = -1, return_text_in_logprobs: bool = False) -> GenerateResponse:
    """Answer one prompt as SGLang's ``/generate`` does, with task 2's masks and task 4's radix cache.

    Defaults follow SGLang: 128 new tokens, temperature 1.0. ``max_new_tokens: 0`` only prefills
    (and caches) the prompt. With ``return_logprob``, ``input_token_logprobs`` covers the prompt
    from ``logprob_start_len`` (``-1``: no prompt token; the first prompt token has logprob None)
    and ``output_token_logprobs`` every new token; each entry is ``[logprob, id, text or None]``.
    """
    # TODO(lab04 task 6): answer one prompt as SGLang's /generate does, with task 2's masks, task 4's radix cache, stop strings, finish_reason and logprobs in SGLang's shapes (README task 6; the docstring).
    raise NotImplementedError("lab04 task 6: generate_one is not written yet (see lab04_sglang/README.md, task 6)")


def generate(backend: LocalBackend, request: GenerateRequest) -> GenerateResponse | list[GenerateResponse]:
    """``POST /generate`` without HTTP: one response, or a list for a batch request (SGLang's shape)."""
    answers = [generate_one(backend, prompt, params, logprob, start, bool(request.return_text_in_logprobs))
               for prompt, params, logprob, start in request.split()]
    return answers if request.is_batch else answers[0]


def model_info(backend: LocalBackend, model_path: str) -> dict[str, Any]:
    """``GET /get_model_info``: RuntimeEndpoint reads ``model_path`` to pick a chat template."""
    return {"model_path": model_path, "tokenizer_path": model_path, "is_generation": True}


@dataclass
class LaunchConfig:
    """The real SGLang server's command line, for a GPU machine (``python -m sglang.launch_server``).

    Args:
        model_path: a Hugging Face model folder or hub id; port / host: where it listens.
        tp: tensor-parallel degree (GPUs), at least 1.
        mem_fraction_static: share of GPU memory for weights and KV cache, in (0, 1]; None = SGLang's choice.
        context_length: the longest sequence, at least 1; None = the model's.
        grammar_backend: one of ``GRAMMAR_BACKENDS`` (xgrammar is SGLang's default).
    """

    model_path: str
    port: int = 30000
    host: str = "127.0.0.1"
    tp: int = 1
    mem_fraction_static: float | None = None
    context_length: int | None = None
    grammar_backend: str = "xgrammar"

    def command(self) -> list[str]:
        """The argv list; ``shlex.join`` it to print. Raises ValueError naming a bad field."""
        # TODO(lab04 task 6): the real SGLang server's argv for this config, every bad field refused by name (README task 6, its example command line; sglang.launch_server --help).
        raise NotImplementedError("lab04 task 6: command is not written yet (see lab04_sglang/README.md, task 6)")

    def __str__(self) -> str:
        return shlex.join(self.command())
