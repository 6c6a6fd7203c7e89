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
            (besides the chosen one); None = off.
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

    @property
    def greedy(self) -> bool:
        """Whether this request picks the argmax (temperature 0)."""
        return self.temperature < GREEDY_EPSILON

    def clone(self, **changes: Any) -> SamplingParams:
        """A copy with some fields changed (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        values.update(changes)
        return SamplingParams(**values)
