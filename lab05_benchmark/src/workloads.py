# Student skeleton for lab05_benchmark: fill in each TODO, then run `course test lab05_benchmark`.
# (Generated from the reference solution by `course stubs`.)
"""Task 1: workloads: which requests a benchmark sends, how long they are, and when they arrive.

A benchmark is only as honest as its workload. Throughput measured on 16 identical prompts says
little about a chat service whose prompts and answers vary by 100x; prefix caching shows only
when requests share a prefix; a server's latency under load depends on *when* requests arrive.
So a workload here is data, saved as a file (JSON Lines) and seeded, so that two frameworks, or
the same framework on two days, answer exactly the same requests.

Kinds (``vllm bench serve`` has the same ones under other names: random, sharegpt, prefix
repetition, multi-turn):

- ``fixed``: every prompt ``input_len`` tokens, every answer ``output_len`` tokens;
- ``chat``: lengths drawn from a log-normal distribution (long-tailed: most requests short, a few
  very long, as in real chat logs such as ShareGPT);
- ``shared_prefix``: one long system prompt in front of every short question;
- ``multi_turn``: conversations whose turn k repeats turns 1..k-1 and waits for turn k-1.

Arrivals: at a fixed concurrency (a new request as soon as one finishes: a closed loop), or as a
Poisson process at ``rate`` requests per second (an open loop: requests keep coming whether or
not the server keeps up), which is what ``vllm bench serve --request-rate`` does.

Readings: vLLM's ``benchmarks/datasets.py`` and ``vllm bench serve --help`` (``--request-rate``,
``--burstiness``, ``--max-concurrency``); any text on the Poisson process (exponential gaps).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from shared.validation import check_at_least

KINDS = ("fixed", "chat", "shared_prefix", "multi_turn")


class WorkloadError(ValueError):
    """A workload file that cannot be read: the message names the file and the line."""


class Request(BaseModel):
    """One request of a workload."""

    id: str
    prompt: str
    prompt_len: int = Field(ge=1, description="prompt tokens, counted by the workload's tokenizer "
                                              "as the model sees them (special tokens included)")
    max_tokens: int = Field(ge=1, description="tokens to generate (benchmarks force this many)")
    arrival_s: float | None = Field(None, ge=0, description="seconds after the start of the run at "
                                                           "which to send it (Poisson); None: when a slot frees")
    after: str | None = Field(None, description="id of a request that must finish first (multi-turn)")


class Workload(BaseModel):
    """A named, seeded list of requests and how they arrive."""

    name: str
    kind: Literal["fixed", "chat", "shared_prefix", "multi_turn"]
    seed: int
    arrival: Literal["concurrency", "poisson"] = "concurrency"
    concurrency: int | None = Field(None, ge=1, description="requests in flight at once (closed loop)")
    rate: float | None = Field(None, gt=0, description="Poisson arrivals per second (open loop)")
    params: dict[str, Any] = Field(default_factory=dict, description="the arguments it was built with")
    requests: list[Request]


# --------------------------------------------------------------------------------------------
# Given: text of a chosen number of tokens, from the course corpus


_WORDS_CACHE: list[str] = []


def _corpus_sentences() -> list[str]:
    if not _WORDS_CACHE:
        from shared.models import corpus_documents

        _WORDS_CACHE.extend(d for d in corpus_documents() if "<|" not in d)
    return _WORDS_CACHE


def count_tokens(tokenizer: Any, text: str) -> int:
    """Tokens the model sees for ``text`` (with the tokenizer's special tokens, such as bos)."""
    return len(tokenizer(text).input_ids)


def text_of_tokens(tokenizer: Any, n_tokens: int, rng: random.Random) -> str:
    """Text from the course corpus that is ``n_tokens`` tokens long without special tokens
    (sentences picked by ``rng``; cut at a token boundary; at most a token or two short where the
    cut would re-tokenize differently)."""
    check_at_least("n_tokens", n_tokens, 1)
    sentences = _corpus_sentences()
    ids: list[int] = []
    while len(ids) < n_tokens + 8:
        ids += tokenizer(" " + rng.choice(sentences), add_special_tokens=False).input_ids
    for cut in range(n_tokens, 0, -1):  # a cut inside a word may re-tokenize longer: step back
        text = tokenizer.decode(ids[:cut]).strip()
        if text and len(tokenizer(text, add_special_tokens=False).input_ids) <= n_tokens:
            return text
    return tokenizer.decode(ids[:1])


# --------------------------------------------------------------------------------------------
# Lengths and arrivals


def lognormal_lengths(n: int, median: int, sigma: float, low: int, high: int, rng: random.Random) -> list[int]:
    """``n`` long-tailed lengths: ``round(median * exp(sigma * z))`` with ``z`` standard normal,
    clipped to ``[low, high]``.

    The median of a log-normal is ``exp(mu)``, so ``median`` sets it directly; ``sigma`` sets the
    tail (1.0 gives a mean about 1.65 times the median, as in chat logs).

    Raises:
        ValueError: ``n`` < 1, ``median`` < 1, ``sigma`` < 0, ``low`` < 1 or ``high`` < ``low``
            (the message names the argument).
    """
    # TODO(lab05 task 1): n log-normal lengths with the given median and tail, inside [low, high], bad arguments refused by name (README task 1; docs/05 §1).
    raise NotImplementedError("lab05 task 1: lognormal_lengths is not written yet (see lab05_benchmark/README.md, task 1)")


def poisson_arrivals(n: int, rate: float, rng: random.Random) -> list[float]:
    """Send times, in seconds from the start, of ``n`` requests arriving as a Poisson process.

    Like ``vllm bench serve --request-rate``: the first request goes at 0, and each gap after it
    is drawn from an exponential distribution with mean ``1 / rate``.

    Raises:
        ValueError: ``n`` < 1 or ``rate`` <= 0 (naming the argument).
    """
    # TODO(lab05 task 1): n send times of a Poisson process at rate requests/s, the first at 0 (README task 1; vllm bench serve --request-rate).
    raise NotImplementedError("lab05 task 1: poisson_arrivals is not written yet (see lab05_benchmark/README.md, task 1)")


# --------------------------------------------------------------------------------------------
# Workloads


def _request(tokenizer: Any, index: int, prompt: str, max_tokens: int, after: str | None = None) -> Request:
    return Request(id=f"r{index}", prompt=prompt, prompt_len=count_tokens(tokenizer, prompt),
                   max_tokens=max_tokens, after=after)


def fixed_workload(tokenizer: Any, n: int, input_len: int, output_len: int, seed: int = 0) -> Workload:
    """``n`` requests, each of ``input_len`` prompt tokens (without special tokens; the given
    ``text_of_tokens`` may come a token or two short, and each request's ``prompt_len`` counts
    what the tokenizer really gives) and ``output_len`` output tokens, prompts drawn from the
    corpus with ``random.Random(seed)``."""
    # TODO(lab05 task 1): n requests of exactly input_len prompt tokens and output_len output tokens, reproducible from seed (README task 1).
    raise NotImplementedError("lab05 task 1: fixed_workload is not written yet (see lab05_benchmark/README.md, task 1)")


def chat_workload(tokenizer: Any, n: int, seed: int = 0, input_median: int = 32, output_median: int = 24,
                  sigma: float = 0.8, max_input: int = 200, max_output: int = 128) -> Workload:
    """``n`` chat-like requests: prompt and output lengths each drawn with :func:`lognormal_lengths`
    (prompts first, then outputs, from one ``random.Random(seed)``), clipped to
    ``[1, max_input]`` and ``[1, max_output]``."""
    # TODO(lab05 task 1): n chat-like requests whose prompt and output lengths are long-tailed, in the draw order the docstring fixes (README task 1).
    raise NotImplementedError("lab05 task 1: chat_workload is not written yet (see lab05_benchmark/README.md, task 1)")


def shared_prefix_workload(tokenizer: Any, n: int, system_len: int, question_len: int, output_len: int,
                           seed: int = 0) -> Workload:
    """``n`` requests that all start with the same system prompt (``system_len`` tokens) followed
    by their own question (``question_len`` tokens): ``system + "\\n" + question``."""
    # TODO(lab05 task 1): n requests sharing one system prompt before their own question, so a prefix cache can reuse it (README task 1).
    raise NotImplementedError("lab05 task 1: shared_prefix_workload is not written yet (see lab05_benchmark/README.md, task 1)")


def multi_turn_workload(tokenizer: Any, conversations: int, turns: int, turn_len: int, output_len: int,
                        seed: int = 0) -> Workload:
    """``conversations`` conversations of ``turns`` turns. Turn 1's prompt is a user message of
    ``turn_len`` tokens; turn k's prompt is turn k-1's prompt, a reply of ``output_len`` tokens
    standing in for the answer, and a new user message, joined by newlines, so each prompt
    extends the one before it. Turn k's ``after`` is turn k-1's id. Ids run conversation by
    conversation (``r0`` .. ``r{turns-1}`` are conversation 0)."""
    # TODO(lab05 task 1): conversations whose every turn extends the previous turn's prompt and waits for it (README task 1, the multi-turn workload).
    raise NotImplementedError("lab05 task 1: multi_turn_workload is not written yet (see lab05_benchmark/README.md, task 1)")


def with_arrivals(workload: Workload, *, concurrency: int | None = None, rate: float | None = None,
                  seed: int | None = None) -> Workload:
    """A copy of ``workload`` that arrives at a fixed ``concurrency`` or as a Poisson process at
    ``rate`` requests per second (:func:`poisson_arrivals` with ``random.Random(seed)``, the
    workload's seed by default). Exactly one of the two must be given. The input is not changed.

    Raises:
        ValueError: neither or both given, or a bad value (naming the argument).
    """
    # TODO(lab05 task 1): a copy of the workload that arrives at a fixed concurrency or as a Poisson process; the input is left unchanged (README task 1).
    raise NotImplementedError("lab05 task 1: with_arrivals is not written yet (see lab05_benchmark/README.md, task 1)")


# --------------------------------------------------------------------------------------------
# Files


def save_jsonl(workload: Workload, path: str | Path) -> Path:
    """Write ``workload`` as JSON Lines: line 1 holds everything but the requests (with
    ``"requests": <count>``), then one request per line. Returns the path."""
    # TODO(lab05 task 1): write the workload as JSON Lines that load_jsonl reads back equal: a header line, then one request per line (README task 1).
    raise NotImplementedError("lab05 task 1: save_jsonl is not written yet (see lab05_benchmark/README.md, task 1)")


def load_jsonl(path: str | Path) -> Workload:
    """Read a file written by :func:`save_jsonl`.

    Raises:
        WorkloadError: a missing file, a line that is not JSON or not a valid header / request,
            or a request count that differs from the header's; the message names the file and
            the 1-based line number (``workload.jsonl line 3: ...``).
    """
    # TODO(lab05 task 1): read a saved workload back, or refuse a broken file with a WorkloadError that names the file and line (README task 1, 'Bad input').
    raise NotImplementedError("lab05 task 1: load_jsonl is not written yet (see lab05_benchmark/README.md, task 1)")
