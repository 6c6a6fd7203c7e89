# Student skeleton for lab02_vllm: fill in each TODO, then run `course test lab02_vllm`.
# (Generated from the reference solution by `course stubs`.)
"""Task 4: the scheduler: vLLM v1's token budget, with chunked prefill and preemption.

Static batching runs a batch until its *longest* request is done, while finished rows idle and
new requests wait. Continuous batching decides again at *every step*: finished sequences leave at
once and waiting ones join as soon as there is room. vLLM v1's scheduler has no prefill or decode
*phase*: each sequence has ``num_computed_tokens``, the tokens whose keys and values are in the
cache, and each step hands out at most ``max_num_batched_tokens`` tokens so that the sequences
catch up with their ``len``:

- first the **running** sequences, oldest first: one token for a decoding one (its newest), the
  next chunk of the prompt for one that is partly prefilled. When the pool has no block for a
  sequence's tokens, the *newest* running sequence is preempted: its blocks are freed, its
  ``num_computed_tokens`` reset, and it goes back to the front of the waiting queue, to be
  recomputed (prompt and output so far) when there is room; nothing it generated is lost;
- then, if no one was preempted, the **waiting** sequences, first come first served, each with as
  many of its tokens as the budget leaves: a long prompt is *chunked* over several steps, and a
  prefix-cache hit counts as computed. ``long_prefill_token_threshold`` caps one sequence's chunk,
  so that several prompts can share a step; with ``enable_chunked_prefill=False`` a prompt that
  does not fit whole waits for a later step.

    one step, max_num_batched_tokens = 16:   [A][B][C] [D D D D D D] [E E E E E E E]
                                              decodes   D's last     E's first chunk
                                              (1 each)  chunk (6)    (7 of its 20)

Readings: vLLM v1's ``vllm/v1/core/sched/scheduler.py`` (``schedule``); the Orca paper (Yu et al.,
OSDI 2022) on iteration-level scheduling; Sarathi-Serve (Agrawal et al., OSDI 2024) on chunked
prefill; the vLLM paper, section 4.5 (preemption by recomputation); nano-vllm's
``engine/scheduler.py``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from shared.validation import check_at_least

from .block_manager import BlockManager
from .sequence import Sequence, SequenceStatus


@dataclass
class SchedulerOutput:
    """What one step computes (vLLM v1's ``SchedulerOutput``, reduced).

    Attributes:
        seqs: the step's sequences: the running ones scheduled, oldest first, then the ones
            admitted from the waiting queue, in their order.
        num_new_tokens: for each of ``seqs``, how many tokens it computes this step, from its
            ``num_computed_tokens`` on (1 for a decode; a prompt chunk otherwise).
        new_seqs: the sequences of ``seqs`` admitted at this step (new, or back after a preemption).
        copies: copy-on-write ``(source, destination)`` block pairs to copy before the step runs.
        preempted: the sequences preempted while scheduling this step.
    """

    seqs: list[Sequence] = field(default_factory=list)
    num_new_tokens: list[int] = field(default_factory=list)
    new_seqs: list[Sequence] = field(default_factory=list)
    copies: list[tuple[int, int]] = field(default_factory=list)
    preempted: list[Sequence] = field(default_factory=list)

    @property
    def num_batched_tokens(self) -> int:
        """Tokens the step computes in all."""
        return sum(self.num_new_tokens)

    def add(self, seq: Sequence, num_new_tokens: int) -> None:
        self.seqs.append(seq)
        self.num_new_tokens.append(num_new_tokens)


class Scheduler:
    """Decides which sequences run at each step, and how many tokens each computes.

    Args:
        block_manager: the KV block pool.
        max_num_seqs: the most sequences running at once.
        max_num_batched_tokens: the most tokens one step computes (the token budget).
        long_prefill_token_threshold: when > 0, the most tokens one sequence computes in a step
            (vLLM's option of that name; 0: no cap but the budget).
        enable_chunked_prefill: when False, a waiting sequence is admitted only with all its
            tokens at once (admission stops at the first that does not fit the budget left).
    """

    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_num_batched_tokens: int,
                 long_prefill_token_threshold: int = 0, enable_chunked_prefill: bool = True) -> None:
        check_at_least("max_num_seqs", max_num_seqs, 1)
        check_at_least("max_num_batched_tokens", max_num_batched_tokens, 1)
        check_at_least("long_prefill_token_threshold", long_prefill_token_threshold, 0)
        self.block_manager = block_manager
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.long_prefill_token_threshold = long_prefill_token_threshold
        self.enable_chunked_prefill = enable_chunked_prefill
        self.waiting: deque[Sequence] = deque()
        self.running: deque[Sequence] = deque()  # oldest admitted first
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        """Queue a new sequence (given)."""
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def _cap(self, num_new_tokens: int, token_budget: int) -> int:
        """A sequence's tokens this step: ``long_prefill_token_threshold`` (when > 0) and the budget
        left cap what it still has to compute (given)."""
        if 0 < self.long_prefill_token_threshold < num_new_tokens:
            num_new_tokens = self.long_prefill_token_threshold
        return min(num_new_tokens, token_budget)

    def schedule(self) -> SchedulerOutput:
        """Hand out the next step's tokens, as vLLM v1's ``Scheduler.schedule``.

        Running sequences first, oldest first, while the budget lasts: each gets ``_cap(len(seq) -
        num_computed_tokens, budget left)`` tokens; its table grows for them
        (``block_manager.can_allocate_slots`` / ``allocate_slots``, copy-on-write pairs collected);
        while it cannot grow, preempt the newest running sequence (``running.pop()``); when that is
        the sequence itself, stop scheduling running ones.

        Then, only if no one was preempted in this step: waiting sequences from the front, while
        the budget lasts and ``len(running) < max_num_seqs``. Each first gets its cached prefix
        (``block_manager.allocate_cached_prefix``, counted as computed), then its ``len(seq) -
        num_computed_tokens`` tokens, capped by ``long_prefill_token_threshold`` (when > 0); with
        chunked prefill disabled, a sequence whose tokens exceed the budget left stops admission
        (its blocks given back); otherwise the budget left caps them. When its table cannot
        grow for them (``can_allocate_slots(..., new=True)``), give its blocks back
        (``block_manager.free``) and stop (first come, first served: no overtaking). Admitted ones
        become RUNNING and join ``running``.

        Returns:
            The step's ``SchedulerOutput``; empty (no ``seqs``) when nothing can run.
        """
        # TODO(lab02 task 4): the next step's tokens under one budget: every running sequence's next tokens first, preempting the newest when blocks run out, then waiting sequences first come first served, chunked to the budget left (README task 4; vLLM v1's Scheduler.schedule).
        raise NotImplementedError("lab02 task 4: schedule is not written yet (see lab02_vllm/README.md, task 4)")

    def preempt(self, seq: Sequence) -> None:
        """Free ``seq``'s blocks and put it back at the *front* of the waiting queue, to be
        recomputed later from all its tokens so far (``BlockManager.free`` resets
        ``num_computed_tokens``). Count the preemption twice: ``self.num_preemptions``, the
        scheduler's total (the engine's stats report it), and ``seq.num_preemptions``."""
        # TODO(lab02 task 4): take a running sequence off the device so it is recomputed first when there is room, and count it (README task 4; the docstring's counters).
        raise NotImplementedError("lab02 task 4: preempt is not written yet (see lab02_vllm/README.md, task 4)")

    def finish(self, seq: Sequence, reason: str) -> None:
        """``seq`` is done (``reason``: "stop", "length" or "abort"): free its blocks at once and
        take it out of the queues."""
        # TODO(lab02 task 4): end a sequence with its reason, give its blocks back at once, and take it out of whichever queue holds it (README task 4).
        raise NotImplementedError("lab02 task 4: finish is not written yet (see lab02_vllm/README.md, task 4)")

    def abort(self, request_id: str) -> list[Sequence]:
        """Finish every unfinished sequence of ``request_id`` with reason "abort" (given).

        Returns:
            The aborted sequences (none when the request is unknown or already finished).
        """
        aborted = [s for s in (*self.running, *self.waiting) if s.request_id == request_id]
        for seq in aborted:
            self.finish(seq, "abort")
        return aborted
