# Student skeleton for lab04_sglang: fill in each TODO, then run `course test lab04_sglang`.
# (Generated from the reference solution by `course stubs`.)
"""Task 4, part 1: RadixAttention's tree — a radix tree over token ids whose nodes hold KV.

Requests that share a prefix (the same system prompt, the same few-shot examples, the earlier
turns of a chat) would compute the same keys and values again. SGLang keeps every finished
request's KV in a radix tree keyed by token ids: a new request walks the tree, takes the KV of
its longest cached prefix, and computes only the rest. Each edge holds a *run* of tokens (not
one token per node), so a long shared prompt is one node; a match that ends inside a run splits
the node there.

Memory is finite, so unused KV is evicted: leaves first (an inner node is a prefix that longer
cached sequences still need), least recently used first, and never a node that a running
request has locked (``inc_lock_ref``) because its KV is being read right now.

The ``value`` a node holds is any tensor whose first dimension runs over its tokens: KV tensors
``(tokens, ...)`` here in task 4, block or slot ids in a paged engine (SGLang stores indices into
its KV pool). Names follow SGLang's ``python/sglang/srt/mem_cache/radix_cache.py``.

Readings: the SGLang paper (arXiv 2312.07104), section 3 and figure 3; SGLang's radix_cache.py.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

import torch


class TreeNode:
    """One run of tokens: ``key`` (token ids), ``value`` (``(len(key), ...)``), children by first token."""

    def __init__(self, key: tuple[int, ...] = (), value: torch.Tensor | None = None,
                 parent: TreeNode | None = None) -> None:
        self.key, self.value, self.parent = key, value, parent
        self.children: dict[int, TreeNode] = {}
        self.lock_ref = 0  # running requests that use this node's KV: never evicted while > 0
        self.last_access = 0  # a logical clock: the larger, the more recently used

    def __lt__(self, other: TreeNode) -> bool:  # heapq orders leaves by last access
        return self.last_access < other.last_access


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class RadixCache:
    """A radix tree of token runs with KV values, LRU eviction and lock counts.

    Sizes are counted in tokens: ``total_size() == evictable_size() + protected_size()``.
    """

    def __init__(self) -> None:
        self.root = TreeNode()
        self.root.lock_ref = 1  # the root is never evicted
        self._clock = 0
        self._evictable = 0  # tokens in nodes with lock_ref == 0
        self._protected = 0  # tokens in locked nodes

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _split(self, child: TreeNode, length: int) -> TreeNode:
        """Cut ``child``'s run after ``length`` tokens; return the new node holding the first part.

        The new node takes the child's place under its parent and inherits its lock count
        (every request that locked the child also uses its first part)."""
        # TODO(lab04 task 4): cut a node's run in two, the first part taking its place in the tree with its lock and access time (README task 4; the docstring).
        raise NotImplementedError("lab04 task 4: _split is not written yet (see lab04_sglang/README.md, task 4)")

    def match_prefix(self, key: Sequence[int]) -> tuple[torch.Tensor | None, TreeNode]:
        """The cached value of the longest cached prefix of ``key``, and the node where it ends.

        A match that ends inside a node's run splits that node, so the returned node always
        ends exactly at the match (lock it to protect the whole prefix). Every node on the path
        is marked as just used.

        Returns:
            ``(value, node)``: ``value`` is the concatenation ``(matched tokens, ...)`` of the
            path's values, None when nothing matched (then ``node`` is the root).
        """
        # TODO(lab04 task 4): the cached value of the longest cached prefix of key and the node where it ends exactly, every node on the path marked as just used (README task 4; the docstring).
        raise NotImplementedError("lab04 task 4: match_prefix is not written yet (see lab04_sglang/README.md, task 4)")

    def insert(self, key: Sequence[int], value: torch.Tensor) -> int:
        """Add ``key`` with ``value`` (``(len(key), ...)``); return how many of its tokens were cached already.

        The cached part keeps its old value; only the new remainder is stored (as one new leaf).
        As in :meth:`match_prefix`, a key that leaves a node's run in the middle splits it there, and
        every node on the key's path, the new leaf included, is marked as just used."""
        if len(value) != len(key):
            raise ValueError(f"value must have one row per token of key: {len(value)} rows for {len(key)} tokens")
        # TODO(lab04 task 4): add key's uncached remainder as one new leaf, keep what was cached, and return how many tokens were cached already (README task 4; the docstring).
        raise NotImplementedError("lab04 task 4: insert is not written yet (see lab04_sglang/README.md, task 4)")

    def inc_lock_ref(self, node: TreeNode) -> None:
        """Protect ``node`` and every node above it from eviction (one more request uses them)."""
        # TODO(lab04 task 4): protect a node and all its ancestors from eviction for one more user, keeping the size counters right (README task 4).
        raise NotImplementedError("lab04 task 4: inc_lock_ref is not written yet (see lab04_sglang/README.md, task 4)")

    def dec_lock_ref(self, node: TreeNode) -> None:
        """Undo one ``inc_lock_ref(node)``.

        Raises:
            RuntimeError: a node on the path is not locked (more ``dec_lock_ref`` than
                ``inc_lock_ref`` calls): a bug in the caller, never silently ignored.
        """
        # TODO(lab04 task 4): undo one inc_lock_ref, making nodes evictable again when their last user is gone; an unlocked node is an error (README task 4; the docstring).
        raise NotImplementedError("lab04 task 4: dec_lock_ref is not written yet (see lab04_sglang/README.md, task 4)")

    def evict(self, num_tokens: int, on_evict: Callable[[torch.Tensor], None] | None = None) -> int:
        """Free at least ``num_tokens`` tokens (or all that can be freed); return how many were.

        Only unlocked leaves go, least recently used first; a parent left without children
        becomes a leaf and may go next. ``on_evict(value)`` is told each freed value (a paged
        engine returns its blocks to the pool there)."""
        # TODO(lab04 task 4): free at least num_tokens tokens, least recently used unlocked leaves first, a parent left childless next, never a locked node or the root (README task 4; the docstring).
        raise NotImplementedError("lab04 task 4: evict is not written yet (see lab04_sglang/README.md, task 4)")

    def _nodes(self) -> list[TreeNode]:
        out, todo = [], [self.root]
        while todo:
            node = todo.pop()
            out.append(node)
            todo.extend(node.children.values())
        return out

    def evictable_size(self) -> int:
        """Tokens whose KV may be evicted now."""
        return self._evictable

    def protected_size(self) -> int:
        """Tokens whose KV is locked by running requests."""
        return self._protected

    def total_size(self) -> int:
        """Every cached token (the sum over all nodes of their run's length)."""
        return sum(len(n.key) for n in self._nodes())

    def reset(self) -> None:
        """Forget everything (SGLang's ``/flush_cache``)."""
        self.__init__()

    def show(self, decode: Callable[[list[int]], str] | None = None, width: int = 40) -> str:
        """Draw the tree, one node per line: its run (decoded to text when ``decode`` is given),
        its length in tokens, and its lock count when it is locked."""

        def label(node: TreeNode) -> str:
            text = decode(list(node.key)) if decode else " ".join(map(str, node.key))
            text = text.replace("\n", "\\n")
            text = text if len(text) <= width else text[: width - 1] + "…"
            lock = f", locked ×{node.lock_ref}" if node.lock_ref else ""
            return f"{text!r} ({len(node.key)} tokens{lock})"

        lines = [f"root ({self.total_size()} tokens cached)"]

        def draw(node: TreeNode, indent: str) -> None:
            children = sorted(node.children.values(), key=lambda n: n.key)
            for i, child in enumerate(children):
                last = i == len(children) - 1
                lines.append(indent + ("└── " if last else "├── ") + label(child))
                draw(child, indent + ("    " if last else "│   "))

        draw(self.root, "")
        return "\n".join(lines)

    def pretty_print(self) -> None:
        """SGLang's name: print ``show()``."""
        print(self.show())
