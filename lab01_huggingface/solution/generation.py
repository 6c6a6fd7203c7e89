"""Task 3: one decode loop, with and without the KV cache, for any way of picking tokens.

Generation is a loop: run the model, take the logits of the last position, pick a token, append
it, repeat until eos or a length limit. *How* a token is picked (the argmax for greedy decoding,
a draw from a filtered softmax for sampling in task 4) is a separate question from the loop, so
the loop takes the picking function as an argument: you write the loop once, here, and task 4's
sampling plugs into it.

Without a cache each step recomputes attention over the whole prefix: step t costs O(t) token
computations, the whole generation O(n^2). With the KV cache (``past_key_values``) the model keeps
every layer's keys and values, so each step feeds only the newest token.

Readings: "Generation with LLMs" and "Caching" (KV cache, ``DynamicCache``) in the transformers
docs; docs/01 of this course.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import PreTrainedModel

from shared.validation import check_at_least, check_not_empty

#: Picks the next token: ``(logits, sequence) -> token``. ``logits`` is ``(1, vocab)`` float32, the
#: last position's; ``sequence`` is ``(1, seq)`` int64, the prompt and every token generated so far
#: (a repetition penalty needs it); the result is a ``(1,)`` int64 tensor.
TokenPicker = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pick_greedy(logits: torch.Tensor, sequence: torch.Tensor) -> torch.Tensor:
    """The greedy :data:`TokenPicker`: the most likely token (given)."""
    return torch.argmax(logits, dim=-1)


def next_token_logits(model: PreTrainedModel, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits for the token after ``input_ids``, recomputing the whole prefix (given).

    Args:
        input_ids: ``(batch, seq)`` token ids on the model's device.

    Returns:
        ``(batch, vocab)`` float logits of the last position.
    """
    with torch.no_grad():
        return model(input_ids=input_ids, use_cache=False).logits[:, -1, :]


def stop_ids(model: PreTrainedModel, eos_token_id: int | list[int] | None = None) -> set[int]:
    """The token ids that end a generation.

    Args:
        eos_token_id: one id (0 is a valid id), a list of ids (Llama 3 stops at both
            ``<|end_of_text|>`` and ``<|eot_id|>``), or ``None`` for the model's
            ``generation_config.eos_token_id`` (itself an id, a list, or None for a model that
            never stops: only ``max_new_tokens`` ends its loop).

    Returns:
        The set of stop ids (empty when there is none).
    """
    # BEGIN SOLUTION task 3: every eos convention (an id, a list of ids, None, or the model's generation config) as one set of stop ids (README task 3; the docstring).
    # HINT task 3 level 1: stop_ids turns every way of naming the end-of-sequence token into one set, so
    #   that the loop needs a single membership test. Reading: the generation configuration in the
    #   transformers "Generation" docs (its eos_token_id may be one id, a list of ids, or None).
    # HINT task 3 level 2: an explicit argument wins over the model's generation config; "no eos at
    #   all" is an empty set, not an error; id 0 is a real token, so test for None, never for truth.
    # HINT task 3 level 3: fall back to the generation config only when the argument is None, then
    #   branch on the type of what you have: None, a single int, or an iterable of ids (made ints).
    if eos_token_id is None:
        eos_token_id = model.generation_config.eos_token_id
    if eos_token_id is None:
        return set()
    if isinstance(eos_token_id, int):
        return {eos_token_id}
    return {int(token) for token in eos_token_id}
    # END SOLUTION


def decode(model: PreTrainedModel, prompt_ids: list[int], max_new_tokens: int, pick_token: TokenPicker,
           eos_token_id: int | list[int] | None = None, use_cache: bool = True) -> list[int]:
    """Generate one sequence, token by token, choosing each with ``pick_token``.

    Args:
        model: a causal LM in eval mode.
        prompt_ids: the prompt's token ids (special tokens included), at least one.
        max_new_tokens: the most tokens to generate, at least 1.
        pick_token: a :data:`TokenPicker`, called once per step with the last position's logits as
            float32 and the sequence so far (prompt + generated).
        eos_token_id: stop after generating this token, or any token of a list (it is included in
            the result); ``None`` means the model's ``generation_config.eos_token_id``
            (:func:`stop_ids` turns either into a set).
        use_cache: feed one new token per step with ``past_key_values`` (True), or recompute the
            whole sequence every step (False, with :func:`next_token_logits`). Both must give the
            same tokens.

    Returns:
        The generated token ids only (not the prompt).

    Raises:
        ValueError: empty ``prompt_ids`` or ``max_new_tokens`` < 1, before the model is called.
    """
    # BEGIN SOLUTION task 3: the one generation loop: each token chosen by pick_token, stopping after a stop id or max_new_tokens, with or without the KV cache and the same tokens either way (README task 3; transformers 'Caching').
    # HINT task 3 level 1: decode generates at most max_new_tokens tokens, asking pick_token for each, and
    #   stops right after a stop id (which is kept). Both modes must give the same tokens: only the
    #   work per step differs. Reading: the "Caching" page of the transformers docs (past_key_values)
    #   and the TokenPicker comment at the top of src/generation.py.
    # HINT task 3 level 2: arguments are checked before the model runs. The picker always gets the
    #   last position's logits as float32, shape (1, vocab), and the whole sequence so far, shape
    #   (1, seq): prompt and generated tokens. Uncached, every step recomputes the full sequence;
    #   cached, the first forward sees the whole prompt and every later one exactly one token plus
    #   the cache the previous forward returned. The result holds the generated ids only.
    # HINT task 3 level 3: keep three things across steps: the sequence (for the picker and the
    #   uncached path), the cache the model returned, and what to feed next (the prompt at first,
    #   then a (1, 1) tensor of the new token). Each step: logits, pick, append the int, stop on a
    #   stop id, else extend the sequence. No gradients are needed anywhere in the loop.
    check_not_empty("prompt_ids", prompt_ids)
    check_at_least("max_new_tokens", max_new_tokens, 1)
    stop = stop_ids(model, eos_token_id)
    sequence = torch.tensor([prompt_ids], device=model.device)
    generated: list[int] = []
    past = None
    next_input = sequence
    with torch.no_grad():
        for _ in range(max_new_tokens):
            if use_cache:
                out = model(input_ids=next_input, past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[:, -1, :]
            else:
                logits = next_token_logits(model, sequence)
            token = int(pick_token(logits.float(), sequence).reshape(-1)[0])
            generated.append(token)
            if token in stop:
                break
            next_input = torch.tensor([[token]], device=model.device)
            sequence = torch.cat([sequence, next_input], dim=1)
    return generated
    # END SOLUTION


def greedy_generate(model: PreTrainedModel, prompt_ids: list[int], max_new_tokens: int,
                    eos_token_id: int | list[int] | None = None, use_cache: bool = True) -> list[int]:
    """Greedy decoding of one sequence: :func:`decode` with :func:`pick_greedy` (given).

    Returns what ``model.generate(..., do_sample=False, max_new_tokens=...)`` appends to the prompt.
    """
    return decode(model, prompt_ids, max_new_tokens, pick_greedy, eos_token_id, use_cache)
