"""How one request wants its tokens chosen: vLLM's ``SamplingParams``, with the same field names.

Given code (no task): every field is checked when the object is built, so bad input fails with a
``ValueError`` naming the field before the engine does any work (vLLM's wording, e.g.
"max_tokens must be at least 1, got -5"). An unknown keyword is rejected by name too: a typo
such as ``max_token=5`` must not silently fall back to the default.

Readings: vLLM's docs, "Sampling Parameters" (``vllm.SamplingParams``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from shared.validation import check_at_least, check_in_range

#: Temperatures below this are greedy (argmax), as in vLLM.
GREEDY_EPSILON = 1e-5
#: The highest temperature vLLM 0.32 accepts ("temperature must be in [0, 2]").
MAX_TEMPERATURE = 2.0
#: The most completions one request may ask for (vLLM 0.32's ``VLLM_MAX_N_SEQUENCES`` default).
MAX_N = 16384
#: A seed must fit a signed 64-bit integer (vLLM's protocol: ``ge=-2**63, le=2**63 - 1``).
SEED_RANGE = (-(2**63), 2**63 - 1)


@dataclass
class SamplingParams:
    """Sampling settings of one request.

    Attributes:
        temperature: 0 means greedy (argmax); otherwise logits are divided by it before softmax.
        top_p: keep the smallest set of most likely tokens whose probability reaches ``top_p``
            (1.0 = off).
        top_k: keep the ``top_k`` most likely tokens (-1 or 0 = off).
        max_tokens: the most new tokens to generate (at least 1).
        min_tokens: eos and ``stop_token_ids`` are ignored until this many tokens are generated.
        stop: strings that end the output when they appear in its text; the text is cut before
            the stop string (vLLM's default).
        stop_token_ids: token ids that end the output (the id is kept in ``token_ids``).
        ignore_eos: keep generating after eos (benchmarks use it to force every output token).
        seed: seed of this request's own random generator: the same seed gives the same tokens,
            whatever other requests share the batch.
        n: how many completions to generate for the prompt.
        logprobs: return the log-probabilities of this many most likely tokens at each step
            (besides the chosen one); None = off. They are the model's (vLLM's default
            ``logprobs_mode="raw_logprobs"``): taken before ``logit_bias`` and
            ``allowed_token_ids`` change the scores.
        logit_bias: ``{token_id: bias}`` added to that token's logit before sampling (vLLM's
            logits processor); keys may be ids or strings of ids (OpenAI's JSON), biases are
            clamped to [-100, 100] as vLLM does. None or ``{}`` = off.
        allowed_token_ids: only these token ids may be sampled (every other logit is -inf
            before sampling); None = off, an empty list is refused.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 16
    min_tokens: int = 0
    stop: list[str] | str | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    seed: int | None = None
    n: int = 1
    logprobs: int | None = None
    logit_bias: dict[int, float] | None = None
    allowed_token_ids: list[int] | None = None
    stop_strings: list[str] = field(init=False, repr=False)

    def __init__(self, **kwargs: Any) -> None:
        known = [f.name for f in fields(self) if f.init]
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise ValueError(f"SamplingParams got an unknown field {unknown[0]!r} "
                             f"(known fields: {', '.join(known)})")
        for f in fields(self):
            if f.init:
                setattr(self, f.name, kwargs.get(f.name, f.default))
        self.__post_init__()

    def __post_init__(self) -> None:
        # NaN and infinity pass a comparison check (NaN < 0 is False) and then poison a whole
        # batch's sampling step: refuse them first, with vLLM's words.
        for name in ("temperature", "top_p"):
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}.")
        check_at_least("temperature", self.temperature, 0.0)
        if self.temperature > MAX_TEMPERATURE:
            raise ValueError(f"temperature must be in [0, {MAX_TEMPERATURE}], got {self.temperature}.")
        check_in_range("top_p", self.top_p, 0.0, 1.0, low_inclusive=False)
        check_at_least("top_k", self.top_k, -1)
        check_at_least("max_tokens", self.max_tokens, 1)
        check_at_least("min_tokens", self.min_tokens, 0)
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens must be at most max_tokens={self.max_tokens}, "
                             f"got {self.min_tokens}")
        check_at_least("n", self.n, 1)
        if self.n > MAX_N:  # a request must not be able to queue a million sequences
            raise ValueError(f"n must be at most {MAX_N}, got {self.n}.")
        if self.logprobs is not None:
            check_at_least("logprobs", self.logprobs, 0)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")
        if self.seed is not None and not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]:
            # torch's generators take 64 bits (vLLM's protocol checks the same range)
            raise ValueError(f"seed must be in [-2**63, 2**63 - 1], got {self.seed}")
        if not isinstance(self.ignore_eos, bool):
            raise ValueError(f"ignore_eos must be True or False, got {self.ignore_eos!r}")
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if not all(isinstance(s, str) and s for s in stop):
            raise ValueError(f"stop must be a non-empty string or a list of them, got {self.stop!r}")
        self.stop_strings = stop
        ids = list(self.stop_token_ids or [])
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise ValueError(f"stop_token_ids must be a list of token ids (integers >= 0), "
                             f"got {self.stop_token_ids!r}")
        self.stop_token_ids = ids
        self._check_logits_processors()

    def _check_logits_processors(self) -> None:
        """``logit_bias`` and ``allowed_token_ids`` as vLLM 0.32 takes them (its wording): keys
        converted to int ids, biases clamped to [-100, 100]; the vocabulary is checked by the
        engine (``LLMEngine.add_request``), which knows its size."""
        if self.logit_bias is not None:
            if not isinstance(self.logit_bias, dict):
                raise ValueError(f"logit_bias must be a dict of token id -> bias, got {self.logit_bias!r}")
            invalid, bias = [], {}
            for token, value in self.logit_bias.items():
                try:
                    token_id = int(token)
                except (ValueError, TypeError):
                    invalid.append(token)
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"logit_bias values must be numbers, got {value!r} for token {token!r}")
                bias[token_id] = min(100.0, max(-100.0, float(value)))  # NaN -> -100.0, as vLLM's min/max give
            if invalid:
                raise ValueError(f"logit_bias contains key(s) that cannot be converted to integer token IDs: "
                                 f"{invalid!r}")
            self.logit_bias = bias
        if self.allowed_token_ids is not None:
            ids = self.allowed_token_ids
            if not isinstance(ids, (list, tuple)) or not all(
                    isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise ValueError(f"allowed_token_ids must be a list of token ids, got {ids!r}")
            if not ids:
                raise ValueError("allowed_token_ids is not None and empty!")
            self.allowed_token_ids = list(ids)

    def check_vocabulary(self, vocab_size: int) -> None:
        """vLLM's check of the ids ``logit_bias`` and ``allowed_token_ids`` name against the
        model's vocabulary, in its words (the engine calls it; the server's dialect first).

        Raises:
            ValueError: "token_id(s) [...] in logit_bias contain out-of-vocab token ids. Vocabulary
                size: N" or "allowed_token_ids contains out-of-vocab token id!"; ``logprobs`` above
                the vocabulary size (vLLM's ``max_logprobs`` check, in its words, with the
                vocabulary as the maximum: the most likely n cannot be more tokens than there are).
        """
        if self.logprobs is not None and self.logprobs > vocab_size:
            raise ValueError(f"Requested sample logprobs of {self.logprobs}, which is greater than max allowed: "
                             f"{vocab_size}")
        bad = [t for t in self.logit_bias or () if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"token_id(s) {bad} in logit_bias contain out-of-vocab token ids. "
                             f"Vocabulary size: {vocab_size}")
        if any(not 0 <= t < vocab_size for t in self.allowed_token_ids or ()):
            raise ValueError("allowed_token_ids contains out-of-vocab token id!")

    def check_sampleable(self, eos_token_ids: set[int]) -> None:
        """Refuse a request that could never be sampled: every id its ``allowed_token_ids`` lets
        through is a stop or eos id (``stop_token_ids``, or the model's ``eos_token_ids``), which
        ``min_tokens`` forbids at its first step, so its row would hold no finite logit (vLLM has
        no such check; its sampler would draw from that row anyway). The engine calls it when a
        request is added, the server before it answers (a 400 naming ``allowed_token_ids``).

        Raises:
            ValueError: naming ``allowed_token_ids`` and ``min_tokens``.
        """
        banned = set(self.stop_token_ids) | set(eos_token_ids)
        if self.min_tokens and self.allowed_token_ids and set(self.allowed_token_ids) <= banned:
            raise ValueError(f"allowed_token_ids {self.allowed_token_ids} holds only stop or eos token ids, which "
                             f"min_tokens={self.min_tokens} forbids: no token could be sampled")

    @property
    def greedy(self) -> bool:
        """Whether this request picks the argmax (temperature 0)."""
        return self.temperature < GREEDY_EPSILON

    def clone(self, **changes: Any) -> SamplingParams:
        """A copy with some fields changed (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        values.update(changes)
        return SamplingParams(**values)
