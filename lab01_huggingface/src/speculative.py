# Student skeleton for lab01_huggingface: fill in each TODO, then run `course test lab01_huggingface`.
# (Generated from the reference solution by `course stubs`.)
"""Task 7: speculative decoding (greedy).

Decoding one token at a time leaves a GPU mostly idle: each step reads all the weights to do a
little arithmetic. Speculative decoding lets a small *draft* model guess ``k`` tokens cheaply;
the large *target* model then checks all ``k`` guesses in **one** forward pass (it computes the
next-token logits at every position at once). The longest prefix of guesses that matches the
target's own greedy choices is kept, plus one token from the target (the correction at the first
mismatch, or a bonus token when all ``k`` match). The output is exactly the target's greedy
output; only the number of target passes changes.

Readings: Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding";
transformers' "assisted generation" (``model.generate(assistant_model=...)``);
``DynamicCache.crop`` for throwing away the cache entries of rejected guesses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel

from shared.validation import check_at_least, check_not_empty


def _keep_first(cache: DynamicCache, length: int) -> None:
    """Drop every cached position after the first ``length`` (given)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)  # a negative argument removes that many positions from the end


@dataclass
class SpeculativeResult:
    tokens: list[int]  # the generated ids, exactly the target's greedy output
    proposed: int  # draft tokens proposed in all (fewer than k in a round near max_new_tokens)
    accepted: int  # proposed tokens the target agreed with
    target_forward_passes: int  # one per round
    draft_forward_passes: int  # one per proposed token

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0


def speculative_generate(target: PreTrainedModel, draft: PreTrainedModel, prompt_ids: list[int],
                         max_new_tokens: int, k: int = 4, eos_token_id: int | list[int] | None = None,
                         ) -> SpeculativeResult:
    """Greedy speculative decoding with KV caches for both models.

    Args:
        target: the model whose greedy output must be reproduced.
        draft: a smaller model with the same tokenizer.
        prompt_ids: the prompt's token ids, at least one.
        max_new_tokens: the most tokens to generate, at least 1.
        k: draft tokens proposed per round, at least 1 (fewer near ``max_new_tokens``).
        eos_token_id: stop after it (or any id of a list; 0 is a valid id); ``None`` means the
            target's ``generation_config.eos_token_id`` (an id, a list, or None).

    Returns:
        A :class:`SpeculativeResult`. ``tokens`` equals ``target.generate(do_sample=False)``'s new
        tokens; each round costs ``target_forward_passes`` one pass however many tokens it keeps.

    Raises:
        ValueError: empty ``prompt_ids``, ``max_new_tokens`` < 1 or ``k`` < 1.
    """
    # TODO(lab01 task 7): each round: the draft proposes k tokens one by one; the target runs once on the tokens it has not cached plus the k guesses; keep the guesses up to the first disagreement, then the target's own token; cut both caches back to the kept tokens with _keep_first.
    raise NotImplementedError("lab01 task 7: speculative_generate is not written yet (see lab01_huggingface/README.md, task 7)")
