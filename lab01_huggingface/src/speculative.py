# Student skeleton for lab01_huggingface: fill in each TODO, then run `course test lab01_huggingface`.
# (Generated from the reference solution by `course stubs`.)
"""Task 7: speculative decoding, greedy and sampled.

Decoding one token at a time leaves a GPU mostly idle: each step reads all the weights to do a
little arithmetic. Speculative decoding lets a small *draft* model guess ``k`` tokens cheaply;
the large *target* model then checks all ``k`` guesses in **one** forward pass (it computes the
next-token logits at every position at once). The longest prefix of guesses that matches the
target's own greedy choices is kept, plus one token from the target (the correction at the first
mismatch, or a bonus token when all ``k`` match). The output is exactly the target's greedy
output; only the number of target passes changes.

With sampling, "matches the target's choice" has no meaning: the target would have drawn a random
token. *Speculative sampling* (Leviathan et al. 2023, section 2.3; Chen et al. 2023, algorithm 2)
keeps the target's distribution exactly with a rejection-sampling rule: a guess ``x`` that the
draft drew with probability ``q(x)`` is accepted with probability ``min(1, p(x) / q(x))``, where
``p`` is the target's distribution at that position; at the first rejection the replacement is
drawn from the leftover mass ``max(0, p - q)`` renormalized, and when every guess is accepted the
bonus token is drawn from ``p`` after the last guess. Every kept token is then distributed exactly
as if the target had sampled it alone.

Readings: Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding"
(appendix A.1 proves the rule keeps ``p``); Chen et al. 2023, "Accelerating Large Language Model
Decoding with Speculative Sampling"; transformers' "assisted generation"
(``model.generate(assistant_model=...)``; its ``_speculative_sampling`` in
``generation/utils.py`` is the same rule); ``DynamicCache.crop`` for throwing away the cache
entries of rejected guesses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel

from shared.validation import check_at_least, check_in_range, check_not_empty


def _keep_first(cache: DynamicCache, length: int) -> None:
    """Drop every cached position after the first ``length`` (given)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)  # a negative argument removes that many positions from the end


def accept_or_resample(target_probs: torch.Tensor, draft_probs: torch.Tensor, guesses: list[int],
                       generator: torch.Generator | None = None) -> list[int]:
    """One round of speculative *sampling*: which guesses to keep, and the token after them.

    Args:
        target_probs: ``(len(guesses) + 1, vocab)`` float: row ``i`` is the target's next-token
            distribution after the prefix and ``guesses[:i]`` (the last row follows every guess).
        draft_probs: ``(len(guesses), vocab)`` float: row ``i`` is the distribution the draft drew
            ``guesses[i]`` from.
        guesses: the draft's tokens, possibly none.
        generator: the source of random numbers (on the probabilities' device); ``None`` uses
            torch's global one.

    Returns:
        The tokens this round keeps: the accepted guesses, in order, then one token drawn by the
        rule (the replacement of the first rejected guess, or the bonus token after all of them).
        Its length minus one is the number of accepted guesses. Each position of it is distributed
        exactly as the target's own sample would be.
    """
    # TODO(lab01 task 7): keep a prefix of the guesses and add one token so that every kept position is distributed exactly as the target's own sample (README task 7; Leviathan et al. 2023 §2.3 and A.1; Chen et al. 2023 algorithm 2).
    raise NotImplementedError("lab01 task 7: accept_or_resample is not written yet (see lab01_huggingface/README.md, task 7)")


@dataclass
class SpeculativeResult:
    tokens: list[int]  # the generated ids: the target's greedy output, or a sample from its distribution
    proposed: int  # draft tokens proposed in all (fewer than k in a round near max_new_tokens)
    accepted: int  # proposed tokens the target agreed with
    target_forward_passes: int  # one per round
    draft_forward_passes: int  # one per proposed token

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0


def speculative_generate(target: PreTrainedModel, draft: PreTrainedModel, prompt_ids: list[int],
                         max_new_tokens: int, k: int = 4, eos_token_id: int | list[int] | None = None,
                         temperature: float = 0.0, generator: torch.Generator | None = None,
                         ) -> SpeculativeResult:
    """Speculative decoding with KV caches for both models: greedy, or sampled with ``temperature``.

    Args:
        target: the model whose greedy output (or distribution) must be reproduced.
        draft: a smaller model with the same tokenizer (the same vocabulary).
        prompt_ids: the prompt's token ids, at least one.
        max_new_tokens: the most tokens to generate, at least 1.
        k: draft tokens proposed per round, at least 1 (fewer near ``max_new_tokens``).
        eos_token_id: stop after it (or any id of a list; 0 is a valid id); ``None`` means the
            target's ``generation_config.eos_token_id`` (an id, a list, or None).
        temperature: 0 for greedy; above 0, both models sample from ``softmax(logits /
            temperature)`` and :func:`accept_or_resample` decides each round (speculative sampling).
        generator: the random numbers of the sampled mode (the draft's draws and the rule's).

    Returns:
        A :class:`SpeculativeResult`. Greedy: ``tokens`` equals ``target.generate(do_sample=False)``'s
        new tokens. Sampled: ``tokens`` follows the distribution of the target's own sampling at
        ``temperature``. Each round costs ``target_forward_passes`` one pass however many tokens it keeps.

    Raises:
        ValueError: empty ``prompt_ids``, ``max_new_tokens`` < 1, ``k`` < 1 or ``temperature`` < 0.
    """
    # TODO(lab01 task 7): generate with a draft that guesses and a target that checks all its guesses in one pass, keeping both KV caches in step with the kept tokens (README task 7; Leviathan et al. 2023 §2; transformers' assisted generation).
    raise NotImplementedError("lab01 task 7: speculative_generate is not written yet (see lab01_huggingface/README.md, task 7)")
