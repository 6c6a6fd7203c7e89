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
    # BEGIN SOLUTION task 7: keep a prefix of the guesses and add one token so that every kept position is distributed exactly as the target's own sample (README task 7; Leviathan et al. 2023 §2.3 and A.1; Chen et al. 2023 algorithm 2).
    # HINT task 7 level 1: the invariant is the target's distribution: whatever the draft proposes, each
    #   token this round keeps must be distributed as if the target had drawn it itself. Accepting a guess is a
    #   random decision whose probability depends on how p and q compare at that guess; the token after the
    #   accepted prefix is drawn from a distribution built so that the two cases together add up to p.
    #   Reading: Leviathan et al. 2023 §2.3 and the proof in appendix A.1, Chen et al. 2023 algorithm 2, and
    #   transformers' _speculative_sampling in generation/utils.py.
    # HINT task 7 level 2: decide the guesses in order and stop at the first rejection: nothing after it
    #   may be kept. Rows: target_probs has one more row than guesses (the bonus row); guesses may be empty,
    #   then only the bonus is drawn. The rejection distribution can be all zeros when p equals q up to
    #   rounding (a rejection then had probability 0): fall back to the target's row rather than divide by
    #   zero. Every random draw (the acceptance test and each token drawn) uses the generator, on the
    #   probabilities' device, so a fixed seed reproduces the round.
    # HINT task 7 level 3: for index, guess: draw a uniform r with the generator; accept when r times the
    #   draft's probability of the guess is below the target's probability of it; otherwise draw one token
    #   from the positive part of (target row minus draft row), renormalized, and return the accepted guesses
    #   plus it. After the loop, draw the bonus from the last target row and return all guesses plus it.
    for index, guess in enumerate(guesses):
        p, q = target_probs[index, guess], draft_probs[index, guess]
        r = torch.rand((), generator=generator, device=target_probs.device)
        if r * q < p:
            continue
        leftover = (target_probs[index] - draft_probs[index]).clamp(min=0)
        if float(leftover.sum()) <= 0:  # p == q up to rounding: rejection had probability 0
            leftover = target_probs[index]
        replacement = torch.multinomial(leftover / leftover.sum(), 1, generator=generator)
        return [*guesses[:index], int(replacement)]
    bonus = torch.multinomial(target_probs[len(guesses)], 1, generator=generator)
    return [*guesses, int(bonus)]
    # END SOLUTION


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
    # BEGIN SOLUTION task 7: generate with a draft that guesses and a target that checks all its guesses in one pass, keeping both KV caches in step with the kept tokens (README task 7; Leviathan et al. 2023 §2; transformers' assisted generation).
    # HINT task 7 level 1: a round keeps between 1 and k + 1 tokens for one target pass. What must hold:
    #   greedy output equals target.generate(do_sample=False)'s; sampled output follows the target's own
    #   sampling at the temperature (accept_or_resample decides); the counters are exact (one target pass a
    #   round, one draft pass a proposed token). Reading: README task 7, Leviathan et al. 2023 §2, and
    #   transformers' assisted generation (candidate_generator.py) for how it trims caches.
    # HINT task 7 level 2: check the arguments first (shared.validation). Near max_new_tokens propose fewer
    #   guesses: a round always adds one token of its own after the accepted ones, so never propose more than
    #   can still be kept. Each cache must hold exactly the tokens it has seen and that were kept: the
    #   target's logits at the position before the first guess predict the first guess, so feed it what it has
    #   not cached plus all guesses and read len(guesses) + 1 rows. Sampled mode keeps each draft distribution
    #   it drew from ((guesses, vocab) for the rule). Stop as soon as a kept token is an eos id or the budget
    #   is reached, even in the middle of a round's tokens.
    # HINT task 7 level 3: each round: the draft feeds its uncached tokens, then one guess at a time (argmax,
    #   or multinomial of softmax(logits / temperature) with the generator); the target runs once on its
    #   uncached tokens + guesses; greedy: count the leading guesses equal to the target's argmax at the same
    #   row and add the target's argmax after them; sampled: softmax the target's rows and call
    #   accept_or_resample; cut the target cache to the old length + accepted and the draft cache to what it
    #   fed that is still kept (_keep_first); append the new tokens one by one, checking the stop rules.
    check_not_empty("prompt_ids", prompt_ids)
    check_at_least("max_new_tokens", max_new_tokens, 1)
    check_at_least("k", k, 1)
    check_in_range("temperature", temperature, 0.0, float("inf"))
    sampled = temperature > 0
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
            draft_probs: list[torch.Tensor] = []
            draft_input = tokens[draft_cached:]
            for _ in range(guesses_wanted):
                out = draft(input_ids=torch.tensor([draft_input], device=device),
                            past_key_values=draft_cache, use_cache=True)
                draft_passes += 1
                logits = out.logits[0, -1].float()
                if sampled:
                    draft_probs.append(torch.softmax(logits / temperature, dim=-1))
                    guesses.append(int(torch.multinomial(draft_probs[-1], 1, generator=generator)))
                else:
                    guesses.append(int(logits.argmax()))
                draft_input = guesses[-1:]
            # 2. The target checks every guess in one pass.
            fresh = tokens[target_cached:]
            out = target(input_ids=torch.tensor([fresh + guesses], device=device),
                         past_key_values=target_cache, use_cache=True)
            target_passes += 1
            logits = out.logits[0, len(fresh) - 1:].float()  # k + 1 predictions
            if sampled:
                target_probs = torch.softmax(logits / temperature, dim=-1)
                stacked = torch.stack(draft_probs) if draft_probs else target_probs[:0]
                new_tokens = accept_or_resample(target_probs, stacked, guesses, generator)
                n = len(new_tokens) - 1
            else:
                choices = logits.argmax(dim=-1).tolist()
                n = 0
                while n < len(guesses) and guesses[n] == choices[n]:
                    n += 1
                new_tokens = [*guesses[:n], choices[n]]
            proposed += len(guesses)
            accepted += n
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
