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
        # BEGIN SOLUTION task 6: refuse, naming the field, two grammars at once or a setting the course engine cannot honour (README task 6; the docstring).
        # HINT task 6 level 1: task 6 speaks SGLang's native API as data: whatever RuntimeEndpoint sends must
        #   validate, and anything the course engine cannot do must be refused by name, never ignored. Reading:
        #   README task 6, the installed sglang/lang/backend/runtime_endpoint.py (what the client sends and
        #   reads), SGLang's 'Sampling parameters' and 'Native APIs' pages. The field names and shapes come from
        #   there.
        # HINT task 6 level 2: None means unset (RuntimeEndpoint sends None for every field it
        #   does not use), and a value that means 'off' (top_p 1, top_k -1 or 0, penalties 0) is not a use. A
        #   pydantic validator raises ValueError and returns self.
        given = [name for name in ("regex", "json_schema", "ebnf") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"sampling_params: give one of regex, json_schema, ebnf, not {' and '.join(given)}")
        unsupported = {"ebnf": self.ebnf is not None, "stop_regex": bool(self.stop_regex),
                       "top_p": self.top_p not in (None, 1.0), "top_k": self.top_k not in (None, -1, 0),
                       "min_p": bool(self.min_p), "frequency_penalty": bool(self.frequency_penalty),
                       "presence_penalty": bool(self.presence_penalty), "min_new_tokens": bool(self.min_new_tokens)}
        for name, used in unsupported.items():
            if used:
                raise ValueError(f"sampling_params.{name} is not supported by the course engine")
        return self
        # END SOLUTION


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
        # BEGIN SOLUTION task 6: one (prompt, sampling params, return_logprob, logprob_start_len) per prompt of the request, one or a batch (README task 6; the docstring).
        # HINT task 6 level 2: a single prompt (a string, or one list of ids) is a batch of one.
        #   sampling_params, return_logprob and logprob_start_len may each be one value for every prompt or a
        #   list with one per prompt; a list of another length is a ValueError naming the field. Unset fields
        #   take SGLang's defaults.
        prompts: list[Any] = (self.text if isinstance(self.text, list) else [self.text]) if self.text is not None \
            else (self.input_ids if self.is_batch else [self.input_ids])

        def per_prompt(name: str, default: Any) -> list[Any]:
            value = getattr(self, name)
            if isinstance(value, list):
                if len(value) != len(prompts):
                    raise ValueError(f"{name} has {len(value)} entries for a batch of {len(prompts)}")
                return value
            return [default if value is None else value] * len(prompts)

        return list(zip(prompts, per_prompt("sampling_params", SamplingParams()),
                        per_prompt("return_logprob", False), per_prompt("logprob_start_len", -1), strict=True))
        # END SOLUTION


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
    # BEGIN SOLUTION task 6: answer one prompt as SGLang's /generate does, with task 2's masks, task 4's radix cache, stop strings, finish_reason and logprobs in SGLang's shapes (README task 6; the docstring).
    # HINT task 6 level 2: compile_constraint (given) returns the same automaton for the same
    #   pattern and backend.masker one masker per automaton, so masks computed once serve later requests.
    #   max_new_tokens 0 is a prefill only (select scores choices that way): no new tokens. finish_reason is
    #   SGLang's dict: a stop (eos or a stop string, with what matched) or the length limit. Logprob entries are
    #   [logprob, id, text or None] and the first prompt token has no logprob.
    # HINT task 6 level 3: ids; defaults; automaton and masker; 0 tokens -> prefill through the
    #   engine's logprobs; else generate, decode without special tokens, cut at the earliest stop string and
    #   note it; build meta_info (prompt, completion and cached token counts, finish_reason, logprobs when
    #   asked) and the response.
    from .grammar import compile_constraint

    ids = backend.encode(prompt) if isinstance(prompt, str) else list(prompt)
    if not ids:
        raise ValueError("text must not be empty")
    max_new = 128 if params.max_new_tokens is None else params.max_new_tokens
    temperature = 1.0 if params.temperature is None else params.temperature
    automaton = compile_constraint(params.regex, params.json_schema)  # the same pattern: the same automaton
    masker = backend.masker(automaton) if automaton is not None else None
    engine, tokenizer = backend.engine, backend.tokenizer
    eos = backend.model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    if params.ignore_eos:
        eos_ids = set()
    output_ids: list[int] = []
    cached, finish = 0, None
    if max_new == 0:
        if len(ids) > 1:
            engine.logprobs(ids[:-1], ids[-1:])  # a prefill that reuses and fills the radix cache
        finish = {"type": "length", "length": 0}
    else:
        out = engine.generate(ids, max_new, eos_token_id=sorted(eos_ids) or [-1], temperature=temperature,
                              masker=masker, stop_token_ids=params.stop_token_ids)
        output_ids, cached = out.token_ids, out.cached_tokens
        finish = {"type": "length", "length": max_new}
        if output_ids and (output_ids[-1] in eos_ids or output_ids[-1] in (params.stop_token_ids or [])):
            finish = {"type": "stop", "matched": output_ids[-1]}
    text = tokenizer.decode(output_ids, skip_special_tokens=True)
    stops = [params.stop] if isinstance(params.stop, str) else (params.stop or [])
    cuts = [(text.find(s), s) for s in stops if s and s in text]
    if cuts:
        at, matched = min(cuts)
        text, finish = text[:at], {"type": "stop", "matched": matched}
    meta = MetaInfo(id=uuid.uuid4().hex, prompt_tokens=len(ids), completion_tokens=len(output_ids),
                    cached_tokens=cached, finish_reason=finish)
    if return_logprob:
        start = len(ids) if logprob_start_len < 0 else min(logprob_start_len, len(ids))
        first = max(start, 1)  # the first prompt token has no logprob: nothing came before it
        prompt_scores: list[float | None] = [None] if start == 0 else []
        if first < len(ids):
            prompt_scores += engine.logprobs(ids[:first], ids[first:])
        meta.input_token_logprobs = _triples(backend, prompt_scores, ids[start:], bool(return_text_in_logprobs))
        output_scores = engine.logprobs(ids, output_ids) if output_ids else []
        meta.output_token_logprobs = _triples(backend, output_scores, output_ids, bool(return_text_in_logprobs))
    return GenerateResponse(text=text, output_ids=output_ids, meta_info=meta)
    # END SOLUTION


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
        # BEGIN SOLUTION task 6: the real SGLang server's argv for this config, every bad field refused by name (README task 6, its example command line; sglang.launch_server --help).
        # HINT task 6 level 2: the README shows the exact command for one config; optional
        #   settings (None) are left out rather than written as 'None'. Each check raises a ValueError that
        #   names the field and the bad value.
        if not self.model_path:
            raise ValueError("model_path must not be empty")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be in [1, 65535], got {self.port}")
        if self.tp < 1:
            raise ValueError(f"tp must be at least 1, got {self.tp}")
        if self.mem_fraction_static is not None and not 0 < self.mem_fraction_static <= 1:
            raise ValueError(f"mem_fraction_static must be in (0, 1], got {self.mem_fraction_static}")
        if self.context_length is not None and self.context_length < 1:
            raise ValueError(f"context_length must be at least 1, got {self.context_length}")
        if self.grammar_backend not in GRAMMAR_BACKENDS:
            raise ValueError(f"grammar_backend must be one of {', '.join(GRAMMAR_BACKENDS)}, got {self.grammar_backend!r}")
        argv = ["python", "-m", "sglang.launch_server", "--model-path", self.model_path,
                "--host", self.host, "--port", str(self.port), "--tp", str(self.tp)]
        if self.mem_fraction_static is not None:
            argv += ["--mem-fraction-static", str(self.mem_fraction_static)]
        if self.context_length is not None:
            argv += ["--context-length", str(self.context_length)]
        return [*argv, "--grammar-backend", self.grammar_backend]
        # END SOLUTION

    def __str__(self) -> str:
        return shlex.join(self.command())
