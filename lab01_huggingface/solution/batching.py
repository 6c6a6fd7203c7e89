"""Task 5: batched greedy generation with left padding and attention masks.

A GPU does nearly the same work for one sequence as for sixteen (decoding is limited by reading
the weights, not by arithmetic), so serving systems batch requests. Prompts have different
lengths, so they are padded to one length. For a decoder, padding goes on the *left*: every
row's last real token then sits in the last column, where the next token is read from, and new
tokens are appended to the right of all rows alike. The attention mask marks pads with 0 so no
real token attends to them, and positions count only real tokens (a pad-free row must see the
same positions as it would alone).

Readings: "Generation with LLMs" in the transformers docs (the section on padding side);
``LlamaModel`` forward (``attention_mask``, ``position_ids``).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from shared.validation import check_at_least, check_not_empty


def left_pad(sequences: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token id lists to one length.

    Args:
        sequences: ``batch`` lists of token ids, each non-empty.
        pad_token_id: the id to pad with.

    Returns:
        ``(input_ids, attention_mask)``, both ``(batch, longest)`` int64: pads first, then the
        tokens; the mask is 0 on pads and 1 on tokens.

    Raises:
        ValueError: ``sequences`` is empty, or one of them is (naming its index).
    """
    # BEGIN SOLUTION task 5: a batch of prompts left-padded to one width, with the mask that tells pads from tokens (README task 5; transformers 'Generation with LLMs', padding side).
    # HINT task 5 level 1: batching must not change any row's answer: each row equals its own unbatched greedy
    #   output. Reading: README task 5 and transformers' 'Generation with LLMs' (why decoder-only models pad on
    #   the left). Three things keep a padded row equal to the unpadded one: the mask hides the pads, the
    #   positions count real tokens only, and every row's newest token is in the last column.
    # HINT task 5 level 2: pads first, then the tokens, both tensors (batch, longest) int64, mask 0 on
    #   pads. An empty batch or an empty sequence (named by its index) is a ValueError.
    # HINT task 5 level 3: width = the longest length; each row = (width - len) pads + the ids; each
    #   mask row = as many zeros + len ones.
    check_not_empty("sequences", sequences)
    for index, ids in enumerate(sequences):
        check_not_empty(f"sequences[{index}]", ids)
    width = max(len(ids) for ids in sequences)
    input_ids = torch.tensor([[pad_token_id] * (width - len(ids)) + list(ids) for ids in sequences])
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in sequences])
    return input_ids, attention_mask
    # END SOLUTION


def batch_greedy_generate(model: PreTrainedModel, prompts: list[list[int]], max_new_tokens: int,
                          pad_token_id: int, eos_token_id: int | list[int] | None = None) -> list[list[int]]:
    """Greedy decoding of several prompts in one batch, with the KV cache.

    Args:
        model: a causal LM in eval mode.
        prompts: ``batch`` lists of prompt token ids, of any lengths.
        max_new_tokens: the most tokens to generate per prompt, at least 1.
        pad_token_id: the id used for left padding (and after a row has finished).
        eos_token_id: a row stops after generating it (or any id of a list; 0 is a valid id);
            ``None`` means the model's ``generation_config.eos_token_id`` (an id, a list, or None).

    Returns:
        For each prompt, its generated ids (eos included when reached, nothing after it):
        exactly what :func:`greedy_generate` (task 3) would give for that prompt alone.

    Raises:
        ValueError: empty ``prompts`` or an empty prompt, or ``max_new_tokens`` < 1.
    """
    # BEGIN SOLUTION task 5: greedy decoding of a batch in one forward pass per step with the KV cache, each row equal to its own greedy output, finished rows included (README task 5; the docstring).
    # HINT task 5 level 2: the eos argument follows task 3's conventions (an id, 0
    #   included, a list, None -> the generation config). Positions must count real tokens only: a left-padded
    #   row's first token is position 0, and the pads' positions must be valid (not negative). Each step after
    #   the first feeds one token per row, the cache, a mask that covers all tokens so far (one column more each
    #   step) and positions (batch, 1). A finished row keeps being computed (it is part of the batch) but
    #   records nothing more.
    # HINT task 5 level 3: stop ids as a tensor; left_pad, to the model's device;
    #   positions = running count of the mask minus one, clamped at 0. Loop max_new_tokens times: forward with
    #   ids, mask, positions and the cache; argmax of the last position; finished rows get the pad instead;
    #   record the rest; mark rows whose token is a stop id; stop when all are finished; next ids = the tokens
    #   (batch, 1), positions = last + 1, mask += a column of ones.
    check_at_least("max_new_tokens", max_new_tokens, 1)
    if eos_token_id is None:
        eos_token_id = model.generation_config.eos_token_id
    stop = [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    stop_ids = torch.tensor(stop, dtype=torch.long, device=model.device)
    input_ids, attention_mask = left_pad(prompts, pad_token_id)
    input_ids, attention_mask = input_ids.to(model.device), attention_mask.to(model.device)
    position_ids = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)
    batch = len(prompts)
    generated: list[list[int]] = [[] for _ in range(batch)]
    finished = torch.zeros(batch, dtype=torch.bool, device=model.device)
    past = None
    with torch.no_grad():
        for _ in range(max_new_tokens):
            out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        past_key_values=past, use_cache=True)
            past = out.past_key_values
            tokens = torch.argmax(out.logits[:, -1, :], dim=-1)
            tokens = torch.where(finished, torch.full_like(tokens, pad_token_id), tokens)
            for row in range(batch):
                if not finished[row]:
                    generated[row].append(int(tokens[row]))
            finished |= torch.isin(tokens, stop_ids)
            if bool(finished.all()):
                break
            input_ids = tokens.unsqueeze(-1)
            position_ids = position_ids[:, -1:] + 1
            attention_mask = torch.cat([attention_mask, torch.ones_like(input_ids)], dim=-1)
    return generated
    # END SOLUTION
