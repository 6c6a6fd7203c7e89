"""Task 2: paged attention equals dense causal attention (torch's scaled_dot_product_attention)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import paged_attention

pytestmark = pytest.mark.task(2)


def scatter_into_pages(keys_per_seq, values_per_seq, block_size, num_blocks, generator):
    """Put each sequence's (len, kv_heads, dim) keys/values into a paged cache at random,
    non-contiguous blocks (written here directly, not with the student's write_kv_cache)."""
    kv_heads, dim = keys_per_seq[0].shape[1:]
    k_cache = torch.randn(num_blocks, block_size, kv_heads, dim, generator=generator)  # garbage elsewhere
    v_cache = torch.randn(num_blocks, block_size, kv_heads, dim, generator=generator)
    free = torch.randperm(num_blocks, generator=generator).tolist()
    tables = []
    for k, v in zip(keys_per_seq, values_per_seq, strict=True):
        n_blocks = -(-k.shape[0] // block_size)
        table = [free.pop() for _ in range(n_blocks)]
        for i in range(k.shape[0]):
            k_cache[table[i // block_size], i % block_size] = k[i]
            v_cache[table[i // block_size], i % block_size] = v[i]
        tables.append(table)
    width = max(len(t) for t in tables)
    block_tables = torch.tensor([t + [0] * (width - len(t)) for t in tables], dtype=torch.int32)
    return k_cache, v_cache, block_tables


def dense_causal(q, k, v, scale):
    """Oracle: (len, heads, dim) queries over (len, kv_heads, dim) keys, causal, GQA by repeat."""
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1),
                                         is_causal=True, scale=scale)
    return out.transpose(0, 1)


def metadata(is_prefill, query_lens, context_lens, block_tables, slots=None):
    starts = [0]
    # leak-check: allowed, the dense reference's own offsets, not the paged kernel
    for q in query_lens:
        starts.append(starts[-1] + q)
    return paged_attention.AttentionMetadata(
        is_prefill=is_prefill, slot_mapping=torch.tensor(slots or [], dtype=torch.int64), block_tables=block_tables,
        context_lens=torch.tensor(context_lens), query_start_loc=torch.tensor(starts),
        max_context_len=max(context_lens), context_lens_list=list(context_lens), query_lens_list=list(query_lens))


shapes = st.tuples(st.sampled_from([(2, 2), (4, 2), (4, 1), (6, 3)]), st.sampled_from([8, 16, 32]),
                   st.sampled_from([1, 3, 4, 16]))


@pytest.mark.points(1.5)
def test_write_kv_cache_writes_each_token_at_its_slot_and_nothing_else():
    """Token t's key/value land at block slot // block_size, offset slot % block_size; the rest is untouched."""
    g = torch.Generator().manual_seed(0)
    k_cache, v_cache = torch.zeros(6, 4, 2, 8), torch.zeros(6, 4, 2, 8)
    key, value = torch.randn(5, 2, 8, generator=g), torch.randn(5, 2, 8, generator=g)
    slots = torch.tensor([13, 2, 20, 3, 7])
    key_before = key.clone()
    paged_attention.write_kv_cache(key, value, k_cache, v_cache, slots)
    for t, slot in enumerate(slots.tolist()):
        assert torch.equal(k_cache[slot // 4, slot % 4], key[t])
        assert torch.equal(v_cache[slot // 4, slot % 4], value[t])
    written = torch.zeros(24, dtype=torch.bool)
    written[slots] = True
    assert k_cache.view(24, -1)[~written].abs().sum() == 0 and v_cache.view(24, -1)[~written].abs().sum() == 0
    assert torch.equal(key, key_before)


@pytest.mark.points(1)
def test_gather_kv_reads_a_sequence_back_in_order():
    """gather_kv follows the block table: block_table[i // bs], offset i % bs, for i < context_len."""
    g = torch.Generator().manual_seed(1)
    k = torch.randn(11, 2, 4, generator=g)
    k_cache, _, tables = scatter_into_pages([k], [k], block_size=4, num_blocks=9, generator=g)
    for n in (1, 4, 5, 11):
        assert torch.equal(paged_attention.gather_kv(k_cache, tables[0], n), k[:n])


@settings(max_examples=25, deadline=None)
@given(shape=shapes, lengths=st.lists(st.integers(1, 40), min_size=1, max_size=4), seed=st.integers(0, 2**16))
@pytest.mark.points(2)
def test_prefill_equals_dense_causal_attention(shape, lengths, seed):
    """Hypothesis: several sequences of different lengths in one flat batch, random block tables,
    GQA head ratios, block sizes: each equals SDPA with the causal mask, within 1e-5 (float32)."""
    (heads, kv_heads), dim, block_size = shape
    g = torch.Generator().manual_seed(seed)
    qs = [torch.randn(n, heads, dim, generator=g) for n in lengths]
    ks = [torch.randn(n, kv_heads, dim, generator=g) for n in lengths]
    vs = [torch.randn(n, kv_heads, dim, generator=g) for n in lengths]
    num_blocks = sum(-(-n // block_size) for n in lengths) + 3
    k_cache, v_cache, tables = scatter_into_pages(ks, vs, block_size, num_blocks, g)
    meta = metadata(True, lengths, lengths, tables)
    scale = 0.8 * dim ** -0.5  # not SDPA's default, so a forgotten scale shows
    out = paged_attention.prefill_attention(torch.cat(qs), k_cache, v_cache, meta, scale)
    expected = torch.cat([dense_causal(q, k, v, scale) for q, k, v in zip(qs, ks, vs, strict=True)])
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@settings(max_examples=20, deadline=None)
@given(shape=shapes, lengths=st.lists(st.tuples(st.integers(1, 30), st.integers(0, 30)), min_size=1, max_size=3),
       seed=st.integers(0, 2**16))
@pytest.mark.points(2)
def test_prefill_after_a_cached_prefix_attends_to_the_prefix(shape, lengths, seed):
    """New tokens after a cached prefix (query shorter than the context): they are the last rows
    of the dense causal attention over the whole sequence (the offset matters)."""
    (heads, kv_heads), dim, block_size = shape
    g = torch.Generator().manual_seed(seed)
    totals = [new + cached for new, cached in lengths]
    qs = [torch.randn(n, heads, dim, generator=g) for n in totals]
    ks = [torch.randn(n, kv_heads, dim, generator=g) for n in totals]
    vs = [torch.randn(n, kv_heads, dim, generator=g) for n in totals]
    k_cache, v_cache, tables = scatter_into_pages(ks, vs, block_size, sum(-(-n // block_size) for n in totals) + 2, g)
    news = [new for new, _ in lengths]
    meta = metadata(True, news, totals, tables)
    scale = 0.8 * dim ** -0.5  # not SDPA's default, so a forgotten scale shows
    query = torch.cat([q[-n:] for q, n in zip(qs, news, strict=True)])
    out = paged_attention.prefill_attention(query, k_cache, v_cache, meta, scale)
    expected = torch.cat([dense_causal(q, k, v, scale)[-n:] for q, k, v, n in zip(qs, ks, vs, news, strict=True)])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, lengths=st.lists(st.integers(1, 50), min_size=1, max_size=6), seed=st.integers(0, 2**16))
@pytest.mark.points(1.5)
def test_decode_equals_dense_attention_of_the_last_token(shape, lengths, seed):
    """Hypothesis: one query per sequence, batched, contexts of different lengths: each equals the
    last row of dense causal attention; padding blocks of shorter tables must be masked."""
    (heads, kv_heads), dim, block_size = shape
    g = torch.Generator().manual_seed(seed)
    qs = [torch.randn(n, heads, dim, generator=g) for n in lengths]
    ks = [torch.randn(n, kv_heads, dim, generator=g) for n in lengths]
    vs = [torch.randn(n, kv_heads, dim, generator=g) for n in lengths]
    k_cache, v_cache, tables = scatter_into_pages(ks, vs, block_size, sum(-(-n // block_size) for n in lengths) + 2, g)
    meta = metadata(False, [1] * len(lengths), lengths, tables)
    scale = 0.8 * dim ** -0.5  # not SDPA's default, so a forgotten scale shows
    out = paged_attention.decode_attention(torch.stack([q[-1] for q in qs]), k_cache, v_cache, meta, scale)
    expected = torch.stack([dense_causal(q, k, v, scale)[-1] for q, k, v in zip(qs, ks, vs, strict=True)])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
