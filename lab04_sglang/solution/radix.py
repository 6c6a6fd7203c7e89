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
        # BEGIN SOLUTION task 4: a new node with key[:length] / value[:length] and the child's parent, lock_ref and last_access; the child keeps the rest and hangs under the new node; the parent now points at the new node.
        head = TreeNode(child.key[:length], child.value[:length], child.parent)
        head.lock_ref, head.last_access = child.lock_ref, child.last_access
        head.children = {child.key[length]: child}
        child.parent.children[child.key[0]] = head
        child.key, child.value, child.parent = child.key[length:], child.value[length:], head
        return head
        # END SOLUTION

    def match_prefix(self, key: Sequence[int]) -> tuple[torch.Tensor | None, TreeNode]:
        """The cached value of the longest cached prefix of ``key``, and the node where it ends.

        A match that ends inside a node's run splits that node, so the returned node always
        ends exactly at the match (lock it to protect the whole prefix). Every node on the path
        is marked as just used.

        Returns:
            ``(value, node)``: ``value`` is the concatenation ``(matched tokens, ...)`` of the
            path's values, None when nothing matched (then ``node`` is the root).
        """
        # BEGIN SOLUTION task 4: walk down by the first token of what is left; a full match of a child's run moves into it; a partial one splits it and stops; collect values and stamp last_access on the way.
        node, values, key = self.root, [], tuple(key)
        now = self._tick()
        node.last_access = now
        while key and key[0] in node.children:
            child = node.children[key[0]]
            length = _common_length(child.key, key)
            if length < len(child.key):
                child = self._split(child, length)
            child.last_access = now
            values.append(child.value)
            node, key = child, key[length:]
        return (torch.cat(values) if values else None), node
        # END SOLUTION

    def insert(self, key: Sequence[int], value: torch.Tensor) -> int:
        """Add ``key`` with ``value`` (``(len(key), ...)``); return how many of its tokens were cached already.

        The cached part keeps its old value; only the new remainder is stored (as one new leaf)."""
        if len(value) != len(key):
            raise ValueError(f"value must have one row per token of key: {len(value)} rows for {len(key)} tokens")
        # BEGIN SOLUTION task 4: walk as in match_prefix (splitting where the key leaves a run); hang the remainder as one new leaf with value[matched:]; it is evictable, so count its tokens.
        node, key, matched = self.root, tuple(key), 0
        now = self._tick()
        node.last_access = now
        while key and key[0] in node.children:
            child = node.children[key[0]]
            length = _common_length(child.key, key)
            if length < len(child.key):
                child = self._split(child, length)
            child.last_access = now
            node, key, matched = child, key[length:], matched + length
        if key:
            leaf = TreeNode(key, value[matched:], node)
            leaf.last_access = now
            node.children[key[0]] = leaf
            self._evictable += len(key)
        return matched
        # END SOLUTION

    def inc_lock_ref(self, node: TreeNode) -> None:
        """Protect ``node`` and every node above it from eviction (one more request uses them)."""
        # BEGIN SOLUTION task 4: from node up to (not including) the root: a node going from 0 to 1 moves its tokens from evictable to protected.
        while node is not self.root:
            if node.lock_ref == 0:
                self._evictable -= len(node.key)
                self._protected += len(node.key)
            node.lock_ref += 1
            node = node.parent
        # END SOLUTION

    def dec_lock_ref(self, node: TreeNode) -> None:
        """Undo one ``inc_lock_ref(node)``."""
        # BEGIN SOLUTION task 4: the reverse walk: a node going from 1 to 0 becomes evictable again; a count below 0 is a bug: raise.
        while node is not self.root:
            if node.lock_ref <= 0:
                raise RuntimeError("dec_lock_ref on a node that is not locked")
            node.lock_ref -= 1
            if node.lock_ref == 0:
                self._protected -= len(node.key)
                self._evictable += len(node.key)
            node = node.parent
        # END SOLUTION

    def evict(self, num_tokens: int, on_evict: Callable[[torch.Tensor], None] | None = None) -> int:
        """Free at least ``num_tokens`` tokens (or all that can be freed); return how many were.

        Only unlocked leaves go, least recently used first; a parent left without children
        becomes a leaf and may go next. ``on_evict(value)`` is told each freed value (a paged
        engine returns its blocks to the pool there)."""
        # BEGIN SOLUTION task 4: a heap of unlocked leaves by last_access; pop, unlink from the parent, count; push the parent when it became an unlocked leaf (never the root).
        leaves = [n for n in self._nodes() if not n.children and n.lock_ref == 0 and n is not self.root]
        heapq.heapify(leaves)
        freed = 0
        while freed < num_tokens and leaves:
            leaf = heapq.heappop(leaves)
            del leaf.parent.children[leaf.key[0]]
            freed += len(leaf.key)
            self._evictable -= len(leaf.key)
            if on_evict is not None:
                on_evict(leaf.value)
            parent = leaf.parent
            if parent is not self.root and not parent.children and parent.lock_ref == 0:
                heapq.heappush(leaves, parent)
        return freed
        # END SOLUTION

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
