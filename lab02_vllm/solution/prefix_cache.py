"""Task 6: automatic prefix caching, vLLM's way: full KV blocks found again by a hash.

A *full* block holds exactly ``block_size`` tokens, and its keys and values depend on those
tokens and on every token before them. So a block is named by a hash of its own tokens and of
the hash of the block before it (a hash chain): two sequences with the same first ``k * block_size``
tokens produce the same ``k`` hashes, and the second one can reuse the first one's blocks instead
of computing them again. A block whose last user has finished is not returned to the free list
at once: it is *parked* (still findable by its hash) and only reused for other tokens when the
pool runs out of free blocks, least recently used first.

Readings: vLLM's docs, "Automatic Prefix Caching" (design page); nano-vllm's
``engine/block_manager.py`` (``compute_hash``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


def hash_block(parent_hash: int | None, token_ids: Sequence[int]) -> int:
    """The hash that names one full block.

    Args:
        parent_hash: the hash of the block before it in the sequence, ``None`` for the first block.
        token_ids: the block's tokens (``block_size`` of them).

    Returns:
        An int that depends on ``token_ids`` *and* ``parent_hash`` (so equal tokens after a different
        prefix give a different hash). Python's ``hash`` of a tuple of ints is deterministic.
    """
    # BEGIN SOLUTION task 6: one int that names a full block by its tokens and its parent's hash, deterministically (README task 6; vLLM docs 'Automatic Prefix Caching').
    # HINT task 6 level 2: the same tokens after a different prefix must give a different hash (that
    #   is what the chain is for), and the same inputs must give the same hash in any run: Python's hash of a
    #   tuple of ints (and None) is stable; a list is not hashable.
    return hash((parent_hash, tuple(token_ids)))
    # END SOLUTION


class PrefixCache:
    """Which block holds which full-block hash, and which cached blocks are free to evict.

    Attributes:
        block_of_hash: hash -> block id, for every full block whose KV is cached.
        hash_of_block: block id -> hash (the inverse), to forget a block's hash when it is evicted.
        evictable: ids of cached blocks no sequence uses (reference count 0), least recently
            used first (an ``OrderedDict`` used as an ordered set).
    """

    def __init__(self) -> None:
        self.block_of_hash: dict[int, int] = {}
        self.hash_of_block: dict[int, int] = {}
        self.evictable: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self.block_of_hash)

    @property
    def num_evictable(self) -> int:
        return len(self.evictable)

    def lookup(self, block_hash: int) -> int | None:
        """The id of the block cached under ``block_hash``, or None."""
        # BEGIN SOLUTION task 6: the block cached under a hash, or None (README task 6).
        # HINT task 6 level 3: PrefixCache: lookup reads block_of_hash; insert writes both dictionaries unless
        #   the hash (or the block) is already there; park adds a cached block at the most-recent end of
        #   evictable; unpark removes it; evict pops the oldest and forgets its hash in both dictionaries.
        return self.block_of_hash.get(block_hash)
        # END SOLUTION

    def insert(self, block_hash: int, block_id: int) -> None:
        """Remember that ``block_id`` now holds the full block named ``block_hash``.

        When another block already holds that hash (two sequences computed the same block at
        the same time), keep the first: the new block simply stays uncached. A block that is
        already cached under a hash keeps that hash.
        """
        # BEGIN SOLUTION task 6: remember which block holds a full block's hash, keeping the first holder (README task 6; the docstring).
        # HINT task 6 level 2: the two dictionaries are inverses of each other; keep them so (evict
        #   needs the block -> hash direction).
        if block_hash in self.block_of_hash or block_id in self.hash_of_block:
            return
        self.block_of_hash[block_hash] = block_id
        self.hash_of_block[block_id] = block_hash
        # END SOLUTION

    def park(self, block_id: int) -> bool:
        """The last sequence using a block let go of it. A cached block becomes evictable, as the
        most recently used; returns True. An uncached block is not kept: returns False (the caller
        puts it back on the free list)."""
        # BEGIN SOLUTION task 6: make a cached block nobody holds evictable, as the most recently used; refuse an uncached one (README task 6).
        # HINT task 6 level 2: evictable is an OrderedDict used as an ordered set, oldest first; a block
        #   parked again must move to the most-recent end. The return value tells _release_block whether to put
        #   the block on the free list.
        if block_id not in self.hash_of_block:
            return False
        self.evictable[block_id] = None
        self.evictable.move_to_end(block_id)
        return True
        # END SOLUTION

    def unpark(self, block_id: int) -> None:
        """A parked block is used again (a prefix hit): it is no longer evictable."""
        # BEGIN SOLUTION task 6: a parked block is held again and must not be evicted (README task 6).
        # HINT task 6 level 2: a block that is not parked is not an error here.
        self.evictable.pop(block_id, None)
        # END SOLUTION

    def evict(self) -> int | None:
        """Take the least recently used evictable block for new tokens: forget its hash and return
        its id, or None when nothing is evictable."""
        # BEGIN SOLUTION task 6: give up the least recently used evictable block for new tokens, forgetting its hash, or None (README task 6).
        # HINT task 6 level 2: once evicted the block will hold other tokens, so no hash may lead to it
        #   any more.
        if not self.evictable:
            return None
        block_id, _ = self.evictable.popitem(last=False)
        block_hash = self.hash_of_block.pop(block_id)
        del self.block_of_hash[block_hash]
        return block_id
        # END SOLUTION
