"""Task 4: the scheduler: continuous batching, token budget, FCFS, preemption by recomputation.

These tests drive the scheduler without a model (``helpers.drive``): each scheduled sequence gets
one token per step, as the engine would give it. They use your block manager (task 1).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import block_manager, drive, make_seq, scheduler, sequence

pytestmark = pytest.mark.task(4)

RUNNING, WAITING = "running", "waiting"


def new_scheduler(num_blocks=64, block_size=4, max_num_seqs=8, max_num_batched_tokens=64, watermark=0.0):
    bm = block_manager.BlockManager(num_blocks, block_size, watermark=watermark)
    return scheduler.Scheduler(bm, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens)


@pytest.mark.points(2)
def test_prefill_admits_first_come_first_served_within_the_budgets():
    """Admission stops at the first waiting sequence that does not fit (token budget, sequence
    limit): a later, smaller one does not overtake it."""
    sched = new_scheduler(max_num_seqs=3, max_num_batched_tokens=20)
    seqs = [make_seq(n) for n in (8, 10, 5, 1, 1)]
    for s in seqs:
        sched.add(s)
    batch, is_prefill = sched.schedule()
    assert is_prefill and batch == seqs[:2], "8 + 10 fit in 20 tokens; 8 + 10 + 5 do not, and 1 must not overtake 5"
    assert all(s.status.value == RUNNING for s in batch), "admitted sequences must be RUNNING"
    assert list(sched.waiting) == seqs[2:], "requests that do not fit wait in arrival order"
    assert all(s.block_table for s in batch), "admitted sequences must have blocks"
    assert not seqs[2].block_table, "a waiting sequence holds no blocks"
    for s in batch:  # the engine computes them and samples one token each
        s.num_computed_tokens = len(s)
        s.append_token(0)
    batch, is_prefill = sched.schedule()
    assert is_prefill and batch == [seqs[2]], "max_num_seqs=3: only one more may join"
    seqs[2].num_computed_tokens = len(seqs[2])
    seqs[2].append_token(0)
    batch, is_prefill = sched.schedule()
    assert not is_prefill and batch == seqs[:3], "nothing can be admitted: every running sequence decodes"


@pytest.mark.points(1.5)
def test_new_prefills_join_while_others_decode_and_finished_ones_leave_at_once():
    """Continuous batching: a request arriving mid-way is prefilled at the next step and then
    decodes alongside the others; a finished sequence frees its blocks immediately."""
    sched = new_scheduler()
    a = make_seq(6)
    sched.add(a)
    drive_one = lambda seqs: [(setattr(s, "num_computed_tokens", len(s)), s.append_token(0)) for s in seqs]  # noqa: E731
    drive_one(sched.schedule()[0])
    drive_one(sched.schedule()[0])  # a decodes
    b = make_seq(9)
    sched.add(b)
    batch, is_prefill = sched.schedule()
    assert is_prefill, "a step with a new request must be a prefill"
    assert batch == [b], "the prefill batch holds only the new request"
    drive_one(batch)
    batch, is_prefill = sched.schedule()
    assert not is_prefill and batch == [a, b]
    drive_one(batch)
    batch, _ = sched.schedule()
    assert batch == [a, b], "running stays oldest first, step after step (preemption takes the last)"
    drive_one(batch)
    used, held = sched.block_manager.num_used_blocks, len(a.block_table)
    sched.finish(a, "stop")
    assert a.status.value == "finished" and a.finish_reason == "stop" and a.block_table == []
    assert sched.block_manager.num_used_blocks == used - held == used - 3, "a's 3 blocks come back at once"
    batch, _ = sched.schedule()
    assert batch == [b]
    assert sched.abort("r") == [b] and not sched.has_unfinished()
    assert sched.block_manager.num_used_blocks == 0


@pytest.mark.points(0.5)
def test_aborting_a_waiting_request_takes_it_out_of_line():
    """A request aborted while it waits (never admitted, or preempted) leaves the waiting queue
    at once: it is never scheduled, and the scheduler has nothing left once the others finish."""
    sched = new_scheduler(num_blocks=4, block_size=4, max_num_seqs=1)
    params = make_seq(1).params
    a, b, c = (sequence.Sequence(name, [1, 2, 3, 4, 5], params) for name in ("a", "b", "c"))
    for s in (a, b, c):
        sched.add(s)
    batch, _ = sched.schedule()
    assert batch == [a] and list(sched.waiting) == [b, c]
    assert sched.abort("b") == [b] and b.status.value == "finished" and b.finish_reason == "abort"
    assert list(sched.waiting) == [c], "an aborted request must leave the waiting queue"
    sched.finish(a, "stop")
    batch, _ = sched.schedule()
    assert batch == [c]
    sched.finish(c, "length")
    assert not sched.has_unfinished(), "an aborted waiting request must leave the scheduler"
    assert sched.schedule()[0] == [], "nothing is left to schedule after the abort"
    assert sched.block_manager.num_free_blocks == 4


@pytest.mark.points(0.5)
def test_copy_on_write_pairs_are_those_of_the_step_just_scheduled():
    """A forked sequence shares its parent's last, partly filled block: the first decode step that
    writes into it asks for one copy-on-write pair; the next step, which writes into fresh blocks,
    asks for none (an old pair repeated would copy over KV already written)."""
    sched = new_scheduler(block_size=4)
    parent = sequence.Sequence("p", [1, 2, 3], make_seq(1).params)
    sched.add(parent)
    sched.schedule()
    parent.num_computed_tokens = len(parent)
    parent.append_token(7)
    child = sequence.Sequence("c", list(parent.token_ids), parent.params)
    sched.block_manager.fork(parent, child)
    child.status = parent.status
    sched.running.append(child)
    batch, is_prefill = sched.schedule()
    assert not is_prefill and batch == [parent, child]
    assert len(sched.copies) == 1, f"the shared block is written by both: one copy-on-write pair, got {sched.copies}"
    for s in batch:
        s.num_computed_tokens = len(s)
        s.append_token(8)
    batch, _ = sched.schedule()
    assert batch == [parent, child]
    assert sched.copies == [], f"this step writes into fresh blocks: no copy-on-write pair, got {sched.copies}"


@pytest.mark.points(1.5)
def test_preemption_takes_the_newest_and_puts_it_first_in_line():
    """When a running sequence needs a block and none is free, the newest running sequence is
    preempted: blocks freed, back to the front of the waiting queue, counted."""
    sched = new_scheduler(num_blocks=6, block_size=4)
    a, b, c = make_seq(8), make_seq(8), make_seq(7)  # 2 + 2 + 2 blocks: the pool is full
    late = make_seq(3)
    for s in (a, b, c):
        sched.add(s)
    batch, _ = sched.schedule()
    assert batch == [a, b, c] and sched.block_manager.num_free_blocks == 0
    sched.add(late)
    for s in batch:
        s.num_computed_tokens = len(s)
        s.append_token(0)  # a and b need a third block (token 9); c's 8th token still fits
    batch, is_prefill = sched.schedule()
    assert not is_prefill
    assert c.status.value == WAITING, "a preempted sequence goes back to WAITING"
    assert c.block_table == [], "preemption must free the sequence's blocks"
    assert c.num_computed_tokens == 0, "preemption (recompute) resets num_computed_tokens to 0"
    assert list(sched.waiting) == [c, late], "the preempted one goes before requests that came later"
    assert batch == [a, b] and sched.num_preemptions == 1
    assert [s.num_preemptions for s in (a, b, c)] == [0, 0, 1], "each sequence counts its own preemptions too"
    assert len(c) == 8, "its generated token is kept, to be recomputed"


@settings(max_examples=40, deadline=None)
@given(requests=st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=12),
       num_blocks=st.integers(15, 40), block_size=st.sampled_from([1, 4, 16]),
       max_num_seqs=st.integers(1, 8), watermark=st.sampled_from([0.0, 0.05]))
@pytest.mark.points(2)
def test_every_request_finishes_with_exactly_its_tokens_whatever_the_pool(requests, num_blocks, block_size,
                                                                         max_num_seqs, watermark):
    """Hypothesis: random prompts and output lengths, pools from tight to roomy: the pool is never
    over-committed, every request finishes (none starves), and each gets exactly its tokens, in
    order, none lost or repeated across preemptions."""
    max_len = 60
    if -(-max_len // block_size) > num_blocks:
        num_blocks = -(-max_len // block_size)  # the engine guarantees one sequence always fits
    sched = new_scheduler(num_blocks, block_size, max_num_seqs, max_num_batched_tokens=max_len, watermark=watermark)
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
