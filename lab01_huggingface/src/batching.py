# Student skeleton for lab01_huggingface: fill in each TODO, then run `course test lab01_huggingface`.
# (Generated from the reference solution by `course stubs`.)
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
    # TODO(lab01 task 5): a batch of prompts left-padded to one width, with the mask that tells pads from tokens (README task 5; transformers 'Generation with LLMs', padding side).
    raise NotImplementedError("lab01 task 5: left_pad is not written yet (see lab01_huggingface/README.md, task 5)")


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
    # TODO(lab01 task 5): greedy decoding of a batch in one forward pass per step with the KV cache, each row equal to its own greedy output, finished rows included (README task 5; the docstring).
    raise NotImplementedError("lab01 task 5: batch_greedy_generate is not written yet (see lab01_huggingface/README.md, task 5)")
