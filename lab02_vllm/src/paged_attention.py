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
        is_prefill: True when some sequence has several new tokens (a prefill chunk), False when
            every sequence has one (a decode step).
        slot_mapping: ``(num_tokens,)`` int64, the cache slot each new token's key/value goes to.
        block_tables: ``(num_seqs, max_blocks)`` int32/int64 block ids, each row padded with 0.
        context_lens: ``(num_seqs,)`` int, tokens of each sequence in the cache after this step
            (cached prefix + new tokens).
        query_start_loc: ``(num_seqs + 1,)`` int, where each sequence's new tokens start in the
            flat batch (``[0, q0, q0 + q1, ...]``); ``arange(num_seqs + 1)`` when each has one.
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

    def select(self, seqs: list[int]) -> AttentionMetadata:
        """The metadata of the sequences at indices ``seqs`` only, as if they were the whole batch
        (given; ``slot_mapping`` is left empty: the keys and values are already written)."""
        rows = torch.tensor(seqs, device=self.block_tables.device)
        query_lens = [self.query_lens_list[s] for s in seqs]
        context_lens = [self.context_lens_list[s] for s in seqs]
        starts = [0]
        for q in query_lens:
            starts.append(starts[-1] + q)
        return AttentionMetadata(
            is_prefill=any(q > 1 for q in query_lens), slot_mapping=self.slot_mapping[:0],
            block_tables=self.block_tables[rows], context_lens=self.context_lens[rows.to(self.context_lens.device)],
            query_start_loc=torch.tensor(starts, device=self.query_start_loc.device),
            max_context_len=max(context_lens), context_lens_list=context_lens, query_lens_list=query_lens)


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
    """Attention for a step's flat batch, whatever it mixes (given).

    A step may hold decode tokens (one query per sequence) and prefill chunks (several) together.
    Sequences with one query, a decode or a one-token chunk alike, go through the batched
    ``decode_attention``; the others through ``prefill_attention``; the rows are put back in
    the batch's order.

    Args:
        query: ``(num_tokens, num_heads, head_dim)``.

    Returns:
        ``(num_tokens, num_heads, head_dim)``.
    """
    if not meta.is_prefill:
        return decode_attention(query, k_cache, v_cache, meta, scale)
    single = [s for s, q in enumerate(meta.query_lens_list) if q == 1]
    if not single:
        return prefill_attention(query, k_cache, v_cache, meta, scale)
    several = [s for s, q in enumerate(meta.query_lens_list) if q != 1]
    starts = meta.query_start_loc.tolist()
    single_rows = torch.tensor([starts[s] for s in single], device=query.device)
    several_rows = torch.tensor([t for s in several for t in range(starts[s], starts[s + 1])], device=query.device)
    out = torch.empty_like(query)
    out[single_rows] = decode_attention(query[single_rows], k_cache, v_cache, meta.select(single), scale)
    out[several_rows] = prefill_attention(query[several_rows], k_cache, v_cache, meta.select(several), scale)
    return out
