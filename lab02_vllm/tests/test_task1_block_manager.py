"""Task 1: the block manager: block tables, appending, fork and copy-on-write, freeing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import block_manager, make_seq, run_block_manager_machine

pytestmark = pytest.mark.task(1)


def owners(bm, seqs):
    """block id -> how many of ``seqs``' tables hold it."""
    count = {}
    for s in seqs:
        for b in s.block_table:
            count[b] = count.get(b, 0) + 1
    return count


@pytest.mark.points(1.5)
@pytest.mark.parametrize("length", [1, 15, 16, 17, 48])
def test_allocate_takes_ceil_len_over_block_size_distinct_blocks(length):
    """A prompt of n tokens gets ceil(n / 16) distinct blocks; free gives every one back."""
    bm = block_manager.BlockManager(num_blocks=10, block_size=16)
    seq = make_seq(length)
    assert bm.can_allocate(seq)
    bm.allocate(seq)
    expected = -(-length // 16)
    assert len(seq.block_table) == expected, (
        f"allocate() must give ceil(len / block_size) = {expected} blocks, got {len(seq.block_table)}"
    )
    assert len(set(seq.block_table)) == expected, "a sequence's blocks must be distinct"
    assert all(0 <= b < 10 for b in seq.block_table)
    assert bm.num_free_blocks == 10 - expected, (
        f"allocate() must take its blocks from the free pool: {bm.num_free_blocks} free, expected {10 - expected}"
    )
    assert bm.num_used_blocks == expected, "num_used_blocks must count the allocated blocks"
    assert seq.num_computed_tokens == 0, "without prefix caching nothing is computed yet"
    assert bm.unused_slots([seq]) == expected * 16 - length
    bm.free(seq)
    assert seq.block_table == [], "free() must empty the sequence's block table"
    assert bm.num_free_blocks == 10, f"free() must give every block back: {bm.num_free_blocks} of 10 free"
    assert bm.usage == 0.0, "usage must be 0.0 once every block is free"
    assert all(b.ref_count == 0 for b in bm.blocks)


@pytest.mark.points(1.5)
def test_append_slot_adds_a_block_exactly_when_the_table_is_full():
    """Decoding token by token: a new block when token 17 (33, ...) arrives, never before."""
    bm = block_manager.BlockManager(num_blocks=8, block_size=16)
    seq = make_seq(5)
    bm.allocate(seq)
    for _ in range(40):
        seq.append_token(7)  # the sampled token, not computed yet: it needs a slot
        assert bm.can_append(seq)
        before = list(seq.block_table)
        assert bm.append_slot(seq) is None
        needed = -(-len(seq) // 16)
        assert len(seq.block_table) == needed, f"len {len(seq)} needs {needed} blocks"
        assert seq.block_table[:len(before)] == before, "existing blocks must stay where they are"
        assert bm.unused_slots([seq]) < 16
    assert len(set(seq.block_table)) == len(seq.block_table)


@pytest.mark.points(1.5)
def test_can_allocate_and_can_append_respect_the_pool_and_the_watermark():
    """can_allocate keeps watermark blocks free for running sequences; a lone sequence on an
    empty pool is always admitted; can_append is False only when a block is needed and none is free."""
    bm = block_manager.BlockManager(num_blocks=10, block_size=4, watermark=0.2)  # 2 blocks of watermark
    assert bm.can_allocate(make_seq(40)), "a lone sequence that fits the whole pool must be admitted"
    assert not bm.can_allocate(make_seq(41))
    first = make_seq(20)  # 5 blocks
    bm.allocate(first)
    assert bm.can_allocate(make_seq(12)), "5 free - 3 needed = 2 >= watermark 2"
    assert not bm.can_allocate(make_seq(13)), "5 free - 4 needed = 1 < watermark 2"
    second = make_seq(20)
    bm2 = block_manager.BlockManager(num_blocks=5, block_size=4, watermark=0.0)
    bm2.allocate(second)
    assert bm2.num_free_blocks == 0
    second.append_token(3)
    assert not bm2.can_append(second), "a full table and no free block"
    third = make_seq(19)
    bm3 = block_manager.BlockManager(num_blocks=5, block_size=4, watermark=0.0)
    bm3.allocate(third)
    third.append_token(3)
    assert bm3.can_append(third), "token 20 still fits in the last block"
    with pytest.raises(ValueError):
        bm3.allocate(third)
    full = block_manager.BlockManager(num_blocks=2, block_size=4, watermark=0.0)
    parent, child = make_seq(6), make_seq(6)
    full.allocate(parent)
    full.fork(parent, child)
    child.append_token(3)
    assert not full.can_append(child), "token 7 fits in the last block, but it is shared: copying it needs a free block"


@pytest.mark.points(1.5)
def test_fork_shares_blocks_and_copy_on_write_copies_the_shared_last_block():
    """fork raises every reference count; appending into a shared last block copies it first."""
    bm = block_manager.BlockManager(num_blocks=8, block_size=4)
    parent, child = make_seq(6), make_seq(6)  # two blocks, the last one half full
    bm.allocate(parent)
    bm.fork(parent, child)
    assert child.block_table == parent.block_table
    assert [bm.blocks[b].ref_count for b in parent.block_table] == [2, 2]
    assert bm.num_used_blocks == 2
    child.append_token(9)
    copy = bm.append_slot(child)
    assert copy is not None, "the child writes into a block its parent also holds"
    src, dst = copy
    assert src == parent.block_table[1], "copy-on-write must copy from the shared last block"
    assert dst == child.block_table[1], "copy-on-write must write into the child's new last block"
    assert src != dst, "the copy must go to a different block"
    assert child.block_table[0] == parent.block_table[0], "the full first block stays shared"
    assert bm.blocks[src].ref_count == 1, "after the copy the source block is held by the parent only"
    assert bm.blocks[dst].ref_count == 1, "the new copy is held by the child only"
    assert bm.blocks[parent.block_table[0]].ref_count == 2
    parent.append_token(9)
    assert bm.append_slot(parent) is None, "the parent's last block is no longer shared"
    bm.free(child)
    assert bm.blocks[parent.block_table[0]].ref_count == 1, (
        "freeing the child must drop the shared block's ref_count to 1"
    )
    assert bm.num_used_blocks == 2, "freeing the child must keep the parent's 2 blocks in use"
    bm.free(parent)
    assert bm.num_free_blocks == 8


@settings(max_examples=60, deadline=None)
@given(block_size=st.sampled_from([1, 2, 4, 16]),
       ops=st.lists(st.tuples(st.sampled_from(["new", "append", "fork", "free"]),
                              st.integers(0, 10**6), st.integers(1, 40)), min_size=1, max_size=60))
@pytest.mark.points(1)
def test_random_operations_keep_the_pool_consistent(block_size, ops):
    """Hypothesis: after any allocate / append / fork / free sequence, each block's reference
    count equals the number of tables holding it, free blocks are held by none, every table has
    room for its tokens with less than one block to spare, and everything returns to the pool."""
    num_blocks = 24
    bm = block_manager.BlockManager(num_blocks=num_blocks, block_size=block_size, watermark=0.0)
    live = []
    for op, pick, length in ops:
        if op == "new":
            seq = make_seq(length)
            if bm.can_allocate(seq):
                bm.allocate(seq)
                live.append(seq)
        elif live:
            seq = live[pick % len(live)]
            if op == "append":
                seq.append_token(5)
                if bm.can_append(seq):
                    bm.append_slot(seq)
                else:
                    seq.token_ids.pop()
            elif op == "fork":
                child = make_seq(list(seq.token_ids))
                bm.fork(seq, child)
                live.append(child)
            else:
                bm.free(seq)
                live.remove(seq)
        held = owners(bm, live)
        for block in bm.blocks:
            assert block.ref_count == held.get(block.block_id, 0), f"block {block.block_id}"
        assert bm.num_used_blocks == len(held)
        assert bm.num_free_blocks == num_blocks - len(held)
        for s in live:
            assert len(s.block_table) * block_size >= len(s)
            assert len(s.block_table) * block_size - len(s) < block_size
    for s in live:
        bm.free(s)
    assert bm.num_free_blocks == num_blocks, (
        f"after freeing everything every block must be free: {bm.num_free_blocks} of {num_blocks}"
    )
    assert all(b.ref_count == 0 for b in bm.blocks), "a free block must have ref_count 0"


def recording_block_manager(**kwargs):
    """Your block manager, noting each ``_on_block_full(seq, index)`` call in ``.reported`` as
    ``(seq_id, index, tokens in that block)`` (the hook the docstrings ask for: prefix caching,
    task 6, names a block by its tokens there, so a block reported before it is full would be
    cached under a partial hash and never found again). A class made here, not at import time:
    collection must not import your code."""

    class RecordingBlockManager(block_manager.BlockManager):
        def _on_block_full(self, seq, index):
            self.reported.append((seq.seq_id, index, len(seq.block_tokens(index, self.block_size))))
            super()._on_block_full(seq, index)

    bm = RecordingBlockManager(**kwargs)
    bm.reported = []
    return bm


@pytest.mark.points(0.5)
@pytest.mark.parametrize("block_size", [1, 4, 5])
def test_only_full_blocks_are_reported_full(block_size):
    """allocate reports every block its prompt fills completely, and no other; append_slot
    reports the last block when the next token needs a new one (a block reported twice is harmless):
    each report names a full block."""
    bm = recording_block_manager(num_blocks=40, block_size=block_size, watermark=0.0)
    for length in (1, 6, 8, 13):
        seq = make_seq(list(range(length)))
        bm.reported.clear()
        bm.allocate(seq)
        assert sorted(index for _, index, _ in bm.reported) == list(range(length // block_size)), (
            f"a {length}-token prompt fills blocks 0..{length // block_size - 1} of {block_size} tokens")
        assert all(size == block_size for _, _, size in bm.reported), "a partly filled block was reported full"
        bm.reported.clear()
        for token in range(2 * block_size + 1):
            seq.append_token(token)
            bm.append_slot(seq)
        assert all(size == block_size for _, _, size in bm.reported), "a partly filled block was reported full"
        filled_before_last = (len(seq) - 1) // block_size  # blocks full before the newest token's block
        newly_filled = {index for _, index, _ in bm.reported} - set(range(length // block_size))
        assert newly_filled == set(range(length // block_size, filled_before_last)), "each block filled by decoding"
        bm.free(seq)


@pytest.mark.points(0.5)
def test_state_machine_every_token_reads_its_own_kv():
    """Hypothesis state machine (helpers.run_block_manager_machine): admit, decode, fork, free in
    any order; each token's slot, found through the block table, holds that token's own KV
    (copy-on-write pairs applied as the model runner applies them)."""
    run_block_manager_machine(prefix_caching=False)


@pytest.mark.points(0.5)
def test_fork_and_free_keep_num_computed_tokens_and_free_gives_the_tail_back_first():
    """fork: the child takes the parent's ``num_computed_tokens`` (their KV is in the shared
    blocks, so the child must not be prefilled again); free: ``num_computed_tokens`` goes back to
    0 (a preempted sequence is recomputed from its first token), and the blocks go back last
    first, as the docstring says and vLLM 0.32 does (``single_type_kv_cache_manager`` frees
    ``reversed(blocks)``, so that a prefix's tail is reused before its head): the next block
    handed out is the freed table's last one."""
    bm = block_manager.BlockManager(num_blocks=3, block_size=4, watermark=0.0)
    parent, child = make_seq(10), make_seq(10)  # three blocks: the whole pool
    bm.allocate(parent)
    parent.num_computed_tokens = 10  # after its prefill step
    bm.fork(parent, child)
    assert child.num_computed_tokens == 10, "the child shares the parent's computed KV"
    table = list(parent.block_table)
    bm.free(child)
    assert child.num_computed_tokens == 0, "a forked child starts with nothing computed"
    assert child.block_table == [], "freeing the child must empty its block table"
    bm.free(parent)
    assert parent.num_computed_tokens == 0, "freed: its KV is gone, it must be recomputed from token 0"
    again = make_seq(1)
    bm.allocate(again)
    assert again.block_table == [table[-1]], "free gives the last block back first (the tail is reused before the head)"


class ParkEveryBlock:
    """Stands in for task 6's prefix cache with the three calls the given code makes
    (``park``, ``evict``, ``num_evictable``): every block nobody holds stays cached (parked), so
    task 1 is checked on its own. A parked block is free for a new token (``num_free_blocks``)."""

    def __init__(self) -> None:
        self.parked: list[int] = []

    @property
    def num_evictable(self) -> int:
        return len(self.parked)

    def park(self, block_id: int) -> bool:
        self.parked.append(block_id)
        return True

    def evict(self) -> int | None:
        return self.parked.pop(0) if self.parked else None


@pytest.mark.points(0.5)
def test_can_allocate_counts_parked_cached_blocks_as_free():
    """can_allocate counts ``num_free_blocks`` (the free list plus cached blocks nobody holds, which
    vLLM's block pool also hands out by evicting them), not the free list alone: with every freed
    block parked in a prefix cache and the free list empty, a sequence that fits is admitted."""
    bm = block_manager.BlockManager(num_blocks=4, block_size=4, watermark=0.0)
    holder, gone = make_seq(4), make_seq(12)
    bm.allocate(holder)
    bm.allocate(gone)
    bm.prefix_cache = ParkEveryBlock()
    bm.free(gone)
    assert bm.num_free_blocks == 3, "parked cached blocks count as free blocks"
    assert not bm.free_block_ids, "parked cached blocks are not on the free list"
    assert bm.can_allocate(make_seq(8)), "3 parked blocks are free: 2 are needed"
    assert not bm.can_allocate(make_seq(13)), "4 blocks needed, 3 free"
    bm.free(holder)
    assert bm.can_allocate(make_seq(16)), "nothing in use: a sequence the size of the pool is admitted"
    kept = block_manager.BlockManager(num_blocks=4, block_size=4, watermark=0.5)
    whole = make_seq(16)
    kept.allocate(whole)
    kept.prefix_cache = ParkEveryBlock()
    kept.free(whole)
    assert kept.num_free_blocks == kept.num_blocks, "every block is parked: the whole pool counts as free"
    assert kept.can_allocate(make_seq(16)), (
        "every block parked is a pool with nothing in use (num_free_blocks == num_blocks, not the free "
        "list alone): the watermark is waived and a sequence the size of the pool is admitted"
    )
