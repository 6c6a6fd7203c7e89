"""Task 4: the radix tree (against a naive store) and generation that reuses cached KV."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import fixture_model, prefix_cache, radix

pytestmark = pytest.mark.task(4)
__all__ = ["fixture_model"]
TOKENS = st.lists(st.integers(0, 3), min_size=1, max_size=8)


def value_of(key) -> torch.Tensor:
    """A value that depends on each token's whole prefix, as KV does."""
    return torch.tensor([hash(tuple(key[: i + 1])) % 100_003 for i in range(len(key))])


class NaiveStore:
    """Every prefix of every inserted sequence, in a set: the oracle."""

    def __init__(self) -> None:
        self.prefixes: set[tuple[int, ...]] = set()

    def insert(self, key) -> int:
        had = max((i for i in range(len(key) + 1) if tuple(key[:i]) in self.prefixes or i == 0), default=0)
        self.prefixes |= {tuple(key[: i + 1]) for i in range(len(key))}
        return had

    def match(self, key) -> int:
        return max(i for i in range(len(key) + 1) if i == 0 or tuple(key[:i]) in self.prefixes)


@pytest.mark.points(3)
@settings(max_examples=60, deadline=None)
@given(operations=st.lists(st.tuples(st.sampled_from(["insert", "match"]), TOKENS), max_size=25))
def test_tree_matches_a_naive_store(operations):
    """Hypothesis: inserts and matches agree with a set of prefixes: lengths, values, sizes."""
    tree, naive = radix.RadixCache(), NaiveStore()
    assert tree.insert([0], value_of([0])) == naive.insert([0])
    for operation, key in operations:
        if operation == "insert":
            assert tree.insert(key, value_of(key)) == naive.insert(key)
        else:
            value, node = tree.match_prefix(key)
            length = naive.match(key)
            assert (0 if value is None else len(value)) == length
            if length:
                assert torch.equal(value, value_of(key)[:length])
            else:
                assert node is tree.root
        assert tree.total_size() == len(naive.prefixes) == tree.evictable_size()


@pytest.mark.points(2)
def test_match_splits_a_node_inside_its_run():
    """A match that ends inside a run splits the node there; the returned node ends at the match."""
    tree = radix.RadixCache()
    tree.insert([1, 2, 3, 4, 5], value_of([1, 2, 3, 4, 5]))
    assert len(tree.root.children) == 1, "one inserted key is one child of the root"
    assert len(tree.root.children[1].key) == 5, "the whole key is one run of 5 tokens until a match splits it"
    value, node = tree.match_prefix([1, 2, 3, 9])
    assert node.key == (1, 2, 3) and len(node.children) == 1 and tuple(node.children[4].key) == (4, 5)
    assert torch.equal(value, value_of([1, 2, 3]))
    assert tree.insert([1, 2, 7], value_of([1, 2, 7])) == 2
    assert tree.total_size() == 6
    drawing = tree.show()
    assert drawing.splitlines()[0].startswith("root (6 tokens") and "(1 tokens)" in drawing
    tree = radix.RadixCache()
    tree.insert([1, 2, 3], value_of([1, 2, 3]))
    assert tree.insert([1, 2, 3, 4, 5], torch.arange(5) + 1000) == 3  # a different value for the cached part
    value, node = tree.match_prefix([1, 2, 3, 4, 5])
    assert torch.equal(value, torch.cat([value_of([1, 2, 3]), torch.tensor([1003, 1004])])), (
        "the cached part keeps its old value; only the new remainder's rows are stored")
    assert node.key == (4, 5) and node.parent.key == (1, 2, 3) and not node.children, (
        "the remainder is one new leaf (one run), under the node of the cached part")
    assert tree.evict(0) == 0 and tree.total_size() == 5, "evict(0) frees nothing"


@pytest.mark.points(3)
def test_lru_eviction_of_unlocked_leaves():
    """Eviction frees least recently used leaves first, then parents left childless, never locked nodes."""
    tree, freed = radix.RadixCache(), []
    for key in ([1, 2, 3], [1, 2, 4, 4], [5, 6]):
        tree.insert(key, value_of(key))
    tree.match_prefix([1, 2, 3])  # [1, 2, 3] is now the most recent; [1, 2, 4, 4] and [5, 6] are older
    _, locked = tree.match_prefix([5, 6])
    tree.inc_lock_ref(locked)
    assert tree.protected_size() == 2, "the locked leaf (5, 6) is protected: 2 tokens"
    assert tree.evictable_size() == 5, "the 5 unlocked tokens are evictable"
    assert tree.evict(1, on_evict=freed.append) == 2  # the leaf (4, 4): whole runs go
    assert [v.tolist() for v in freed] == [value_of([1, 2, 4, 4])[2:].tolist()]
    assert tree.match_prefix([5, 6])[0] is not None
    assert tree.evict(100) == 3  # (3) then its childless parent (1, 2); never the locked (5, 6)
    assert tree.total_size() == 2 == tree.protected_size(), "only the locked (5, 6) may be left, and it is protected"
    assert tree.evictable_size() == 0, "nothing unlocked is left to evict"
    tree.dec_lock_ref(locked)
    assert tree.evictable_size() == 2, "dec_lock_ref makes (5, 6) evictable again"
    assert tree.evict(1) == 2, "evict() frees whole runs: (5, 6) is 2 tokens"
    assert tree.total_size() == 0, "the tree is empty after evicting everything"


@pytest.mark.points(1)
def test_locks_survive_splits_and_protect_inner_nodes():
    """A split keeps the lock of the node it cuts; a locked inner node stays when its children are evicted."""
    tree = radix.RadixCache()
    tree.insert([1, 2, 3, 4, 5], value_of([1, 2, 3, 4, 5]))
    _, whole = tree.match_prefix([1, 2, 3, 4, 5])
    tree.inc_lock_ref(whole)
    tree.match_prefix([1, 2, 9])  # splits the locked run after (1, 2)
    assert tree.evict(100) == 0, "a split must keep the lock: nothing may be evicted"
    assert tree.total_size() == 5, "a locked run stays whole after a split"
    assert tree.protected_size() == 5, "both halves of a split locked run stay protected"
    tree.dec_lock_ref(whole)
    _, inner = tree.match_prefix([1, 2])
    tree.inc_lock_ref(inner)
    tree.insert([1, 2, 7, 7], value_of([1, 2, 7, 7]))
    assert tree.evict(100) == 5  # (3, 4, 5) and (7, 7); never the locked (1, 2)
    assert tree.total_size() == 2 and torch.equal(tree.match_prefix([1, 2])[0], value_of([1, 2]))


@pytest.mark.points(1)
def test_reinsert_marks_used_and_locks_cover_the_path():
    """insert marks its whole path as used, the new leaf included (re-inserting a key makes it recent);
    inc_lock_ref protects the node and every ancestor, once however many locks it holds; dec_lock_ref on a node
    that is not locked is a RuntimeError (the docstrings)."""
    tree = radix.RadixCache()
    for key in ([1], [2], [1]):
        tree.insert(key, value_of(key))
    assert tree.evict(1) == 1, "evict(1) frees the least recently used leaf (1 token)"
    assert tree.match_prefix([2])[0] is None, "[2] is the least recently used: it goes first"
    assert tree.match_prefix([1])[0] is not None, "re-inserting [1] made it recent: it stays"
    tree = radix.RadixCache()
    for key in ([1], [2]):
        tree.insert(key, value_of(key))
    tree.match_prefix([1])
    tree.match_prefix([2])
    tree.insert([3], value_of([3]))  # a new leaf: the most recently used of the three
    assert tree.evict(1) == 1, "evict(1) frees one 1-token leaf"
    assert tree.match_prefix([3])[0] is not None, "a newly inserted leaf is marked as just used: it stays"
    assert tree.match_prefix([1])[0] is None, "[1] is the least recently used (before [2] and the new [3]): it goes"
    tree = radix.RadixCache()
    tree.insert([1, 2, 3], value_of([1, 2, 3]))
    _, shared = tree.match_prefix([1, 2, 3])
    tree.inc_lock_ref(shared)
    tree.inc_lock_ref(shared)  # two requests use the same prefix
    assert tree.protected_size() == 3, "a node locked twice counts its 3 tokens as protected once"
    assert tree.evictable_size() == 0, "a node locked twice has no evictable tokens"
    tree.dec_lock_ref(shared)
    assert tree.protected_size() == 3, "the node stays protected while one lock is left"
    tree.dec_lock_ref(shared)
    assert tree.evictable_size() == 3, "the node's 3 tokens are evictable once both locks are released"
    assert tree.protected_size() == 0, "nothing is protected once both locks are released"
    tree = radix.RadixCache()
    for key in ([1, 2, 3, 4], [1, 2, 5]):
        tree.insert(key, value_of(key))
    _, node = tree.match_prefix([1, 2, 3, 4])
    tree.inc_lock_ref(node)
    assert tree.protected_size() == 4 and tree.evictable_size() == 1  # (1, 2) and (3, 4); only (5) is free
    assert tree.evict(100) == 1 and torch.equal(tree.match_prefix([1, 2, 3, 4])[0], value_of([1, 2, 3, 4]))
    tree.dec_lock_ref(node)
    assert tree.protected_size() == 0, "dec_lock_ref must unlock the whole path"
    assert tree.evictable_size() == 4, "every token is evictable once unlocked"
    with pytest.raises(RuntimeError):
        tree.dec_lock_ref(node)


@pytest.mark.points(1)
@settings(max_examples=40, deadline=None)
@given(keys=st.lists(TOKENS, min_size=1, max_size=8), lock=st.integers(0, 7), amount=st.integers(1, 20))
def test_eviction_keeps_locked_prefixes_and_sizes(keys, lock, amount):
    """Hypothesis: after any eviction, locked paths are whole, what is left is prefix-closed, and sizes add up."""
    tree = radix.RadixCache()
    for key in keys:
        tree.insert(key, value_of(key))
    locked_key = keys[lock % len(keys)]
    _, node = tree.match_prefix(locked_key)
    tree.inc_lock_ref(node)
    before = tree.total_size()
    freed = tree.evict(amount)
    assert tree.total_size() == before - freed
    assert freed >= amount or tree.evictable_size() == 0
    assert tree.total_size() == tree.evictable_size() + tree.protected_size()
    value, _ = tree.match_prefix(locked_key)
    assert torch.equal(value, value_of(locked_key))


PROMPTS = ["<|user|>\nWhat is the capital of Japan?</s>\n<|assistant|>\n",
           "<|user|>\nWhat is the capital of Japan?</s>\n<|assistant|>\nThe capital of Japan is Tokyo.</s>\n"
           "<|user|>\nGive me a user record as JSON.</s>\n<|assistant|>\n"]


@pytest.mark.points(3)
def test_cached_generation_equals_uncached(model, tokenizer):
    """Generation reusing the radix tree's KV equals transformers' greedy generate, and prefills only the new suffix."""
    generator = prefix_cache.PrefixCachingGenerator(model)
    seen, locked = [], []

    def record_length(module, args, kwargs):  # the ids however they are passed: by keyword or by position
        seen.append((kwargs["input_ids"] if kwargs.get("input_ids") is not None else args[0]).shape[1])
        locked.append(generator.radix.protected_size())

    hook = model.register_forward_pre_hook(record_length, with_kwargs=True)
    try:
        for prompt in PROMPTS + PROMPTS[:1]:
            ids = tokenizer(prompt).input_ids
            seen.clear()
            locked.clear()
            out = generator.generate(ids, 20)
            inputs = torch.tensor([ids])
            expected = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
                                      max_new_tokens=20, pad_token_id=tokenizer.pad_token_id)[0, len(ids):].tolist()
            assert out.token_ids == expected
            assert out.cached_tokens + out.prefilled_tokens == len(ids)
            assert seen[0] == out.prefilled_tokens  # the first forward saw only the uncached suffix
            assert locked[0] == out.cached_tokens, "while the model runs, the matched prefix (and no more) is locked"
    finally:
        hook.remove()
    assert out.prefilled_tokens == 1, "the same prompt again: all but its last token come from the cache"
    baseline = prefix_cache.PrefixCachingGenerator(model, use_cache=False)
    again = [baseline.generate(tokenizer(PROMPTS[0]).input_ids, 4) for _ in range(2)]
    assert again[1].cached_tokens == 0, "use_cache=False computes every prompt in full"
    assert baseline.radix.total_size() == 0, "use_cache=False stores nothing in the tree (the no-cache baseline)"


@pytest.mark.points(1)
def test_kv_round_trip_and_logprobs(model, tokenizer):
    """cache_to_value / value_to_cache keep every layer's keys and values; logprobs equal log_softmax of HF logits."""
    ids = tokenizer("The cat sat on the mat.").input_ids
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=True)
    value = prefix_cache.cache_to_value(out.past_key_values, 2, 5)
    rebuilt = prefix_cache.value_to_cache(value, model)
    for original, copy in zip(out.past_key_values.layers, rebuilt.layers, strict=True):
        assert torch.equal(copy.keys, original.keys[:, :, 2:5]) and torch.equal(copy.values, original.values[:, :, 2:5])
    generator = prefix_cache.PrefixCachingGenerator(model)
    generator.generate(ids[:4], 2)
    got = generator.logprobs(ids[:3], ids[3:])
    expected = torch.log_softmax(out.logits[0, 2:-1], dim=-1).gather(1, torch.tensor(ids[3:])[:, None])[:, 0]
    assert torch.allclose(torch.tensor(got), expected, atol=1e-4)


@pytest.mark.points(1)
def test_capacity_evicts_and_locks_are_released(model, tokenizer):
    """With max_cached_tokens the tree never stays above it, and no node stays locked after a request; only the
    excess is evicted (least recently used first), so the last request, when it fits, stays cached whole; a
    shared tree over the cap is brought within it, the prefix the request reused included once it is unlocked."""
    generator = prefix_cache.PrefixCachingGenerator(model, max_cached_tokens=30)
    for prompt in PROMPTS:
        generator.generate(tokenizer(prompt).input_ids, 5)
        assert generator.radix.total_size() <= 30, (
            f"the radix cache must stay within its capacity of 30 tokens, holds {generator.radix.total_size()}"
        )
        assert generator.radix.protected_size() == 0, "every lock must be released once generation ends"
    generator = prefix_cache.PrefixCachingGenerator(model, max_cached_tokens=30)
    older, last = (tokenizer(f"<|user|>\n{q}</s>\n<|assistant|>\n").input_ids
                   for q in ("What is the capital of Japan?", "Give me a user record as JSON."))
    shared = next(i for i, (a, b) in enumerate(zip(older, last, strict=False)) if a != b)
    generator.generate(older, 5)
    assert generator.radix.total_size() + len(last) - shared > 30 >= len(last) + 5  # room must be made; last fits
    generator.generate(last, 5)
    assert generator.radix.total_size() <= 30
    assert generator.generate(last, 1).cached_tokens == len(last) - 1  # the older request made room, not this one
    # a tree shared with an uncapped generator (the radix argument) holds more than the cap: the prefix this
    # request reused is unlocked first, then evicted like any other leaf, so the cap holds after generate
    uncapped = prefix_cache.PrefixCachingGenerator(model)
    uncapped.generate(older, 2)
    tight = prefix_cache.PrefixCachingGenerator(model, radix=uncapped.radix, max_cached_tokens=4)
    assert tight.generate(older, 1).cached_tokens == len(older) - 1 > 4
    assert tight.radix.total_size() <= 4 and tight.radix.protected_size() == 0, (
        f"after generate the shared tree must be within max_cached_tokens=4, holds {tight.radix.total_size()}")
