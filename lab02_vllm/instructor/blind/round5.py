"""Blind round 5 for lab02_vllm: plausible mistakes written from the README, docstrings and solution only (reviewer had not read the tests)."""

# Shared set-up lines of the checks (doctest-style, prepended to each check).
_S = """>>> from lab02_vllm.solution.block_manager import BlockManager
>>> from lab02_vllm.solution.scheduler import Scheduler
>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus
>>> from lab02_vllm.solution.sampling_params import SamplingParams
>>> def mk(n, rid="r", first=1):
...     return Sequence(rid, list(range(first, first + n)), SamplingParams())
>>> def done(out):
...     for s, n in zip(out.seqs, out.num_new_tokens):
...         s.num_computed_tokens += n
...         if s.num_computed_tokens == len(s):
...             s.token_ids.append(7)
"""

_R = """>>> import torch
>>> from shared.models import fixture_path
>>> from lab02_vllm.solution.model_runner import ModelRunner
>>> from lab02_vllm.solution.sequence import Sequence
>>> from lab02_vllm.solution.sampling_params import SamplingParams
>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)
>>> a = Sequence("a", list(range(3, 14)), SamplingParams()); a.block_table = [5, 2, 9]; a.num_computed_tokens = 4
>>> b = Sequence("b", list(range(3, 9)), SamplingParams()); b.block_table = [1, 3]; b.num_computed_tokens = 5
>>> ids, pos, meta, li = r.prepare([a, b], [3, 1])
"""

_HF = """>>> import torch
>>> from transformers import AutoModelForCausalLM
>>> from shared.models import fixture_path
>>> from lab02_vllm.solution.model_runner import ModelRunner
>>> from lab02_vllm.solution.sequence import Sequence
>>> from lab02_vllm.solution.sampling_params import SamplingParams
>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)
>>> hf = AutoModelForCausalLM.from_pretrained(fixture_path(), torch_dtype=torch.float32).eval()
>>> p = list(range(3, 14))
>>> a = Sequence("a", p, SamplingParams()); a.block_table = [5, 2, 9]
>>> with torch.no_grad():
...     ref = hf(torch.tensor([p])).logits[0, -1]
>>> got = r.run([a], [6]); a.num_computed_tokens = 6
>>> got = r.run([a], [5])[0]
>>> assert torch.allclose(got, ref, atol=1e-4), (got - ref).abs().max()
"""

MUTANTS = [
    # ---------------------------------------------------------------- task 3: model runner
    {"task": 3, "file": "model_runner.py",
     "find": "        write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)\n        out = paged_attention(q, k_cache, v_cache, meta, self.scale)",
     "replace": "        out = paged_attention(q, k_cache, v_cache, meta, self.scale)\n        write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)",
     "why": "attends before writing the step's keys/values: each new token reads a stale slot for itself and its chunk",
     "check": _HF},
    {"task": 3, "file": "model_runner.py",
     "find": "            positions.extend(range(start, end))",
     "replace": "            positions.extend(range(n))",
     "why": "a chunk's positions restart at 0 instead of continuing after the cached context",
     "check": _R + ">>> assert pos.tolist() == [4, 5, 6, 5]"},
    {"task": 3, "file": "model_runner.py",
     "find": "            context_lens.append(end)",
     "replace": "            context_lens.append(len(seq))",
     "why": "context length taken as the whole sequence, not cached + this chunk (attends to slots not yet written)",
     "check": _R + ">>> assert meta.context_lens_list == [7, 6] and meta.context_lens.tolist() == [7, 6]"},
    {"task": 3, "file": "model_runner.py",
     "find": "            if end == len(seq):\n                logits_indices.append(starts[-1] - 1)",
     "replace": "            logits_indices.append(starts[-1] - 1)",
     "why": "every sequence samples, also one in the middle of its prompt (a non-final chunk)",
     "check": _R + ">>> assert li.tolist() == [3]"},
    {"task": 3, "file": "model_runner.py",
     "find": "                logits_indices.append(starts[-1] - 1)",
     "replace": "                logits_indices.append(starts[-2])",
     "why": "the sampled row is the chunk's first token, not its last (same for a decode, wrong for a final prefill chunk)",
     "check": _R + ">>> a.num_computed_tokens = 8\n>>> assert r.prepare([a, b], [3, 1])[3].tolist() == [2, 3]"},
    {"task": 3, "file": "model_runner.py",
     "find": "            slots.extend(seq.block_table[i // bs] * bs + i % bs for i in range(start, end))",
     "replace": "            slots.extend(seq.block_table[i // bs] * bs + i % bs for i in range(n))",
     "why": "slots counted from the sequence's first token: a later chunk overwrites the cached prefix's keys",
     "check": _R + ">>> assert meta.slot_mapping.tolist() == [8, 9, 10, 13]"},
    {"task": 3, "file": "model_runner.py",
     "find": "            input_ids.extend(seq.token_ids[start:end])",
     "replace": "            input_ids.extend(seq.token_ids[-n:])",
     "why": "feeds the sequence's last n tokens (right for a decode, wrong for a chunk that stops before the end)",
     "check": _R + ">>> assert ids.tolist() == [7, 8, 9, 8]"},
    {"task": 3, "file": "model_runner.py",
     "find": "is_prefill=any(n > 1 for n in num_new_tokens)",
     "replace": "is_prefill=all(n > 1 for n in num_new_tokens)",
     "why": "a mixed batch (decodes plus a chunk) is flagged as a decode step, so the chunk goes through decode attention",
     "check": _R + ">>> assert meta.is_prefill"},
    # ---------------------------------------------------------------- task 4: scheduler
    {"task": 4, "file": "scheduler.py",
     "find": "            num_new = self._cap(len(seq) - seq.num_computed_tokens, token_budget)",
     "replace": "            num_new = self._cap(len(seq) - seq.num_computed_tokens, self.max_num_batched_tokens)",
     "why": "a running sequence's chunk capped by the whole budget, not by what the earlier ones left",
     "check": _S + """>>> s = Scheduler(BlockManager(32, 4), 8, 10)
>>> a, b = mk(6, "a"), mk(20, "b"); s.add(a); done(s.schedule()); s.add(b); done(s.schedule())
>>> out = s.schedule()
>>> assert out.num_new_tokens == [1, 9] and out.num_batched_tokens <= 10, out.num_new_tokens"""},
    {"task": 4, "file": "scheduler.py",
     "find": "            num_new = self._cap(len(seq) - seq.num_computed_tokens, token_budget)",
     "replace": "            num_new = min(len(seq) - seq.num_computed_tokens, token_budget)",
     "why": "long_prefill_token_threshold applied to new prompts only, not to a running one's later chunks",
     "check": _S + """>>> s = Scheduler(BlockManager(32, 4), 8, 16, long_prefill_token_threshold=5)
>>> a = mk(12); s.add(a); done(s.schedule())
>>> assert s.schedule().num_new_tokens == [5]"""},
    {"task": 4, "file": "scheduler.py",
     "find": "            num_new = self._cap(len(seq) - seq.num_computed_tokens, token_budget)",
     "replace": "            num_new = 1 if seq.num_computed_tokens >= seq.num_prompt_tokens else self._cap(len(seq) - seq.num_computed_tokens, token_budget)",
     "why": "v0 habit: a running sequence past its prompt always decodes 1 token, but one readmitted after preemption mid-generation must recompute all of its tokens",
     "check": _S + """>>> s = Scheduler(BlockManager(32, 4), 8, 3)
>>> a = mk(2); s.add(a); done(s.schedule()); done(s.schedule()); done(s.schedule())
>>> s.running.remove(a); s.preempt(a)
>>> out = s.schedule(); done(out)
>>> assert out.num_new_tokens == [3] and s.schedule().num_new_tokens == [2]"""},
    {"task": 4, "file": "scheduler.py",
     "find": "                victim = self.running.pop()  # the newest",
     "replace": "                victim = self.running.popleft()  # the newest",
     "why": "preempts the oldest running sequence instead of the newest",
     "check": _S + """>>> s = Scheduler(BlockManager(2, 4, watermark=0.0), 8, 16)
>>> a, b = mk(4, "a"), mk(3, "b"); s.add(a); s.add(b); done(s.schedule())
>>> out = s.schedule()
>>> assert out.preempted == [b] and out.seqs == [a], (out.preempted, out.seqs)"""},
    {"task": 4, "file": "scheduler.py",
     "find": "                if victim is seq:\n                    break",
     "replace": "                break",
     "why": "stops scheduling running sequences after any preemption, even when the victim's blocks let the current one grow",
     "check": _S + """>>> s = Scheduler(BlockManager(2, 4, watermark=0.0), 8, 16)
>>> a, b = mk(4, "a"), mk(3, "b"); s.add(a); s.add(b); done(s.schedule())
>>> out = s.schedule()
>>> assert out.seqs == [a] and out.num_new_tokens == [1]"""},
    {"task": 4, "file": "scheduler.py",
     "find": "                if victim is seq:\n                    break",
     "replace": "",
     "why": "after preempting itself the sequence keeps trying to grow: it is allocated and scheduled though it is back in waiting",
     "check": _S + """>>> s = Scheduler(BlockManager(1, 4, watermark=0.0), 8, 16)
>>> a = mk(4); s.add(a); done(s.schedule())
>>> out = s.schedule()
>>> assert out.seqs == [] and out.preempted == [a] and a.block_table == [] and list(s.waiting) == [a]"""},
    {"task": 4, "file": "scheduler.py",
     "find": "        if out.preempted:\n            return out",
     "replace": "",
     "why": "admits waiting sequences in a step that had to preempt (vLLM v1 admits none then)",
     "check": _S + """>>> s = Scheduler(BlockManager(3, 4, watermark=0.0), 8, 16, long_prefill_token_threshold=4)
>>> a, b = mk(4, "a"), mk(12, "b"); s.add(a); s.add(b); done(s.schedule())
>>> out = s.schedule()
>>> assert out.preempted == [b] and out.new_seqs == [] and out.seqs == [a], (out.seqs, out.new_seqs)"""},
    {"task": 4, "file": "scheduler.py",
     "find": "            num_new = len(seq) - computed",
     "replace": "            num_new = len(seq)",
     "why": "a prefix-cache hit not counted as computed: the first chunk recomputes the cached tokens and runs past the end",
     "check": _S + """>>> s = Scheduler(BlockManager(32, 4, enable_prefix_caching=True), 8, 64)
>>> a = mk(10, "a"); s.add(a); done(s.schedule()); s.finish(a, "stop")
>>> b = mk(10, "b"); s.add(b)
>>> assert s.schedule().num_new_tokens == [2] and b.num_computed_tokens == 8"""},
    {"task": 4, "file": "scheduler.py",
     "find": "            num_new = len(seq) - computed",
     "replace": "            num_new = seq.num_prompt_tokens - computed",
     "why": "a readmitted (preempted) sequence recomputes only its prompt, not the tokens it generated before",
     "check": _S + """>>> s = Scheduler(BlockManager(32, 4), 8, 64)
>>> a = mk(5); s.add(a); done(s.schedule()); done(s.schedule())
>>> s.running.remove(a); s.preempt(a)
>>> assert s.schedule().num_new_tokens == [7]"""},
    {"task": 4, "file": "scheduler.py",
     "find": "            if 0 < self.long_prefill_token_threshold < num_new:\n                num_new = self.long_prefill_token_threshold\n            if not self.enable_chunked_prefill and num_new > token_budget:\n                bm.free(seq)\n                break",
     "replace": "            if not self.enable_chunked_prefill and num_new > token_budget:\n                bm.free(seq)\n                break\n            if 0 < self.long_prefill_token_threshold < num_new:\n                num_new = self.long_prefill_token_threshold",
     "why": "with chunking off, the whole remainder is compared with the budget before the threshold caps it (vLLM v1 caps first)",
     "check": _S + """>>> s = Scheduler(BlockManager(32, 4), 8, 6, long_prefill_token_threshold=4, enable_chunked_prefill=False)
>>> s.add(mk(10))
>>> assert s.schedule().num_new_tokens == [4]"""},
    {"task": 4, "file": "scheduler.py",
     "find": "            if not self.enable_chunked_prefill and num_new > token_budget:\n                bm.free(seq)\n                break",
     "replace": "            if not self.enable_chunked_prefill and num_new > self.max_num_batched_tokens:\n                bm.free(seq)\n                break",
     "why": "with chunking off, a prompt is checked against the whole budget, not the budget left, so it is chunked anyway",
     "check": _S + """>>> s = Scheduler(BlockManager(32, 4), 8, 10, enable_chunked_prefill=False)
>>> s.add(mk(6, "a")); s.add(mk(6, "b"))
>>> out = s.schedule()
>>> assert out.num_new_tokens == [6], out.num_new_tokens"""},
    {"task": 4, "file": "scheduler.py",
     "find": "                bm.free(seq)\n                break\n            num_new = min(num_new, token_budget)",
     "replace": "                break\n            num_new = min(num_new, token_budget)",
     "why": "with chunking off, the refused prompt keeps its cached-prefix blocks: they leak and its next admission fails",
     "check": _S + """>>> bm = BlockManager(32, 4, enable_prefix_caching=True)
>>> s = Scheduler(bm, 8, 12, enable_chunked_prefill=False)
>>> a = mk(10, "a"); s.add(a); done(s.schedule()); s.finish(a, "stop")
>>> s.add(mk(6, "x", 100)); s.add(mk(20, "b")); out = s.schedule()
>>> assert out.num_new_tokens == [6] and s.waiting[0].block_table == [] and bm.num_used_blocks == 2, bm.num_used_blocks"""},
    {"task": 4, "file": "scheduler.py",
     "find": "            if not bm.can_allocate_slots(seq, num_new, new=True):",
     "replace": "            if not bm.can_allocate_slots(seq, num_new):",
     "why": "a new sequence may take the watermark blocks kept for the running ones to grow",
     "check": _S + """>>> bm = BlockManager(10, 4, watermark=0.2)
>>> s = Scheduler(bm, 8, 64)
>>> s.add(mk(8, "a")); done(s.schedule())
>>> s.add(mk(24, "b")); out = s.schedule()
>>> assert out.new_seqs == [] and len(s.waiting) == 1"""},
    {"task": 4, "file": "scheduler.py",
     "find": "                bm.free(seq)\n                break\n            copy = bm.allocate_slots(seq, num_new)",
     "replace": "                break\n            copy = bm.allocate_slots(seq, num_new)",
     "why": "a sequence refused for lack of blocks keeps its cached-prefix blocks while it waits (leak; free() needed)",
     "check": _S + """>>> bm = BlockManager(4, 4, watermark=0.0, enable_prefix_caching=True)
>>> s = Scheduler(bm, 8, 64)
>>> a = mk(9, "a"); s.add(a); done(s.schedule()); s.finish(a, "stop")
>>> s.add(mk(6, "x", 100)); done(s.schedule())
>>> b = mk(16, "b"); s.add(b)
>>> out = s.schedule()
>>> assert out.new_seqs == [] and b.block_table == []"""},
    {"task": 4, "file": "scheduler.py",
     "find": "            self.running.append(seq)",
     "replace": "            self.running.appendleft(seq)",
     "why": "admitted sequences put at the front of running: the oldest is then preempted first and served last",
     "check": _S + """>>> s = Scheduler(BlockManager(32, 4), 8, 64)
>>> a, b = mk(4, "a"), mk(4, "b"); s.add(a); s.add(b); done(s.schedule())
>>> assert s.schedule().seqs == [a, b]"""},
    {"task": 4, "file": "scheduler.py",
     "find": "            out.new_seqs.append(seq)",
     "replace": "            if seq.num_preemptions == 0:\n                out.new_seqs.append(seq)",
     "why": "a sequence readmitted after preemption is not reported as new, though its blocks are all new",
     "check": _S + """>>> s = Scheduler(BlockManager(32, 4), 8, 64)
>>> a = mk(4); s.add(a); done(s.schedule())
>>> s.running.remove(a); s.preempt(a)
>>> assert s.schedule().new_seqs == [a]"""},
    {"task": 4, "file": "scheduler.py",
     "find": "                token_budget -= num_new\n                index += 1",
     "replace": "                index += 1",
     "why": "running sequences' tokens (decodes) not taken from the budget: the step computes more than max_num_batched_tokens",
     "check": _S + """>>> s = Scheduler(BlockManager(32, 4), 8, 8)
>>> a = mk(4, "a"); s.add(a); done(s.schedule()); s.add(mk(20, "b"))
>>> out = s.schedule()
>>> assert out.num_new_tokens == [1, 7]"""},
    {"task": 4, "file": "scheduler.py",
     "find": "        self.waiting.appendleft(seq)",
     "replace": "        self.waiting.append(seq)",
     "why": "a preempted sequence goes to the back of the waiting queue: newer requests overtake it",
     "check": _S + """>>> s = Scheduler(BlockManager(32, 4), 8, 64)
>>> a, b = mk(4, "a"), mk(4, "b"); s.add(a); done(s.schedule()); s.add(b)
>>> s.running.remove(a); s.preempt(a)
>>> assert list(s.waiting) == [a, b]"""},
    # ---------------------------------------------------------------- task 4: block manager
    {"task": 4, "file": "block_manager.py",
     "find": "        needed = missing + int(shared)",
     "replace": "        needed = missing",
     "why": "the copy-on-write block of a shared last block is not counted: the pool can be over-committed",
     "check": _S + """>>> bm = BlockManager(3, 4, watermark=0.0)
>>> a = mk(6); _ = bm.allocate_slots(a, 6); a.num_computed_tokens = 6; a.token_ids.append(7)
>>> c = mk(7); c.token_ids = list(a.token_ids); bm.fork(a, c); _ = bm._take_free_block()
>>> assert bm.num_free_blocks == 0 and not bm.can_allocate_slots(a, 1)"""},
    {"task": 4, "file": "block_manager.py",
     "find": "        if not new or self.num_used_blocks == len(seq.block_table):",
     "replace": "        if not new:",
     "why": "the watermark is not waived for a lone sequence: a prompt needing the whole pool is never admitted",
     "check": _S + """>>> bm = BlockManager(4, 4, watermark=0.5)
>>> assert bm.can_allocate_slots(mk(16), 16, new=True)"""},
    {"task": 4, "file": "block_manager.py",
     "find": "        if not new or self.num_used_blocks == len(seq.block_table):",
     "replace": "        if not new or self.num_used_blocks == 0:",
     "why": "'alone' read as 'the pool is unused' (task 1's can_allocate): a sequence holding only its own cached prefix still has to leave the watermark",
     "check": _S + """>>> bm = BlockManager(4, 4, watermark=0.5, enable_prefix_caching=True)
>>> a = mk(13); _ = bm.allocate_cached_prefix(a); _ = bm.allocate_slots(a, 13); bm.free(a)
>>> b = mk(13); _ = bm.allocate_cached_prefix(b)
>>> assert b.num_computed_tokens == 12 and bm.can_allocate_slots(b, 1, new=True)"""},
    {"task": 4, "file": "block_manager.py",
     "find": "        for index in range(seq.num_computed_tokens // self.block_size, end // self.block_size):",
     "replace": "        for index in range(seq.num_computed_tokens // self.block_size, (end - 1) // self.block_size):",
     "why": "a block that the chunk's last token fills is not reported full, so the prefix cache misses it",
     "check": _S + """>>> bm = BlockManager(8, 4, enable_prefix_caching=True)
>>> a = mk(9); _ = bm.allocate_cached_prefix(a); _ = bm.allocate_slots(a, 8)
>>> assert bm.blocks[a.block_table[1]].block_hash is not None"""},
]
