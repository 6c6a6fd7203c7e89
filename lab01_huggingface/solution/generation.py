"""Task 3: greedy decoding by hand, with and without the KV cache.

Generation is a loop: run the model, take the logits of the last position, pick a token, append
it, repeat until eos or a length limit. Without a cache each step recomputes attention over the
whole prefix: step t costs O(t) token computations, the whole generation O(n^2). With the KV
cache (``past_key_values``) the model keeps every layer's keys and values, so each step feeds
only the newest token: O(1) new token computation per step.

Readings: "Generation with LLMs" and "Caching" (KV cache, ``DynamicCache``) in the transformers
docs; docs/01 of this course.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from shared.validation import check_at_least, check_not_empty


def next_token_logits(model: PreTrainedModel, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits for the token after ``input_ids``, recomputing the whole prefix (given).

    Args:
        input_ids: ``(batch, seq)`` token ids on the model's device.

    Returns:
        ``(batch, vocab)`` float logits of the last position.
    """
    with torch.no_grad():
        return model(input_ids=input_ids, use_cache=False).logits[:, -1, :]


def greedy_generate(model: PreTrainedModel, prompt_ids: list[int], max_new_tokens: int,
                    eos_token_id: int | None = None, use_cache: bool = True) -> list[int]:
    """Greedy decoding of one sequence: always the most likely next token.

    Args:
        model: a causal LM in eval mode.
        prompt_ids: the prompt's token ids (special tokens included), at least one.
        max_new_tokens: the most tokens to generate, at least 1.
        eos_token_id: stop after generating this token (it is included in the result);
            ``None`` means the model's ``generation_config.eos_token_id``.
        use_cache: feed one new token per step with ``past_key_values`` (True), or recompute the
            whole sequence every step (False). Both must give the same tokens.

    Returns:
        The generated token ids only (not the prompt): what
        ``model.generate(..., do_sample=False, max_new_tokens=...)`` appends.

    Raises:
        ValueError: empty ``prompt_ids`` or ``max_new_tokens`` < 1, before the model is called.
    """
    # BEGIN SOLUTION task 3: prefill the whole prompt once; then loop: argmax of the last logits, append, and (with the cache) feed only that token with past_key_values=out.past_key_values.
    check_not_empty("prompt_ids", prompt_ids)
    check_at_least("max_new_tokens", max_new_tokens, 1)
    if eos_token_id is None:
        eos_token_id = model.generation_config.eos_token_id
    stop = set(eos_token_id) if isinstance(eos_token_id, list) else {eos_token_id}
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
            token = int(torch.argmax(logits, dim=-1).item())
            generated.append(token)
            if token in stop:
                break
            next_input = torch.tensor([[token]], device=model.device)
            sequence = torch.cat([sequence, next_input], dim=1)
    return generated
    # END SOLUTION
