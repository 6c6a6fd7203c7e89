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
        # BEGIN SOLUTION task 1: whether seq's blocks can be taken while the watermark stays free, a lone sequence on an unused pool always admitted (README task 1; vLLM paper §4.2).
        # HINT task 1 level 1: the block manager keeps one invariant after every operation: each block's
        #   ref_count equals the number of block tables holding it, a block with ref_count 0 is free (or parked,
        #   task 6) and held by nobody, and every table has room for its sequence's tokens with less than one
        #   block to spare. Reading: README task 1, the module docstring's picture, docs/02 §3 ('The KV cache
        #   manager'), and the vLLM paper §4.1-4.3. Use the given _take_free_block and _release_block for every
        #   block you take or give back: they keep the counts and the free list right.
        # HINT task 1 level 2: a sequence of n tokens needs ceil(n / block_size) blocks (Sequence
        #   has a helper). The watermark is a number of blocks that must still be free after admitting, so that
        #   running sequences can grow; when nothing is in use at all, only the pool's size matters (see the
        #   docstring for which count says 'nothing in use'). Count free blocks with num_free_blocks, not the
        #   free list alone.
        # HINT task 1 level 3: needed = the sequence's block count; if every block is free, answer
        #   whether needed fits in num_blocks; otherwise answer whether the free blocks minus needed are still
        #   at least watermark_blocks.
        needed = seq.num_blocks_needed(self.block_size)
        if self.num_free_blocks == self.num_blocks:
            return needed <= self.num_blocks
        return self.num_free_blocks - needed >= self.watermark_blocks
        # END SOLUTION

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
        # BEGIN SOLUTION task 1: give a waiting sequence blocks for all its tokens, reusing its cached prefix, and report every new block it fills (README task 1; the docstring's two hooks).
        # HINT task 1 level 2: a table that is not empty is a ValueError (free it first).
        #   _reuse_cached_prefix returns how many blocks it already put at the start of the table; only the
        #   blocks after them are new. A new block is 'full' when all block_size of its slots hold tokens of the
        #   prompt: the last block is full only when the length is a multiple of block_size. The reused blocks'
        #   tokens are already computed.
        # HINT task 1 level 3: reused = the hook's count; for each logical index from reused up to the
        #   block count: append a taken block, and report it with _on_block_full when (index + 1) x block_size
        #   <= len(seq); finally set num_computed_tokens and num_cached_tokens to reused x block_size.
        if seq.block_table:
            raise ValueError(f"sequence {seq.seq_id} already has blocks: free it first")
        reused = self._reuse_cached_prefix(seq)
        for index in range(reused, seq.num_blocks_needed(self.block_size)):
            seq.block_table.append(self._take_free_block())
            if (index + 1) * self.block_size <= len(seq):
                self._on_block_full(seq, index)
        seq.num_computed_tokens = seq.num_cached_tokens = reused * self.block_size
        # END SOLUTION

    def can_append(self, seq: Sequence) -> bool:
        """Whether a running ``seq`` can get a slot for its newest token: it needs a new block
        when its table is full, or a copy when its last block is shared."""
        # BEGIN SOLUTION task 1: whether a running sequence's newest token can get a slot: a full table needs a new block, a shared last block a copy (README task 1).
        # HINT task 1 level 2: the newest token is already in seq (len(seq) counts it); the table
        #   has len(block_table) x block_size slots. Two cases need one free block: no slot left, or the token
        #   would be written into a last block another sequence also holds (after fork). Otherwise no block is
        #   needed and the answer is True even on a full pool.
        needs_block = len(seq) > len(seq.block_table) * self.block_size
        shared_last = bool(seq.block_table) and self.blocks[seq.block_table[-1]].ref_count > 1
        return self.num_free_blocks >= int(needs_block or shared_last)
        # END SOLUTION

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
        # BEGIN SOLUTION task 1: make room for the newest token: a new block when the table is full, else copy a shared last block before it is written (README task 1; vLLM paper §4.3, copy-on-write).
        # HINT task 1 level 2: when the table is full, the block that just filled is the current
        #   last one: report it (_on_block_full) before appending the new block; nothing is copied then.
        #   Copy-on-write applies only to a shared last block that still has room: the sequence gets a private
        #   block, drops its reference to the shared one (which other holders keep), and returns the (old, new)
        #   pair so the model runner copies the KV.
        # HINT task 1 level 3: if len(seq) exceeds the table's slots: report the last index, append
        #   a taken block, return None. Else if the last block's ref_count > 1: take a block, release the old
        #   last one, put the new id in its place, return (old, new). Else return None.
        if len(seq) > len(seq.block_table) * self.block_size:
            self._on_block_full(seq, len(seq.block_table) - 1)
            seq.block_table.append(self._take_free_block())
            return None
        last = seq.block_table[-1]
        if self.blocks[last].ref_count > 1:
            copy = self._take_free_block()
            self._release_block(last)
            seq.block_table[-1] = copy
            return last, copy
        return None
        # END SOLUTION

    def fork(self, parent: Sequence, child: Sequence) -> None:
        """Let ``child`` share all of ``parent``'s blocks (each reference count goes up by one); the
        child also takes the parent's ``num_computed_tokens`` (those tokens' KV is in the shared blocks)."""
        # BEGIN SOLUTION task 1: let the child share every block of the parent, with the reference counts that sharing requires (README task 1; vLLM paper §4.3, parallel sampling).
        # HINT task 1 level 2: the child gets its own list (a copy, not the parent's list object:
        #   appending to one must not change the other) of the same block ids; each of those blocks is now held
        #   by one more table. See the docstring for what else the child inherits.
        child.block_table = list(parent.block_table)
        for block_id in child.block_table:
            self.blocks[block_id].ref_count += 1
        child.num_computed_tokens = parent.num_computed_tokens
        # END SOLUTION

    def free(self, seq: Sequence) -> None:
        """Release all of ``seq``'s blocks, last block first (so that, with prefix caching, a
        prefix's tail is evicted before its head), empty its table and set
        ``seq.num_computed_tokens`` to 0: its KV is gone, so a preempted sequence is recomputed from
        its first token when it is admitted again."""
        # BEGIN SOLUTION task 1: return every block the sequence holds to the pool so that it can be scheduled again from scratch (README task 1; the docstring's order).
        # HINT task 1 level 2: a block shared with another sequence (fork, prefix cache) must survive:
        #   give back one reference per table entry, never set a count yourself. The order matters once prefix
        #   caching parks blocks (least recently parked is evicted first). Afterwards the sequence holds nothing
        #   and has nothing computed.
        # HINT task 1 level 3: release each block id of the table, last first; then an empty table and
        #   num_computed_tokens = 0.
        for block_id in reversed(seq.block_table):
            self._release_block(block_id)
        seq.block_table = []
        seq.num_computed_tokens = 0
        # END SOLUTION

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
        # BEGIN SOLUTION task 4: whether a sequence's table can grow by one step's chunk, a shared last block counting one copy, a new sequence leaving the watermark free unless it is alone (README task 4; vLLM's KVCacheManager.allocate_slots).
        # HINT task 4 level 2: _num_blocks_to_grow (given) says how many blocks are missing and whether a
        #   copy-on-write is due; a copy takes one block too. Count free blocks with num_free_blocks (parked
        #   prefix-cache blocks count as free). For a new sequence, 'alone' means every used block is in its
        #   own table (num_used_blocks against its table's length).
        # HINT task 4 level 3: needed = missing + (1 if shared); if not new, answer needed <= free; if new and
        #   num_used_blocks == len(block_table), answer needed <= free; else answer free - needed >=
        #   watermark_blocks.
        missing, shared = self._num_blocks_to_grow(seq, num_new_tokens)
        needed = missing + int(shared)
        if not new or self.num_used_blocks == len(seq.block_table):
            return needed <= self.num_free_blocks
        return needed <= self.num_free_blocks - self.watermark_blocks
        # END SOLUTION

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
        # BEGIN SOLUTION task 4: grow a sequence's table for one step's chunk: a private copy of a shared block it writes into, new blocks to the end of the chunk, each block the chunk fills reported (README task 4; vLLM's KVCacheManager.allocate_slots).
        # HINT task 4 level 2: task 1's append_slot is the one-token case of this method; here the chunk
        #   runs from num_computed_tokens to num_computed_tokens + num_new_tokens - 1. Only the block the first
        #   new token goes to can be shared and already in the table (blocks after it are new). The blocks the
        #   chunk fills are those whose last slot, (i + 1) x block_size - 1, lies in the chunk; report them
        #   after the table holds them.
        # HINT task 4 level 3: missing, shared = _num_blocks_to_grow; if shared: swap in a taken block for the
        #   one at index num_computed // block_size (release the old) and keep the pair; append missing taken
        #   blocks; for i from num_computed // block_size up to (num_computed + n) // block_size - 1:
        #   _on_block_full(seq, i); return the pair or None.
        missing, shared = self._num_blocks_to_grow(seq, num_new_tokens)
        copy = None
        if shared:
            index = seq.num_computed_tokens // self.block_size
            old, seq.block_table[index] = seq.block_table[index], self._take_free_block()
            self._release_block(old)
            copy = (old, seq.block_table[index])
        for _ in range(missing):
            seq.block_table.append(self._take_free_block())
        end = seq.num_computed_tokens + num_new_tokens
        for index in range(seq.num_computed_tokens // self.block_size, end // self.block_size):
            self._on_block_full(seq, index)
        return copy
        # END SOLUTION

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
        # BEGIN SOLUTION task 6: put the blocks of seq's longest cached prefix into its table, never the block of its last token, and return how many (README task 6; vLLM docs 'Automatic Prefix Caching').
        # HINT task 6 level 1: a full block is named by a hash chained to the previous block's hash, so a hit on
        #   block i means blocks 0..i all match. Reading: README task 6, docs/02 'Automatic prefix caching',
        #   vLLM's design page 'Automatic Prefix Caching', and prefix_cache.py's module docstring. Caching must
        #   never change outputs: a hash collision is not a hit (compare the stored tokens), and the last
        #   token's logits must always be computed.
        # HINT task 6 level 2: only blocks that lie entirely before the last token may be
        #   reused, so with n tokens look at the first (n - 1) // block_size blocks. Walk them in order,
        #   chaining the parent hash; stop at the first miss or mismatch (a later block cannot match if an
        #   earlier one did not). A hit nobody holds is parked: take it out of the evictable set before holding
        #   it. Sequence.block_tokens gives one block's tokens.
        # HINT task 6 level 3: parent = None; for each candidate index: tokens, hash =
        #   hash_block(parent, tokens), look it up; stop on None or when the block's stored token_ids differ;
        #   unpark it if its ref_count is 0; increment its ref_count; append it to the table; parent = hash.
        #   Return the table's length.
        parent: int | None = None
        for index in range((len(seq) - 1) // self.block_size):
            tokens = seq.block_tokens(index, self.block_size)
            block_hash = hash_block(parent, tokens)
            block_id = self.prefix_cache.lookup(block_hash)
            if block_id is None or self.blocks[block_id].token_ids != tokens:
                break
            block = self.blocks[block_id]
            if block.ref_count == 0:
                self.prefix_cache.unpark(block_id)
            block.ref_count += 1
            seq.block_table.append(block_id)
            parent = block_hash
        return len(seq.block_table)
        # END SOLUTION

    def _on_block_full(self, seq: Sequence, index: int) -> None:
        """Logical block ``index`` of ``seq`` is full: with prefix caching, name it by its hash
        (chained to the hash of block ``index - 1``) and record it in the cache.

        It may be called twice for one block: ``allocate`` reports a prompt's full last block, and
        ``append_slot`` reports that same block again when the next token needs a new one. A block
        that already has a hash is left as it is (the second call changes nothing)."""
        if self.prefix_cache is None:
            return
        # BEGIN SOLUTION task 6: name a block that just filled by its chained hash and record it in the prefix cache, once (README task 6; the docstring).
        # HINT task 6 level 2: the parent hash is the block_hash of the sequence's previous
        #   block (block 0 has none). A block that already has a hash (reused from the cache, or reported
        #   before) keeps it. Store the tokens on the block too: _reuse_cached_prefix compares them on a hit.
        # HINT task 6 level 3: block = the table's block at index; return if it has a hash;
        #   parent = the previous block's hash or None; set the block's hash and token_ids; insert (hash, id)
        #   into the prefix cache.
        block = self.blocks[seq.block_table[index]]
        if block.block_hash is not None:
            return
        parent = self.blocks[seq.block_table[index - 1]].block_hash if index > 0 else None
        tokens = seq.block_tokens(index, self.block_size)
        block.block_hash, block.token_ids = hash_block(parent, tokens), tokens
        self.prefix_cache.insert(block.block_hash, block.block_id)
        # END SOLUTION
