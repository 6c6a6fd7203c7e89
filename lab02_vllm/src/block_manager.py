# Student skeleton for lab02_vllm: fill in each TODO, then run `course test lab02_vllm`.
# (Generated from the reference solution by `course stubs`.)
"""Task 1: the block manager, PagedAttention's memory allocator.

The KV cache is one pool of ``num_blocks`` fixed-size blocks of ``block_size`` token slots each.
A sequence does not reserve room for its maximum length up front: it owns a *block table*, the
list of its blocks in order, and gets one more block only when its last one is full. So the
memory a sequence holds but does not use is less than one block (the tail of its last block),
instead of ``max_model_len - len`` slots for a contiguous reservation.

    sequence "The cat sat on the mat ..." (block_size 4)   physical pool
    logical block 0: The cat sat on   -> block_table[0] = 7   [0][1][2][3][4][5][6][7][8]...
    logical block 1: the mat and ...  -> block_table[1] = 2
    logical block 2: it (3 free slots)-> block_table[2] = 5

Blocks carry a reference count so that sequences can share them: ``fork`` gives a child the
parent's table (n samples of one prompt share the prompt's blocks), and a shared *last* block is
copied before anyone writes into it (copy-on-write). Prefix caching (task 6) shares full blocks
between unrelated requests through the same counts.

Readings: the vLLM paper (Kwon et al., 2023, arXiv 2309.06180), sections 4.1-4.4; nano-vllm's
``engine/block_manager.py``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from shared.validation import check_at_least, check_in_range

from .prefix_cache import PrefixCache, hash_block
from .sequence import Sequence


class NoFreeBlocksError(RuntimeError):
    """The pool has no free block left (the scheduler should have checked first)."""


@dataclass
class Block:
    """One physical block of the KV cache pool.

    Attributes:
        block_id: its index in the pool (the KV tensors' first axis).
        ref_count: how many sequences' block tables hold it (0 = free or parked in the prefix cache).
        block_hash: the prefix-cache hash of its tokens once it is full and cached (task 6), else None.
        token_ids: the tokens it holds once it is full and cached (to check a hash hit).
    """

    block_id: int
    ref_count: int = 0
    block_hash: int | None = None
    token_ids: list[int] = field(default_factory=list)


class BlockManager:
    """Allocates KV-cache blocks to sequences.

    Args:
        num_blocks: blocks in the pool (at least 1).
        block_size: token slots per block (at least 1).
        watermark: share of the pool kept free when admitting *new* sequences, so that running
            ones can still grow without being preempted at once (vLLM's default 0.01).
        enable_prefix_caching: keep full blocks findable by hash (task 6).
    """

    def __init__(self, num_blocks: int, block_size: int, watermark: float = 0.01,
                 enable_prefix_caching: bool = False) -> None:
        check_at_least("num_blocks", num_blocks, 1)
        check_at_least("block_size", block_size, 1)
        check_in_range("watermark", watermark, 0.0, 1.0, high_inclusive=False)
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.watermark_blocks = int(watermark * num_blocks)
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free_block_ids: deque[int] = deque(range(num_blocks))
        self.prefix_cache = PrefixCache() if enable_prefix_caching else None

    # ---------------------------------------------------------------------------------------
    # Statistics (given)

    @property
    def num_free_blocks(self) -> int:
        """Blocks a new token could get: free ones plus cached ones nobody uses (evictable)."""
        parked = self.prefix_cache.num_evictable if self.prefix_cache is not None else 0
        return len(self.free_block_ids) + parked

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - self.num_free_blocks

    @property
    def usage(self) -> float:
        """Share of the pool held by sequences, 0.0 to 1.0 (vLLM's ``kv_cache_usage``)."""
        return self.num_used_blocks / self.num_blocks

    def unused_slots(self, seqs: list[Sequence]) -> int:
        """Slots allocated to ``seqs`` but holding no token (the paged layout's only waste)."""
        return sum(len(s.block_table) * self.block_size - len(s) for s in seqs if s.block_table)

    # ---------------------------------------------------------------------------------------
    # Taking and giving back one block (given)

    def _take_free_block(self) -> int:
        """A block for new tokens, with reference count 1: a free one, else (prefix caching) the
        least recently used cached block nobody holds, whose hash is forgotten."""
        if self.free_block_ids:
            block_id = self.free_block_ids.popleft()
        elif self.prefix_cache is not None and (evicted := self.prefix_cache.evict()) is not None:
            block_id = evicted
        else:
            raise NoFreeBlocksError(f"all {self.num_blocks} KV blocks are in use")
        block = self.blocks[block_id]
        block.ref_count, block.block_hash, block.token_ids = 1, None, []
        return block_id

    def _release_block(self, block_id: int) -> None:
        """Drop one reference; a block nobody holds goes back to the pool (or is parked, if cached)."""
        block = self.blocks[block_id]
        if block.ref_count <= 0:
            raise RuntimeError(f"block {block_id} released more often than it was taken")
        block.ref_count -= 1
        if block.ref_count == 0 and (self.prefix_cache is None or not self.prefix_cache.park(block_id)):
            self.free_block_ids.append(block_id)

    # ---------------------------------------------------------------------------------------
    # Task 1: allocate, append, fork, free

    def can_allocate(self, seq: Sequence) -> bool:
        """Whether ``seq`` (waiting: no blocks yet) can get blocks for all its ``len(seq)`` tokens
        while ``watermark_blocks`` stay free. The watermark is waived when no block is in use
        (``num_free_blocks == num_blocks``; parked prefix-cache blocks count as free): then the
        sequence is admitted if its blocks fit in the whole pool (a lone sequence must always be
        admitted)."""
        # TODO(lab02 task 1): whether seq's blocks can be taken while the watermark stays free, a lone sequence on an unused pool always admitted (README task 1; vLLM paper §4.2).
        raise NotImplementedError("lab02 task 1: can_allocate is not written yet (see lab02_vllm/README.md, task 1)")

    def allocate(self, seq: Sequence) -> None:
        """Give a waiting ``seq`` the blocks for all its tokens and set ``seq.block_table``.

        First ``self._reuse_cached_prefix(seq)`` (given; it does nothing until task 6) may put
        cached blocks at the start of the table and returns how many; take new blocks for the rest
        with ``self._take_free_block()`` and call ``self._on_block_full(seq, i)`` for each *new*
        block ``i`` that the sequence fills completely. Set ``seq.num_computed_tokens`` (and
        ``seq.num_cached_tokens``) to the tokens the reused blocks already hold.

        Raises:
            ValueError: when ``seq`` already has blocks.
        """
        # TODO(lab02 task 1): give a waiting sequence blocks for all its tokens, reusing its cached prefix, and report every new block it fills (README task 1; the docstring's two hooks).
        raise NotImplementedError("lab02 task 1: allocate is not written yet (see lab02_vllm/README.md, task 1)")

    def can_append(self, seq: Sequence) -> bool:
        """Whether a running ``seq`` can get a slot for its newest token: it needs a new block
        when its table is full, or a copy when its last block is shared."""
        # TODO(lab02 task 1): whether a running sequence's newest token can get a slot: a full table needs a new block, a shared last block a copy (README task 1).
        raise NotImplementedError("lab02 task 1: can_append is not written yet (see lab02_vllm/README.md, task 1)")

    def append_slot(self, seq: Sequence) -> tuple[int, int] | None:
        """Make room for ``seq``'s newest token (``len(seq) - 1``), before the step that computes it.

        When the table is full, the last block has just been filled: call
        ``self._on_block_full(seq, last index)``, then append a new block. When the token goes into
        a last block that other sequences share (reference count > 1), copy-on-write: take a new
        block, release the shared one, put the new one in the table, and return
        ``(old_block_id, new_block_id)`` so that the model runner copies the old block's KV.

        Returns:
            The ``(source, destination)`` block pair to copy, or None when nothing must be copied.
        """
        # TODO(lab02 task 1): make room for the newest token: a new block when the table is full, else copy a shared last block before it is written (README task 1; vLLM paper §4.3, copy-on-write).
        raise NotImplementedError("lab02 task 1: append_slot is not written yet (see lab02_vllm/README.md, task 1)")

    def fork(self, parent: Sequence, child: Sequence) -> None:
        """Let ``child`` share all of ``parent``'s blocks (each reference count goes up by one); the
        child also takes the parent's ``num_computed_tokens`` (those tokens' KV is in the shared blocks)."""
        # TODO(lab02 task 1): let the child share every block of the parent, with the reference counts that sharing requires (README task 1; vLLM paper §4.3, parallel sampling).
        raise NotImplementedError("lab02 task 1: fork is not written yet (see lab02_vllm/README.md, task 1)")

    def free(self, seq: Sequence) -> None:
        """Release all of ``seq``'s blocks, last block first (so that, with prefix caching, a
        prefix's tail is evicted before its head), empty its table and set
        ``seq.num_computed_tokens`` to 0: its KV is gone, so a preempted sequence is recomputed from
        its first token when it is admitted again."""
        # TODO(lab02 task 1): return every block the sequence holds to the pool so that it can be scheduled again from scratch (README task 1; the docstring's order).
        raise NotImplementedError("lab02 task 1: free is not written yet (see lab02_vllm/README.md, task 1)")

    # ---------------------------------------------------------------------------------------
    # Task 4: growing a table chunk by chunk, as the token-budget scheduler hands out tokens

    def allocate_cached_prefix(self, seq: Sequence) -> int:
        """Admission's first half (given): put the blocks of ``seq``'s cached prefix in its empty
        table (task 6's hook; none without prefix caching) and count their tokens as computed,
        as vLLM's ``get_computed_blocks``. The scheduler then grows the table for the first chunk
        (``allocate_slots``), or gives the blocks back (``free``) when the chunk does not fit.

        Returns:
            The tokens found in the cache (``seq.num_computed_tokens``).

        Raises:
            ValueError: when ``seq`` already has blocks.
        """
        if seq.block_table:
            raise ValueError(f"sequence {seq.seq_id} already has blocks: free it first")
        cached = self._reuse_cached_prefix(seq) * self.block_size
        seq.num_computed_tokens = seq.num_cached_tokens = cached
        return cached

    def _num_blocks_to_grow(self, seq: Sequence, num_new_tokens: int) -> tuple[int, bool]:
        """Blocks ``seq`` lacks to hold its first ``num_computed_tokens + num_new_tokens`` tokens,
        and whether its first new token goes into a last block other sequences share (given)."""
        needed = -(-(seq.num_computed_tokens + num_new_tokens) // self.block_size) - len(seq.block_table)
        first = seq.num_computed_tokens // self.block_size  # the block the first new token goes to
        shared = first < len(seq.block_table) and self.blocks[seq.block_table[first]].ref_count > 1
        return max(needed, 0), shared

    def can_allocate_slots(self, seq: Sequence, num_new_tokens: int, new: bool = False) -> bool:
        """Whether ``seq``'s table can grow to hold its next ``num_new_tokens`` tokens: the blocks it
        lacks, plus one for a copy when the first new token goes into a shared last block.

        A running sequence (``new=False``) may take every free block. A sequence being admitted
        (``new=True``) must leave ``watermark_blocks`` free, so that the running ones can still
        grow, unless it is the only sequence holding blocks (its own cached prefix at most): a
        lone sequence is admitted whenever its blocks fit in the pool.
        """
        # TODO(lab02 task 4): whether a sequence's table can grow by one step's chunk, a shared last block counting one copy, a new sequence leaving the watermark free unless it is alone (README task 4; vLLM's KVCacheManager.allocate_slots).
        raise NotImplementedError("lab02 task 4: can_allocate_slots is not written yet (see lab02_vllm/README.md, task 4)")

    def allocate_slots(self, seq: Sequence, num_new_tokens: int) -> tuple[int, int] | None:
        """Grow ``seq``'s table to hold its first ``num_computed_tokens + num_new_tokens`` tokens,
        before the step that computes them (vLLM's ``allocate_slots``; the scheduler has checked
        ``can_allocate_slots``).

        When the first new token goes into a last block other sequences share (after ``fork``),
        copy-on-write first: take a block, release the shared one, put the new one in its place.
        Then append new blocks until the table is long enough. Report with
        ``self._on_block_full(seq, i)`` every block ``i`` that the new tokens fill up (its last
        slot is among them), so that the prefix cache (task 6) can find it.

        Returns:
            The ``(source, destination)`` pair to copy when copy-on-write happened, else None.
        """
        # TODO(lab02 task 4): grow a sequence's table for one step's chunk: a private copy of a shared block it writes into, new blocks to the end of the chunk, each block the chunk fills reported (README task 4; vLLM's KVCacheManager.allocate_slots).
        raise NotImplementedError("lab02 task 4: allocate_slots is not written yet (see lab02_vllm/README.md, task 4)")

    # ---------------------------------------------------------------------------------------
    # Task 6: the prefix cache's side of allocation

    def _reuse_cached_prefix(self, seq: Sequence) -> int:
        """Put the cached blocks of ``seq``'s longest cached prefix into its (empty) table.

        Only full blocks before the sequence's last token are looked up (the last token must be
        computed to get logits), in order, each by ``hash_block(previous hash, its tokens)``,
        stopping at the first miss or at a hit whose stored tokens differ (a hash collision). Each
        hit is unparked when nobody held it and gets one more reference.

        Returns:
            The number of blocks reused (0 without prefix caching).
        """
        if self.prefix_cache is None:
            return 0
        # TODO(lab02 task 6): put the blocks of seq's longest cached prefix into its table, never the block of its last token, and return how many (README task 6; vLLM docs 'Automatic Prefix Caching').
        raise NotImplementedError("lab02 task 6: _reuse_cached_prefix is not written yet (see lab02_vllm/README.md, task 6)")

    def _on_block_full(self, seq: Sequence, index: int) -> None:
        """Logical block ``index`` of ``seq`` is full: with prefix caching, name it by its hash
        (chained to the hash of block ``index - 1``) and record it in the cache.

        It may be called twice for one block: ``allocate`` reports a prompt's full last block, and
        ``append_slot`` reports that same block again when the next token needs a new one. A block
        that already has a hash is left as it is (the second call changes nothing)."""
        if self.prefix_cache is None:
            return
        # TODO(lab02 task 6): name a block that just filled by its chained hash and record it in the prefix cache, once (README task 6; the docstring).
        raise NotImplementedError("lab02 task 6: _on_block_full is not written yet (see lab02_vllm/README.md, task 6)")
