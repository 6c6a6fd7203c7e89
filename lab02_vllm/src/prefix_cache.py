# Student skeleton for lab02_vllm: fill in each TODO, then run `course test lab02_vllm`.
# (Generated from the reference solution by `course stubs`.)
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
    # TODO(lab02 task 6): one int that names a full block by its tokens and its parent's hash, deterministically (README task 6; vLLM docs 'Automatic Prefix Caching').
    raise NotImplementedError("lab02 task 6: hash_block is not written yet (see lab02_vllm/README.md, task 6)")


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
        # TODO(lab02 task 6): the block cached under a hash, or None (README task 6).
        raise NotImplementedError("lab02 task 6: lookup is not written yet (see lab02_vllm/README.md, task 6)")

    def insert(self, block_hash: int, block_id: int) -> None:
        """Remember that ``block_id`` now holds the full block named ``block_hash``.

        When another block already holds that hash (two sequences computed the same block at
        the same time), keep the first: the new block simply stays uncached. A block that is
        already cached under a hash keeps that hash.
        """
        # TODO(lab02 task 6): remember which block holds a full block's hash, keeping the first holder (README task 6; the docstring).
        raise NotImplementedError("lab02 task 6: insert is not written yet (see lab02_vllm/README.md, task 6)")

    def park(self, block_id: int) -> bool:
        """The last sequence using a block let go of it. A cached block becomes evictable, as the
        most recently used; returns True. An uncached block is not kept: returns False (the caller
        puts it back on the free list)."""
        # TODO(lab02 task 6): make a cached block nobody holds evictable, as the most recently used; refuse an uncached one (README task 6).
        raise NotImplementedError("lab02 task 6: park is not written yet (see lab02_vllm/README.md, task 6)")

    def unpark(self, block_id: int) -> None:
        """A parked block is used again (a prefix hit): it is no longer evictable."""
        # TODO(lab02 task 6): a parked block is held again and must not be evicted (README task 6).
        raise NotImplementedError("lab02 task 6: unpark is not written yet (see lab02_vllm/README.md, task 6)")

    def evict(self) -> int | None:
        """Take the least recently used evictable block for new tokens: forget its hash and return
        its id, or None when nothing is evictable."""
        # TODO(lab02 task 6): give up the least recently used evictable block for new tokens, forgetting its hash, or None (README task 6).
        raise NotImplementedError("lab02 task 6: evict is not written yet (see lab02_vllm/README.md, task 6)")
