"""Task 6: automatic prefix caching: hash-chained full blocks, reuse, LRU eviction."""

import pytest

from .helpers import (
    block_manager,
    engine,
    hf_greedy,
    make_seq,
    prefix_cache,
    run_block_manager_machine,
    sampling_params,
)

pytestmark = pytest.mark.task(6)


@pytest.mark.points(1)
def test_a_block_hash_depends_on_its_tokens_and_on_its_parent():
    """Same tokens after the same parent: same hash; another parent or other tokens: another."""
    h = prefix_cache.hash_block
    first = h(None, [1, 2, 3, 4])
    assert first == h(None, (1, 2, 3, 4)) and isinstance(first, int)
    assert h(first, [5, 6, 7, 8]) == h(h(None, [1, 2, 3, 4]), [5, 6, 7, 8])
    assert h(first, [5, 6, 7, 8]) != h(h(None, [9, 2, 3, 4]), [5, 6, 7, 8]), "the parent must count"
    assert h(first, [5, 6, 7, 8]) != h(first, [5, 6, 8, 7]) and h(None, [1]) != h(None, [1, 1])
    assert h(first, [5, 6, 7, 8]) != h(None, [5, 6, 7, 8])


@pytest.mark.points(1)
def test_the_cache_maps_hashes_to_blocks_and_evicts_least_recently_used_first():
    """insert / lookup; park makes a cached block evictable (uncached ones are not kept); unpark
    takes it back; evict pops the least recently parked and forgets its hash."""
    cache = prefix_cache.PrefixCache()
    for block_id, block_hash in [(3, 30), (5, 50), (7, 70)]:
        cache.insert(block_hash, block_id)
    cache.insert(30, 9)  # another block computed the same hash: the first one stays
    assert cache.lookup(30) == 3, "lookup() must find the block cached under hash 30"
    assert cache.lookup(50) == 5, "lookup() must find the block cached under hash 50"
    assert cache.lookup(11) is None, "lookup() of an unknown hash returns None"
    assert cache.park(5), "park() must accept cached block 5"
    assert cache.park(3), "park() must accept cached block 3"
    assert cache.park(7), "park() must accept cached block 7"
    assert not cache.park(9), "park() must refuse a block that is not cached"
    assert cache.num_evictable == 3
    cache.unpark(3)
    assert cache.num_evictable == 2
    assert cache.evict() == 5, "evict() takes the least recently parked block first (5)"
    assert cache.lookup(50) is None, "an evicted block leaves the cache"
    assert cache.park(3)  # parked again: now the most recently used
    assert cache.evict() == 7, "evict() next takes block 7 (least recently used)"
    assert cache.evict() == 3, "evict() then takes block 3"
    assert cache.evict() is None, "evict() on an empty cache returns None"
    assert len(cache) == 0


@pytest.mark.points(1)
def test_the_block_manager_reuses_the_longest_cached_prefix():
    """A second sequence sharing 2 full blocks reuses them (computed tokens = 32); the block of
    the last token is never taken from the cache; freed blocks stay reusable until evicted."""
    bm = block_manager.BlockManager(num_blocks=8, block_size=16, watermark=0.0, enable_prefix_caching=True)
    shared = list(range(100, 135))  # 35 tokens: 2 full blocks + 3
    a = make_seq(shared)
    bm.allocate(a)
    assert a.num_computed_tokens == 0
    a_blocks = list(a.block_table)
    b = make_seq([*shared[:32], 7, 8, 9, 10])
    bm.allocate(b)
    assert b.block_table[:2] == a.block_table[:2], "the 2 full blocks of the shared prefix must be reused"
    assert b.block_table[2] != a.block_table[2], "the diverging third block must be new"
    assert b.num_computed_tokens == 32, f"the 32 cached tokens count as computed, got {b.num_computed_tokens}"
    assert b.num_cached_tokens == 32, "num_cached_tokens must count the 32 reused tokens"
    assert [bm.blocks[x].ref_count for x in b.block_table] == [2, 2, 1]
    exact = make_seq(shared[:32])  # its last token is in block 1: only block 0 may be reused
    bm.allocate(exact)
    assert exact.block_table[0] == a.block_table[0], "the full first block is reused"
    assert exact.block_table[1] != a.block_table[1], "the partly matching block must not be reused"
    assert exact.num_computed_tokens == 16
    other_start = make_seq([1, *shared[1:]])
    bm.allocate(other_start)
    assert other_start.num_computed_tokens == 0, "block 1 is the same, but its parent differs"
    for s in (a, b, exact, other_start):
        bm.free(s)
    assert bm.num_free_blocks == 8, "cached blocks nobody holds count as free"
    again = make_seq(shared)
    bm.allocate(again)
    assert again.num_computed_tokens == 32, (
        f"the same prompt again hits the cache: 32 tokens computed, got {again.num_computed_tokens}"
    )
    assert again.block_table[:2] == a_blocks[:2], "the same prompt again reuses the cached blocks"
    assert bm.num_free_blocks == 8 - 3, "reused cached blocks are in use again: no longer evictable"
    bm.free(again)
    filler = make_seq(list(range(300, 300 + 8 * 16)))  # takes the whole pool: every cached block is evicted
    bm.allocate(filler)
    bm.free(filler)
    fresh = make_seq(shared)
    bm.allocate(fresh)
    assert fresh.num_computed_tokens == 0


@pytest.mark.points(1)
def test_engine_outputs_are_identical_with_and_without_prefix_caching(model_dir, device, model, tokenizer):
    """A shared 70-token system prompt before 12 different questions: the same greedy tokens as
    without caching and as transformers, with most prefill tokens saved and a hit rate reported."""
    system = tokenizer('{"name": "user109", "age": 25, "city": "Lima"}\n' * 4).input_ids[:70]
    tails = ["The cat", "Once", '{"name": "', "Ana lives in", "A language", "The"] * 2
    prompts = [system + tokenizer(t, add_special_tokens=False).input_ids + [i % 7 + 40] for i, t in enumerate(tails)]
    params = sampling_params.SamplingParams(temperature=0.0, max_tokens=10)
    outs = {}
    for caching in (False, True):
        llm = engine.LLM(model_dir, block_size=16, num_kv_blocks=128, enable_prefix_caching=caching,
                         max_num_seqs=4, device=device, dtype="float32")
        outs[caching] = [o.outputs[0].token_ids for o in llm.generate(prompts, params)]
        stats = llm.engine.stats
    assert outs[True] == outs[False]
    assert outs[True][:3] == [hf_greedy(model, p, 10) for p in prompts[:3]]
    assert stats.prefill_tokens_saved >= 64 * (len(prompts) - 4), "all but the first batch reuse 4 blocks"
    assert stats.prefix_cache_queries > 0, "the engine must count prefix-cache queries"
    assert stats.prefix_cache_hit_rate > 0.5, (
        f"shared prompts must hit the prefix cache more than half the time, got {stats.prefix_cache_hit_rate}"
    )
    assert stats.prefill_tokens_computed + stats.prefill_tokens_saved == stats.prompt_tokens


@pytest.mark.points(0.5)
def test_blocks_filled_while_decoding_are_cached_under_their_full_tokens():
    """A 6-token prompt (block_size 4) decodes 3 tokens: its second block, partial at
    allocation, fills while decoding; a new prompt starting with those 8 tokens then reuses both
    blocks (vLLM caches decoded blocks too), and one sharing only the 6 prompt tokens reuses one."""
    bm = block_manager.BlockManager(num_blocks=16, block_size=4, watermark=0.0, enable_prefix_caching=True)
    a = make_seq(list(range(10, 16)))
    bm.allocate(a)
    for token in (16, 17, 18):  # token 18 needs a third block: the second one is full now
        a.append_token(token)
        bm.append_slot(a)
    longer = make_seq([*range(10, 18), 50, 51])
    bm.allocate(longer)
    assert longer.num_computed_tokens == 8, (
        f"a block filled while decoding is cached: 8 tokens computed, got {longer.num_computed_tokens}"
    )
    assert longer.block_table[:2] == a.block_table[:2], "blocks filled while decoding must be reused"
    partial = make_seq([*range(10, 16), 60, 61, 62])
    bm.allocate(partial)
    assert partial.num_computed_tokens == 4, (
        f"only the full blocks count: 4 tokens computed, got {partial.num_computed_tokens}"
    )
    assert partial.block_table[0] == a.block_table[0], "the full first block must be reused"
    assert partial.block_table[1] != a.block_table[1]


@pytest.mark.points(0.5)
def test_state_machine_reused_blocks_hold_the_same_prefix():
    """Hypothesis state machine with prefix caching on (helpers.run_block_manager_machine):
    prompts from shared stems hit the cache; only the tokens after num_computed_tokens are
    written, so a reused block must already hold exactly that prefix's KV, whatever was freed,
    parked or evicted before."""
    run_block_manager_machine(prefix_caching=True, max_examples=100)
