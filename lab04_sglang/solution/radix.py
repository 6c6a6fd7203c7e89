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
        # BEGIN SOLUTION task 4: cut a node's run in two, the first part taking its place in the tree with its lock and access time (README task 4; the docstring).
        # HINT task 4 level 1: the tree's invariants, checked by Hypothesis against a naive set of prefixes:
        #   children are keyed by the first token of their run; no two children share a first token; every
        #   cached key is a path from the root; total size = evictable + protected, where a node's tokens are
        #   protected exactly while its lock_ref > 0. Reading: README task 4, radix.py's module docstring, the
        #   SGLang paper §3 and figure 3, and SGLang's radix_cache.py (the names follow it).
        # HINT task 4 level 2: the new head node holds the first `length` tokens and values and takes
        #   the child's place in the parent's children (same first token); the child keeps the rest and becomes
        #   the head's only child, keyed by its new first token. The head inherits lock_ref and last_access:
        #   every request that locked the child uses the head's tokens too. Sizes do not change.
        # HINT task 4 level 3: head = a node with key[:length], value[:length], the child's parent; copy
        #   lock_ref and last_access; head.children = {key[length]: child}; the parent's entry for key[0]
        #   becomes head; the child's key and value drop their first length entries and its parent becomes head.
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
        # BEGIN SOLUTION task 4: the cached value of the longest cached prefix of key and the node where it ends exactly, every node on the path marked as just used (README task 4; the docstring).
        # HINT task 4 level 2: at each node, only the child keyed by the next token can continue.
        #   A run matched only in part is split (the returned node must end exactly at the match, so that
        #   locking it protects no more than the prefix), and the walk stops there. One tick of the clock per
        #   call, stamped on the root and every node passed. None when nothing matched (the node is then the
        #   root).
        # HINT task 4 level 3: node = root, values = [], stamp = a new tick; while key is not
        #   empty and its first token is a child of node: length = the common length of the child's run and key;
        #   split if shorter than the run; stamp it; keep its value; move to it and drop length tokens of key.
        #   Return the concatenated values (or None) and the node.
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

        The cached part keeps its old value; only the new remainder is stored (as one new leaf).
        As in :meth:`match_prefix`, a key that leaves a node's run in the middle splits it there, and
        every node on the key's path, the new leaf included, is marked as just used."""
        if len(value) != len(key):
            raise ValueError(f"value must have one row per token of key: {len(value)} rows for {len(key)} tokens")
        # BEGIN SOLUTION task 4: add key's uncached remainder as one new leaf, keep what was cached, and return how many tokens were cached already (README task 4; the docstring).
        # HINT task 4 level 2: the walk is match_prefix's (and also marks the path as used); the part
        #   already cached keeps its old value. The remainder, if any, is one new leaf holding value[matched:],
        #   stamped as just used; nobody locks it yet, so its tokens count as evictable.
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
        # BEGIN SOLUTION task 4: protect a node and all its ancestors from eviction for one more user, keeping the size counters right (README task 4).
        # HINT task 4 level 2: inc_lock_ref / dec_lock_ref: the root is never counted (its lock is permanent and
        #   it holds no tokens). Only the transitions 0 -> 1 and 1 -> 0 move a node's tokens between evictable
        #   and protected; other counts change nothing. dec_lock_ref must refuse to go below 0 (see its
        #   docstring for the exception).
        while node is not self.root:
            if node.lock_ref == 0:
                self._evictable -= len(node.key)
                self._protected += len(node.key)
            node.lock_ref += 1
            node = node.parent
        # END SOLUTION

    def dec_lock_ref(self, node: TreeNode) -> None:
        """Undo one ``inc_lock_ref(node)``.

        Raises:
            RuntimeError: a node on the path is not locked (more ``dec_lock_ref`` than
                ``inc_lock_ref`` calls): a bug in the caller, never silently ignored.
        """
        # BEGIN SOLUTION task 4: undo one inc_lock_ref, making nodes evictable again when their last user is gone; an unlocked node is an error (README task 4; the docstring).
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
        # BEGIN SOLUTION task 4: free at least num_tokens tokens, least recently used unlocked leaves first, a parent left childless next, never a locked node or the root (README task 4; the docstring).
        # HINT task 4 level 2: only leaves go (an inner node is a prefix that its children need) and
        #   whole runs go: freeing 1 token may free 2. Removing a leaf can turn its parent into a leaf that
        #   competes by its own last_access. TreeNode orders by last_access, so heapq works on nodes. Report
        #   each freed value to on_evict. Return what was freed (less than asked when nothing more is
        #   evictable).
        # HINT task 4 level 3: heapify every unlocked leaf but the root; while freed < num_tokens and the
        #   heap is not empty: pop the oldest, delete it from its parent's children, count its tokens (and take
        #   them off the evictable size), call on_evict; if the parent is not the root, has no children left and
        #   is unlocked, push it.
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
