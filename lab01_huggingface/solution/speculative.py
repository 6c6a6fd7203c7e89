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
    # BEGIN SOLUTION task 7: each round: the draft proposes k tokens one by one; the target runs once on the tokens it has not cached plus the k guesses; keep the guesses up to the first disagreement, then the target's own token; cut both caches back to the kept tokens with _keep_first.
    check_not_empty("prompt_ids", prompt_ids)
    check_at_least("max_new_tokens", max_new_tokens, 1)
    check_at_least("k", k, 1)
    if eos_token_id is None:
        eos_token_id = target.generation_config.eos_token_id
    stop = set() if eos_token_id is None else {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id)
    device = target.device
    tokens = list(prompt_ids)
    generated: list[int] = []
    target_cache, draft_cache = DynamicCache(), DynamicCache()
    target_cached = draft_cached = 0  # how many of `tokens` each cache holds
    proposed = accepted = target_passes = draft_passes = 0

    with torch.no_grad():
        while len(generated) < max_new_tokens:
            guesses_wanted = min(k, max_new_tokens - len(generated) - 1)
            # 1. The draft proposes, feeding what its cache lacks, then each guess in turn.
            guesses: list[int] = []
            draft_input = tokens[draft_cached:]
            for _ in range(guesses_wanted):
                out = draft(input_ids=torch.tensor([draft_input], device=device),
                            past_key_values=draft_cache, use_cache=True)
                draft_passes += 1
                guesses.append(int(out.logits[0, -1].argmax()))
                draft_input = guesses[-1:]
            # 2. The target checks every guess in one pass.
            fresh = tokens[target_cached:]
            out = target(input_ids=torch.tensor([fresh + guesses], device=device),
                         past_key_values=target_cache, use_cache=True)
            target_passes += 1
            choices = out.logits[0, len(fresh) - 1:].argmax(dim=-1).tolist()  # k + 1 predictions
            n = 0
            while n < len(guesses) and guesses[n] == choices[n]:
                n += 1
            proposed += len(guesses)
            accepted += n
            new_tokens = [*guesses[:n], choices[n]]
            # 3. Drop the cache entries of rejected guesses.
            _keep_first(target_cache, len(tokens) + n)
            draft_cached = min(len(tokens) + len(guesses) - 1, len(tokens) + n) if guesses else draft_cached
            _keep_first(draft_cache, draft_cached)
            target_cached = len(tokens) + n
            for token in new_tokens:
                generated.append(token)
                tokens.append(token)
                if token in stop or len(generated) == max_new_tokens:
                    return SpeculativeResult(generated, proposed, accepted, target_passes, draft_passes)
    return SpeculativeResult(generated, proposed, accepted, target_passes, draft_passes)
    # END SOLUTION
