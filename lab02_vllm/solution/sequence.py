"""One sequence the engine is generating: its tokens, its block table, its state.

Given code (no task). A request with ``n`` completions owns ``n`` sequences. The engine's other
parts only read and update these fields:

- ``token_ids``: prompt then generated tokens; ``num_prompt_tokens`` says where the prompt ends;
- ``num_computed_tokens``: how many leading tokens already have their keys and values in the
  KV cache (0 while waiting; a prompt's chunks advance it step by step; once a token is sampled,
  all but that newest token);
- ``block_table``: the ids of the KV-cache blocks holding this sequence, in order: token ``i``
  lives in block ``block_table[i // block_size]`` at offset ``i % block_size``.

Readings: nano-vllm's ``engine/sequence.py``; vLLM's ``vllm/sequence.py`` (v0).
"""

from __future__ import annotations

import enum
import itertools
import time
from dataclasses import dataclass, field

import torch

from .detokenizer import IncrementalDetokenizer
from .sampling_params import SamplingParams

_counter = itertools.count()


class SequenceStatus(enum.Enum):
    WAITING = "waiting"  # queued: no KV blocks (new, or preempted)
    RUNNING = "running"  # holds KV blocks, computes its next chunk or token when scheduled
    FINISHED = "finished"  # done: stopped, hit its length limit, or aborted; blocks freed


@dataclass(eq=False)  # two sequences are equal only when they are the same object
class Sequence:
    """A prompt and the tokens generated after it so far.

    Args:
        request_id: the request this sequence belongs to.
        prompt_token_ids: the prompt's token ids (at least one).
        params: the request's sampling settings.
        index: which of the request's ``n`` completions this is.
    """

    request_id: str
    prompt_token_ids: list[int]
    params: SamplingParams
    index: int = 0
    seq_id: int = field(default_factory=lambda: next(_counter))
    token_ids: list[int] = field(init=False)
    num_prompt_tokens: int = field(init=False)
    num_computed_tokens: int = 0
    num_cached_tokens: int = 0  # of the prompt, found in the prefix cache at the last admission
    num_prefill_tokens: int = 0  # len(self) at the last admission: the tokens to compute before sampling
    block_table: list[int] = field(default_factory=list)
    status: SequenceStatus = SequenceStatus.WAITING
    finish_reason: str | None = None  # "stop", "length" or "abort" once finished
    stop_reason: int | str | None = None  # the stop token id or stop string that ended it
    text: str = ""  # detokenized output so far (the engine keeps it up to date)
    detokenizer: IncrementalDetokenizer | None = None  # where text stands in token_ids (detokenizer.py)
    logprobs: list[dict[int, float]] = field(default_factory=list)
    generator: torch.Generator | None = None  # the request's own generator when it has a seed
    num_preemptions: int = 0
    arrival_time: float = field(default_factory=time.monotonic)
    first_token_time: float | None = None

    def __post_init__(self) -> None:
        self.prompt_token_ids = list(self.prompt_token_ids)
        self.token_ids = list(self.prompt_token_ids)
        self.num_prompt_tokens = len(self.prompt_token_ids)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def output_token_ids(self) -> list[int]:
        """The generated tokens only."""
        return self.token_ids[self.num_prompt_tokens:]

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def last_token_id(self) -> int:
        return self.token_ids[-1]

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    def num_blocks_needed(self, block_size: int) -> int:
        """Blocks needed to hold all ``len(self)`` tokens: ``ceil(len / block_size)``."""
        return (len(self.token_ids) + block_size - 1) // block_size

    def block_tokens(self, index: int, block_size: int) -> list[int]:
        """The tokens that belong in logical block ``index`` (fewer than ``block_size`` in the last)."""
        return self.token_ids[index * block_size:(index + 1) * block_size]

    def append_token(self, token_id: int) -> None:
        self.token_ids.append(token_id)
