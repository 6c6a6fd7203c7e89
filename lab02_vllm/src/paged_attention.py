# Student skeleton for lab02_vllm: fill in each TODO, then run `course test lab02_vllm`.
# (Generated from the reference solution by `course stubs`.)
"""Task 2: paged attention in PyTorch: attention that finds keys and values through block tables.

The KV cache of one layer is two tensors of shape ``(num_blocks, block_size, num_kv_heads,
head_dim)``. Flattened, ``(num_blocks * block_size, ...)``, every token slot has a number, its
*slot*: token ``i`` of a sequence lives in slot ``block_table[i // block_size] * block_size +
i % block_size``. A forward step over several sequences is one flat batch of tokens:

- ``write_kv_cache`` stores each new token's key and value at its slot (``slot_mapping``);
- ``prefill_attention`` lets each sequence's new tokens attend, causally, to all of that
  sequence's tokens (the cached prefix included), gathered through its block table;
- ``decode_attention`` does the same for one new token per sequence, for the whole batch at once.

Grouped-query attention: ``num_heads`` query heads share ``num_kv_heads`` key/value heads; query
head ``h`` reads KV head ``h // (num_heads // num_kv_heads)`` (transformers' ``repeat_kv``).

Readings: the vLLM paper (arXiv 2309.06180), section 4.1 and figure 5; nano-vllm's
``layers/attention.py``; ``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: Decode attention gathers the KV of this many sequences (of similar lengths) at a time.
DECODE_GROUP = 16


@dataclass
class AttentionMetadata:
    """Where one forward step's tokens come from and go to (built by the model runner, task 3).

    The step holds ``num_seqs`` sequences and ``num_tokens`` new tokens, sequence after sequence.

    Attributes:
        is_prefill: True for a prefill step (several new tokens per sequence), False for decode (one).
        slot_mapping: ``(num_tokens,)`` int64, the cache slot each new token's key/value goes to.
        block_tables: ``(num_seqs, max_blocks)`` int32/int64 block ids, each row padded with 0.
        context_lens: ``(num_seqs,)`` int, tokens of each sequence in the cache after this step
            (cached prefix + new tokens).
        query_start_loc: ``(num_seqs + 1,)`` int, where each sequence's new tokens start in the
            flat batch (``[0, q0, q0 + q1, ...]``); for decode, ``arange(num_seqs + 1)``.
        max_context_len: ``max(context_lens)`` as a Python int.
        context_lens_list / query_lens_list: the same as Python lists (no device round trips).
    """

    is_prefill: bool
    slot_mapping: torch.Tensor
    block_tables: torch.Tensor
    context_lens: torch.Tensor
    query_start_loc: torch.Tensor
    max_context_len: int
    context_lens_list: list[int]
    query_lens_list: list[int]


def write_kv_cache(key: torch.Tensor, value: torch.Tensor, k_cache: torch.Tensor,
                   v_cache: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    """Store new tokens' keys and values in the paged cache, in place.

    Args:
        key, value: ``(num_tokens, num_kv_heads, head_dim)``.
        k_cache, v_cache: ``(num_blocks, block_size, num_kv_heads, head_dim)``, written in place.
        slot_mapping: ``(num_tokens,)`` int64: token ``t`` goes to flat slot ``slot_mapping[t]``
            (block ``slot // block_size``, offset ``slot % block_size``).
    """
    # TODO(lab02 task 2): store each new token's key and value at its slot of the paged cache, in place (README task 2; the module docstring's slot formula).
    raise NotImplementedError("lab02 task 2: write_kv_cache is not written yet (see lab02_vllm/README.md, task 2)")


def gather_kv(cache: torch.Tensor, block_table: torch.Tensor, context_len: int) -> torch.Tensor:
    """One sequence's first ``context_len`` keys (or values), in order, read through its table.

    Args:
        cache: ``(num_blocks, block_size, num_kv_heads, head_dim)``.
        block_table: ``(max_blocks,)`` the sequence's block ids (padding after the used ones).
        context_len: how many tokens to read.

    Returns:
        ``(context_len, num_kv_heads, head_dim)``.
    """
    # TODO(lab02 task 2): one sequence's first context_len keys (or values), in token order, read through its block table (README task 2).
    raise NotImplementedError("lab02 task 2: gather_kv is not written yet (see lab02_vllm/README.md, task 2)")


def prefill_attention(query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                      meta: AttentionMetadata, scale: float) -> torch.Tensor:
    """Causal attention for a flat batch of sequences whose new tokens may follow a cached prefix.

    Sequence ``s`` has ``q = query_lens_list[s]`` new tokens and ``c = context_lens_list[s]``
    tokens in the cache (the new ones included, already written). Its new token ``j`` sits at
    position ``c - q + j`` and attends to the keys at positions ``0 .. c - q + j``.

    Args:
        query: ``(num_tokens, num_heads, head_dim)``, sequence after sequence.
        k_cache, v_cache: ``(num_blocks, block_size, num_kv_heads, head_dim)``.
        meta: the step's metadata (``query_start_loc``, ``context_lens_list``, ``block_tables``).
        scale: the softmax scale, ``1 / sqrt(head_dim)`` for Llama.

    Returns:
        ``(num_tokens, num_heads, head_dim)``, in ``query``'s dtype.
    """
    # TODO(lab02 task 2): causal attention of each sequence's new tokens over its whole cached context, the new tokens possibly after a cached prefix (README task 2; the docstring's positions).
    raise NotImplementedError("lab02 task 2: prefill_attention is not written yet (see lab02_vllm/README.md, task 2)")


def decode_attention(query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     meta: AttentionMetadata, scale: float) -> torch.Tensor:
    """Attention of one new token per sequence over each sequence's cached tokens, batched.

    Args:
        query: ``(num_seqs, num_heads, head_dim)``, one token per sequence (at position
            ``context_lens[s] - 1``; its key and value are already in the cache).
        k_cache, v_cache: ``(num_blocks, block_size, num_kv_heads, head_dim)``.
        meta: the step's metadata (``block_tables``, ``context_lens``, ``max_context_len``).
        scale: the softmax scale.

    Returns:
        ``(num_seqs, num_heads, head_dim)``.
    """
    # TODO(lab02 task 2): one new token per sequence attending over its cached context, for the whole batch at once (README task 2; the docstring).
    raise NotImplementedError("lab02 task 2: decode_attention is not written yet (see lab02_vllm/README.md, task 2)")


def paged_attention(query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                    meta: AttentionMetadata, scale: float) -> torch.Tensor:
    """Prefill or decode attention, as the step asks (given).

    Args:
        query: ``(num_tokens, num_heads, head_dim)``.

    Returns:
        ``(num_tokens, num_heads, head_dim)``.
    """
    if meta.is_prefill:
        return prefill_attention(query, k_cache, v_cache, meta, scale)
    return decode_attention(query, k_cache, v_cache, meta, scale)
