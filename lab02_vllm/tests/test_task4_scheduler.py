"""Task 4: the scheduler: vLLM v1's token budget, chunked prefill, FCFS, preemption by recomputation.

Most tests drive the scheduler without a model (``helpers.compute_step`` / ``helpers.drive``): each
scheduled sequence computes its tokens and, once it has computed them all, gets one more, as the
engine would give it. They use your block manager (task 1). The last test runs the fixture model
through your scheduler with a tiny budget and compares with transformers' greedy generate.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import (
    block_manager,
    compute_step,
    drive,
    hf_greedy,
    make_seq,
    mixed_prompts,
    model_runner,
    scheduler,
    sequence,
)

pytestmark = pytest.mark.task(4)

RUNNING, WAITING = "running", "waiting"


def new_scheduler(num_blocks=64, block_size=4, max_num_seqs=8, max_num_batched_tokens=64, watermark=0.0, **options):
    bm = block_manager.BlockManager(num_blocks, block_size, watermark=watermark)
    return scheduler.Scheduler(bm, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                               **options)


def scheduled(out):
    return list(zip(out.seqs, out.num_new_tokens, strict=True))


@pytest.mark.points(1.5)
def test_running_sequences_first_then_waiting_ones_chunked_to_the_budget_left():
    """One budget per step: every running sequence's next token first, then waiting prompts first
    come first served with the tokens left, a long one chunked over several steps (its table grows
    chunk by chunk, and it gets no token before its last chunk); max_num_seqs bounds the running."""
    sched = new_scheduler(max_num_seqs=3, max_num_batched_tokens=10)
    a, b, c, d = make_seq(6), make_seq(3), make_seq(25), make_seq(2)
    sched.add(a)
    sched.add(b)
    out = sched.schedule()
    assert scheduled(out) == [(a, 6), (b, 3)] and out.new_seqs == [a, b], "6 + 3 prompt tokens fit a budget of 10"
    assert all(s.status.value == RUNNING for s in (a, b)) and list(sched.running) == [a, b]
    assert compute_step(out) == [a, b]
    sched.add(c)
    sched.add(d)
    out = sched.schedule()
    assert scheduled(out) == [(a, 1), (b, 1), (c, 8)], (
        "the decodes first (1 token each), then c's first chunk: the 8 tokens the budget leaves; d may "
        "not join, max_num_seqs=3")
    assert out.new_seqs == [c] and list(sched.waiting) == [d] and not d.block_table
    assert len(c.block_table) == 2, "c's table holds its first chunk (8 tokens, 2 blocks), not its whole prompt"
    assert compute_step(out) == [a, b], "c is in the middle of its prompt: no token for it yet"
    assert c.num_computed_tokens == 8
    for chunk in (8, 8):
        out = sched.schedule()
        assert scheduled(out) == [(a, 1), (b, 1), (c, chunk)] and out.new_seqs == []
        compute_step(out)
    out = sched.schedule()
    assert scheduled(out) == [(a, 1), (b, 1), (c, 1)], "c's last chunk is the one token it still lacks"
    assert compute_step(out) == [a, b, c] and len(c) == 26 and len(c.block_table) == 7
    sched.finish(a, "stop")
    assert a.block_table == [] and a.status.value == "finished"
    out = sched.schedule()
    assert scheduled(out) == [(b, 1), (c, 1), (d, 2)], "a left: d joins behind the running ones"
    # Two prompts running mid-chunk, then a budget smaller than the first one's chunk: the budget
    # is spent on it and the other waits for the next step (a scheduled sequence computes >= 1 token).
    sched = new_scheduler(max_num_seqs=3, max_num_batched_tokens=16, long_prefill_token_threshold=8)
    e, f = make_seq(20), make_seq(20)
    sched.add(e)
    sched.add(f)
    out = sched.schedule()
    assert scheduled(out) == [(e, 8), (f, 8)]
    compute_step(out)
    sched.max_num_batched_tokens = 4
    out = sched.schedule()
    assert scheduled(out) == [(e, 4)], (
        f"a 4-token budget goes to e's next chunk; f, behind it, is not scheduled this step, got {scheduled(out)}")


@pytest.mark.points(1)
def test_long_prefill_token_threshold_and_chunked_prefill_off():
    """long_prefill_token_threshold caps one sequence's tokens in a step (two long prompts share
    the step, a short one still joins); with chunked prefill off, a prompt that does not fit the
    budget left waits whole for a later step, and nobody overtakes it."""
    sched = new_scheduler(max_num_batched_tokens=16, long_prefill_token_threshold=6)
    p, q, r = make_seq(20), make_seq(20), make_seq(3)
    for s in (p, q, r):
        sched.add(s)
    out = sched.schedule()
    assert scheduled(out) == [(p, 6), (q, 6), (r, 3)]
    compute_step(out)
    out = sched.schedule()
    assert scheduled(out) == [(p, 6), (q, 6), (r, 1)], "the threshold applies to running chunks too"

    whole = new_scheduler(max_num_batched_tokens=16, enable_chunked_prefill=False)
    x, y, z = make_seq(10), make_seq(10), make_seq(2)
    for s in (x, y, z):
        whole.add(s)
    out = whole.schedule()
    assert scheduled(out) == [(x, 10)], "y (10 tokens) does not fit the 6 left and is not chunked; z may not pass it"
    assert not y.block_table and list(whole.waiting) == [y, z]
    compute_step(out)
    out = whole.schedule()
    assert scheduled(out) == [(x, 1), (y, 10), (z, 2)]

    capped = new_scheduler(max_num_batched_tokens=16, long_prefill_token_threshold=6, enable_chunked_prefill=False)
    u, v = make_seq(20), make_seq(3)
    capped.add(u)
    capped.add(v)
    assert scheduled(capped.schedule()) == [(u, 6), (v, 3)], (
        "the threshold caps u's 20 tokens to 6 first, as in vLLM v1; only then is the budget compared")

    bm = block_manager.BlockManager(16, 4, watermark=0.0, enable_prefix_caching=True)
    cached = scheduler.Scheduler(bm, max_num_seqs=8, max_num_batched_tokens=16, enable_chunked_prefill=False)
    x = make_seq(list(range(1, 13)))
    cached.add(x)
    compute_step(cached.schedule())  # x's 12 tokens fill blocks 0-2, the last one by the step's last token
    y = make_seq(list(range(1, 13)) + [50] * 16)  # x's 3 blocks cached, 16 tokens to compute
    cached.add(y)
    out = cached.schedule()
    assert scheduled(out) == [(x, 1)], "y's 16 uncached tokens do not fit the 15 left"
    assert not y.block_table and bm.num_free_blocks == 12, "the refused y must give its cached prefix back"
    compute_step(out)
    cached.finish(x, "stop")
    assert scheduled(cached.schedule()) == [(y, 16)] and y.num_cached_tokens == 12, (
        "y finds x's 3 full blocks in the prefix cache (12 tokens): the 16 others fit the budget")


@pytest.mark.points(0.5)
def test_aborting_a_waiting_request_takes_it_out_of_line():
    """A request aborted while it waits (never admitted, or preempted) leaves the waiting queue
    at once: it is never scheduled, and the scheduler has nothing left once the others finish."""
    sched = new_scheduler(num_blocks=4, block_size=4, max_num_seqs=1)
    params = make_seq(1).params
    a, b, c = (sequence.Sequence(name, [1, 2, 3, 4, 5], params) for name in ("a", "b", "c"))
    for s in (a, b, c):
        sched.add(s)
    assert sched.schedule().seqs == [a] and list(sched.waiting) == [b, c]
    assert sched.abort("b") == [b] and b.status.value == "finished" and b.finish_reason == "abort"
    assert list(sched.waiting) == [c], "an aborted request must leave the waiting queue"
    sched.finish(a, "stop")
    assert sched.schedule().seqs == [c]
    sched.finish(c, "length")
    assert not sched.has_unfinished(), "an aborted waiting request must leave the scheduler"
    assert sched.schedule().seqs == [], "nothing is left to schedule after the abort"
    assert sched.block_manager.num_free_blocks == 4


@pytest.mark.points(0.5)
def test_copy_on_write_pairs_are_those_of_the_step_just_scheduled():
    """A forked sequence shares its parent's last, partly filled block: the first step that
    writes into it asks for one copy-on-write pair; the next step, which writes into fresh blocks,
    asks for none (an old pair repeated would copy over KV already written). The copy needs a block
    of its own: with none free, the newest sequence is preempted first."""
    sched = new_scheduler(block_size=4)
    parent = sequence.Sequence("p", [1, 2, 3], make_seq(1).params)
    sched.add(parent)
    compute_step(sched.schedule(), token=lambda s: 7)
    child = sequence.Sequence("c", list(parent.token_ids), parent.params)
    sched.block_manager.fork(parent, child)
    child.status = parent.status
    sched.running.append(child)
    shared = parent.block_table[-1]
    out = sched.schedule()
    assert scheduled(out) == [(parent, 1), (child, 1)]
    assert len(out.copies) == 1, f"the shared block is written by both: one copy-on-write pair, got {out.copies}"
    assert parent.block_table != child.block_table
    src, dst = out.copies[0]
    assert src == shared and dst in (parent.block_table[-1], child.block_table[-1]) and dst != shared, (
        f"a pair is (source, destination): the shared block {shared} is copied into the new one, got {(src, dst)}")
    compute_step(out, token=lambda s: 8)
    out = sched.schedule()
    assert out.seqs == [parent, child]
    assert out.copies == [], f"this step writes into fresh blocks: no copy-on-write pair, got {out.copies}"

    full = new_scheduler(num_blocks=2, block_size=4)  # the copy needs a block: none is free
    parent, other = sequence.Sequence("p", [1, 2, 3], parent.params), sequence.Sequence("o", [4, 5], parent.params)
    full.add(parent)
    full.add(other)
    compute_step(full.schedule())
    child = sequence.Sequence("c", list(parent.token_ids), parent.params)
    full.block_manager.fork(parent, child)
    child.status = parent.status
    full.running.append(child)
    out = full.schedule()
    assert out.preempted == [child] and scheduled(out) == [(parent, 1), (other, 1)], (
        "the copy needs a free block: the newest (the child) is preempted, and the parent's block is its own again")
    assert out.copies == []


@pytest.mark.points(1)
def test_preemption_takes_the_newest_and_puts_it_first_in_line():
    """When a running sequence needs a block and none is free, the newest running sequence is
    preempted: blocks freed, num_computed_tokens reset, back to the front of the waiting queue,
    counted; no one joins in that step; later it is recomputed, all its tokens at once."""
    sched = new_scheduler(num_blocks=6, block_size=4)
    a, b, c = make_seq(8), make_seq(8), make_seq(7)  # 2 + 2 + 2 blocks: the pool is full
    late = make_seq(3)
    for s in (a, b, c):
        sched.add(s)
    out = sched.schedule()
    assert out.seqs == [a, b, c] and sched.block_manager.num_free_blocks == 0
    sched.add(late)
    compute_step(out)  # a and b need a third block (token 9); c's 8th token still fits
    out = sched.schedule()
    assert c.status.value == WAITING, "a preempted sequence goes back to WAITING"
    assert c.block_table == [], "preemption must free the sequence's blocks"
    assert c.num_computed_tokens == 0, "preemption (recompute) resets num_computed_tokens to 0"
    assert list(sched.waiting) == [c, late], "the preempted one goes before requests that came later"
    assert scheduled(out) == [(a, 1), (b, 1)] and out.preempted == [c] and sched.num_preemptions == 1
    assert [s.num_preemptions for s in (a, b, c)] == [0, 0, 1], "each sequence counts its own preemptions too"
    assert len(c) == 8, "its generated token is kept, to be recomputed"
    compute_step(out)
    sched.finish(a, "stop")
    out = sched.schedule()
    assert scheduled(out) == [(b, 1), (c, 8), (late, 3)], "c is recomputed, prompt and generated token, first in line"

    capped = new_scheduler(num_blocks=3, block_size=4, long_prefill_token_threshold=3)
    a, c = make_seq(3), make_seq(1)
    capped.add(a)
    capped.add(c)
    for _ in range(4):  # a's prompt, then both decode until the 3 blocks are full
        compute_step(capped.schedule())
    out = capped.schedule()
    assert out.preempted == [c] and scheduled(out) == [(a, 1)] and len(c) == 5, "a's growth preempts c"
    compute_step(out)
    capped.finish(a, "stop")
    out = capped.schedule()
    assert scheduled(out) == [(c, 3)], "c is readmitted with the 3 tokens the threshold allows"
    compute_step(out)
    assert scheduled(capped.schedule()) == [(c, 2)], (
        "c still lacks 2 of its 5 tokens (its generated ones included): a running sequence past its prompt "
        "gets all it lacks, not one token as if it decoded")


@pytest.mark.points(0.5)
def test_the_watermark_is_kept_for_running_sequences_and_waived_for_a_lone_one():
    """A sequence being admitted leaves the watermark's blocks free for the running ones to grow,
    unless it would be the only sequence holding blocks (its own cached prefix at most), as vLLM
    v1 applies its watermark only when another request is scheduled: a prompt that needs the whole
    pool is then still admitted."""
    sched = scheduler.Scheduler(block_manager.BlockManager(10, 4, watermark=0.2), max_num_seqs=8,
                                max_num_batched_tokens=64)
    a, b = make_seq(8), make_seq(24)
    sched.add(a)
    compute_step(sched.schedule())
    sched.add(b)
    out = sched.schedule()
    assert scheduled(out) == [(a, 1)] and list(sched.waiting) == [b] and not b.block_table, (
        "b's 6 blocks of the 7 free would leave 1, under the watermark of 2 kept for a's growth")

    grow = scheduler.Scheduler(block_manager.BlockManager(4, 4, watermark=0.5), max_num_seqs=8,
                               max_num_batched_tokens=64)
    e, f = make_seq(4), make_seq(4)
    grow.add(e)
    grow.add(f)
    compute_step(grow.schedule())
    out = grow.schedule()
    assert scheduled(out) == [(e, 1), (f, 1)] and out.preempted == [], (
        "running sequences may grow into the watermark's blocks: 2 free blocks, one each, nobody preempted")

    half = block_manager.BlockManager(8, 4, watermark=0.0, enable_prefix_caching=True)
    g = make_seq(list(range(1, 9)))  # 8 tokens in chunks of 6 and 2: block 1 is full only after the second
    half.allocate_cached_prefix(g)
    half.allocate_slots(g, 6)
    g.num_computed_tokens = 6
    assert half.allocate_cached_prefix(make_seq(list(range(1, 10)))) == 4, (
        "after the chunk of 6 only g's block 0 holds its KV: block 1 (2 of its 4 tokens computed) must not "
        "be found in the prefix cache yet")
    half.allocate_slots(g, 2)
    g.num_computed_tokens = 8
    assert half.allocate_cached_prefix(make_seq(list(range(1, 10)))) == 8, "now both blocks are full and cached"

    bm = block_manager.BlockManager(4, 4, watermark=0.5, enable_prefix_caching=True)
    lone = scheduler.Scheduler(bm, max_num_seqs=8, max_num_batched_tokens=64)
    c = make_seq(list(range(1, 17)))
    lone.add(c)
    out = lone.schedule()
    assert scheduled(out) == [(c, 16)], "alone, c may take the whole pool, the watermark's blocks included"
    compute_step(out)
    lone.finish(c, "stop")
    d = make_seq(list(range(1, 14)))
    lone.add(d)
    assert scheduled(lone.schedule()) == [(d, 1)], (
        "d holds its cached prefix (3 of c's blocks) and needs 1 block more: it holds every used block, "
        "so it is alone and the watermark is waived")


@settings(max_examples=40, deadline=None)
@given(requests=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 20)), min_size=1, max_size=10),
       num_blocks=st.integers(12, 40), block_size=st.sampled_from([1, 4, 16]), max_num_seqs=st.integers(1, 8),
       budget=st.integers(1, 48), threshold=st.sampled_from([0, 0, 5]), watermark=st.sampled_from([0.0, 0.05]),
       prefix_caching=st.booleans())
@pytest.mark.points(1.5)
def test_every_request_finishes_with_exactly_its_tokens_whatever_the_budget_and_pool(
        requests, num_blocks, block_size, max_num_seqs, budget, threshold, watermark, prefix_caching):
    """Hypothesis: random prompts and output lengths, budgets from 1 token up, pools from tight to
    roomy, prefix caching on or off (the prompts share prefixes): at every step the budget is
    respected, running sequences are served before waiting ones join, nobody overtakes, the pool
    is never over-committed; every request finishes (none starves) with exactly its tokens, in
    order, none lost or repeated across chunks and preemptions."""
    max_len = 60
    num_blocks = max(num_blocks, -(-max_len // block_size))  # the engine guarantees one sequence always fits
    bm = block_manager.BlockManager(num_blocks, block_size, watermark=watermark, enable_prefix_caching=prefix_caching)
    sched = scheduler.Scheduler(bm, max_num_seqs=max_num_seqs, max_num_batched_tokens=budget,
                                long_prefill_token_threshold=threshold)
    seqs, outputs = [], {}
    for prompt_len, output_len in requests:
        seq = sequence.Sequence("r", list(range(prompt_len)), make_seq(1).params)
        outputs[seq.seq_id] = output_len
        seqs.append(seq)
        sched.add(seq)
    result = drive(sched, outputs)
    for seq in seqs:
        assert seq.is_finished, "every request must finish"
        assert seq.block_table == [], "a finished sequence must give its blocks back"
        assert seq.token_ids == list(range(len(seq))), "a token was lost or repeated"
        assert seq.num_output_tokens == outputs[seq.seq_id]
    assert sched.block_manager.num_free_blocks == sched.block_manager.num_blocks
    assert result["max_running"] <= max_num_seqs
    if not prefix_caching and threshold == 0 and max(p for p, _ in requests) > budget:
        assert result["chunked"] > 0, "a prompt longer than the budget must be chunked"


# leak-check: allowed, the test's stand-in for the engine
def greedy_through_the_scheduler(runner, sched, prompts, max_tokens, eos_ids):
    """Generate greedily with the real model through ``sched``: logits only where a sequence
    samples; a sequence stops at an eos token or after ``max_tokens`` outputs."""
    seqs = [make_seq(p) for p in prompts]
    for seq in seqs:
        sched.add(seq)
    for _ in range(2000):
        if not sched.has_unfinished():
            return [s.output_token_ids for s in seqs], sched.num_preemptions
        out = sched.schedule()
        assert sum(out.num_new_tokens) <= sched.max_num_batched_tokens
        if out.copies:
            runner.copy_blocks(out.copies)
        logits = runner.run(out.seqs, out.num_new_tokens)
        tokens = iter(logits.argmax(dim=-1).tolist())
        for seq in compute_step(out, token=lambda _seq, rows=tokens: next(rows)):
            if seq.num_output_tokens >= max_tokens or seq.last_token_id in eos_ids:
                sched.finish(seq, "stop")
    raise AssertionError("the requests did not finish in 2000 steps")


@pytest.mark.points(1.5)
def test_greedy_with_a_7_token_budget_equals_transformers(model_dir, model, tokenizer):
    """The fixture model through your scheduler and the model runner with max_num_batched_tokens=7:
    30-token prompts computed in chunks of at most 7 beside decoding ones, a pool small enough to
    preempt; every output equals transformers' greedy generate."""
    runner = model_runner.ModelRunner(model_dir, block_size=4, num_kv_blocks=14, device="cpu", dtype=torch.float32)
    sched = scheduler.Scheduler(block_manager.BlockManager(14, 4, watermark=0.0), max_num_seqs=4,
                                max_num_batched_tokens=7)
    prompts = mixed_prompts(tokenizer, 3, seed=4, low=30, high=30) + mixed_prompts(tokenizer, 2, seed=5, low=3, high=9)
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos) if isinstance(eos, list) else {eos}
    outputs, preemptions = greedy_through_the_scheduler(runner, sched, prompts, 10, eos_ids)
    for prompt, output in zip(prompts, outputs, strict=True):
        assert output == hf_greedy(model, prompt, 10), f"a {len(prompt)}-token prompt"
    assert preemptions > 0, "the test's pool was meant to be small enough to preempt"
