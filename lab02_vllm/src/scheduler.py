# Student skeleton for lab02_vllm: fill in each TODO, then run `course test lab02_vllm`.
# (Generated from the reference solution by `course stubs`.)
"""Task 4: the scheduler: continuous (iteration-level) batching with preemption.

Static batching runs a batch until its *longest* request is done, while finished rows idle and
new requests wait. Continuous batching decides again at *every step*: finished sequences leave at
once and waiting ones join as soon as there is room. Each step is either

- a **prefill** step: admit waiting sequences, first come first served, while the step's token
  budget (``max_num_batched_tokens``), the sequence limit (``max_num_seqs``) and the free KV
  blocks allow; or, when none can be admitted,
- a **decode** step: every running sequence gets one more token. When the pool has no block for
  a sequence's next token, the *newest* running sequence is preempted: its blocks are freed and
  it goes back to the front of the waiting queue, to be recomputed (prefilled again, prompt and
  output so far) when there is room. Nothing it generated is lost.

Readings: the Orca paper (Yu et al., OSDI 2022) on iteration-level scheduling; the vLLM paper,
section 4.5 (preemption by recomputation or swapping); nano-vllm's ``engine/scheduler.py``.
"""

from __future__ import annotations

from collections import deque

from shared.validation import check_at_least

from .block_manager import BlockManager
from .sequence import Sequence, SequenceStatus


class Scheduler:
    """Decides which sequences run at each step.

    Args:
        block_manager: the KV block pool.
        max_num_seqs: the most sequences running at once.
        max_num_batched_tokens: the most new tokens a prefill step may compute.
    """

    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_num_batched_tokens: int) -> None:
        check_at_least("max_num_seqs", max_num_seqs, 1)
        check_at_least("max_num_batched_tokens", max_num_batched_tokens, 1)
        self.block_manager = block_manager
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: deque[Sequence] = deque()  # oldest admitted first
        self.num_preemptions = 0
        self.copies: list[tuple[int, int]] = []  # copy-on-write pairs for the step just scheduled

    def add(self, seq: Sequence) -> None:
        """Queue a new sequence (given)."""
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> tuple[list[Sequence], bool]:
        """Pick the sequences of the next step.

        Prefill first: take waiting sequences from the front while ``len(running) <
        max_num_seqs``, the step's tokens stay within ``max_num_batched_tokens`` and
        ``block_manager.can_allocate(seq)``; stop at the first that does not fit (first come,
        first served: no overtaking). A candidate fits the budget when the tokens counted so far
        plus ``len(seq)`` (an upper bound: it is not yet known how much of it the prefix cache
        holds) are within it; once allocated, it adds the tokens the step will really compute,
        ``len(seq) - seq.num_computed_tokens``. Admitted ones become RUNNING and join ``running``.

        If none was admitted, decode: for each running sequence, oldest first, make room for its
        next token (``can_append`` / ``append_slot``, collecting copy-on-write pairs in
        ``self.copies``); while there is no room, preempt the newest running sequence (or this
        one, when it is the newest).

        Returns:
            ``(sequences, is_prefill)``; ``([], False)`` when nothing can run (nothing admitted,
            nothing running).
        """
        # TODO(lab02 task 4): the next step's sequences: a prefill of waiting sequences, first come first served within the limits, or else a decode of every running one, preempting the newest when blocks run out (README task 4).
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
