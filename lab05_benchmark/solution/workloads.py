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
    # BEGIN SOLUTION task 1: n log-normal lengths with the given median and tail, inside [low, high], bad arguments refused by name (README task 1; docs/05 §1).
    # HINT task 1 level 1: A workload is data that two frameworks must answer identically, so every draw comes
    #   from the rng passed in and nothing else. Reading: README task 1 (the long tail: mean = e^(sigma^2/2) x
    #   median) and docs/05 §1 'try it: lab 05's workload pieces'. Every function of task 1 checks its arguments
    #   first, with check_at_least from shared, so the error names the argument.
    # HINT task 1 level 2: exp(mu) is the median of a log-normal, so the median argument plays mu's part
    #   directly; sigma 0 gives every length equal to the median. Lengths are ints: round before you clip, and
    #   clip to both ends. One standard-normal draw per length, in order, so the same seed gives the same list.
    # HINT task 1 level 3: for each of the n lengths: z from the rng's Gaussian (mean 0, sd 1); scale the median
    #   by e to the power sigma times z; round to an int; bound it below by low and above by high.
    check_at_least("n", n, 1)
    check_at_least("median", median, 1)
    check_at_least("sigma", sigma, 0.0)
    check_at_least("low", low, 1)
    check_at_least("high", high, low)
    return [min(high, max(low, round(median * math.exp(sigma * rng.gauss(0.0, 1.0))))) for _ in range(n)]
    # END SOLUTION


def poisson_arrivals(n: int, rate: float, rng: random.Random) -> list[float]:
    """Send times, in seconds from the start, of ``n`` requests arriving as a Poisson process.

    Like ``vllm bench serve --request-rate``: the first request goes at 0, and each gap after it
    is drawn from an exponential distribution with mean ``1 / rate``.

    Raises:
        ValueError: ``n`` < 1 or ``rate`` <= 0 (naming the argument).
    """
    # BEGIN SOLUTION task 1: n send times of a Poisson process at rate requests/s, the first at 0 (README task 1; vllm bench serve --request-rate).
    # HINT task 1 level 2: a Poisson process has independent exponential gaps of mean 1 /
    #   rate; the times are their running sum, so they never decrease, and there are n times, hence n - 1 gaps.
    #   A rate that is not a positive finite number (0, negative, inf, a bool) is a ValueError naming rate.
    # HINT task 1 level 3: start the list at 0.0; n - 1 times, append the last time plus an
    #   exponential gap drawn from the rng (random.Random has a method for exactly this distribution,
    #   parameterised by the rate).
    check_at_least("n", n, 1)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0 or math.isinf(rate):
        raise ValueError(f"rate must be a positive number of requests per second, got {rate!r}")
    times = [0.0]
    for _ in range(n - 1):
        times.append(times[-1] + rng.expovariate(rate))
    return times
    # END SOLUTION


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
    # BEGIN SOLUTION task 1: n requests of exactly input_len prompt tokens and output_len output tokens, reproducible from seed (README task 1).
    # HINT task 1 level 2: the workload builders: the given text_of_tokens makes a prompt of a token count and
    #   the given _request counts it and names the request r0, r1, ...; a Workload records its name, kind, seed
    #   and params (look at the model in the same file and at what the tests read). One random.Random(seed) per
    #   workload, used in a fixed order, is what makes it reproducible.
    check_at_least("n", n, 1)
    check_at_least("input_len", input_len, 1)
    check_at_least("output_len", output_len, 1)
    rng = random.Random(seed)
    requests = [_request(tokenizer, i, text_of_tokens(tokenizer, input_len, rng), output_len) for i in range(n)]
    return Workload(name=f"fixed-{input_len}x{output_len}", kind="fixed", seed=seed, requests=requests,
                    params={"n": n, "input_len": input_len, "output_len": output_len})
    # END SOLUTION


def chat_workload(tokenizer: Any, n: int, seed: int = 0, input_median: int = 32, output_median: int = 24,
                  sigma: float = 0.8, max_input: int = 200, max_output: int = 128) -> Workload:
    """``n`` chat-like requests: prompt and output lengths each drawn with :func:`lognormal_lengths`
    (prompts first, then outputs, from one ``random.Random(seed)``), clipped to
    ``[1, max_input]`` and ``[1, max_output]``."""
    # BEGIN SOLUTION task 1: n chat-like requests whose prompt and output lengths are long-tailed, in the draw order the docstring fixes (README task 1).
    # HINT task 1 level 3: with one rng, the order of draws is part of the answer: all prompt
    #   lengths (clipped to [1, max_input]), then all output lengths (clipped to [1, max_output]), then one text
    #   per request in order.
    rng = random.Random(seed)
    inputs = lognormal_lengths(n, input_median, sigma, 1, max_input, rng)
    outputs = lognormal_lengths(n, output_median, sigma, 1, max_output, rng)
    requests = [_request(tokenizer, i, text_of_tokens(tokenizer, inputs[i], rng), outputs[i]) for i in range(n)]
    return Workload(name="chat", kind="chat", seed=seed, requests=requests,
                    params={"n": n, "input_median": input_median, "output_median": output_median, "sigma": sigma,
                            "max_input": max_input, "max_output": max_output})
    # END SOLUTION


def shared_prefix_workload(tokenizer: Any, n: int, system_len: int, question_len: int, output_len: int,
                           seed: int = 0) -> Workload:
    """``n`` requests that all start with the same system prompt (``system_len`` tokens) followed
    by their own question (``question_len`` tokens): ``system + "\\n" + question``."""
    # BEGIN SOLUTION task 1: n requests sharing one system prompt before their own question, so a prefix cache can reuse it (README task 1).
    # HINT task 1 level 3: draw the system text once, before any question; each prompt
    #   is that text, a newline, then a question drawn for that request.
    check_at_least("n", n, 1)
    check_at_least("system_len", system_len, 1)
    check_at_least("question_len", question_len, 1)
    check_at_least("output_len", output_len, 1)
    rng = random.Random(seed)
    system = text_of_tokens(tokenizer, system_len, rng)
    requests = [_request(tokenizer, i, system + "\n" + text_of_tokens(tokenizer, question_len, rng), output_len)
                for i in range(n)]
    return Workload(name=f"shared-prefix-{system_len}", kind="shared_prefix", seed=seed, requests=requests,
                    params={"n": n, "system_len": system_len, "question_len": question_len,
                            "output_len": output_len})
    # END SOLUTION


def multi_turn_workload(tokenizer: Any, conversations: int, turns: int, turn_len: int, output_len: int,
                        seed: int = 0) -> Workload:
    """``conversations`` conversations of ``turns`` turns. Turn 1's prompt is a user message of
    ``turn_len`` tokens; turn k's prompt is turn k-1's prompt, a reply of ``output_len`` tokens
    standing in for the answer, and a new user message, joined by newlines, so each prompt
    extends the one before it. Turn k's ``after`` is turn k-1's id. Ids run conversation by
    conversation (``r0`` .. ``r{turns-1}`` are conversation 0)."""
    # BEGIN SOLUTION task 1: conversations whose every turn extends the previous turn's prompt and waits for it (README task 1, the multi-turn workload).
    # HINT task 1 level 3: per conversation, keep the prompt so far and the id of the
    #   previous request; a turn after the first appends a stand-in reply and a new user message
    #   (newline-joined) and names the previous id in after; ids are numbered over the whole workload, not per
    #   conversation.
    check_at_least("conversations", conversations, 1)
    check_at_least("turns", turns, 1)
    check_at_least("turn_len", turn_len, 1)
    check_at_least("output_len", output_len, 1)
    rng = random.Random(seed)
    requests: list[Request] = []
    for _ in range(conversations):
        prompt, previous = text_of_tokens(tokenizer, turn_len, rng), None
        for turn in range(turns):
            if turn > 0:
                reply = text_of_tokens(tokenizer, output_len, rng)
                prompt = prompt + "\n" + reply + "\n" + text_of_tokens(tokenizer, turn_len, rng)
            request = _request(tokenizer, len(requests), prompt, output_len, after=previous)
            requests.append(request)
            previous = request.id
    return Workload(name=f"multi-turn-{turns}", kind="multi_turn", seed=seed, requests=requests,
                    params={"conversations": conversations, "turns": turns, "turn_len": turn_len,
                            "output_len": output_len})
    # END SOLUTION


def with_arrivals(workload: Workload, *, concurrency: int | None = None, rate: float | None = None,
                  seed: int | None = None) -> Workload:
    """A copy of ``workload`` that arrives at a fixed ``concurrency`` or as a Poisson process at
    ``rate`` requests per second (:func:`poisson_arrivals` with ``random.Random(seed)``, the
    workload's seed by default). Exactly one of the two must be given. The input is not changed.

    Raises:
        ValueError: neither or both given, or a bad value (naming the argument).
    """
    # BEGIN SOLUTION task 1: a copy of the workload that arrives at a fixed concurrency or as a Poisson process; the input is left unchanged (README task 1).
    # HINT task 1 level 2: exactly one of concurrency and rate; the other arrival field is
    #   cleared on the copy. A shallow copy shares the Request objects, so setting arrival_s would change the
    #   caller's workload too: pydantic models can copy deeply. Without a seed, the workload's own seed keeps
    #   the run reproducible.
    # HINT task 1 level 3: concurrency given: arrival 'concurrency', no rate, and no request has
    #   an arrival time. Rate given: arrival 'poisson', the rate as a float, and request i gets the i-th time of
    #   poisson_arrivals.
    if (concurrency is None) == (rate is None):
        raise ValueError("give exactly one of concurrency= or rate=")
    copy = workload.model_copy(deep=True)
    if concurrency is not None:
        check_at_least("concurrency", concurrency, 1)
        copy.arrival, copy.concurrency, copy.rate = "concurrency", concurrency, None
        for request in copy.requests:
            request.arrival_s = None
        return copy
    times = poisson_arrivals(len(copy.requests), rate, random.Random(workload.seed if seed is None else seed))
    copy.arrival, copy.rate, copy.concurrency = "poisson", float(rate), None
    for request, at in zip(copy.requests, times):
        request.arrival_s = at
    return copy
    # END SOLUTION


# --------------------------------------------------------------------------------------------
# Files


def save_jsonl(workload: Workload, path: str | Path) -> Path:
    """Write ``workload`` as JSON Lines: line 1 holds everything but the requests (with
    ``"requests": <count>``), then one request per line. Returns the path."""
    # BEGIN SOLUTION task 1: write the workload as JSON Lines that load_jsonl reads back equal: a header line, then one request per line (README task 1).
    # HINT task 1 level 2: save_jsonl / load_jsonl: the header is every field but the request list, with
    #   'requests' holding the count instead, so a reader can tell a truncated file. A round trip must give an
    #   equal Workload.
    # HINT task 1 level 3: dump the workload without its requests, add the count, write it as the
    #   first line; then each request as its own JSON line; end the file with a newline.
    path = Path(path)
    header = workload.model_dump(exclude={"requests"}) | {"requests": len(workload.requests)}
    lines = [json.dumps(header)] + [request.model_dump_json() for request in workload.requests]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
    # END SOLUTION


def load_jsonl(path: str | Path) -> Workload:
    """Read a file written by :func:`save_jsonl`.

    Raises:
        WorkloadError: a missing file, a line that is not JSON or not a valid header / request,
            or a request count that differs from the header's; the message names the file and
            the 1-based line number (``workload.jsonl line 3: ...``).
    """
    # BEGIN SOLUTION task 1: read a saved workload back, or refuse a broken file with a WorkloadError that names the file and line (README task 1, 'Bad input').
    # HINT task 1 level 3: number lines from 1 and skip blank ones; the first non-blank line is the
    #   header (a dict with an int 'requests'), every later one a Request validated by pydantic; turn a JSON or
    #   validation error into a WorkloadError with 'name line N:'; at the end, a count that differs from the
    #   header's is an error too.
    path = Path(path)
    if not path.is_file():
        raise WorkloadError(f"workload file not found: {path}")
    header: dict[str, Any] | None = None
    requests: list[Request] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise WorkloadError(f"{path.name} line {number}: not JSON ({error.msg})") from None
        try:
            if header is None:
                if not isinstance(data, dict) or not isinstance(data.get("requests"), int):
                    raise WorkloadError(f"{path.name} line {number}: the first line must be the workload header "
                                        "with a request count")
                header = data
            else:
                requests.append(Request.model_validate(data))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise WorkloadError(f"{path.name} line {number}: {where}: {first['msg']}") from None
    if header is None:
        raise WorkloadError(f"{path.name}: empty workload file")
    if len(requests) != header["requests"]:
        raise WorkloadError(f"{path.name}: the header announces {header['requests']} requests, "
                            f"the file holds {len(requests)}")
    try:
        return Workload.model_validate(header | {"requests": requests})
    except ValidationError as error:
        first = error.errors()[0]
        raise WorkloadError(f"{path.name} line 1: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    # END SOLUTION
