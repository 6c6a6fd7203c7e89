"""Hidden tests for lab02 part 1 (tasks 1-7): inputs and conventions the visible tests don't use."""

import pytest
import torch
import torch.nn.functional as F

from shared.impl import import_lab_module

from ..helpers import (
    block_manager,
    compute_step,
    drive,
    engine,
    hf_greedy,
    load_hf,
    make_seq,
    model_runner,
    paged_attention,
    sampling_params,
    scheduler,
    sequence,
    write_random_llama,
)
from ..test_task2_paged_attention import metadata, scatter_into_pages
from ..test_task3_model_runner import check_against_transformers


@pytest.mark.task(1)
@pytest.mark.points(1)
def test_fork_chains_with_block_size_3_and_freeing_the_parent_first():
    """A child of a child, copy-on-write at every level, the parent freed before its children:
    reference counts stay exact and the pool comes back whole."""
    bm = block_manager.BlockManager(num_blocks=12, block_size=3, watermark=0.0)
    parent = make_seq(7)  # 3 blocks, the last one holds 1 token
    bm.allocate(parent)
    child, grandchild = make_seq(7), make_seq(7)
    bm.fork(parent, child)
    bm.fork(child, grandchild)
    assert [bm.blocks[b].ref_count for b in parent.block_table] == [3, 3, 3]
    bm.free(parent)
    assert [bm.blocks[b].ref_count for b in child.block_table] == [2, 2, 2] and bm.num_used_blocks == 3
    grandchild.append_token(4)
    src, dst = bm.append_slot(grandchild)
    assert src == child.block_table[2], "copy-on-write must copy from the block the child shares"
    assert dst == grandchild.block_table[2], "copy-on-write must copy into the grandchild's new last block"
    child.append_token(4)
    assert bm.append_slot(child) is None, "the last block is the child's alone now"
    for _ in range(2):  # 9 tokens: the third block fills; the 10th needs a fourth block
        grandchild.append_token(5)
        bm.append_slot(grandchild)
    assert len(grandchild.block_table) == 4, (
        f"with block_size 3 the grandchild needs 4 blocks, got {len(grandchild.block_table)}"
    )
    assert bm.unused_slots([grandchild]) == 2, (
        "unused_slots() must count the empty slots of the last block (expected 2)"
    )
    bm.free(grandchild)
    bm.free(child)
    assert bm.num_free_blocks == 12, (
        f"freeing every sequence must give every block back: {bm.num_free_blocks} of 12 free"
    )
    assert all(b.ref_count == 0 for b in bm.blocks), "a freed block must have ref_count 0"


@pytest.mark.task(2)
@pytest.mark.points(1)
@pytest.mark.parametrize("heads,kv_heads,dim,block_size", [(8, 8, 128, 1), (8, 1, 32, 5)])
def test_paged_attention_float64_mha_and_8_to_1_gqa(heads, kv_heads, dim, block_size):
    """float64, multi-head (no grouping) and 8 query heads per KV head, odd block sizes: prefill
    and decode equal dense attention within 1e-10."""
    g = torch.Generator().manual_seed(7)
    lengths = [1, 9, 17]
    qs = [torch.randn(n, heads, dim, generator=g, dtype=torch.float64) for n in lengths]
    ks = [torch.randn(n, kv_heads, dim, generator=g, dtype=torch.float64) for n in lengths]
    vs = [torch.randn(n, kv_heads, dim, generator=g, dtype=torch.float64) for n in lengths]
    k_cache, v_cache, tables = scatter_into_pages(ks, vs, block_size, sum(-(-n // block_size) for n in lengths) + 4, g)
    k_cache, v_cache = k_cache.double(), v_cache.double()
    for seq, (k, v) in enumerate(zip(ks, vs, strict=True)):
        for i in range(k.shape[0]):
            k_cache[tables[seq][i // block_size], i % block_size] = k[i]
            v_cache[tables[seq][i // block_size], i % block_size] = v[i]
    scale = 0.3

    def dense(q, k, v):
        rep = heads // kv_heads
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        return F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1),
                                              is_causal=True, scale=scale).transpose(0, 1)

    out = paged_attention.prefill_attention(torch.cat(qs), k_cache, v_cache, metadata(True, lengths, lengths, tables),
                                            scale)
    torch.testing.assert_close(out, torch.cat([dense(*x) for x in zip(qs, ks, vs, strict=True)]), atol=1e-10, rtol=0)
    out = paged_attention.decode_attention(torch.stack([q[-1] for q in qs]), k_cache, v_cache,
                                           metadata(False, [1, 1, 1], lengths, tables), scale)
    torch.testing.assert_close(out, torch.stack([dense(*x)[-1] for x in zip(qs, ks, vs, strict=True)]),
                               atol=1e-10, rtol=0)


@pytest.mark.task(3)
@pytest.mark.points(1)
def test_tied_embeddings_linear_rope_scaling_and_plain_multi_head(tmp_path, model_dir):
    """Another convention: tied input/output embeddings, linear rope scaling, as many KV heads as
    query heads, block size 1: logits equal transformers'."""
    folder = write_random_llama(tmp_path, model_dir, seed=3, hidden_size=64, intermediate_size=96,
                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, head_dim=16,
                                tie_word_embeddings=True, rope_scaling={"rope_type": "linear", "factor": 4.0})
    runner = model_runner.ModelRunner(folder, block_size=1, num_kv_blocks=200, device="cpu", dtype=torch.float32)
    g = torch.Generator().manual_seed(5)
    check_against_transformers(runner, load_hf(folder), [torch.randint(3, 512, (n,), generator=g).tolist()
                                                         for n in (33, 2)], decode_steps=3)


@pytest.mark.task(4)
@pytest.mark.points(1)
def test_token_budget_is_inclusive_and_one_sequence_at_a_time_still_finishes():
    """A prompt exactly as long as max_num_batched_tokens is admitted (the limit is inclusive);
    max_num_seqs=1 runs requests strictly one after another, in arrival order."""
    bm = block_manager.BlockManager(8, 4, watermark=0.0)
    sched = scheduler.Scheduler(bm, max_num_seqs=1, max_num_batched_tokens=12)
    seqs = [sequence.Sequence("r", list(range(n)), sampling_params.SamplingParams()) for n in (12, 3, 7)]
    for s in seqs:
        sched.add(s)
    out = sched.schedule()
    assert out.seqs == [seqs[0]] and out.num_new_tokens == [12], (
        "the token budget is inclusive: the first request fits whole")
    compute_step(out)
    result = drive(sched, {seqs[0].seq_id: 4, seqs[1].seq_id: 3, seqs[2].seq_id: 5})
    assert result["finished_order"] == [s.seq_id for s in seqs] and result["max_running"] == 1


@pytest.fixture(scope="module")
def other_model(tmp_path_factory, model_dir):
    folder = write_random_llama(tmp_path_factory.mktemp("eos_list"), model_dir, seed=9)
    (folder / "generation_config.json").write_text('{"eos_token_id": [2, 17]}')
    return folder


@pytest.mark.task(5)
@pytest.mark.points(0.5)
def test_another_model_with_a_list_of_eos_ids_and_n_completions(other_model, tokenizer):
    """A random Llama whose generation config lists two eos ids: greedy outputs equal transformers'
    (which stops at either); n=2 greedy completions are both that output."""
    hf = load_hf(other_model)
    hf.generation_config.eos_token_id = [2, 17]
    hf.generation_config.pad_token_id = 0
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 512, (n,), generator=g).tolist() for n in (3, 20, 41, 8, 64, 5)]
    llm = engine.LLM(other_model, block_size=8, num_kv_blocks=80, max_model_len=160, device="cpu", dtype="float32")
    outs = llm.generate(prompts, sampling_params.SamplingParams(temperature=0, max_tokens=40, n=2))
    for out, ids in zip(outs, prompts, strict=True):
        expected = hf_greedy(hf, ids, 40)
        assert [c.token_ids for c in out.outputs] == [expected, expected]
        assert [c.index for c in out.outputs] == [0, 1]


@pytest.mark.task(5)
@pytest.mark.points(1)
def test_logprobs_are_transformers_log_softmax(model, tokenizer, model_dir):
    """logprobs=3: each step holds the chosen token and the 3 most likely, with transformers'
    log-softmax values (of the raw logits, whatever the temperature)."""
    llm = engine.LLM(model_dir, block_size=16, num_kv_blocks=64, max_model_len=256, device="cpu", dtype="float32")
    ids = tokenizer("Once").input_ids
    out = llm.generate([ids], sampling_params.SamplingParams(temperature=0.8, seed=3, max_tokens=6, logprobs=3,
                                                             ignore_eos=True))[0].outputs[0]
    assert len(out.logprobs) == 6
    seq = list(ids)
    for token, step in zip(out.token_ids, out.logprobs, strict=True):
        with torch.no_grad():
            expected = torch.log_softmax(model(torch.tensor([seq])).logits[0, -1].float(), -1)
        top = set(expected.topk(3).indices.tolist())
        assert token in step, "the chosen token must be among its own logprobs"
        assert top <= set(step), "the logprobs must include the top tokens by transformers' log_softmax"
        assert len(step) <= 4, "at most logprobs + 1 entries per step"
        for t, value in step.items():
            assert abs(value - float(expected[t])) < 1e-4
        seq.append(token)


@pytest.mark.task(6)
@pytest.mark.points(1)
def test_a_hash_collision_is_not_a_hit(monkeypatch):
    """With every block hashing to the same value, a block is reused only when its stored tokens
    are the sequence's: the manager checks the tokens of a hit."""
    real = import_lab_module("lab02_vllm", "block_manager")
    monkeypatch.setattr(real, "hash_block", lambda parent, tokens: 12345)
    bm = real.BlockManager(num_blocks=6, block_size=4, watermark=0.0, enable_prefix_caching=True)
    a = make_seq([1, 2, 3, 4, 5, 6])
    bm.allocate(a)
    b = make_seq([9, 9, 9, 9, 5, 6])
    bm.allocate(b)
    assert b.num_computed_tokens == 0, "a hash collision is not a prefix-cache hit: nothing is computed yet"
    assert b.block_table[0] != a.block_table[0], "a hash collision must get a new block, not the cached one"
    c = make_seq([1, 2, 3, 4, 7])
    bm.allocate(c)
    assert c.num_computed_tokens == 4, f"a real hit reuses the cached block's 4 tokens, got {c.num_computed_tokens}"
    assert c.block_table[0] == a.block_table[0], "a real hit must reuse the cached block"
