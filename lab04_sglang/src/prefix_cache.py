# Student skeleton for lab04_sglang: fill in each TODO, then run `course test lab04_sglang`.
# (Generated from the reference solution by `course stubs`.)
"""Task 4, part 2: generation that reuses the KV of a cached prefix (RadixAttention at work).

A request looks its prompt up in the radix tree, loads the matched prefix's keys and values into
a fresh ``DynamicCache``, and runs the model only on the rest of the prompt (the *suffix*); when
it finishes, the KV of everything it computed goes back into the tree for the next request.
The output must not change: attention over cached keys and values is the same arithmetic as
attention over recomputed ones.

The tree stores, per token, a tensor ``(layers, 2, kv_heads, head_dim)`` (keys and values of
every layer), so a node's value is ``(tokens, layers, 2, kv_heads, head_dim)``. transformers 5's
``DynamicCache`` keeps, per layer, ``cache.layers[i].keys`` and ``.values`` of shape
``(batch, kv_heads, seq, head_dim)``; ``cache.update(keys, values, layer_idx)`` appends.

At least one prompt token is always recomputed, even on a full match: its logits choose the
first new token, and the cache stores keys and values, not logits (SGLang does the same).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel

from shared.validation import check_at_least, check_not_empty

from .masks import TokenMasker
from .radix import RadixCache


def cache_to_value(cache: DynamicCache, start: int, end: int) -> torch.Tensor:
    """Tokens ``start..end-1`` of a batch-1 cache as one tensor ``(end - start, layers, 2, kv_heads, head_dim)``.

    A new tensor (a copy), so the tree never keeps the whole cache alive."""
    # TODO(lab04 task 4): tokens start..end-1 of a batch-1 DynamicCache as one new tensor with the token axis first (README task 4; transformers' DynamicCache).
    raise NotImplementedError("lab04 task 4: cache_to_value is not written yet (see lab04_sglang/README.md, task 4)")


def value_to_cache(value: torch.Tensor, model: PreTrainedModel) -> DynamicCache:
    """A ``DynamicCache`` holding ``value`` (``(tokens, layers, 2, kv_heads, head_dim)``) for batch 1."""
    # TODO(lab04 task 4): a batch-1 DynamicCache holding a tree value's keys and values for every layer (README task 4).
    raise NotImplementedError("lab04 task 4: value_to_cache is not written yet (see lab04_sglang/README.md, task 4)")


@dataclass
class CachedOutput:
    """One generation: its new tokens, and how much of its prompt came from the cache."""

    token_ids: list[int]
    cached_tokens: int  # prompt tokens whose KV came from the radix tree
    prefilled_tokens: int  # prompt tokens the model computed


def pick_token(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> int:
    """Greedy (temperature 0) or a sample from ``softmax(logits / temperature)``; ``logits``: ``(vocab,)``."""
    if temperature == 0:
        return int(torch.argmax(logits))
    return int(torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator))


class RequestAborted(Exception):
    """The request was given up (its client left): generation stopped between two tokens."""


class PrefixCachingGenerator:
    """Batch-1 decoding with a radix tree of KV shared by every request it serves.

    Args:
        model: a causal LM in eval mode.
        radix: the tree to share (a new one by default); ``use_cache=False`` turns reuse off,
            the baseline that computes every prompt in full.
        max_cached_tokens: evict least recently used leaves beyond this many cached tokens.
    """

    def __init__(self, model: PreTrainedModel, radix: RadixCache | None = None, use_cache: bool = True,
                 max_cached_tokens: int | None = None) -> None:
        self.model, self.use_cache = model, use_cache
        self.radix = radix if radix is not None else RadixCache()
        self.max_cached_tokens = max_cached_tokens
        #: Set by a server while the current request's client is gone: ``stream`` then stops before
        #: its next token with ``RequestAborted`` (what it computed still goes into the tree).
        self.abort_event: threading.Event | None = None

    def check_not_aborted(self) -> None:
        """Raise ``RequestAborted`` when ``abort_event`` is set (given)."""
        if self.abort_event is not None and self.abort_event.is_set():
            raise RequestAborted("the client went away; generation stopped")

    def _forward(self, suffix_ids: list[int], cache: DynamicCache) -> object:
        """Run the model on ``suffix_ids``, the tokens after the ones whose KV is in ``cache`` (given).

        Returns the model's output (``.logits`` ``(1, len(suffix_ids), vocab)``, ``.past_key_values``).

        Raises:
            ValueError: ``suffix_ids`` is empty: the reused prefix covered every id, and nothing is left
                whose logits could choose the next token.
        """
        if len(suffix_ids) == 0:
            raise ValueError("_prefill left no tokens to run: reuse at most ids[:reusable] (match_prefix on "
                             "that slice), so that at least the last position is computed and gives logits")
        suffix = torch.tensor([list(suffix_ids)], dtype=torch.long, device=self.model.device)
        return self.model(input_ids=suffix, past_key_values=cache, use_cache=True)

    def _prefill(self, ids: list[int], reusable: int) -> tuple[torch.Tensor, DynamicCache, int, object]:
        """Run ``ids`` through the model reusing the cached prefix of ``ids[:reusable]``; lock the matched node.

        ``reusable`` < ``len(ids)``: the positions from ``reusable`` on need their logits.

        Returns ``(logits of every new position (n, vocab), cache, matched tokens, locked node)``."""
        # TODO(lab04 task 4): run ids reusing the tree's longest cached prefix of ids[:reusable], computing only the rest, with the matched node locked (README task 4; the docstring).
        raise NotImplementedError("lab04 task 4: _prefill is not written yet (see lab04_sglang/README.md, task 4)")

    def _store(self, ids: list[int], cache: DynamicCache, node: object) -> None:
        """Put the KV of ``ids`` (all in ``cache``) into the tree, unlock, and evict over the limit."""
        # TODO(lab04 task 4): store the KV of ids in the tree, release the request's lock, and keep the tree within its size limit (README task 4; the docstring).
        raise NotImplementedError("lab04 task 4: _store is not written yet (see lab04_sglang/README.md, task 4)")

    def generate(self, prompt_ids: list[int], max_new_tokens: int, eos_token_id: int | list[int] | None = None,
                 temperature: float = 0.0, seed: int | None = None, masker: TokenMasker | None = None,
                 stop_token_ids: list[int] | None = None) -> CachedOutput:
        """Generate after ``prompt_ids``, reusing and then extending the radix tree.

        Args:
            prompt_ids: at least one id; max_new_tokens: at least 1.
            eos_token_id: stop after this id (or any of a list; ``[]``: never); default the model's.
            temperature, seed: as in ``masks.constrained_generate``.
            masker: restrict every step to a grammar (task 2); stops when the output is complete.
            stop_token_ids: more ids that end the generation (kept in the output, like eos).

        Returns:
            The new ids (ending with the stop id when one came) and the cached / prefilled counts.
        """
        output = CachedOutput([], 0, 0)
        for _ in self.stream(prompt_ids, max_new_tokens, eos_token_id, temperature, seed, masker, stop_token_ids,
                             output=output):
            pass
        return output

    @torch.no_grad()
    def stream(self, prompt_ids: list[int], max_new_tokens: int, eos_token_id: int | list[int] | None = None,
               temperature: float = 0.0, seed: int | None = None, masker: TokenMasker | None = None,
               stop_token_ids: list[int] | None = None, output: CachedOutput | None = None) -> Iterator[int]:
        """``generate``, one new token id at a time, as a server streams them (arguments as there).

        ``output``, when given, is filled as it goes: the cached / prefilled counts once the prompt
        is in, each new id as it is yielded. Closing the iterator early (a client that went away)
        still puts what was computed into the tree; so does ``RequestAborted``, raised before the
        next token once ``abort_event`` is set.
        """
        check_not_empty("prompt_ids", prompt_ids)
        check_at_least("max_new_tokens", max_new_tokens, 1)
        check_at_least("temperature", temperature, 0.0)
        self.check_not_aborted()
        output = output if output is not None else CachedOutput([], 0, 0)
        eos = self.model.generation_config.eos_token_id if eos_token_id is None else eos_token_id
        stops = set(eos if isinstance(eos, list) else [eos]) | set(stop_token_ids or [])
        generator = torch.Generator().manual_seed(random.randrange(2**31) if seed is None else seed)
        logits, cache, matched, node = self._prefill(list(prompt_ids), len(prompt_ids) - 1)
        output.cached_tokens, output.prefilled_tokens = matched, len(prompt_ids) - matched
        logits = logits[-1]
        state = masker.automaton.start if masker is not None else None
        generated = output.token_ids
        try:
            for step in range(max_new_tokens):
                self.check_not_aborted()
                scores = logits.float().cpu()
                if masker is not None:
                    scores = scores.masked_fill(~masker.mask(state)[: scores.shape[0]], float("-inf"))
                token_id = pick_token(scores, temperature, generator)
                generated.append(token_id)
                if masker is not None:
                    state = masker.advance(state, token_id)
                yield token_id
                if token_id in stops or state == TokenMasker.FINISHED or step == max_new_tokens - 1:
                    break
                out = self.model(input_ids=torch.tensor([[token_id]], device=self.model.device),
                                 past_key_values=cache, use_cache=True)
                cache, logits = out.past_key_values, out.logits[0, -1]
        finally:
            computed = list(prompt_ids) + generated[:-1]  # the last new token was never fed
            self._store(computed, cache, node)

    @torch.no_grad()
    def logprobs(self, prefix_ids: list[int], continuation_ids: list[int]) -> list[float]:
        """``log p(continuation[i] | prefix + continuation[:i])`` for each continuation token.

        The prefix's KV comes from the tree; prefix and continuation are stored back."""
        check_not_empty("prefix_ids", prefix_ids)
        check_not_empty("continuation_ids", continuation_ids)
        self.check_not_aborted()
        ids = list(prefix_ids) + list(continuation_ids)
        logits, cache, matched, node = self._prefill(ids, len(prefix_ids) - 1)
        try:
            # logits row j predicts ids[matched + j + 1]; continuation token i sits at len(prefix) + i
            rows = logits[len(prefix_ids) - 1 - matched: len(ids) - 1 - matched].float()
            scores = torch.log_softmax(rows, dim=-1)
            chosen = torch.tensor(continuation_ids, device=scores.device)
            return scores.gather(1, chosen[:, None])[:, 0].tolist()
        finally:
            self._store(ids, cache, node)
